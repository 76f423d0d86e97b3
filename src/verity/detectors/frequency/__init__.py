"""frequency detectors."""
