"""provenance detectors."""
