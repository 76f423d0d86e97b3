"""The similarity index: known images, their PDQ hashes, global embeddings and faces, in Milvus.

``verity index add`` stores reference images (real originals, known fakes); ``verity index search``
and the ``index_match`` detector look a new image up: near duplicates by PDQ Hamming distance,
similar images by embedding cosine, and matching faces. The database is embedded Milvus Lite in a
directory (default ``$VERITY_DATA_DIR/index`` or ``~/.local/share/verity/index``) or a Milvus server
(``--milvus-uri`` / ``$VERITY_MILVUS_URI``, e.g. ``http://host:19530``).

This package imports nothing heavy at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming a Milvus server (``MILVUS_URI`` is read by pymilvus itself at import).
URI_ENV = "VERITY_MILVUS_URI"
DATA_ENV = "VERITY_DATA_DIR"
#: Name of the Milvus Lite data directory inside an index directory (pymilvus wants a ``.db`` name).
MILVUS_DIRNAME = "milvus.db"


def data_dir() -> Path:
    """verity's per-user data folder: ``$VERITY_DATA_DIR``, else ``$XDG_DATA_HOME/verity``, else
    ``~/.local/share/verity``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "verity"


def default_index_dir() -> Path:
    """Where the index lives unless ``--index-dir`` says otherwise."""
    return data_dir() / "index"


def default_uri() -> str | None:
    """``$VERITY_MILVUS_URI`` when set (a Milvus server), else ``None`` (embedded Milvus Lite)."""
    return os.environ.get(URI_ENV) or None


def index_exists(index_dir: str | os.PathLike | None = None, uri: str | None = None) -> bool:
    """True when a server URI is configured or a local index directory has been created."""
    if uri or default_uri():
        return True
    d = Path(index_dir) if index_dir else default_index_dir()
    return (d / MILVUS_DIRNAME).is_dir()
