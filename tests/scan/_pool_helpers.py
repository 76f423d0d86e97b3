"""Worker functions for the pool crash test (importable by spawned workers)."""

from __future__ import annotations

import os

from verity.scan.rows import empty_row


def init(config, ppid) -> None:
    pass


def work(path: str) -> dict:
    if "crash" in os.path.basename(path):
        os._exit(3)  # a worker dying like a segfaulting decoder
    row = empty_row(path)
    row.update(status="ok", verdict="authentic", seconds=0.0)
    return row
