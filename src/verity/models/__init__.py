"""verity.models"""
