"""verity.train"""
