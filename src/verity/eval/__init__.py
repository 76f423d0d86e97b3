"""verity.eval"""
