"""verity.web"""
