"""metadata detectors."""
