"""What to scan: a folder (searched recursively), a manifest, or image files.

Manifests (chosen by suffix):

- ``.csv``: a header row with a ``path`` column (other columns are ignored), e.g. the
  ``manifest.csv`` of the shared data;
- ``.jsonl`` / ``.ndjson``: one JSON object per line with a ``"path"`` key, or one JSON string per line;
- ``.txt`` / ``.lst``: one path per line; blank lines and lines starting with ``#`` are skipped.

Relative paths in a manifest are taken relative to the manifest's folder. Every path is made absolute
(without resolving symbolic links) so that ``--resume`` recognises it from any working directory.
Duplicates are kept once, in first-seen order. A listed file that does not exist is not an error
here: the scan records it as a row with ``error_code`` ``not_found``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from verity.core.errors import VerityError

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".txt", ".lst")


class ManifestError(VerityError):
    """A manifest could not be read (a usage error: exit code 2)."""

    code = "bad_manifest"
    exit_code = 2


def _abs(p: str, base: Path | None = None) -> str:
    q = Path(os.path.expanduser(p))
    if not q.is_absolute() and base is not None:
        q = base / q
    return os.path.abspath(q)


def read_manifest(path: str | os.PathLike) -> list[str]:
    """The paths listed in a manifest (absolute); see the module docstring for the formats."""
    m = Path(path)
    base = m.parent
    suffix = m.suffix.lower()
    try:
        text = m.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{m}: a manifest must be UTF-8 text") from None
    except OSError as e:
        raise ManifestError(f"{m}: cannot read the manifest: {e.strerror or e}") from None
    out: list[str] = []
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise ManifestError(f"{m}: a CSV manifest needs a header row with a 'path' column")
        key = next(f for f in reader.fieldnames if f.strip() == "path")
        for row in reader:
            p = (row.get(key) or "").strip()
            if p:
                out.append(_abs(p, base))
    elif suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{m}:{n}: not JSON ({e.msg})") from None
            p = obj.get("path") if isinstance(obj, dict) else obj
            if not isinstance(p, str) or not p.strip():
                raise ManifestError(f"{m}:{n}: expected an object with a 'path' string or a JSON string")
            out.append(_abs(p.strip(), base))
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(_abs(line, base))
    return out


def collect_inputs(sources: list[str]) -> list[str]:
    """Absolute image paths from folders, manifests and files, deduplicated in first-seen order.

    Raises
    ------
    ManifestError
        When a source does not exist or a manifest cannot be parsed.
    """
    from verity.core.io import iter_image_paths

    out: list[str] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            out.extend(_abs(f) for f in iter_image_paths([str(p)]))
        elif p.suffix.lower() in MANIFEST_SUFFIXES:
            if not p.is_file():
                raise ManifestError(f"{s}: no such manifest")
            out.extend(read_manifest(p))
        elif p.exists():
            out.append(_abs(s))
        else:
            raise ManifestError(f"{s}: no such file or folder")
    seen: set[str] = set()
    uniq = []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq
