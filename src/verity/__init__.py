"""verity: offline-first deepfake and synthetic-media forensics."""

__version__ = "0.1.0"
SCHEMA_VERSION = "1.0"
