"""tampering detectors."""
