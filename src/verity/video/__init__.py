"""verity.video"""
