"""Command-line interface (``verity``)."""
