"""Result files that lose nothing: JSON Lines and Parquet, a journal, resume.

Every completed row is appended to a JSON Lines *journal* and flushed and fsynced before the next
one is taken, so a scan killed at any moment (SIGKILL, power loss after the fsync) keeps every row
it had finished. For ``.jsonl`` output the journal *is* the output. For ``.parquet`` output the
journal is a side file, ``<out>.journal.jsonl``; when the scan ends (also on Ctrl-C) the Parquet file
is rewritten from its previous rows plus the journal (to a temporary file, fsynced, then renamed
over the old one) and the journal is deleted. A journal left behind by a killed scan is read by
``--resume`` and folded into the Parquet file at the end of that run.

A line cut short by a kill is dropped when the journal is reopened. A row for a path that appears
twice (possible only after a crash between the Parquet rename and the journal deletion) is kept once,
the later one. Only one scan may write an output at a time (an advisory lock on the journal).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from verity.core.errors import VerityError
from verity.scan import SCAN_SCHEMA_VERSION
from verity.scan.rows import COLUMNS

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
JOURNAL_SUFFIX = ".journal.jsonl"


class OutputError(VerityError):
    """The output cannot be used as asked (a usage error: exit code 2)."""

    code = "bad_output"
    exit_code = 2


def output_format(path: str | os.PathLike) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputError(f"{path}: the output must end in .jsonl or .parquet")
    return fmt


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(str(d), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """An append-only JSON Lines file with one fsync per row and an exclusive advisory lock."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = -1
            raise OutputError(f"{self.path} is being written by another scan") from None
        self.rows, self.bad_lines = self._load()

    def _load(self) -> tuple[list[dict[str, Any]], int]:
        with open(self.path, "rb") as fh:
            data = fh.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut short by a kill: drop it so the next row starts on its own line
            os.ftruncate(self.fd, end)
            os.fsync(self.fd)
            data = data[:end]
        rows, bad = [], 0
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad += 1
                continue
            if isinstance(obj, dict) and isinstance(obj.get("path"), str):
                rows.append(obj)
            else:
                bad += 1
        return rows, bad

    def append(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        os.fsync(self.fd)
        self.rows.append(row)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1


def _refuse_if_locked(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise OutputError(f"{path} is being written by another scan") from None
    finally:
        os.close(fd)


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_path: dict[str, dict[str, Any]] = {}
    for r in rows:
        by_path.pop(r["path"], None)
        by_path[r["path"]] = r
    return list(by_path.values())


def arrow_schema():
    """The Parquet schema of a result row (``docs/scan.md``)."""
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    types = {
        "path": s, "status": s, "sha256": s, "verdict": s, "confidence": f,
        "evidence": pa.list_(s), "explanation": s, "scores": pa.map_(s, f), "n_faces": i,
        "format": s, "width": i, "height": i, "bytes": i, "detector_errors": pa.list_(s),
        "error_code": s, "error": s, "seconds": f, "timings": pa.map_(s, f),
    }
    fields = [pa.field(c, types.get(c, f)) for c in COLUMNS]  # p_<class> are float64
    return pa.schema(fields, metadata={"verity_scan_schema": SCAN_SCHEMA_VERSION})


def _from_arrow(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("scores", "timings"):
        if isinstance(row.get(k), list):
            row[k] = dict(row[k])
    for k in ("evidence", "detector_errors"):
        if row.get(k) is None:
            row[k] = []
    return row


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        err = OutputError("Parquet output needs pyarrow (pip install pyarrow, or write .jsonl)")
        err.exit_code = 4
        raise err from None


def read_parquet_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise OutputError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    return [_from_arrow(r) for r in table.to_pylist()]


def write_parquet_rows(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write rows (sorted by path) atomically: temporary file, fsync, rename, fsync of the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    rows = sorted(rows, key=lambda r: r["path"])
    schema = arrow_schema()
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, str(tmp))
    fd = os.open(str(tmp), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class ScanOutput:
    """The output of a scan: where completed rows go and what is already there.

    Parameters
    ----------
    path : path
        ``.jsonl`` (or ``.ndjson``) or ``.parquet``.
    resume : bool
        Keep what is there and report it through :meth:`completed_paths`.
    overwrite : bool
        Delete what is there first. Without either flag an existing output is refused.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.format = output_format(self.path)
        if self.format == "parquet":
            _require_pyarrow()
        self.journal_path = self.path if self.format == "jsonl" else self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        existing = [p for p in {self.path, self.journal_path} if p.exists()]
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder")
        if existing and not resume and not overwrite:
            raise OutputError(f"{self.path} already exists (--resume continues it, --overwrite starts again)")
        if existing and overwrite and not resume:
            if self.journal_path.exists():
                _refuse_if_locked(self.journal_path)  # never delete what a running scan is writing
            for p in existing:
                p.unlink()
        self.previous: list[dict[str, Any]] = []
        if self.format == "parquet" and self.path.exists():
            self.previous = read_parquet_rows(self.path)
        self.journal = Journal(self.journal_path)
        self.resumed = len(self.completed_paths())

    @property
    def bad_lines(self) -> int:
        return self.journal.bad_lines

    def completed_paths(self) -> set[str]:
        return {r["path"] for r in self.previous} | {r["path"] for r in self.journal.rows}

    def append(self, row: dict[str, Any]) -> None:
        self.journal.append(row)

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the output so far (previous Parquet rows, then the journal), one per path."""
        return _dedupe(self.previous + self.journal.rows)

    def close(self) -> None:
        """Fold the journal into the Parquet file (Parquet output) and release the lock."""
        if self.journal.fd < 0:
            return
        try:
            if self.format == "parquet":
                write_parquet_rows(self.path, self.rows())
                self.journal_path.unlink()
                _fsync_dir(self.path.parent)
        finally:
            self.journal.close()


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a scan output (``.jsonl`` or ``.parquet`` plus any journal left by a killed scan),
    one per path."""
    path = Path(path)
    fmt = output_format(path)
    rows: list[dict[str, Any]] = []
    if fmt == "parquet" and path.exists():
        _require_pyarrow()
        rows = read_parquet_rows(path)
    jpath = path if fmt == "jsonl" else path.with_name(path.name + JOURNAL_SUFFIX)
    if jpath.exists():
        for line in jpath.read_bytes().splitlines():
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(obj, dict) and isinstance(obj.get("path"), str):
                rows.append(obj)
    return _dedupe(rows)
