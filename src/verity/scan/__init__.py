"""Batch scanning: analyse a folder or a manifest of images into a results table.

``verity scan`` (:mod:`verity.cli.scan`) is the interface; this package holds the parts below it:

- :mod:`verity.scan.inputs`: folders and manifests (CSV, JSON Lines, plain text) into a path list;
- :mod:`verity.scan.rows`: one file into one result row (the schema in ``docs/scan.md``), never raising;
- :mod:`verity.scan.output`: the JSON Lines / Parquet writers, their crash-safe journal and resume;
- :mod:`verity.scan.engine`: the local engines (in-process, process pool) and the scan driver;
- :mod:`verity.scan.ray_engine`: the same analysis on Ray Data (``map_batches``, one model load per actor).

Nothing heavy is imported at import time.
"""

from __future__ import annotations

#: Version of the scan row schema (``docs/scan.md``), stored in the Parquet metadata.
SCAN_SCHEMA_VERSION = "1.0"
