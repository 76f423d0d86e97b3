"""verity.api"""
