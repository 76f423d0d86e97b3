"""A training corpus built from public git snapshots, by recipe (``verity corpus ...``).

The recipe (``corpus/recipe.csv`` in the repository) lists one image per row; the images themselves
never enter the repository. ``build`` reads them out of local git snapshots of the listed
repositories (bare git directories, for example what a ``git clone --mirror`` or the development
``fetch`` tool leaves), checks every file's SHA-256, and writes the files plus a ``manifest.csv``
that :func:`verity.train.data.read_dataset` reads (columns ``path,label,group,source`` and more).

Recipe columns (CSV with a header; ``note`` may be empty):

``repo``      ``owner/name`` of the public GitHub repository
``commit``    the 40-hex commit the file was taken from
``path``      the file's path inside the repository at that commit
``sha256``    SHA-256 of the file's bytes
``label``     ``authentic`` or ``ai_generated``
``family``    the generator family (``sdxl``, ``stylegan2``...) for generated images; ``real`` for photos
``licence``   the licence of the repository's files (SPDX id where there is one) and any restriction
``group``     split key: items of one group stay on one side of a train/held-out split
``source``    where it comes from (per-source tables, leave-one-source-out); defaults to the repo
``note``      free text (what the README/folder says...)
``crop``      optional ``x0,y0,x1,y1``: the row is one tile of a sample grid (the box, in pixels, of
              the decoded file); the tile is written as a lossless PNG. ``sha256`` is the whole file's.

Snapshot layout looked up for ``owner/name`` under each ``--snapshots`` root, first hit wins:
``ROOT/owner+name/repo`` (the fetch tool's layout, bare or with ``.git``), ``ROOT/owner+name``, ``ROOT/owner/name.git``,
``ROOT/owner/name`` (bare or with ``.git``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from verity.core.errors import VerityError

RECIPE_COLUMNS = ("repo", "commit", "path", "sha256", "label", "family", "licence", "group", "source", "note", "crop")
REQUIRED = ("repo", "commit", "path", "sha256", "label", "family", "licence", "group")
LABELS = ("authentic", "ai_generated")
MANIFEST_COLUMNS = (
    "path", "label", "group", "source", "family", "repo", "commit", "repo_path", "sha256", "licence",
    "format", "width", "height", "bytes", "note", "crop",
)
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_SNAPSHOTS = ("/work/.mirror",)


class CorpusError(VerityError):
    """A recipe or build problem that stops the whole command (exit code 2: usage)."""

    code = "bad_corpus"
    exit_code = 2


class SnapshotMissing(CorpusError):
    """One or more repositories of the recipe have no local snapshot (exit code 4: missing data)."""

    code = "snapshot_missing"
    exit_code = 4


@dataclass(frozen=True)
class Entry:
    """One recipe row."""

    repo: str
    commit: str
    path: str
    sha256: str
    label: str
    family: str
    licence: str
    group: str
    source: str = ""
    note: str = ""
    crop: str = ""
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        return f"{self.repo}@{self.commit}:{self.path}"

    def out_relpath(self) -> str:
        """Where the file goes inside the output folder: ``label/family/owner__name/flattened``."""
        owner, name = self.repo.split("/", 1)
        flat = re.sub(r"[^A-Za-z0-9._-]+", "_", self.path.replace("/", "__")).strip("_")
        if self.crop:
            flat = f"{os.path.splitext(flat)[0]}__tile_{self.crop.replace(',', '_')}.png"
        return f"{self.label}/{_safe(self.family)}/{_safe(owner)}__{_safe(name)}/{flat}"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "_"


# --------------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------------


def read_recipe(path: str | os.PathLike) -> list[Entry]:
    """Read and validate a recipe CSV.

    Raises
    ------
    CorpusError
        Missing file or columns, a bad label, commit or hash, or the same file listed twice; the
        message names the line.
    """
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"recipe not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            cols = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CorpusError(f"cannot read recipe {p}: {e}") from None
    if not rows:
        raise CorpusError(f"recipe {p} has no rows")
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise CorpusError(f"recipe {p} lacks column(s) {', '.join(missing)} (needs {', '.join(RECIPE_COLUMNS)})")
    out: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows, start=2):
        where = f"{p.name} line {i}"
        v = {k: (r.get(k) or "").strip() for k in RECIPE_COLUMNS}
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", v["repo"]):
            raise CorpusError(f"{where}: bad repo {v['repo']!r} (expected owner/name)")
        if not re.fullmatch(r"[0-9a-f]{40}", v["commit"]):
            raise CorpusError(f"{where}: bad commit {v['commit']!r} (expected 40 hex digits)")
        if not re.fullmatch(r"[0-9a-f]{64}", v["sha256"]):
            raise CorpusError(f"{where}: bad sha256 {v['sha256']!r}")
        if v["label"] not in LABELS:
            raise CorpusError(f"{where}: label {v['label']!r} is not one of {', '.join(LABELS)}")
        for k in ("path", "family", "licence", "group"):
            if not v[k]:
                raise CorpusError(f"{where}: empty {k}")
        if v["label"] == "authentic" and v["family"] != "real":
            raise CorpusError(f"{where}: an authentic image must have family 'real' (got {v['family']!r})")
        if v["label"] == "ai_generated" and v["family"] == "real":
            raise CorpusError(f"{where}: an ai_generated image needs its generator family, not 'real'")
        if v["crop"]:
            box = v["crop"].split(",")
            if len(box) != 4 or not all(b.isdigit() for b in box) or int(box[0]) >= int(box[2]) or int(box[1]) >= int(box[3]):
                raise CorpusError(f"{where}: bad crop {v['crop']!r} (expected x0,y0,x1,y1 with x0<x1, y0<y1)")
        k2 = (v["repo"].lower(), v["path"], v["crop"])
        if k2 in seen:
            raise CorpusError(f"{where}: {v['repo']}:{v['path']} {v['crop']} is listed twice (also line {seen[k2]})")
        seen[k2] = i
        out.append(Entry(line=i, source=v["source"] or v["repo"], **{k: v[k] for k in RECIPE_COLUMNS if k != "source"}))
    return out


def write_recipe(path: str | os.PathLike, entries: Iterable[Entry]) -> None:
    """Write entries as a recipe CSV (sorted by label, family, repo, path for stable diffs)."""
    rows = sorted(entries, key=lambda e: (e.label, e.family, e.repo.lower(), e.path))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(RECIPE_COLUMNS)
        for e in rows:
            w.writerow([getattr(e, c) for c in RECIPE_COLUMNS])


def read_drop_list(path: str | os.PathLike | None) -> set[str]:
    """SHA-256 values to leave out (a CSV with a ``sha256`` column, or one hash per line)."""
    if not path:
        return set()
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"drop list not found: {p}")
    text = p.read_text(encoding="utf-8")
    return set(re.findall(r"\b[0-9a-f]{64}\b", text))


# --------------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------------


def snapshot_roots(extra: Sequence[str] | None = None) -> list[Path]:
    """Where snapshots are looked up: ``extra``, then ``$VERITY_SNAPSHOTS`` (``:``-separated), then
    the default ``/work/.mirror``."""
    roots = list(extra or [])
    env = os.environ.get("VERITY_SNAPSHOTS", "")
    roots += [r for r in env.split(os.pathsep) if r]
    roots += [r for r in DEFAULT_SNAPSHOTS if r not in roots]
    return [Path(r) for r in roots]


def _is_git_dir(p: Path) -> bool:
    return (p / "HEAD").is_file() and (p / "objects").is_dir()


def find_snapshot(repo: str, roots: Sequence[Path]) -> Path | None:
    """The git directory of ``repo`` under one of ``roots``, or None."""
    owner, name = repo.split("/", 1)
    for root in roots:
        for cand in (
            root / f"{owner}+{name}" / "repo", root / f"{owner}+{name}" / "repo" / ".git", root / f"{owner}+{name}",
            root / owner / f"{name}.git",
            root / owner / name, root / owner / name / ".git",
        ):
            if cand.is_dir() and _is_git_dir(cand):
                return cand
        # case-insensitive match of owner+name (GitHub names are case-insensitive)
        if root.is_dir():
            want = f"{owner}+{name}".lower()
            for d in root.iterdir():
                if d.name.lower() == want:
                    for cand in (d / "repo", d / "repo" / ".git", d):
                        if cand.is_dir() and _is_git_dir(cand):
                            return cand
    return None


class BlobReader:
    """Reads blobs ``COMMIT:PATH`` from one git directory through one ``git cat-file --batch``."""

    def __init__(self, git_dir: Path):
        self.git_dir = git_dir
        try:
            self.proc = subprocess.Popen(
                ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise CorpusError("git is not installed (needed to read the snapshots)") from None

    def read(self, commit: str, path: str) -> bytes | None:
        """The blob's bytes, or None when the commit or path is not in the snapshot."""
        if "\n" in path:
            return None
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{commit}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode(errors="replace").split()
        if len(header) != 3 or header[1] != "blob":
            return None
        size = int(header[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # trailing newline
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def list_images(git_dir: Path, commit: str, under: str = "") -> list[tuple[str, int]]:
    """``(path, size)`` of every image blob (by extension) under ``under`` at ``commit``."""
    args = ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-l", "-z", commit]
    if under:
        args += ["--", under.rstrip("/") + "/"]
    try:
        out = subprocess.run(args, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise CorpusError(f"{git_dir}: cannot list {commit}:{under}: {e.stderr.decode(errors='replace').strip()}") from None
    res = []
    for item in out.split(b"\0"):
        if not item:
            continue
        meta, path = item.split(b"\t", 1)
        parts = meta.split()
        if parts[1] != b"blob" or not parts[3].isdigit():
            continue  # not a file, or its object is absent from the snapshot (large files may be)
        p = path.decode("utf-8", errors="surrogateescape")
        if p.lower().endswith(IMAGE_EXT):
            res.append((p, int(parts[3])))
    return res


def resolve_commit(git_dir: Path, rev: str = "HEAD") -> str:
    try:
        return subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", f"{rev}^{{commit}}"],
                              capture_output=True, check=True, text=True).stdout.strip()
    except subprocess.CalledProcessError:
        raise CorpusError(f"{git_dir}: no commit {rev!r}") from None


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    written: int = 0
    kept: int = 0  # already present with the right hash
    dropped: int = 0
    removed: int = 0  # stale files of rows no longer in the recipe
    failed: list[tuple[Entry, str]] = field(default_factory=list)
    missing_repos: list[str] = field(default_factory=list)
    manifest: Path | None = None


def image_properties(data: bytes) -> dict[str, object]:
    """Format, width and height from the header (no full decode); empty values if unreadable."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return {"format": (im.format or "").lower(), "width": im.width, "height": im.height}
    except Exception:  # noqa: BLE001 -- any unreadable file is reported by the caller
        return {"format": "", "width": "", "height": ""}


def _manifest_row(e: Entry, data: bytes, props: dict) -> dict:
    return {
        "path": e.out_relpath(), "label": e.label, "group": e.group, "source": e.source, "family": e.family,
        "repo": e.repo, "commit": e.commit, "repo_path": e.path, "sha256": e.sha256, "licence": e.licence,
        "bytes": len(data), "note": e.note, "crop": e.crop, **props,
    }


def crop_tile(data: bytes, crop: str) -> bytes:
    """The ``x0,y0,x1,y1`` box of an image file's decoded pixels, as a lossless PNG (no metadata)."""
    import io

    from PIL import Image

    x0, y0, x1, y1 = (int(v) for v in crop.split(","))
    try:
        with Image.open(io.BytesIO(data)) as im:
            if x1 > im.width or y1 > im.height:
                raise CorpusError(f"crop {crop} lies outside the {im.width}x{im.height} image")
            tile = im.convert("RGB").crop((x0, y0, x1, y1))
    except CorpusError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CorpusError(f"cannot decode the grid image: {err}") from None
    buf = io.BytesIO()
    tile.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def grid_boxes(pixels, rows: int | None = None, cols: int | None = None, min_tile: int = 64) -> list[tuple[int, int, int, int]]:
    """Tile boxes ``(x0, y0, x1, y1)`` of a sample grid.

    With ``rows`` and ``cols`` the image is cut into equal tiles (no padding). Otherwise separators
    are found: full rows / columns of (nearly) one colour, as ``torchvision.utils.make_grid`` leaves
    between tiles; runs between them at least ``min_tile`` long are tiles. Returns [] when no grid
    is found.
    """
    import numpy as np

    a = np.asarray(pixels, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[:2]
    if rows and cols:
        th, tw = h // rows, w // cols
        return [(c * tw, r * th, (c + 1) * tw, (r + 1) * th) for r in range(rows) for c in range(cols)]

    def runs(flat_axis_std):
        sep = flat_axis_std < 2.0
        out, start = [], None
        for i, s_ in enumerate(list(sep) + [True]):
            if not s_ and start is None:
                start = i
            elif s_ and start is not None:
                if i - start >= min_tile:
                    out.append((start, i))
                start = None
        return out

    row_std = a.std(axis=(1, 2))
    col_std = a.std(axis=(0, 2))
    ys, xs = runs(row_std), runs(col_std)
    if len(ys) * len(xs) < 2:
        return []
    return [(x0, y0, x1, y1) for (y0, y1) in ys for (x0, x1) in xs]


def build(
    recipe: str | os.PathLike,
    out: str | os.PathLike,
    snapshots: Sequence[str] | None = None,
    skip_missing: bool = False,
    drop: str | os.PathLike | None = None,
    progress: bool = True,
) -> BuildResult:
    """Build the corpus folder ``out`` from ``recipe``.

    Every repository's snapshot is located before anything is written; missing ones raise
    :class:`SnapshotMissing` naming the fetches needed, unless ``skip_missing`` (then their rows are
    left out and listed in the result). A row whose blob is absent from its snapshot or whose
    SHA-256 differs is not written and is listed in ``failed``. Files already in ``out`` with the
    right hash are kept as they are, so a rebuild is cheap. ``manifest.csv`` lists what is there.
    """
    entries = read_recipe(recipe)
    dropped = read_drop_list(drop)
    outdir = Path(out).resolve()
    here = Path(__file__).resolve().parents[3]
    if (here / ".git").exists() and (outdir == here or here in outdir.parents):
        raise CorpusError(f"--out {outdir} is inside the verity checkout: images never go into the repository")
    roots = snapshot_roots(snapshots)
    repos = sorted({e.repo for e in entries}, key=str.lower)
    where = {r: find_snapshot(r, roots) for r in repos}
    missing = [r for r in repos if where[r] is None]
    res = BuildResult(missing_repos=missing)
    if missing and not skip_missing:
        fetches = " ".join(f"github:{r}" for r in missing)
        raise SnapshotMissing(
            f"no snapshot of {len(missing)} of {len(repos)} repositories under "
            f"{', '.join(map(str, roots))}: fetch {fetches} (or pass --snapshots DIR, or --skip-missing)"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if where[e.repo] is not None]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="building corpus", unit="img", file=sys.stderr)
        except ImportError:
            bar = None
    rows = []
    try:
        for repo in repos:
            if where[repo] is None:
                continue
            with BlobReader(where[repo]) as reader:
                for e in (x for x in todo if x.repo == repo):
                    if bar is not None:
                        bar.update(1)
                    if e.sha256 in dropped:
                        res.dropped += 1
                        continue
                    dest = outdir / e.out_relpath()
                    data = None
                    if dest.is_file() and not e.crop:
                        old = dest.read_bytes()
                        if hashlib.sha256(old).hexdigest() == e.sha256:
                            data = old
                            res.kept += 1
                    if data is None:
                        data = reader.read(e.commit, e.path)
                        if data is None:
                            res.failed.append((e, f"not in the snapshot at {where[repo]} (fetch github:{repo} again?)"))
                            continue
                        got = hashlib.sha256(data).hexdigest()
                        if got != e.sha256:
                            res.failed.append((e, f"sha256 mismatch: recipe {e.sha256[:12]}..., file {got[:12]}..."))
                            continue
                        if e.crop:
                            try:
                                data = crop_tile(data, e.crop)
                            except CorpusError as err:
                                res.failed.append((e, str(err)))
                                continue
                            if dest.is_file() and dest.read_bytes() == data:
                                res.kept += 1
                                props = image_properties(data)
                                rows.append(_manifest_row(e, data, props))
                                continue
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        tmp = dest.with_name(dest.name + ".part")
                        tmp.write_bytes(data)
                        os.replace(tmp, dest)
                        res.written += 1
                    props = image_properties(data)
                    if not props["format"]:
                        res.failed.append((e, "not a readable image"))
                        dest.unlink(missing_ok=True)
                        continue
                    rows.append(_manifest_row(e, data, props))
    finally:
        if bar is not None:
            bar.close()
    rows.sort(key=lambda r: r["path"])
    listed = {r["path"] for r in rows}
    for label in LABELS:  # files of rows no longer in the recipe (dropped, renamed): remove them
        d = outdir / label
        if d.is_dir():
            for f in d.rglob("*"):
                if f.is_file() and f.relative_to(outdir).as_posix() not in listed:
                    f.unlink()
                    res.removed += 1
    man = outdir / "manifest.csv"
    with man.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    res.manifest = man
    return res


# --------------------------------------------------------------------------------------------------
# Adding rows from a snapshot
# --------------------------------------------------------------------------------------------------


def entries_from_snapshot(
    repo: str,
    under: Sequence[str],
    label: str,
    family: str,
    licence: str,
    group: str = "",
    source: str = "",
    note: str = "",
    commit: str = "HEAD",
    snapshots: Sequence[str] | None = None,
    min_bytes: int = 10_000,
    min_side: int = 256,
    max_side: int = 6000,
    include: str | None = None,
    exclude: str | None = None,
    limit: int | None = None,
    grid: str | None = None,
) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Recipe rows for the image files of ``repo`` under the folders ``under``.

    Files are filtered by size in bytes, by side length (read from the header) and by the regular
    expressions ``include`` / ``exclude`` on the path. ``grid`` (``auto`` or ``ROWSxCOLS``) splits every
    file into the tiles of a sample grid (:func:`grid_boxes`), one row per tile (the side filters then
    apply to the tiles). ``group`` may contain ``{dir}`` (the file's
    folder) or ``{stem}`` (its name without extension). Returns ``(entries, skipped)`` where
    ``skipped`` lists ``(path, reason)``.
    """
    git_dir = find_snapshot(repo, snapshot_roots(snapshots))
    if git_dir is None:
        raise SnapshotMissing(f"no snapshot of {repo}: fetch github:{repo} first")
    sha = resolve_commit(git_dir, commit)
    files: list[tuple[str, int]] = []
    for u in under or [""]:
        files += list_images(git_dir, sha, u)
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    out, skipped = [], []
    with BlobReader(git_dir) as reader:
        for path, size in sorted(set(files)):
            if inc and not inc.search(path):
                continue
            if exc and exc.search(path):
                skipped.append((path, "excluded"))
                continue
            if size < min_bytes:
                skipped.append((path, f"{size} bytes < {min_bytes}"))
                continue
            data = reader.read(sha, path)
            if data is None:
                skipped.append((path, "unreadable blob"))
                continue
            props = image_properties(data)
            if not props["format"]:
                skipped.append((path, "not an image"))
                continue
            d = os.path.dirname(path)
            g = group.format(dir=d or ".", stem=os.path.splitext(os.path.basename(path))[0], repo=repo) if group else f"{repo}:{d or '.'}"
            digest = hashlib.sha256(data).hexdigest()
            if grid:
                import io

                import numpy as np
                from PIL import Image

                with Image.open(io.BytesIO(data)) as im:
                    px = np.asarray(im.convert("RGB"))
                if grid == "auto":
                    boxes = grid_boxes(px)
                else:
                    m = re.fullmatch(r"(\d+)x(\d+)", grid)
                    if not m:
                        raise CorpusError(f"bad grid {grid!r}: use auto or ROWSxCOLS")
                    boxes = grid_boxes(px, int(m.group(1)), int(m.group(2)))
                if not boxes:
                    skipped.append((path, "no grid found"))
                    continue
                for (x0, y0, x1, y1) in boxes:
                    tw, th = x1 - x0, y1 - y0
                    if min(tw, th) < min_side:
                        skipped.append((f"{path} tile {x0},{y0}", f"{tw}x{th} < {min_side} px"))
                        continue
                    out.append(Entry(repo=repo, commit=sha, path=path, sha256=digest, label=label, family=family,
                                     licence=licence, group=g, source=source or repo, note=note,
                                     crop=f"{x0},{y0},{x1},{y1}"))
                continue
            w, h = int(props["width"]), int(props["height"])
            if min(w, h) < min_side or max(w, h) > max_side:
                skipped.append((path, f"{w}x{h} outside {min_side}..{max_side} px"))
                continue
            out.append(Entry(repo=repo, commit=sha, path=path, sha256=digest,
                             label=label, family=family, licence=licence, group=g, source=source or repo, note=note))
            if limit and len(out) >= limit:
                break
    return out, skipped


def summarize(entries: Sequence[Entry]) -> dict[str, dict[str, int]]:
    """Counts per family (generated) and per source (real)."""
    fam: dict[str, int] = {}
    src: dict[str, int] = {}
    for e in entries:
        if e.label == "ai_generated":
            fam[e.family] = fam.get(e.family, 0) + 1
        else:
            src[e.source] = src.get(e.source, 0) + 1
    return {"families": dict(sorted(fam.items())), "real_sources": dict(sorted(src.items()))}


def drop_flagged(
    recipe: str | os.PathLike, corpus_dir: str | os.PathLike, report: str, drop_file: str | os.PathLike,
    reason: str = "leakcheck",
) -> list[Entry]:
    """Remove from ``recipe`` every image that a leak-check ``report`` flags, and append it to ``drop_file``.

    ``report`` is the text ``leakcheck.py images DIR`` printed: lines ``IDENTICAL PATH`` or ``NEAR PATH ...``
    (any line whose second word is a file in ``corpus_dir``). The built files are matched to recipe rows
    by the SHA-256 in ``corpus_dir/manifest.csv``. Returns the dropped entries.
    """
    base = Path(corpus_dir).resolve()
    man = base / "manifest.csv"
    if not man.is_file():
        raise CorpusError(f"no manifest.csv in {base}: build the corpus first")
    with man.open(newline="", encoding="utf-8") as fh:
        by_path = {str((base / r["path"]).resolve()): r["sha256"] for r in csv.DictReader(fh)}
    flagged: dict[str, str] = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] in ("#",):
            continue
        p = str(Path(parts[1]).resolve())
        if p in by_path:
            flagged[by_path[p]] = parts[0].lower()
    entries = read_recipe(recipe)
    dropped = [e for e in entries if e.sha256 in flagged]
    if not dropped:
        return []
    keep = [e for e in entries if e.sha256 not in flagged]
    write_recipe(recipe, keep)
    dp = Path(drop_file)
    new_file = not dp.is_file()
    with dp.open("a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if new_file:
            w.writerow(["sha256", "repo", "commit", "path", "label", "family", "reason"])
        for e in dropped:
            w.writerow([e.sha256, e.repo, e.commit, e.path, e.label, e.family, f"{reason}: {flagged[e.sha256]}"])
    return dropped
