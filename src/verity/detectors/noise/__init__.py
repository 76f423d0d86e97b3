"""noise detectors."""
