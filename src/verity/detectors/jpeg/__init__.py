"""jpeg detectors."""
