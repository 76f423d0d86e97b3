"""Reading uploads, and the optional modules behind ``/v1/verify`` and ``/v1/index/search``.

The optional modules (:mod:`verity.provenance.c2pa`, :mod:`verity.index`) are imported only when
a request needs them; when one is missing the route answers 501 ``not_available``, and when it is
installed but cannot answer (no index built yet, backend down) 503 ``unavailable``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import math
import threading
from typing import Any

from verity.api.errors import ApiError, fmt_size

#: Form fields read besides the file (anything else is ignored).
MAX_FORM_FIELDS = 8


async def read_upload(request: Any, max_bytes: int) -> tuple[bytes, str | None]:
    """The uploaded bytes and the client's file name (a label only).

    Multipart form data with a ``file`` field, or the raw body with any other content type. The
    body size is already bounded by :class:`~verity.api.middleware.BodyLimitMiddleware`; the file
    itself is checked against ``max_bytes`` here.
    """
    from starlette.datastructures import UploadFile

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = None
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=64 * 1024)
        except ApiError:
            raise
        except Exception as e:  # starlette answers malformed multipart with HTTPException(400)
            detail = getattr(e, "detail", None) or str(e) or type(e).__name__
            raise ApiError(400, "invalid_request", f"malformed multipart body: {detail}") from None
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise ApiError(400, "missing_file", "multipart body has no file field named 'file'")
            data = await item.read(max_bytes + 1)
            name = item.filename
        finally:
            await form.close()
    elif ctype == "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type",
                       "send the image as multipart/form-data (field 'file') or as the raw body")
    else:
        data = await request.body()
    if len(data) > max_bytes:
        raise ApiError(413, "too_large", f"upload is over the {fmt_size(max_bytes)} limit")
    return data, name


def to_jsonable(x: Any, depth: int = 0) -> Any:
    """Plain JSON types from dataclasses, numpy values, bytes (hex, truncated) and objects with
    ``to_dict``; depth-limited."""
    if depth > 12:
        return str(x)[:200]
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "to_dict") and callable(x.to_dict):
        return to_jsonable(x.to_dict(), depth + 1)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name), depth + 1) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [to_jsonable(v, depth + 1) for v in x]
    if isinstance(x, (bytes, bytearray)):
        h = bytes(x[:64]).hex()
        return h + ("..." if len(x) > 64 else "")
    try:
        import numpy as np

        if isinstance(x, np.ndarray):
            return to_jsonable(x.tolist(), depth + 1) if x.size <= 4096 else f"array{list(x.shape)}"
        if isinstance(x, np.generic):
            return to_jsonable(x.item(), depth + 1)
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def _module(name: str) -> Any | None:
    """Import an optional verity module; None when it (or a dependency of it) is not installed."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _first(mod: Any, names: tuple[str, ...]) -> Any | None:
    for n in names:
        fn = getattr(mod, n, None)
        if callable(fn):
            return fn
    return None


#: Functions looked up, in order, in :mod:`verity.provenance.c2pa` (called with the file's bytes and
#: its format); ``read(data, fmt) -> C2paInfo`` is the module's API.
C2PA_FUNCTIONS = ("read", "verify_bytes", "verify")
#: Derived facts of a ``C2paInfo`` added to the JSON next to its fields.
C2PA_PROPERTIES = ("signature_ok", "content_modified", "manifest_tampered", "trusted", "failure_codes", "content_hash")


def available() -> dict[str, bool]:
    """Which optional integrations are installed (for ``/healthz``)."""
    c2pa = _module("verity.provenance.c2pa")
    return {
        "c2pa": c2pa is not None and _first(c2pa, C2PA_FUNCTIONS) is not None and _module("c2pa") is not None,
        "index": index_backend() is not None,
    }


def _call(fn: Any, data: bytes, sample: Any, **extra: Any) -> Any:
    """Call ``fn`` with what its signature asks for: bytes or a sample, plus mime/format and extras."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    names = list(params)
    first = names[0] if names else ""
    arg: Any = sample if first in ("sample", "s") else data
    kw: dict[str, Any] = {}
    mimes = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
             "BMP": "image/bmp", "GIF": "image/gif"}
    for p in names[1:]:
        if p in ("mime", "mime_type", "content_type", "media_type"):
            kw[p] = mimes.get(sample.format, "application/octet-stream")
        elif p in ("fmt", "format"):
            kw[p] = sample.format
        elif p in extra:
            kw[p] = extra[p]
    return fn(arg, **kw)


def _findings_json(findings: list[Any]) -> list[dict[str, Any]]:
    from verity.core.types import CLASSES, Verdict

    doc = Verdict(verdict="inconclusive", probabilities={c: 0.25 for c in CLASSES}, findings=findings).to_dict()
    return doc["findings"]


def verify_sync(analyzer: Any, data: bytes) -> dict[str, Any]:
    """Content Credentials of an upload: the C2PA module's report and the provenance findings."""
    from verity.core.errors import VerityError
    from verity.core.registry import get_detector_class, list_detectors

    sample = analyzer.decode(data)
    mod = _module("verity.provenance.c2pa")
    fn = _first(mod, C2PA_FUNCTIONS) if mod is not None else None
    dets = []
    for name in list_detectors():
        cls = get_detector_class(name)
        if cls.kind == "provenance" and cls.available():
            dets.append(cls())
    if fn is None and not dets:
        raise ApiError(501, "not_available", "Content Credentials support is not installed "
                       "(verity.provenance.c2pa and c2pa-python; pip install 'verity[provenance]')")
    report = None
    if fn is not None:
        try:
            info = _call(fn, data, sample)
        except VerityError as e:
            if getattr(e, "code", "") == "missing_dependency":
                raise ApiError(501, "not_available", str(e)) from None
            raise ApiError(503, "unavailable", f"C2PA check failed: {e}") from None
        report = to_jsonable(info)
        if report is not None and not isinstance(report, dict):
            report = {"result": report}
        if isinstance(report, dict):
            for prop in C2PA_PROPERTIES:
                if prop not in report and hasattr(type(info), prop):
                    try:
                        report[prop] = to_jsonable(getattr(info, prop))
                    except Exception:  # noqa: BLE001 - a derived fact is optional
                        pass
    findings = []
    for det in dets:
        try:
            if det.accepts(sample):
                findings.append(det.run(sample))
        except Exception as e:  # a detector bug must not fail the request
            findings.append(det.abstain(f"detector failed: {type(e).__name__}"))
    return {"sha256": sample.sha256, "format": sample.format, "c2pa": report, "findings": _findings_json(findings)}


_INDEX_STORES: dict[tuple[str, str], Any] = {}
_INDEX_LOCK = threading.Lock()


def _index_search(sample: Any, k: int, faces: bool) -> dict[str, Any]:
    """Search the local index (:mod:`verity.index`): a read-only store, opened once and kept."""
    from verity.index import default_index_dir, default_uri, index_exists
    from verity.index.features import compute_features
    from verity.index.search import search
    from verity.index.store import IndexStore

    index_dir, uri = default_index_dir(), default_uri()
    if not index_exists(index_dir, uri):
        raise ApiError(503, "unavailable", f"no similarity index at {index_dir} yet (create one with: verity index add PATH...)")
    key = (str(index_dir), str(uri))
    with _INDEX_LOCK:  # one search at a time on the shared store
        store = _INDEX_STORES.get(key)
        if store is None:
            store = _INDEX_STORES[key] = IndexStore(index_dir, uri=uri, read_only=True)
        q = compute_features(sample, faces=faces)
        return search(store, q, k=k, faces=faces).to_dict()


def close_index() -> None:
    """Close the index stores kept open by :func:`index_search_sync`."""
    with _INDEX_LOCK:
        for st in _INDEX_STORES.values():
            try:
                st.close()
            except Exception:  # noqa: BLE001
                pass
        _INDEX_STORES.clear()


def index_backend() -> Any | None:
    """The index search function, or None when verity.index (or pymilvus/pdqhash) is missing."""
    for name in ("verity.index.search", "verity.index.features", "verity.index.store", "pymilvus", "pdqhash"):
        if _module(name) is None:
            return None
    return _index_search


def index_search_sync(analyzer: Any, data: bytes, k: int, faces: bool = False) -> dict[str, Any]:
    """Nearest images in the local index: ``{sha256, pdq_quality, query_faces, matches, faces}``."""
    from verity.core.errors import VerityError

    sample = analyzer.decode(data)
    fn = index_backend()
    if fn is None:
        raise ApiError(501, "not_available", "the similarity index is not installed "
                       "(verity.index with pymilvus and pdqhash; pip install 'verity[index]')")
    try:
        res = to_jsonable(fn(sample, k, faces))
    except ApiError:
        raise
    except VerityError as e:
        if getattr(e, "exit_code", None) == 4:  # a dependency of the index is missing
            raise ApiError(501, "not_available", str(e)) from None
        raise ApiError(503, "unavailable", f"index search failed: {e}") from None
    res = res if isinstance(res, dict) else {"matches": res}
    res["sha256"] = sample.sha256
    res["matches"] = [m if isinstance(m, dict) else {"match": m} for m in (res.get("matches") or [])]
    return res
