"""verity.provenance"""
