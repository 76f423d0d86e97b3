"""Storage of the similarity index in Milvus (embedded Milvus Lite or a server), with a journal.

Collections
-----------
``verity_images`` (one row per image, primary key = SHA-256 of the file's bytes)
    ``embedding`` (1280-d, cosine), ``pdq`` (256-d +-1 vector, inner product = 256 - 2 x Hamming),
    ``pdq_hex``, ``pdq_quality``, ``label``, ``fake_class``, ``source``, ``path``, ``width``,
    ``height``, ``n_faces``, ``added`` (Unix time).
``verity_faces`` (one row per face, primary key ``<sha256>:<n>``)
    ``embedding`` (512-d FaceNet, cosine), ``image_sha``, ``face_index``, ``box`` (JSON), ``score``.

Durability
----------
A write is acknowledged (``add`` returns its SHA) only after

1. the whole record (vectors included) is appended to ``journal.log`` in the index directory with a
   CRC-32 per line and ``fsync``-ed, and
2. Milvus accepted the upserts (faces first, then the image row, which is what makes the image
   visible: searches ignore face rows whose image row is missing).

Opening the index for writing replays the journal (idempotent upserts and deletes, in order), so an
acknowledged record survives a killed process even if Milvus lost it; a torn last line (a write that
was never acknowledged) fails its CRC and is dropped. ``checkpoint`` flushes Milvus, syncs the file
system and truncates the journal; it runs every ``checkpoint_every`` records and on close.

Sharing
-------
Milvus Lite locks its database directory, so only one process can open it. The process that opens
it first runs the embedded Milvus Lite server (a gRPC server on 127.0.0.1) as before and writes its
pid and port to ``milvus.endpoint`` in the index directory; any other verity process (``verity
index stats`` or ``add`` next to a running ``verity serve``) connects to that port instead of
opening the database. Writers still take ``journal.lock``, so at most one process writes, and the
journal is in the writer's own index directory either way. When the holder stops, the other
processes re-open the database (one of them becomes the holder) and repeat the interrupted
operation, all of which are idempotent; a writer replays its journal then, so writes the stopped
holder had not flushed are not lost. A database held by a process that does not publish a port is
reported in one line naming that process (from ``/proc/locks``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import VerityError
from verity.index import MILVUS_DIRNAME, default_index_dir, default_uri

IMAGES = "verity_images"
FACES = "verity_faces"
LABELS = ("real", "fake", "known_fake", "unlabelled")
FAKE_CLASSES = ("ai_generated", "edited", "face_manipulated")
SCHEMA_VERSION = 1
JOURNAL = "journal.log"
#: The PDQ hashes of a local index as a flat file (see :class:`PdqTable`), rewritten at each checkpoint.
PDQ_TABLE = "pdq_table.bin"
_PDQ_MAGIC = b"VPDQTBL1"

#: Environment variable: seconds to wait for a busy index (default 5).
WAIT_ENV = "VERITY_INDEX_WAIT"

#: Open local stores per Milvus Lite directory in this process: the embedded server is shared by all
#: of them and stopped when the last one closes.
_LOCAL_USERS: dict[str, int] = {}

_IMAGE_FIELDS = ["sha256", "pdq_hex", "pdq_quality", "label", "fake_class", "source", "path", "width", "height", "n_faces", "added"]


class IndexStoreError(VerityError):
    """The index cannot be opened or used (one-line reason)."""

    code = "index"
    exit_code = 1


class IndexBusy(IndexStoreError):
    code = "index_busy"


class IndexMissing(IndexStoreError):
    code = "index_missing"
    exit_code = 4


@dataclass
class FaceEntry:
    """A face of an indexed image."""

    box: tuple[float, float, float, float]
    score: float
    embedding: np.ndarray


@dataclass
class ImageRecord:
    """Everything stored about one image."""

    sha256: str
    embedding: np.ndarray
    pdq: np.ndarray  # (256,) 0/1
    pdq_quality: int
    label: str = "unlabelled"
    source: str = ""
    path: str = ""
    width: int = 0
    height: int = 0
    fake_class: str = ""
    faces: list[FaceEntry] = field(default_factory=list)
    added: float = 0.0

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {self.label!r}")
        if self.fake_class and self.fake_class not in FAKE_CLASSES:
            raise ValueError(f"fake class must be one of {', '.join(FAKE_CLASSES)}, got {self.fake_class!r}")


# ------------------------------------------------------------------------------------------ journal


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, "<f4").tobytes()).decode()


def _unb64(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), "<f4").astype(np.float32)


def record_to_json(r: ImageRecord) -> dict:
    from verity.index.pdq import to_hex

    return {
        "sha256": r.sha256, "embedding": _b64(r.embedding), "pdq": to_hex(r.pdq), "pdq_quality": int(r.pdq_quality),
        "label": r.label, "source": r.source, "path": r.path, "width": int(r.width), "height": int(r.height),
        "fake_class": r.fake_class, "added": float(r.added),
        "faces": [{"box": [float(v) for v in f.box], "score": float(f.score), "embedding": _b64(f.embedding)} for f in r.faces],
    }


def record_from_json(d: dict) -> ImageRecord:
    from verity.index.pdq import from_hex

    return ImageRecord(
        sha256=d["sha256"], embedding=_unb64(d["embedding"]), pdq=from_hex(d["pdq"]), pdq_quality=int(d["pdq_quality"]),
        label=d["label"], source=d["source"], path=d["path"], width=int(d["width"]), height=int(d["height"]),
        fake_class=d.get("fake_class", ""), added=float(d["added"]),
        faces=[FaceEntry(tuple(f["box"]), float(f["score"]), _unb64(f["embedding"])) for f in d["faces"]],
    )


class Journal:
    """Append-only, fsync-ed, CRC-checked log of index operations (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")

    def append(self, ops: list[dict]) -> None:
        lines = []
        for op in ops:
            body = json.dumps(op, separators=(",", ":")).encode()
            lines.append(b"%08x " % zlib.crc32(body) + body + b"\n")
        self._fh.write(b"".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def read(self) -> tuple[list[dict], int]:
        """Valid operations in order, and the number of damaged lines skipped (a torn tail)."""
        ops, bad = [], 0
        if not self.path.is_file():
            return ops, bad
        for raw in self.path.read_bytes().split(b"\n"):
            if not raw:
                continue
            try:
                crc, body = raw[:8], raw[9:]
                if int(crc, 16) != zlib.crc32(body) or raw[8:9] != b" ":
                    raise ValueError
                ops.append(json.loads(body))
            except (ValueError, json.JSONDecodeError):
                bad += 1
        return ops, bad

    def truncate(self) -> None:
        self._fh.close()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._fh = open(self.path, "ab")

    def __len__(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def close(self) -> None:
        try:
            self._fh.close()
        except Exception:
            pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# ------------------------------------------------------------------------------- in-memory PDQ scan


class PdqTable:
    """All PDQ hashes of a local index, packed 256 bits to four 64-bit words, for exact Hamming search.

    A brute-force XOR + popcount over 100k hashes (3.2 MB) takes a few milliseconds, where a vector
    search of the same hashes through Milvus Lite costs a Python loop per stored row. Kept only for the
    embedded database, which one process uses at a time: every change goes through this process's
    :class:`IndexStore`, which updates the table as it writes. With a Milvus server other processes
    may write, so the search goes to the server instead.
    """

    def __init__(self) -> None:
        self.shas: list[str] = []
        self.words = np.zeros((0, 4), np.uint64)
        self.valid = np.zeros(0, bool)
        self.pos: dict[str, int] = {}
        self._pending: list[tuple[str, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.pos)

    def upsert(self, sha: str, words: np.ndarray) -> None:
        # rows [0, len(words)) are packed; shas[len(words) + p] is _pending[p]
        w = np.asarray(words, np.uint64).reshape(4)
        i = self.pos.get(sha)
        if i is not None and i < len(self.words):
            self.words[i] = w
        elif i is not None:
            self._pending[i - len(self.words)] = (sha, w)
        else:
            self.pos[sha] = len(self.shas)
            self.shas.append(sha)
            self._pending.append((sha, w))

    def extend(self, shas: list[str], words: np.ndarray) -> None:
        for sha, w in zip(shas, words):
            self.upsert(sha, w)

    def remove(self, sha: str) -> None:
        i = self.pos.pop(sha, None)
        if i is None:
            return
        self._flush_pending()
        self.valid[i] = False

    def _flush_pending(self) -> None:
        if self._pending:
            self.words = np.concatenate([self.words, np.stack([w for _, w in self._pending])])
            self.valid = np.concatenate([self.valid, np.ones(len(self._pending), bool)])
            self._pending = []

    def save(self, path: Path) -> None:
        """Write atomically: magic, count, SHA-256 digests, packed hashes, CRC-32 of all before it."""
        self._flush_pending()
        live = np.flatnonzero(self.valid)
        shas = b"".join(bytes.fromhex(self.shas[i]) for i in live)
        body = _PDQ_MAGIC + np.uint64(len(live)).tobytes() + shas + self.words[live].tobytes()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(body + np.uint32(zlib.crc32(body)).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "PdqTable | None":
        """The table saved at ``path``; None when missing or damaged."""
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        if len(raw) < 20 or raw[:8] != _PDQ_MAGIC or int(np.frombuffer(raw[-4:], np.uint32)[0]) != zlib.crc32(raw[:-4]):
            return None
        n = int(np.frombuffer(raw[8:16], np.uint64)[0])
        if len(raw) != 20 + 64 * n:
            return None
        t = cls()
        digests = raw[16:16 + 32 * n]
        t.shas = [digests[32 * i:32 * i + 32].hex() for i in range(n)]
        t.pos = {sha: i for i, sha in enumerate(t.shas)}
        t.words = np.frombuffer(raw[16 + 32 * n:16 + 64 * n], np.uint64).reshape(n, 4).copy()
        t.valid = np.ones(n, bool)
        return t

    def search(self, query_words: np.ndarray, k: int) -> list[tuple[str, int]]:
        """(sha256, Hamming distance) of the k nearest hashes, nearest first (ties by insertion order)."""
        from verity.index.pdq import BITS, hamming_many

        self._flush_pending()
        if not len(self.pos) or k < 1:
            return []
        d = hamming_many(self.words, query_words)
        if not self.valid.all():
            d = np.where(self.valid, d, BITS + 1)
        k = min(int(k), len(self.pos))
        idx = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
        idx = idx[np.lexsort((idx, d[idx]))]
        return [(self.shas[i], int(d[i])) for i in idx if d[i] <= BITS]


# -------------------------------------------------------------------------------------------- store


class IndexStore:
    """Open (or create) the index.

    Parameters
    ----------
    index_dir : path, optional
        Local index directory (default :func:`verity.index.default_index_dir`). Holds the Milvus Lite
        database (``milvus.db/``, a directory) and the journal; with a server URI only the journal.
    uri : str, optional
        Milvus server, e.g. ``http://host:19530`` (default ``$VERITY_MILVUS_URI``; none = embedded).
    create : bool
        Create the collections when missing; otherwise a missing local index raises
        :class:`IndexMissing`.
    checkpoint_every : int
        Records between checkpoints (Milvus flush + journal truncation).
    read_only : bool
        Do not take the journal (no replay, no writes); several read-only stores may be open in one
        process, for example the ``index_match`` detector's.
    pdq_scan : {"auto", "milvus"}
        How near duplicates are looked up. ``"auto"``: for the embedded database, an exact Hamming scan
        of the hashes in memory (:class:`PdqTable`, loaded from ``pdq_table.bin``), falling back to a
        Milvus inner-product search when that file is missing or does not match the database; with a
        server, always the server. ``"milvus"``: always the Milvus search (the benchmark's baseline).
    wait : float, optional
        Seconds to wait for a journal held by another writer, or for the process holding the embedded
        database to publish its port (default ``$VERITY_INDEX_WAIT`` or 5).
    """

    def __init__(self, index_dir: str | os.PathLike | None = None, uri: str | None = None, create: bool = False,
                 checkpoint_every: int = 256, token: str | None = None, read_only: bool = False,
                 pdq_scan: str = "auto", wait: float | None = None):
        self.index_dir = Path(index_dir) if index_dir else default_index_dir()
        self.uri = uri or default_uri()
        self.local = self.uri is None
        self.checkpoint_every = int(checkpoint_every)
        self._since_checkpoint = 0
        self._lock_fd: int | None = None
        self._lock_key: str | None = None
        self.journal: Journal | None = None
        #: seconds to wait for a busy journal lock, or for the holder of the database to publish its port
        self.wait = max(0.0, float(wait)) if wait is not None else _env_wait()
        #: pid of the process whose embedded Milvus Lite this store goes through (None: our own or a server)
        self.shared_with: int | None = None
        self._owner = False  # this store started the embedded server and published its endpoint
        self._embedded: str | None = None  # the database path, while this store counts in _LOCAL_USERS
        self._reconnecting = False
        self._token = token
        self._pdq_sig: tuple | None = None
        if self.local and not (self.index_dir / MILVUS_DIRNAME).is_dir() and not create:
            raise IndexMissing(f"no index at {self.index_dir} (create one with: verity index add PATH...)")
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.replayed, self.dropped = 0, 0
        if pdq_scan not in ("auto", "milvus"):
            raise ValueError(f"pdq_scan must be 'auto' or 'milvus', got {pdq_scan!r}")
        self.pdq_scan = pdq_scan
        #: the in-memory PDQ table (None: not loaded yet or not used); _pdq_tried: load attempted
        self._pdq: PdqTable | None = None
        self._pdq_tried = False
        #: metric of each (collection, vector field) index: COSINE (indexes built before) or IP (unit vectors)
        self._metric: dict[str, str] = {}
        if not read_only:
            self._acquire_writer_lock()
        self._raw = self._connect(token)
        self.client = _Client(self)
        try:
            self._ensure_collections(create)
            if self.journal is not None:
                if self.local and self.pdq_scan == "auto":
                    self._pdq = PdqTable.load(self.index_dir / PDQ_TABLE) or PdqTable()
                    self._pdq_tried = True
                self.replay()
                if self._pdq is not None and len(self._pdq) != self.count():
                    self._pdq = self._rebuild_pdq_table()
        except Exception:
            self.close()
            raise

    # -- connection -------------------------------------------------------------------------------

    def _connect(self, token: str | None):
        """A client for the database: a Milvus server, this process's embedded Milvus Lite, or the
        embedded Milvus Lite of the process that already holds the database (see :ref:`sharing`)."""
        try:
            from pymilvus import MilvusClient
        except ImportError:
            err = IndexStoreError("the index needs pymilvus and milvus-lite (pip install 'verity[index]')")
            err.exit_code = 4  # type: ignore[attr-defined]
            raise err from None
        _quiet_milvus_logs()
        token = token or os.environ.get("VERITY_MILVUS_TOKEN", "")
        if not self.local:
            try:
                return MilvusClient(uri=self.uri, token=token)
            except Exception as e:  # pymilvus wraps everything in MilvusException
                raise IndexStoreError(f"cannot open the index at {self.uri}: {_first_line(e)}") from None
        path = str((self.index_dir / MILVUS_DIRNAME).resolve())
        deadline = time.monotonic() + self.wait
        why = "it does not publish an endpoint (an older verity, or another program)"
        while True:
            if _LOCAL_USERS.get(path, 0) > 0:  # this process already runs the embedded server
                client = self._open_embedded(MilvusClient, path, token)
                if client is not None:
                    return client
            holder = lock_holder(Path(path))
            if holder is None:  # free: run the embedded server here and publish its port
                client = self._open_embedded(MilvusClient, path, token)
                if client is not None:
                    self._owner = True
                    _publish_endpoint(self.index_dir, _embedded_port(path))
                    return client
            else:  # held by another process: go through its embedded server
                ep = read_endpoint(self.index_dir)
                if ep is not None and (holder <= 0 or ep["pid"] == holder) and _pid_alive(ep["pid"]):
                    try:
                        client = MilvusClient(uri=f"http://127.0.0.1:{ep['port']}", token=token, timeout=5)
                        client.list_collections()
                        self.shared_with = ep["pid"]
                        return client
                    except Exception as e:  # noqa: BLE001 - it may just have stopped: look again
                        why = f"its endpoint does not answer ({_first_line(e)})"
                elif ep is not None:
                    why = "its endpoint file is stale"
            if time.monotonic() >= deadline:
                if holder is None:
                    raise IndexStoreError(f"cannot open the index at {self.index_dir}: the embedded Milvus Lite "
                                          "did not start") from None
                raise IndexBusy(f"the index at {self.index_dir} is in use by {describe_process(holder)} and "
                                f"cannot be shared: {why}") from None
            time.sleep(0.1)

    def _open_embedded(self, MilvusClient, path: str, token: str):
        """A client of this process's embedded server for ``path`` (started when needed); None when the
        database is locked by another process after all (a race)."""
        try:
            client = MilvusClient(uri=path, token=token)
        except Exception as e:  # noqa: BLE001 - pymilvus wraps everything in MilvusException
            if lock_holder(Path(path)) is not None:
                return None
            raise IndexStoreError(f"cannot open the index at {self.index_dir}: {_first_line(e)}") from None
        _LOCAL_USERS[path] = _LOCAL_USERS.get(path, 0) + 1
        self._embedded = path
        return client

    def _may_reconnect(self, e: Exception) -> bool:
        """True when ``e`` says the process whose embedded server this store used has gone away."""
        return self.shared_with is not None and not self._reconnecting and _is_connection_error(e)

    def _reconnect(self) -> None:
        """The holder of the database stopped: open it again (here, or through the next holder)."""
        self._reconnecting = True
        try:
            try:
                self._raw.close()
            except Exception:  # noqa: BLE001
                pass
            self.shared_with = None
            self._raw = self._connect(self._token)
            for name in (IMAGES, FACES):
                self._raw.load_collection(name)
            if self.journal is not None:  # what the stopped holder had not flushed is in our journal
                self.replay()
        finally:
            self._reconnecting = False

    def _acquire_writer_lock(self) -> None:
        """Only one process replays and appends the journal; a second writer waits up to ``wait``
        seconds, a reader never takes it."""
        path = self.index_dir / "journal.lock"
        key = str(path.resolve())
        if key in _JOURNAL_HOLDERS and self.local:
            raise IndexBusy(f"the index at {self.index_dir} is already open for writing in this process")
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if not self.local:
                    os.close(fd)
                    return  # server mode: another writer holds the journal; this instance is read-only
                if time.monotonic() >= deadline:
                    holder = lock_holder(path)
                    os.close(fd)
                    raise IndexBusy(f"the index at {self.index_dir} is being written by {describe_process(holder)}; "
                                    "try again when it has finished") from None
                time.sleep(0.1)
        self._lock_fd = fd
        self._lock_key = key
        _JOURNAL_HOLDERS.add(key)
        self.journal = Journal(self.index_dir / JOURNAL)

    def _ensure_collections(self, create: bool) -> None:
        from pymilvus import DataType, MilvusClient

        from verity.face.facenet import EMBEDDING_DIM as FACE_DIM
        from verity.index.embedding import DIM, MODEL_ID

        meta = json.dumps({"schema": SCHEMA_VERSION, "embedding_model": MODEL_ID, "face_model": "facenet512-mtcnn-aligned-v1"})
        c = self.client
        for name in (IMAGES, FACES):
            if c.has_collection(name):
                desc = c.describe_collection(name).get("description", "")
                try:
                    got = json.loads(desc) if desc else {}
                except json.JSONDecodeError:
                    got = {}
                if got and got != json.loads(meta):
                    raise IndexStoreError(f"the index collection {name} was built with {got}, this verity uses {meta}; rebuild it")
                c.load_collection(name)
                self._metric[name] = self._index_metric(name)
                continue
            if not create and self.local is False:
                raise IndexMissing(f"collection {name} does not exist on {self.uri} (create it with: verity index add)")
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=meta)
            ip = c.prepare_index_params()
            if name == IMAGES:
                s.add_field("sha256", DataType.VARCHAR, is_primary=True, max_length=64)
                s.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
                s.add_field("pdq", DataType.FLOAT_VECTOR, dim=256)
                s.add_field("pdq_hex", DataType.VARCHAR, max_length=64)
                s.add_field("pdq_quality", DataType.INT64)
                s.add_field("label", DataType.VARCHAR, max_length=16)
                s.add_field("fake_class", DataType.VARCHAR, max_length=32)
                s.add_field("source", DataType.VARCHAR, max_length=512)
                s.add_field("path", DataType.VARCHAR, max_length=2048)
                s.add_field("width", DataType.INT64)
                s.add_field("height", DataType.INT64)
                s.add_field("n_faces", DataType.INT64)
                s.add_field("added", DataType.DOUBLE)
                # vectors are stored L2-normalised, so inner product is the cosine similarity without the
                # per-query normalisation of every stored vector that a COSINE search costs in Milvus Lite
                ip.add_index(field_name="embedding", index_type="FLAT", metric_type="IP")
                ip.add_index(field_name="pdq", index_type="FLAT", metric_type="IP")
            else:
                s.add_field("face_id", DataType.VARCHAR, is_primary=True, max_length=80)
                s.add_field("embedding", DataType.FLOAT_VECTOR, dim=FACE_DIM)
                s.add_field("image_sha", DataType.VARCHAR, max_length=64)
                s.add_field("face_index", DataType.INT64)
                s.add_field("box", DataType.VARCHAR, max_length=128)
                s.add_field("score", DataType.DOUBLE)
                ip.add_index(field_name="embedding", index_type="FLAT", metric_type="IP")
            c.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")
            c.load_collection(name)
            self._metric[name] = "IP"

    def _index_metric(self, name: str) -> str:
        """The metric the ``embedding`` index of a collection was built with (COSINE or IP)."""
        try:
            names = self.client.list_indexes(name, field_name="embedding") or ["embedding"]
            m = str(self.client.describe_index(name, names[0]).get("metric_type") or "COSINE").upper()
        except Exception:  # noqa: BLE001 - older servers: assume what earlier versions built
            m = "COSINE"
        return m if m in ("COSINE", "IP") else "COSINE"

    # -- writing ----------------------------------------------------------------------------------

    def _require_writer(self) -> Journal:
        if self.journal is None:
            raise IndexBusy("this index is open read-only (another process holds its journal)")
        return self.journal

    def add(self, records: list[ImageRecord]) -> list[str]:
        """Store records durably; returns the SHA-256 of each acknowledged record, in order."""
        j = self._require_writer()
        if not records:
            return []
        now = time.time()
        for r in records:
            if not r.added:
                r.added = now
        j.append([{"op": "add", "record": record_to_json(r)} for r in records])
        self._apply_add(records)
        self._since_checkpoint += len(records)
        if self._since_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        return [r.sha256 for r in records]

    def _apply_add(self, records: list[ImageRecord]) -> None:
        from verity.index.pdq import to_hex, to_signed

        faces = []
        for r in records:
            for n, f in enumerate(r.faces):
                faces.append({
                    "face_id": f"{r.sha256}:{n}", "embedding": _unit(f.embedding).tolist(),
                    "image_sha": r.sha256, "face_index": n, "box": json.dumps([round(float(v), 1) for v in f.box]),
                    "score": float(f.score),
                })
        if faces:
            self.client.upsert(FACES, faces)
        rows = [{
            "sha256": r.sha256, "embedding": _unit(r.embedding).tolist(), "pdq": to_signed(r.pdq).tolist(),
            "pdq_hex": to_hex(r.pdq), "pdq_quality": int(r.pdq_quality), "label": r.label, "fake_class": r.fake_class,
            "source": r.source[:512], "path": r.path[:2048], "width": int(r.width), "height": int(r.height),
            "n_faces": len(r.faces), "added": float(r.added),
        } for r in records]
        self.client.upsert(IMAGES, rows)
        if self._pdq is not None:
            from verity.index.pdq import pack

            self._pdq.extend([r.sha256 for r in records], pack(np.stack([np.asarray(r.pdq, np.uint8) for r in records])))

    def remove(self, sha256: str) -> bool:
        """Delete an image and its faces; False when it was not indexed."""
        j = self._require_writer()
        if not self.contains([sha256]):
            return False
        j.append([{"op": "remove", "sha256": sha256}])
        self._apply_remove(sha256)
        self._since_checkpoint += 1
        return True

    def _apply_remove(self, sha256: str) -> None:
        _check_sha(sha256)
        self.client.delete(IMAGES, ids=[sha256])
        self.client.delete(FACES, filter=f'image_sha == "{sha256}"')
        if self._pdq is not None:
            self._pdq.remove(sha256)

    def _rebuild_pdq_table(self) -> PdqTable | None:
        """Read every stored hash back from Milvus (an index from before the table file, or a mismatch)."""
        from verity.index.pdq import pack_hex

        t = PdqTable()
        try:
            it = self.client.query_iterator(IMAGES, batch_size=4096, filter='sha256 != ""',
                                            output_fields=["sha256", "pdq_hex"])
            try:
                while True:
                    rows = it.next()
                    if not rows:
                        break
                    t.extend([r["sha256"] for r in rows], pack_hex([r["pdq_hex"] for r in rows]))
            finally:
                it.close()
        except Exception:  # noqa: BLE001 - fall back to the Milvus search; the stale file must go
            (self.index_dir / PDQ_TABLE).unlink(missing_ok=True)
            return None
        self._save_pdq_table(t)
        return t

    def _save_pdq_table(self, t: PdqTable | None = None) -> None:
        t = t if t is not None else self._pdq
        if t is not None and self.local and self.journal is not None:
            t.save(self.index_dir / PDQ_TABLE)
            _fsync_dir(self.index_dir)

    def replay(self) -> int:
        """Re-apply the journal (after a crash); returns the number of operations applied."""
        j = self._require_writer()
        ops, bad = j.read()
        for op in ops:
            if op.get("op") == "add":
                self._apply_add([record_from_json(op["record"])])
            elif op.get("op") == "remove":
                self._apply_remove(op["sha256"])
        if ops or bad:
            self.checkpoint()
        self.replayed, self.dropped = len(ops), bad
        return len(ops)

    def checkpoint(self) -> None:
        """Flush Milvus to its segment files, sync the file system, truncate the journal."""
        j = self._require_writer()
        for name in (IMAGES, FACES):
            self.client.flush(name)
        if self.local:
            os.sync()
        self._save_pdq_table()
        j.truncate()
        self._since_checkpoint = 0

    # -- reading ----------------------------------------------------------------------------------

    def contains(self, shas: list[str]) -> set[str]:
        """Which of these SHA-256 are indexed."""
        out: set[str] = set()
        shas = [s for s in shas if s]
        for i in range(0, len(shas), 500):
            chunk = shas[i:i + 500]
            for s in chunk:
                _check_sha(s)
            res = self.client.query(IMAGES, filter="sha256 in " + json.dumps(chunk), output_fields=["sha256"])
            out.update(r["sha256"] for r in res)
        return out

    def fetch(self, shas: list[str]) -> dict[str, dict]:
        """Stored fields (no vectors) of these images, by SHA-256."""
        out: dict[str, dict] = {}
        shas = list(dict.fromkeys(s for s in shas if s))
        for i in range(0, len(shas), 500):
            chunk = shas[i:i + 500]
            for s in chunk:
                _check_sha(s)
            for r in self.client.query(IMAGES, filter="sha256 in " + json.dumps(chunk), output_fields=_IMAGE_FIELDS):
                out[r["sha256"]] = {k: r.get(k) for k in _IMAGE_FIELDS}
        return out

    def find_by_path(self, path: str) -> list[str]:
        """SHA-256 of images stored with this path."""
        res = self.client.query(IMAGES, filter="path == " + json.dumps(str(path)), output_fields=["sha256"])
        return [r["sha256"] for r in res]

    def _pdq_table(self) -> PdqTable | None:
        """The in-memory table when it can be trusted (see ``pdq_scan``), else None.

        A writer keeps its own table in step with every write. A read-only store uses the table file
        only while the journal is empty (no other process has writes since its last checkpoint, which
        rewrote the file) and reloads it whenever the file changes, since another process (``verity
        index add`` next to a running server) may write to the same database."""
        if not self.local or self.pdq_scan != "auto":
            return None
        if self.journal is not None:
            return self._pdq
        jp, tp = self.index_dir / JOURNAL, self.index_dir / PDQ_TABLE
        try:
            if jp.is_file() and jp.stat().st_size:
                return None  # un-checkpointed writes (a writer at work, or a crash not replayed yet)
            st = tp.stat()
        except OSError:
            return None
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig != self._pdq_sig:
            self._pdq_sig = sig
            t = PdqTable.load(tp)
            self._pdq = t if t is not None and len(t) == self.count() else None
        return self._pdq

    def search_pdq(self, bits: np.ndarray, k: int = 10) -> list[tuple[str, int]]:
        """(sha256, Hamming distance), nearest first."""
        from verity.index.pdq import distance_from_ip, pack, to_signed

        table = self._pdq_table()
        if table is not None:
            return table.search(pack(bits), k)
        res = self.client.search(IMAGES, data=[to_signed(bits).tolist()], anns_field="pdq", limit=int(k),
                                 search_params={"metric_type": "IP"}, output_fields=["sha256"])
        return [(h["id"] if "id" in h else h["sha256"], distance_from_ip(h["distance"])) for h in res[0]]

    def search_embedding(self, vec: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """(sha256, cosine similarity), most similar first."""
        res = self.client.search(IMAGES, data=[_unit(vec).tolist()], anns_field="embedding", limit=int(k),
                                 search_params={"metric_type": self._metric.get(IMAGES, "COSINE")}, output_fields=["sha256"])
        return [(h["id"] if "id" in h else h["sha256"], float(h["distance"])) for h in res[0]]

    def search_faces(self, vec: np.ndarray, k: int = 10) -> list[dict]:
        """Faces most similar to ``vec``: dicts with face_id, image_sha, face_index, box, similarity."""
        return self.search_faces_many(np.asarray(vec, np.float32).reshape(1, -1), k)[0]

    def search_faces_many(self, vecs: np.ndarray, k: int = 10) -> list[list[dict]]:
        """:meth:`search_faces` for several faces in one request (one list per row of ``vecs``)."""
        vecs = np.asarray(vecs, np.float32)
        if not len(vecs):
            return []
        res = self.client.search(FACES, data=[_unit(v).tolist() for v in vecs], anns_field="embedding", limit=int(k),
                                 search_params={"metric_type": self._metric.get(FACES, "COSINE")},
                                 output_fields=["face_id", "image_sha", "face_index", "box"])
        out = []
        for hits in res:
            row = []
            for h in hits:
                e = h.get("entity", h)
                row.append({"face_id": e.get("face_id") or h.get("face_id") or h.get("id"), "image_sha": e["image_sha"],
                            "face_index": int(e["face_index"]), "box": json.loads(e["box"]), "similarity": float(h["distance"])})
            out.append(row)
        return out

    def count(self, name: str = IMAGES) -> int:
        res = self.client.query(name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def stats(self) -> dict[str, Any]:
        """Counts by label and source, and where the index lives."""
        rows = self.client.query(IMAGES, filter='sha256 != ""', output_fields=["label", "source", "n_faces"], limit=16384) \
            if self.count() <= 16384 else []
        by_label: dict[str, int] = {}
        by_source: dict[str, int] = {}
        for r in rows:
            by_label[r["label"]] = by_label.get(r["label"], 0) + 1
            by_source[r["source"] or "-"] = by_source.get(r["source"] or "-", 0) + 1
        return {
            "location": str(self.index_dir) if self.local else self.uri,
            "images": self.count(IMAGES), "faces": self.count(FACES),
            "by_label": by_label, "by_source": by_source,
            "journal_bytes": len(self.journal) if self.journal is not None else None,
        }

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint (when writing), disconnect, stop the embedded server and release the locks."""
        try:
            if self.journal is not None and len(self.journal) and getattr(self, "client", None) is not None:
                self.checkpoint()
        except Exception:
            pass
        if self.journal is not None:
            self.journal.close()
        raw = getattr(self, "_raw", None)
        if raw is not None:
            try:
                raw.close()
            except Exception:
                pass
            self._raw = None
            self.client = None
        if self._embedded is not None:
            key, self._embedded = self._embedded, None
            _LOCAL_USERS[key] = _LOCAL_USERS.get(key, 1) - 1
            if _LOCAL_USERS[key] <= 0:
                _LOCAL_USERS.pop(key, None)
                _withdraw_endpoint(self.index_dir)  # before the server stops: nobody new connects to it
                try:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(key)
                except Exception:
                    pass
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = None
            _JOURNAL_HOLDERS.discard(self._lock_key or "")

    def __enter__(self) -> "IndexStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unit(v: np.ndarray) -> np.ndarray:
    """float32 copy scaled to unit L2 norm (zero vectors stay zero)."""
    v = np.asarray(v, np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _check_sha(s: str) -> None:
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ValueError(f"not a SHA-256 hex digest: {s!r}")


class _Client:
    """The store's Milvus client, re-opened when the process it was shared from goes away.

    Every operation verity sends is idempotent (upserts by primary key, deletes, reads), so an
    operation that failed because the holder of the embedded database stopped is sent again, once,
    after :meth:`IndexStore._reconnect`."""

    def __init__(self, store: "IndexStore"):
        self._store = store

    def __getattr__(self, name: str):
        attr = getattr(self._store._raw, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return getattr(self._store._raw, name)(*args, **kwargs)
            except Exception as e:
                if not self._store._may_reconnect(e):
                    raise
            self._store._reconnect()
            return getattr(self._store._raw, name)(*args, **kwargs)

        return call


#: Journal locks held by stores of this process (a second writer here would wait on itself).
_JOURNAL_HOLDERS: set[str] = set()

#: File in the index directory naming the process that holds the embedded database, and the local
#: port of its Milvus Lite server, which other processes connect to instead of opening the database.
ENDPOINT = "milvus.endpoint"


def _env_wait() -> float:
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV) or 5.0))
    except ValueError:
        return 5.0


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _quiet_milvus_logs() -> None:
    """pymilvus and milvus-lite log full tracebacks for errors verity handles (a locked database, a
    holder that stopped); verity reports those itself in one line."""
    import logging

    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _is_connection_error(e: BaseException) -> bool:
    msg = str(e)
    return any(t in msg for t in ("Fail connecting", "server unavailable", "UNAVAILABLE", "Connection refused",
                                  "Socket closed", "failed to connect"))


def _embedded_port(path: str) -> int | None:
    try:
        from milvus_lite.server_manager import server_manager_instance

        uri = server_manager_instance.start_and_get_uri(path)  # the running server's (it is cached)
        return int(uri.rsplit(":", 1)[1]) if uri else None
    except Exception:  # noqa: BLE001
        return None


def _publish_endpoint(index_dir: Path, port: int | None) -> None:
    if port is None:
        return
    tmp = index_dir / (ENDPOINT + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": int(port), "host": "127.0.0.1"}))
        os.replace(tmp, index_dir / ENDPOINT)
    except OSError:
        tmp.unlink(missing_ok=True)
        return
    import atexit

    atexit.register(_withdraw_endpoint, index_dir)  # a store left open at exit (a server's)


def _withdraw_endpoint(index_dir: Path) -> None:
    ep = read_endpoint(index_dir)
    if ep is not None and ep["pid"] == os.getpid():
        (index_dir / ENDPOINT).unlink(missing_ok=True)


def read_endpoint(index_dir: Path) -> dict | None:
    """``{"pid", "port", "host"}`` of the process sharing the embedded database, or None."""
    try:
        d = json.loads((Path(index_dir) / ENDPOINT).read_text())
        return {"pid": int(d["pid"]), "port": int(d["port"]), "host": str(d.get("host", "127.0.0.1"))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else


def lock_holder(lock_target: Path) -> int | None:
    """Who holds the ``flock`` of a lock file (``LOCK`` inside a Milvus Lite directory when given the
    directory): None when nobody does, its pid when ``/proc/locks`` names it, else 0."""
    lock = lock_target / "LOCK" if lock_target.is_dir() else lock_target
    try:
        fd = os.open(str(lock), os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except OSError:
            pass
        st = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return 0
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5] == want:
            try:
                return int(f[4])
            except ValueError:
                return 0
    return 0


def describe_process(pid: int | None) -> str:
    """``process 1234 (verity serve)``, or ``another process`` when the pid is unknown."""
    if not pid or pid <= 0:
        return "another process"
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        argv = []
    for i, a in enumerate(argv):  # python -m verity.cli.main serve ..., .venv/bin/verity serve ...
        if a in ("verity", "verity.cli.main") or a.endswith("/verity"):
            argv = ["verity"] + argv[i + 1:]
            break
    cmd = " ".join(argv)
    cmd = cmd.strip()
    if len(cmd) > 60:
        cmd = cmd[:57] + "..."
    if pid == os.getpid():
        return f"this process ({pid})"
    return f"process {pid} ({cmd})" if cmd else f"process {pid}"
