"""learned detectors."""
