"""verity.index"""
