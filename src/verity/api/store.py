"""Where analyses persist: one SQLite database and a few folders under the data directory.

Layout::

    DATA_DIR/verity.sqlite3        one row per analysis (the result JSON and a summary)
    DATA_DIR/uploads/<id>.<ext>    the uploaded file, named by the server (never by the client)
    DATA_DIR/arrays/<id>.npz       heatmaps (float16) for re-rendering on demand
    DATA_DIR/display/<id>.jpg      the oriented, down-scaled copy shown on the page
    DATA_DIR/cache/<id>/...        rendered heatmap and face PNGs

Ids are 32 random hex digits; every path is built from an id that matched that pattern and a
name the server chose, so nothing a client sends reaches the filesystem.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ID_RE = re.compile(r"^[0-9a-f]{32}$")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif",
              "MP4": "mp4", "MOV": "mov", "MATROSKA": "mkv", "AVI": "avi", "MPEG-TS": "ts", "MPEG-PS": "mpg",
              "FLV": "flv", "ASF": "asf", "OGG": "ogv"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    filename TEXT,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    confidence REAL NOT NULL,
    stored_name TEXT NOT NULL,
    heatmaps TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS analyses_sha256 ON analyses(sha256);
"""


def new_id() -> str:
    return secrets.token_hex(16)


def valid_id(s: str) -> bool:
    return bool(ID_RE.match(s or ""))


def clean_filename(name: str | None) -> str | None:
    """The client's file name reduced to a label for display: base name only, no control characters,
    at most 200 characters. Never used to build a path."""
    if not name:
        return None
    base = re.split(r"[\\/]", str(name))[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:200] or None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class Record:
    """One stored analysis."""

    id: str
    created_at: str
    filename: str | None
    sha256: str
    format: str
    bytes: int
    verdict: str
    confidence: float
    stored_name: str
    heatmaps: list[str]
    result: dict[str, Any]


class Store:
    """SQLite-backed store of analyses (safe to use from several threads)."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir)
        for sub in ("uploads", "arrays", "display", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "verity.sqlite3"
        self._write_lock = threading.Lock()
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db_path, timeout=30.0)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.row_factory = sqlite3.Row
            yield con
            con.commit()
        finally:
            con.close()

    # paths, all built from validated ids and server-chosen names
    def upload_path(self, rec: Record) -> Path:
        return self.root / "uploads" / rec.stored_name

    def arrays_path(self, analysis_id: str) -> Path:
        assert valid_id(analysis_id)
        return self.root / "arrays" / f"{analysis_id}.npz"

    def display_path(self, analysis_id: str) -> Path:
        assert valid_id(analysis_id)
        return self.root / "display" / f"{analysis_id}.jpg"

    def cache_path(self, analysis_id: str, name: str) -> Path:
        assert valid_id(analysis_id) and re.match(r"^[a-z0-9_.-]+$", name)
        return self.root / "cache" / analysis_id / name

    def save_files(
        self,
        analysis_id: str,
        fmt: str,
        data: bytes,
        heatmaps: dict[str, np.ndarray],
        display_jpeg: bytes,
    ) -> str:
        """Write the upload, its heatmap arrays and display copy; return the stored file name."""
        stored = f"{analysis_id}.{EXTENSIONS.get(fmt, 'bin')}"
        _atomic_write(self.root / "uploads" / stored, data)
        if heatmaps:
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **{f"h{i}": np.asarray(h, np.float16) for i, h in enumerate(heatmaps.values())})
            _atomic_write(self.arrays_path(analysis_id), buf.getvalue())
        _atomic_write(self.display_path(analysis_id), display_jpeg)
        return stored

    def write_cache(self, analysis_id: str, name: str, data: bytes) -> None:
        _atomic_write(self.cache_path(analysis_id, name), data)

    def insert(self, rec: Record) -> None:
        with self._write_lock, self._connect() as con:
            con.execute(
                "INSERT INTO analyses (id, created_at, filename, sha256, format, bytes, verdict, confidence,"
                " stored_name, heatmaps, result) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (rec.id, rec.created_at, rec.filename, rec.sha256, rec.format, rec.bytes, rec.verdict,
                 rec.confidence, rec.stored_name, json.dumps(rec.heatmaps), json.dumps(rec.result)),
            )

    def get(self, analysis_id: str) -> Record | None:
        if not valid_id(analysis_id):
            return None
        with self._connect() as con:
            row = con.execute("SELECT * FROM analyses WHERE id = ?", (analysis_id,)).fetchone()
        return None if row is None else _record(row)

    def list(self, limit: int = 20, offset: int = 0) -> tuple[list[Record], int]:
        """Newest first; returns (records, total count)."""
        with self._connect() as con:
            total = int(con.execute("SELECT COUNT(*) FROM analyses").fetchone()[0])
            rows = con.execute(
                "SELECT * FROM analyses ORDER BY seq DESC LIMIT ? OFFSET ?", (int(limit), int(offset))
            ).fetchall()
        return [_record(r) for r in rows], total

    def delete(self, analysis_id: str) -> bool:
        rec = self.get(analysis_id)
        if rec is None:
            return False
        with self._write_lock, self._connect() as con:
            con.execute("DELETE FROM analyses WHERE id = ?", (analysis_id,))
        for p in (self.upload_path(rec), self.arrays_path(analysis_id), self.display_path(analysis_id)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(self.root / "cache" / analysis_id, ignore_errors=True)
        return True

    def heatmap(self, rec: Record, detector: str) -> np.ndarray | None:
        """The stored heatmap array of one detector, or None."""
        try:
            i = rec.heatmaps.index(detector)
        except ValueError:
            return None
        try:
            with np.load(self.arrays_path(rec.id), allow_pickle=False) as z:
                return np.asarray(z[f"h{i}"], np.float32)
        except (OSError, KeyError, ValueError):
            return None

    def all_heatmaps(self, rec: Record) -> dict[str, np.ndarray]:
        out = {}
        for name in rec.heatmaps:
            h = self.heatmap(rec, name)
            if h is not None:
                out[name] = h
        return out


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(row: sqlite3.Row) -> Record:
    return Record(
        id=row["id"],
        created_at=row["created_at"],
        filename=row["filename"],
        sha256=row["sha256"],
        format=row["format"],
        bytes=int(row["bytes"]),
        verdict=row["verdict"],
        confidence=float(row["confidence"]),
        stored_name=row["stored_name"],
        heatmaps=json.loads(row["heatmaps"]),
        result=json.loads(row["result"]),
    )
