"""Shared data helpers for evaluation and training: reading datasets, group-wise splits, equalising
re-encodes, perturbations and augmentation.

Everything here is numpy / Pillow / OpenCV (no torch) and deterministic given a seed or a
``numpy.random.Generator``.

Datasets
--------
:func:`read_dataset` accepts three layouts and returns a list of :class:`Record`:

* a folder with one sub-folder per class (``authentic/``, ``ai_generated/``, ``edited/``,
  ``face_manipulated/``); the group of a file is its path relative to the class folder without the
  suffix, unless the file sits in a further sub-folder, whose name is then the group and source;
* a CSV manifest with columns ``path,label`` and optional ``group``, ``source`` (paths relative to
  the CSV's folder unless absolute);
* the shared data folder (``manifest.csv`` with columns ``path,class,source,...,extra``, where
  ``extra`` is ``key=value;...`` holding ``verdict`` and ``group``).

Format equalisation
-------------------
Real camera photos are EXIF JPEGs and generated images are PNGs with text chunks, so anything that
reads the container wins for the wrong reason. :func:`equalize_bytes` decodes a file to pixels, drops
all metadata and re-encodes every image identically (``jpeg90`` by default); :func:`augment` does the
same with a random JPEG quality and random crops / resizes for training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verity.core.errors import InputError, VerityError
from verity.core.types import CLASSES

#: Labels a dataset may use (the four probability classes).
LABELS: tuple[str, ...] = CLASSES
#: Shared-data top folders and the label they stand for when ``extra`` has no ``verdict``.
_CLASS_FALLBACK = {
    "real_camera": "authentic",
    "real_processed": "authentic",
    "faces": "authentic",
    "ai_generated": "ai_generated",
    "authentic": "authentic",
    "edited": "edited",
    "face_manipulated": "face_manipulated",
}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


class DatasetError(VerityError):
    """A dataset folder or manifest could not be understood (exit code 2: usage)."""

    code = "bad_dataset"
    exit_code = 2


# --------------------------------------------------------------------------------------------------
# Records and reading
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One labelled image of a dataset.

    Attributes
    ----------
    path : str
        Absolute (or as-given) path of the file.
    label : str
        One of :data:`LABELS`.
    group : str
        Items of one group (camera model, generator seed family, identity...) must stay on the same
        side of a split.
    source : str
        Where it comes from (a sub-folder name), for per-source tables.
    extra : dict
        Further manifest fields (``key=value`` pairs of the shared manifest, and the corpus
        manifest's ``family`` column), as strings.
    """

    path: str
    label: str
    group: str
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def parse_extra(text: str) -> dict[str, str]:
    """Parse the shared manifest's ``extra`` column, ``key=value;key=value``.

    Values may contain ``=`` or spaces; a segment without ``=`` is appended to the previous value
    (notes may contain ``;``).

    >>> parse_extra("verdict=authentic;group=cam_x;note=a; b")
    {'verdict': 'authentic', 'group': 'cam_x', 'note': 'a; b'}
    """
    out: dict[str, str] = {}
    last = None
    for part in (text or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                out[k] = v
                last = k
                continue
        if last is not None:
            out[last] += ";" + part
    return out


def read_dataset(spec: str | os.PathLike) -> list[Record]:
    """Read a dataset folder or CSV manifest (see the module docstring for the layouts).

    Parameters
    ----------
    spec : path
        A folder with class sub-folders, a folder holding ``manifest.csv`` (shared-data layout or
        ``path,label`` columns), or a CSV file.

    Returns
    -------
    list of Record
        Sorted by path. Files listed in a manifest are returned even if missing (the evaluator counts
        them as unreadable).

    Raises
    ------
    DatasetError
        When the path does not exist, the CSV lacks the needed columns, a label is unknown, or a
        folder holds no class sub-folders.
    """
    p = Path(spec)
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}")
    if p.is_file():
        return _read_csv(p)
    if (p / "manifest.csv").is_file():
        return _read_csv(p / "manifest.csv")
    return _read_folder(p)


def _norm_label(value: str, where: str) -> str:
    v = value.strip().lower().replace("-", "_").replace(" ", "_")
    v = {"real": "authentic", "fake": "ai_generated", "ai": "ai_generated", "generated": "ai_generated"}.get(v, v)
    if v not in LABELS:
        raise DatasetError(f"{where}: unknown label {value!r} (expected one of {', '.join(LABELS)})")
    return v


def _read_csv(path: Path) -> list[Record]:
    root = path.parent
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read manifest {path}: {e}") from None
    if not rows:
        raise DatasetError(f"manifest {path} has no rows")
    cols = set(rows[0])
    if "path" not in cols or not ({"label", "class"} & cols):
        raise DatasetError(f"manifest {path} needs columns path and label (or the shared layout path,class,extra)")
    out = []
    for i, r in enumerate(rows, start=2):
        where = f"{path.name} line {i}"
        extra = parse_extra(r.get("extra", "") or "")
        if (r.get("family") or "").strip():  # the corpus manifest's generator-family column
            extra.setdefault("family", r["family"].strip())
        if r.get("label"):
            label = _norm_label(r["label"], where)
        elif extra.get("verdict"):
            label = _norm_label(extra["verdict"], where)
        else:
            cls = (r.get("class") or "").strip()
            if cls not in _CLASS_FALLBACK:
                raise DatasetError(f"{where}: no label for class {cls!r}")
            label = _CLASS_FALLBACK[cls]
        rel = r["path"].strip()
        fpath = rel if os.path.isabs(rel) else str(root / rel)
        source = (r.get("source") or "").strip()
        if r.get("class") and source and "/" not in source:
            source = f"{r['class'].strip()}/{source}"
        source = source or Path(rel).parent.as_posix() or label
        group = (r.get("group") or "").strip() or extra.get("group", "") or extra.get("identity", "")
        group = group or f"file:{rel}"
        out.append(Record(path=fpath, label=label, group=group, source=source, extra=extra))
    return sorted(out, key=lambda x: x.path)


def _read_folder(root: Path) -> list[Record]:
    out = []
    found = False
    for sub in sorted(root.iterdir()):
        if not sub.is_dir():
            continue
        try:
            label = _norm_label(sub.name, str(sub))
        except DatasetError:
            continue
        found = True
        for f in sorted(sub.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            rel = f.relative_to(sub)
            if len(rel.parts) > 1:
                group = source = f"{label}/{rel.parts[0]}"
            else:
                group, source = f"{label}/{rel.with_suffix('').as_posix()}", label
            out.append(Record(path=str(f), label=label, group=group, source=source))
    if not found:
        raise DatasetError(
            f"{root}: expected sub-folders named {', '.join(LABELS)} or a manifest.csv"
        )
    return out


def fingerprint(records: Iterable[Record], *parts: object) -> str:
    """A short stable hash of a dataset selection (paths, labels, groups) plus any settings.

    Paths are hashed relative to their common folder so that the fingerprint does not depend on where
    the data is mounted.
    """
    recs = list(records)
    common = os.path.commonpath([r.path for r in recs]) if recs else ""
    h = hashlib.sha256()
    for r in sorted(recs, key=lambda x: x.path):
        rel = os.path.relpath(r.path, common) if common else r.path
        h.update(f"{rel}\t{r.label}\t{r.group}\n".encode())
    for p in parts:
        h.update(repr(p).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Splits and subsets
# --------------------------------------------------------------------------------------------------


def group_split(
    records: Sequence[Record], val_fraction: float = 0.3, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Split records into train and validation sides by group, never by file.

    Groups are assigned whole. Within each label (a group's label is its most common one) the groups
    are shuffled with ``seed`` and moved to the validation side until it holds at least
    ``val_fraction`` of that label's files, so every label with two or more groups appears on both
    sides.

    Parameters
    ----------
    records : sequence of Record
    val_fraction : float
        Target share of files per label on the validation side, in (0, 1).
    seed : int

    Returns
    -------
    train, val : list of Record
        Disjoint in groups; together they hold every record.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_group[r.group].append(r)
    groups_by_label: dict[str, list[str]] = defaultdict(list)
    for g, rs in sorted(by_group.items()):
        labels = [r.label for r in rs]
        main = max(sorted(set(labels)), key=labels.count)
        groups_by_label[main].append(g)
    val_groups: set[str] = set()
    for label, groups in sorted(groups_by_label.items()):
        total = sum(len(by_group[g]) for g in groups)
        order = [groups[i] for i in rng.permutation(len(groups))]
        taken = 0
        for g in order[: max(len(order) - 1, 0)]:  # keep at least one group for training
            if taken >= val_fraction * total:
                break
            val_groups.add(g)
            taken += len(by_group[g])
    train = [r for r in records if r.group not in val_groups]
    val = [r for r in records if r.group in val_groups]
    return train, val


def stratified_subset(
    records: Sequence[Record], limit: int | None, seed: int = 0, per_label: dict[str, int] | None = None
) -> list[Record]:
    """A reproducible subset of at most ``limit`` records, balanced over labels, then sources, then
    groups.

    The budget is split evenly over the labels present (what a small label cannot use goes to the
    others), each label's share evenly over its sources, and within a source files are taken round-
    robin over shuffled groups, so a small subset still spans many cameras / seed families.

    Parameters
    ----------
    records : sequence of Record
    limit : int or None
        Largest number of records; ``None`` or a limit >= ``len(records)`` returns all, in order.
    seed : int
    per_label : dict, optional
        Explicit number of records per label (overrides the even split; ``limit`` still caps the sum).

    Returns
    -------
    list of Record
        Sorted by path.
    """
    if (limit is None or limit >= len(records)) and per_label is None:
        return list(records)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_label[r.label].append(r)
    if per_label is not None:
        quotas = {lab: min(per_label.get(lab, 0), len(rs)) for lab, rs in by_label.items()}
    else:
        quotas = _fair_shares({lab: len(rs) for lab, rs in by_label.items()}, int(limit))
    out: list[Record] = []
    for lab in sorted(by_label):
        rs = by_label[lab]
        by_source: dict[str, list[Record]] = defaultdict(list)
        for r in rs:
            by_source[r.source].append(r)
        sq = _fair_shares({s: len(v) for s, v in by_source.items()}, quotas[lab])
        for s in sorted(by_source):
            out.extend(_round_robin_groups(by_source[s], sq[s], rng))
    if limit is not None and len(out) > limit:
        out = [out[i] for i in sorted(rng.choice(len(out), size=limit, replace=False))]
    return sorted(out, key=lambda r: r.path)


def _fair_shares(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split ``budget`` as evenly as possible over keys, capped by each key's size."""
    shares = {k: 0 for k in sizes}
    left = max(0, budget)
    open_keys = sorted(k for k, n in sizes.items() if n > 0)
    while left > 0 and open_keys:
        each = max(1, left // len(open_keys))
        for k in list(open_keys):
            if left == 0:
                break
            add = min(each, sizes[k] - shares[k], left)
            shares[k] += add
            left -= add
            if shares[k] >= sizes[k]:
                open_keys.remove(k)
    return shares


def _round_robin_groups(rs: list[Record], n: int, rng: np.random.Generator) -> list[Record]:
    by_group: dict[str, list[Record]] = defaultdict(list)
    for r in sorted(rs, key=lambda x: x.path):
        by_group[r.group].append(r)
    groups = sorted(by_group)
    groups = [groups[i] for i in rng.permutation(len(groups))]
    queues = [[by_group[g][i] for i in rng.permutation(len(by_group[g]))] for g in groups]
    out: list[Record] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop())
    return out


# --------------------------------------------------------------------------------------------------
# Encoding, equalisation, perturbations
# --------------------------------------------------------------------------------------------------


def decode_pixels(data: bytes) -> np.ndarray:
    """Decode image bytes to RGB uint8 pixels in stored orientation, shape (H, W, 3).

    Uses :func:`verity.core.io.decode` (same limits and mode handling as analysis). Alpha is
    dropped, grayscale is expanded to three channels.

    Raises
    ------
    InputError
        When the bytes are not a readable image.
    """
    from verity.core.io import decode

    return decode(data).pixels


def encode(pixels: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode (H, W, 3) uint8 pixels with no metadata at all.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) or (H, W), uint8
    fmt : {"jpeg", "png"}
        JPEG uses Pillow's standard IJG tables at ``quality`` with 4:2:0 chroma subsampling; PNG is
        lossless.
    quality : int
        JPEG quality 1..100.

    Returns
    -------
    bytes
        A file with no EXIF, ICC, XMP or text chunks.
    """
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, format="JPEG", quality=int(quality), subsampling=2, optimize=False)
    elif fmt == "png":
        im.save(buf, format="PNG", compress_level=6)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return buf.getvalue()


@dataclass(frozen=True)
class Equalize:
    """How every image is re-encoded before analysis: ``fmt`` (``jpeg`` or ``png``) and ``quality``."""

    fmt: str = "jpeg"
    quality: int = 90

    @property
    def name(self) -> str:
        return f"jpeg{self.quality}" if self.fmt == "jpeg" else "png"


def parse_equalize(spec: str | None) -> Equalize | None:
    """Parse ``jpegQ`` (e.g. ``jpeg90``), ``png`` (lossless) or ``none``.

    Returns ``None`` for ``none`` / empty. Raises :class:`DatasetError` (a usage error) otherwise.
    """
    s = (spec or "none").strip().lower()
    if s in ("none", "", "raw", "off"):
        return None
    if s == "png":
        return Equalize("png", 0)
    m = re.fullmatch(r"jpe?g(\d{1,3})", s)
    if m and 1 <= int(m.group(1)) <= 100:
        return Equalize("jpeg", int(m.group(1)))
    raise DatasetError(f"bad --equalize {spec!r}: use jpegQ (Q in 1..100, e.g. jpeg90), png or none")


def equalize_pixels(pixels: np.ndarray, eq: Equalize) -> bytes:
    """Re-encode decoded pixels the equalised way (no metadata)."""
    return encode(pixels, eq.fmt, eq.quality)


def equalize_bytes(data: bytes, eq: Equalize) -> bytes:
    """Decode image bytes, drop every piece of metadata and re-encode them the ``eq`` way.

    Parameters
    ----------
    data : bytes
        Any file :func:`verity.core.io.decode` reads.
    eq : Equalize

    Returns
    -------
    bytes
        JPEG (or PNG) holding only the pixels, in stored orientation.
    """
    return equalize_pixels(decode_pixels(data), eq)


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: ``kind`` in {``jpeg``, ``resize``, ``fit``, ``crop``, ``blur``, ``noise``} and its value.

    * ``jpegQ``: re-encode as JPEG at quality Q;
    * ``resizeF``: scale both sides by F (area interpolation down, cubic up);
    * ``fitN``: reduce the image so that its long side is at most N pixels (a web-size copy; images
      already that small are only re-encoded);
    * ``cropF``: keep the central F x F fraction of each side;
    * ``blurS``: Gaussian blur with sigma S pixels;
    * ``noiseS``: add Gaussian noise of standard deviation S grey levels (seeded by the image).
    """

    kind: str
    value: float

    @property
    def name(self) -> str:
        v = int(self.value) if self.kind in ("jpeg", "fit") else self.value
        return f"{self.kind}{v:g}" if isinstance(v, float) else f"{self.kind}{v}"


def parse_perturbations(spec: str | None) -> list[Perturbation]:
    """Parse a comma-separated list such as ``jpeg75,resize0.5,crop0.8`` (empty -> ``[]``).

    Raises
    ------
    DatasetError
        On an unknown kind or an out-of-range value.
    """
    out = []
    for item in (spec or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        m = re.fullmatch(r"(jpeg|resize|fit|crop|blur|noise)(\d+(?:\.\d*)?|\.\d+)", item)
        if not m:
            raise DatasetError(
                f"bad perturbation {item!r}: use jpegQ, resizeF, fitN, cropF, blurS or noiseS "
                "(e.g. jpeg75,resize0.5,fit512,crop0.8)"
            )
        kind, v = m.group(1), float(m.group(2))
        ok = {
            "jpeg": 1 <= v <= 100 and v == int(v),
            "resize": 0.05 <= v <= 4.0,
            "fit": 32 <= v <= 100000 and v == int(v),
            "crop": 0.05 <= v <= 1.0,
            "blur": 0.0 < v <= 20.0,
            "noise": 0.0 < v <= 100.0,
        }[kind]
        if not ok:
            raise DatasetError(f"perturbation {item!r} is out of range")
        out.append(Perturbation(kind, v))
    return out


def resize(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Scale an (H, W, C) uint8 image by ``factor`` (area interpolation when shrinking, cubic when
    enlarging); sides are rounded and kept >= 1. The same resampling as the detectors use
    (:func:`verity.ops.npr.rescale`)."""
    from verity.ops.npr import rescale

    return rescale(pixels, factor)


def fit_long_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """Reduce an (H, W, C) uint8 image so that its long side is at most ``side`` pixels (a web-size
    copy; area interpolation); an image already that small is returned as a copy."""
    return resize(pixels, min(1.0, side / max(pixels.shape[:2])))


def center_crop(pixels: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central ``fraction`` of each side of an (H, W, ...) array (at least 1 pixel)."""
    h, w = pixels.shape[:2]
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return pixels[y0 : y0 + ch, x0 : x0 + cw].copy()


def perturb(pixels: np.ndarray, p: Perturbation, base: Equalize | None = None) -> bytes:
    """Apply one perturbation to decoded pixels and return the encoded file.

    ``jpegQ`` re-encodes at Q. Geometric and filtering perturbations are re-encoded the ``base``
    way (the run's equalisation), or as lossless PNG when ``base`` is ``None``, so that the
    perturbation is the only change.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
        The decoded pixels of the unperturbed (equalised) image.
    p : Perturbation
    base : Equalize or None

    Returns
    -------
    bytes
    """
    import cv2

    if p.kind == "jpeg":
        return encode(pixels, "jpeg", int(p.value))
    if p.kind == "resize":
        out = resize(pixels, p.value)
    elif p.kind == "fit":
        out = fit_long_side(pixels, int(p.value))
    elif p.kind == "crop":
        out = center_crop(pixels, p.value)
    elif p.kind == "blur":
        out = cv2.GaussianBlur(np.ascontiguousarray(pixels), (0, 0), float(p.value))
    elif p.kind == "noise":
        seed = int.from_bytes(hashlib.sha256(pixels.tobytes()[:65536]).digest()[:4], "little")
        g = np.random.default_rng(seed).normal(0, p.value, pixels.shape)
        out = np.clip(pixels.astype(np.float32) + g, 0, 255).astype(np.uint8)
    else:  # pragma: no cover - parse_perturbations guards this
        raise ValueError(p.kind)
    base = base or Equalize("png", 0)
    return encode(out, base.fmt, base.quality)


# --------------------------------------------------------------------------------------------------
# Training augmentation
# --------------------------------------------------------------------------------------------------


def random_geometry(
    pixels: np.ndarray,
    rng: np.random.Generator,
    crop_side: tuple[int, int] = (256, 768),
    resize_prob: float = 0.3,
    resize_range: tuple[float, float] = (0.5, 1.0),
    flip_prob: float = 0.5,
) -> np.ndarray:
    """Random crop at native resolution, optional down-scale and horizontal flip.

    The crop's sides are drawn independently from ``crop_side`` (so aspect ratios vary) and clipped
    to the image; images from every class therefore come out at overlapping sizes, whatever their
    original size, and camera photos are not systematically down-scaled (which would erase their
    sensor noise while keeping it in small generated images).

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
    rng : numpy.random.Generator
    crop_side : (int, int)
        Range of crop side lengths, pixels.
    resize_prob : float
        Probability of then scaling by a factor drawn from ``resize_range``.
    resize_range : (float, float)
    flip_prob : float

    Returns
    -------
    ndarray, shape (h, w, 3), uint8
    """
    h, w = pixels.shape[:2]
    ch = min(h, int(rng.integers(crop_side[0], crop_side[1] + 1)))
    cw = min(w, int(rng.integers(crop_side[0], crop_side[1] + 1)))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    out = pixels[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < flip_prob:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    if rng.random() < resize_prob:
        f = float(rng.uniform(*resize_range))
        if min(out.shape[:2]) * f >= 64:
            out = resize(out, f)
    return out


def random_quality(rng: np.random.Generator, quality: tuple[int, int] = (60, 95)) -> int:
    """A JPEG quality drawn uniformly from ``quality`` (inclusive)."""
    return int(rng.integers(quality[0], quality[1] + 1))


def augment(
    pixels: np.ndarray,
    rng: np.random.Generator,
    quality: tuple[int, int] = (60, 95),
    gray_prob: float = 0.0,
    geometry: bool = True,
    **geometry_kw,
) -> bytes:
    """The training re-encode applied to every class alike: random geometry, optional grayscale,
    then JPEG at a random quality with no metadata.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
    rng : numpy.random.Generator
    quality : (int, int)
        JPEG quality range (inclusive), 60..95 by default.
    gray_prob : float
        Probability of converting to grayscale (kept as 3 equal channels).
    geometry : bool
        Apply :func:`random_geometry` (with ``geometry_kw``).

    Returns
    -------
    bytes
        A metadata-free JPEG.
    """
    out = random_geometry(pixels, rng, **geometry_kw) if geometry else pixels
    if gray_prob and rng.random() < gray_prob:
        g = (0.299 * out[..., 0] + 0.587 * out[..., 1] + 0.114 * out[..., 2]).round().astype(np.uint8)
        out = np.repeat(g[..., None], 3, axis=2)
    return encode(out, "jpeg", random_quality(rng, quality))


def jpeg_native_crop(
    data: bytes, rng: np.random.Generator, crop_side: tuple[int, int] = (256, 768)
) -> bytes | None:
    """A random crop of a JPEG file that keeps its compression history: the crop is aligned to the
    16-pixel MCU grid and re-encoded with the file's *own* quantization tables and chroma
    subsampling, which is close to lossless (the DCT coefficients barely change), and carries no
    metadata at all.

    This gives "camera original" examples (one compression, the camera's tables) in the same
    container as every other training example, so a double-compression cue is learned as "re-saved
    or edited" rather than "JPEG". Returns ``None`` when ``data`` is not a baseline JPEG Pillow can
    re-encode this way.

    Parameters
    ----------
    data : bytes
        A JPEG file.
    rng : numpy.random.Generator
    crop_side : (int, int)
        Range of crop sides before rounding down to multiples of 16.
    """
    from PIL import Image, JpegImagePlugin

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return None
            q = getattr(im, "quantization", None)
            if not q:
                return None
            sampling = JpegImagePlugin.get_sampling(im)
            w, h = im.size
            cw = min(w, int(rng.integers(crop_side[0], crop_side[1] + 1))) // 16 * 16
            ch = min(h, int(rng.integers(crop_side[0], crop_side[1] + 1))) // 16 * 16
            if cw < 64 or ch < 64:
                return None
            x0 = int(rng.integers(0, (w - cw) // 16 + 1)) * 16
            y0 = int(rng.integers(0, (h - ch) // 16 + 1)) * 16
            crop = im.crop((x0, y0, x0 + cw, y0 + ch))
            if crop.mode == "L":
                crop = crop.convert("RGB")
                sampling = 2
            buf = io.BytesIO()
            crop.save(buf, format="JPEG", qtables=q, subsampling=sampling if sampling >= 0 else 2)
            return buf.getvalue()
    except (OSError, ValueError, SyntaxError):
        return None


#: Kinds of synthetic edit :func:`synthetic_edit` makes, with :mod:`verity.lab.edits`.
EDIT_KINDS: tuple[str, ...] = ("splice", "copy_move", "inpaint")


def synthetic_edit(
    host: np.ndarray,
    donor: np.ndarray | None,
    rng: np.random.Generator,
    kind: str | None = None,
    quality: int | None = None,
) -> tuple[bytes, np.ndarray, str]:
    """Make one "edited" example from a real photo with :mod:`verity.lab.edits`.

    Parameters
    ----------
    host : ndarray, shape (H, W, 3), uint8
        The real photo to alter (at least 64 x 64).
    donor : ndarray, shape (h, w, 3), uint8, or None
        Another real photo to splice from; when ``None`` or too small a splice becomes a copy-move.
    rng : numpy.random.Generator
    kind : {"splice", "copy_move", "inpaint"}, optional
        Default: drawn uniformly.
    quality : int, optional
        Final JPEG quality (default drawn from 60..95, like :func:`augment`).

    Returns
    -------
    data : bytes
        A metadata-free JPEG.
    mask : ndarray, shape (H, W), bool
        Altered pixels.
    kind : str
        The kind actually made.
    """
    from verity.lab import edits

    h, w = host.shape[:2]
    if min(h, w) < 64:
        raise ValueError("host image is smaller than 64 x 64")
    kind = kind or EDIT_KINDS[int(rng.integers(0, len(EDIT_KINDS)))]
    q = int(quality) if quality is not None else random_quality(rng)
    if kind == "splice":
        box = edits.random_box(rng, (h, w))
        bw, bh = box[2] - box[0], box[3] - box[1]
        if donor is None or donor.shape[0] < bh or donor.shape[1] < bw:
            kind = "copy_move"
        else:
            f = edits.make_splice(
                host, donor, rng, q_host=random_quality(rng, (75, 98)), q_donor=random_quality(rng, (50, 95)),
                q_final=q, box=box,
            )
    if kind == "copy_move":
        size = int(np.clip(min(h, w) // int(rng.integers(4, 8)), 24, min(h, w) // 2 - 8))
        f = edits.make_copy_move(host, rng, size=size, quality=q, min_shift=size + 4)
    elif kind == "inpaint":
        f = edits.make_inpaint_fill(host, rng, quality=q)
    elif kind != "splice":
        raise ValueError(f"unknown edit kind {kind!r}")
    return f.data, f.mask, kind


def detector_training_paths(dataset: str | os.PathLike, records: Sequence[Record] | None = None) -> dict[str, set[str]]:
    """Files of ``dataset`` that verity's shipped learned models were trained on, as far as their
    trainers can tell, so that held-out figures can leave them out.

    * ``learned``: :func:`verity.train.detector.select_records` with its default seed (0): the chosen
      records minus its held-out side (the AI-image detectors ``learned_npr``, ``learned_semantic``);
    * ``faces``: every record of a ``faces/`` source that the shipped ``face_sbi.onnx`` did not hold
      out (its metadata lists ``held_out_sources``).

    A trainer that is missing or fails contributes nothing (the key is absent).

    Parameters
    ----------
    dataset : path
        The dataset as given to the trainers.
    records : sequence of Record, optional
        ``read_dataset(dataset)``, if already read.

    Returns
    -------
    dict of str to set of str
        Model family -> paths (as in :class:`Record`).
    """
    out: dict[str, set[str]] = {}
    recs = list(records) if records is not None else read_dataset(dataset)
    try:
        from verity.train.detector import select_records

        chosen, val_paths = select_records(dataset, 0)
        out["learned"] = {r.path for r in chosen} - set(val_paths)
    except Exception:  # noqa: BLE001 - optional trainer, best effort
        pass
    try:
        import json as _json

        from verity.models import __file__ as models_init

        onnx_path = Path(models_init).parent / "weights" / "face_sbi.onnx"
        if onnx_path.is_file():
            import onnxruntime as ort

            sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            meta = _json.loads(sess.get_modelmeta().custom_metadata_map.get("verity", "{}"))
            held = set(meta.get("held_out_sources", []))
            if held:
                out["faces"] = {
                    r.path for r in recs if r.source.startswith("faces/") and r.source.split("/", 1)[1] not in held
                }
    except Exception:  # noqa: BLE001
        pass
    return out


def load_pixels(path: str | os.PathLike) -> np.ndarray:
    """Read and decode a file to RGB uint8 pixels (stored orientation).

    Raises
    ------
    InputError
        When the file cannot be read or decoded.
    """
    from verity.core.io import load_sample

    return load_sample(path).pixels


__all__ = [
    "LABELS",
    "DatasetError",
    "Equalize",
    "InputError",
    "Perturbation",
    "Record",
    "augment",
    "center_crop",
    "decode_pixels",
    "encode",
    "equalize_bytes",
    "equalize_pixels",
    "fingerprint",
    "fit_long_side",
    "jpeg_native_crop",
    "group_split",
    "load_pixels",
    "parse_equalize",
    "parse_extra",
    "parse_perturbations",
    "perturb",
    "random_geometry",
    "random_quality",
    "read_dataset",
    "resize",
    "stratified_subset",
    "synthetic_edit",
    "EDIT_KINDS",
]
