"""face detectors."""
