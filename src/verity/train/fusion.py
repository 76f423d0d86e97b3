"""``verity train fusion``: fit the fusion weights (see :mod:`verity.core.fusion`) on detector scores.

Recipe
------
1. Split the whole dataset **by group** (:func:`verity.train.data.group_split`, ``--val-fraction``)
   into a training and a validation side, so that ``verity eval --heldout`` can recompute the split.
   The validation side, less the files the shipped learned detectors were trained on
   (:func:`verity.train.data.detector_training_paths`), is split again by group into a
   *calibration* side and a *test* side (``--test-fraction``). The test side is only reported.
2. Make examples the way ``verity eval`` analyses images: each image is decoded and re-encoded as a
   metadata-free JPEG at quality 90 (the *equalised* copy), and perturbed copies are made from that
   (training side: random JPEG quality 60..95, down-scale 0.5..1, central crop 0.6..0.95;
   calibration and test sides: :data:`FIXED_VIEWS`). Classes: real photos (grayscale folders left out,
   grayscale exists only on the real side), generated images, and ``edited`` images made from real
   photos of the same side with :mod:`verity.lab.edits` (splice, copy-move, inpainting fill on a
   random 384..1024 px crop, JPEG 60..95). Fitting on perturbed copies of every class favours
   detectors whose scores survive re-compression and resizing.
3. Run the detectors (scores cached per detector in ``--cache``: only a detector whose code or
   weights changed is run again); a score ``s`` becomes the feature ``logit(clip(s, 0.01, 0.99))``
   and an abstention 0, exactly as the fusion does at inference.
4. Stage 1, on the training side: a multinomial logistic regression in the fusion's own form
   (``z_authentic = 0``; class-balanced; biases fitted; L2 with ``C`` chosen by group-wise 5-fold
   cross-validation; the out-of-fold temperature folded in). The hand-set detectors' contributions
   and the fixed ``face_manipulated`` logit are offsets. By default each detector weighs only on the
   classes its labels name, with a weight >= 0 (``--free-weights`` lifts both).
5. Stage 2, on the calibration side: a temperature and per-class shifts of the stage-1 logits
   (class-balanced negative log-likelihood), folded into the weights and biases. The training side
   cannot calibrate: the learned detectors were trained on most of its images and score them more
   confidently than new ones.
6. Decision thresholds: ``authentic`` at 0.5; the fake classes at the least probability for which at
   most ``--max-fpr`` of the calibration side's real photos (all views, including JPEG 75 and
   half-size copies) get a fake verdict. Below it the verdict is ``inconclusive``.
7. Detectors that cannot be fitted (kind ``metadata`` or ``provenance``, which read the container the
   equalised examples lack; fewer than ``--min-scored`` scored training examples; a constant score)
   keep their hand-set weights, so decisive metadata and provenance (C2PA, generator text chunks,
   DigitalSourceType) still decide verdicts as before. The ``face_manipulated`` class keeps its
   hand-set bias and weights (no training data).
8. Report the test side per view, next to the hand-set fusion on the same scores, and write
   ``bias``, ``weights``, ``thresholds`` and ``provenance`` (split with the calibration groups that
   ``verity eval --heldout`` leaves out, sizes, detectors and their fingerprints, stage facts, test
   metrics, and training-side metrics clearly labelled ``train_metrics_not_held_out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported inside functions: `verity --help` stays instant
    import numpy as np

#: Classes the trainer has examples of (face_manipulated keeps its hand-set parameters).
FIT_CLASSES = ("authentic", "ai_generated", "edited")
#: Detector kinds that read the container (metadata, C2PA...): never fitted on re-encoded data, they
#: keep their hand-set weights.
CONTAINER_KINDS = ("metadata", "provenance")


#: The shipped fusion file (same path as ``verity.core.fusion.FUSION_FILE``, without importing numpy).
FUSION_FILE = Path(__file__).resolve().parent.parent / "models" / "weights" / "fusion.json"


# --------------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------------

#: Views of every calibration / test item: the equalised copy and the perturbations the targets name.
FIXED_VIEWS: tuple[str, ...] = ("eq", "jpeg90", "jpeg75", "resize0.5", "fit512", "crop0.8")


@dataclass(frozen=True)
class Item:
    """One image of the fitting data: a dataset file, or a synthetic edit of one (``edit`` set).

    ``side`` is ``train`` (fits the weights), ``calib`` (fits the calibration and the decision
    thresholds) or ``test`` (held out: only reported).
    """

    side: str
    label: str
    path: str
    group: str
    source: str
    seed: int
    donor: str | None = None
    edit: str | None = None  # "splice", "copy_move" or "inpaint" for the edited class


@dataclass(frozen=True)
class Example:
    """One analysed image: an :class:`Item` seen through one ``view`` (``eq`` or a perturbation name)."""

    item: Item
    view: str

    @property
    def side(self) -> str:
        return self.item.side

    @property
    def label(self) -> str:
        return self.item.label

    @property
    def group(self) -> str:
        return self.item.group

    def key(self, root: str = "") -> str:
        it = self.item
        rel = os.path.relpath(it.path, root) if root else it.path
        donor = (os.path.relpath(it.donor, root) if root else it.donor) if it.donor else ""
        return f"{it.label}|{rel}|{donor}|{it.edit or ''}|{it.seed}|{self.view}"


def random_views(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random perturbation names: JPEG quality 60..95, down-scale 0.5..1, central crop 0.6..0.95
    (drawn in turn)."""
    out = []
    for k in range(n):
        kind = ("jpeg", "resize", "crop")[(k + int(rng.integers(0, 3))) % 3]
        if kind == "jpeg":
            out.append(f"jpeg{int(rng.integers(60, 96))}")
        elif kind == "resize":
            out.append(f"resize{rng.uniform(0.5, 1.0):.2f}")
        else:
            out.append(f"crop{rng.uniform(0.6, 0.95):.2f}")
    return out


def split_sides(records, val_fraction: float, seed: int, exclude: dict[str, set[str]] | None = None,
                test_fraction: float = 0.5, held_out: Sequence[Sequence] = ()):
    """Split the dataset into ``train``, ``calib`` and ``test`` records, by group.

    :func:`verity.train.data.group_split` (``val_fraction``, ``seed``) makes train and validation
    sides of the whole dataset (so ``verity eval --heldout`` can recompute them); the validation side,
    less the files the shipped learned detectors were trained on (``exclude``), is split again by
    group into ``calib`` and ``test`` (``test_fraction`` of each label's files in test groups, seed
    ``seed + 1``).

    ``held_out`` adds datasets whose split is already fixed: each entry is ``(records, paths)``, where
    ``paths`` are the files the learned detectors never saw (``verity train semantic-head
    --heldout-csv``). Their listed files join the validation side, the rest the training side.

    Returns
    -------
    train, calib, test : list of Record
    info : dict
        What :func:`main` records as ``provenance.split`` (``calibration_groups`` lists the groups
        ``verity eval --heldout`` must leave out).
    """
    from verity.train.data import fingerprint, group_split

    train, val = group_split(records, val_fraction, seed)
    fixed = []
    for recs, paths in held_out:
        listed = set(paths)
        train = train + [r for r in recs if r.path not in listed]
        fixed += [r for r in recs if r.path in listed]
    val = val + fixed
    excluded = set().union(*exclude.values()) if exclude else set()
    clean = [r for r in val if r.path not in excluded]
    calib, test = group_split(clean, test_fraction, seed + 1) if clean else ([], [])
    info = {
        "method": "verity.train.data.group_split",
        "val_fraction": val_fraction,
        "seed": seed,
        "test_fraction": test_fraction,
        "dataset_fingerprint": fingerprint(records),
        **({"held_out_datasets": [{"dataset_fingerprint": fingerprint(recs), "files": len(recs),
                                   "held_out_files": len(set(paths) & {r.path for r in recs})}
                                  for recs, paths in held_out]} if held_out else {}),
        "groups": {"train": len({r.group for r in train}), "val": len({r.group for r in val}),
                   "calib": len({r.group for r in calib}), "test": len({r.group for r in test})},
        "val_files": len(val),
        "val_files_excluded_as_detector_training": {k: len({r.path for r in val} & v) for k, v in (exclude or {}).items()},
        "calibration_groups": sorted({r.group for r in calib}),
    }
    return train, calib, test, info


def plan_examples(train, calib, test, seed: int, n_authentic: int = 90, n_edited: int = 90, n_edited_val: int = 40,
                  views: int = 2, views_generated: int = 4, n_generated: int | None = None,
                  val_max: int | None = None) -> list[Example]:
    """The examples of every side (deterministic given ``seed``).

    * train: ``n_authentic`` real photos and ``n_edited`` synthetic edits (balanced over sources, then
      groups; grayscale folders left out because grayscale exists only on the real side) and every
      generated image; each as its equalised copy plus ``views`` (``views_generated`` for the few
      generated images) random perturbations of it;
    * calib / test: every real photo (less grayscale) and generated image of the side, plus
      ``n_edited_val`` synthetic edits shared over the two sides in proportion to their real photos;
      each in the :data:`FIXED_VIEWS`.

    ``n_generated`` caps the training side's generated images and ``val_max`` the real photos and
    the generated images of each calibration / test side (each a subset balanced over sources, then
    groups, :func:`verity.train.data.stratified_subset`); ``None`` takes them all.

    Edits are made from real photos of the same side (hosts and donors), cycling through splice,
    copy-move and inpainting fill.
    """
    import numpy as np

    from verity.train.data import EDIT_KINDS, stratified_subset

    import hashlib

    def item_seed(*parts: object) -> int:  # depends on the file, not on the order of planning
        text = "|".join([str(seed)] + [os.path.basename(str(p)) for p in parts])
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF

    rng = np.random.default_rng(seed + 1)
    examples: list[Example] = []
    real_counts = {s: sum(r.label == "authentic" and "gray" not in r.source for r in rs)
                   for s, rs in (("calib", calib), ("test", test))}
    tot = max(1, sum(real_counts.values()))
    for side, recs in (("train", train), ("calib", calib), ("test", test)):
        real = [r for r in recs if r.label == "authentic" and "gray" not in r.source]
        fake = [r for r in recs if r.label == "ai_generated"]
        if side == "train":
            auth = stratified_subset(real, n_authentic, seed=seed + 2)
            hosts = stratified_subset(real, n_edited, seed=seed + 3)
            if n_generated is not None and len(fake) > n_generated:
                fake = sorted(stratified_subset(fake, n_generated, seed=seed + 4), key=lambda r: r.path)
        else:
            if val_max is not None:
                real = sorted(stratified_subset(real, val_max, seed=seed + 5), key=lambda r: r.path) if len(real) > val_max else real
                fake = sorted(stratified_subset(fake, val_max, seed=seed + 6), key=lambda r: r.path) if len(fake) > val_max else fake
            auth = list(real)
            k = int(round(n_edited_val * real_counts[side] / tot))
            hosts = [real[i % len(real)] for i in rng.permutation(max(k, len(real)))[:k]] if real else []
        items: list[Item] = [Item(side, "authentic", r.path, r.group, r.source, item_seed(r.path)) for r in auth]
        items += [Item(side, "ai_generated", r.path, r.group, r.source, item_seed(r.path)) for r in fake]
        for i, r in enumerate(hosts):
            others = sorted((h for h in real if h.group != r.group), key=lambda h: h.path)
            s_ = item_seed(r.path, "edited", i)
            donor = others[s_ % len(others)].path if others else None
            kind = EDIT_KINDS[i % len(EDIT_KINDS)]
            items.append(Item(side, "edited", r.path, r.group, f"synthetic/{kind}", s_, donor, kind))
        for it in items:
            if side == "train":
                n = views_generated if it.label == "ai_generated" else views
                vs = ["eq"] + random_views(np.random.default_rng(it.seed + 7), n)
            else:
                vs = list(FIXED_VIEWS)
            examples += [Example(it, v) for v in vs]
    return examples


def item_pixels(item: Item, cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Decoded pixels of the item's equalised copy (a JPEG at quality 90 without metadata, made the
    way ``verity eval`` equalises)."""
    import numpy as np

    from verity.train.data import decode_pixels, encode, load_pixels, random_geometry, synthetic_edit

    def load(path: str) -> np.ndarray:
        if cache is not None and path in cache:
            return cache[path]
        px = load_pixels(path)
        if cache is not None:
            if len(cache) > 8:
                cache.pop(next(iter(cache)))
            cache[path] = px
        return px

    px = load(item.path)
    if item.label == "edited":
        rng = np.random.default_rng(item.seed)
        host = random_geometry(px, rng, crop_side=(384, 1024), resize_prob=0.0)
        if min(host.shape[:2]) < 96:
            host = px
        donor = load(item.donor) if item.donor else None
        data, _mask, _kind = synthetic_edit(host, donor, rng, kind=item.edit)
        px = decode_pixels(data)
    return decode_pixels(encode(px, "jpeg", 90))


def view_bytes(eq_pixels: np.ndarray, view: str) -> bytes:
    """The file of one view: ``eq`` (the equalised JPEG) or a perturbation name applied to it."""
    from verity.train.data import Equalize, encode, parse_perturbations, perturb

    if view == "eq":
        return encode(eq_pixels, "jpeg", 90)
    (p,) = parse_perturbations(view)
    return perturb(eq_pixels, p, Equalize("jpeg", 90))


def _ops_modules(text: str) -> list[str]:
    """Names of the ``verity.ops`` modules a source text imports (``verity.ops.X`` or
    ``from verity.ops import X[ as Y], ...``)."""
    import re

    names = re.findall(r"verity\.ops\.(\w+)", text)
    for group in re.findall(r"from\s+verity\.ops\s+import\s+([\w ,]+)", text):
        names += [part.split()[0] for part in group.split(",") if part.strip()]
    return names


def detector_fingerprint(name: str) -> str:
    """What a detector's cached scores depend on: the source files of its class and of the verity
    classes it inherits from (a shared base such as ``detectors/learned/_base.py`` decides scores
    too), of the ``verity.ops`` modules those files import (where the numeric work lives; followed
    through the ops modules' own imports) and, for a learned model, the SHA-256 of its weight file."""
    import hashlib
    import inspect

    import verity.ops
    from verity.core.registry import get_detector_class

    h = hashlib.sha256()
    cls = get_detector_class(name)
    files = []
    for k in cls.__mro__:
        if not k.__module__.startswith("verity.") or k.__module__ == "verity.core.registry":
            continue
        try:
            f = inspect.getsourcefile(k)
        except TypeError:
            f = None
        if f and f not in files:
            files.append(f)
    ops_dir = Path(verity.ops.__file__).parent
    i = 0
    while i < len(files):  # files grows as ops modules are found
        try:
            text = Path(files[i]).read_text(encoding="utf-8")
        except OSError:
            text = ""
        for mod in _ops_modules(text):
            f = str(ops_dir / f"{mod}.py")
            if f not in files and Path(f).is_file():
                files.append(f)
        i += 1
    try:
        for f in files or [""]:
            h.update(Path(f).read_bytes())
    except OSError:
        h.update(name.encode())
    try:
        from verity.models import file_sha256, list_models, weight_path

        if name in list_models() and weight_path(name).is_file():
            h.update(file_sha256(weight_path(name)).encode())
    except Exception:  # noqa: BLE001 - best effort
        pass
    if name == "face_manipulation":
        from verity.models import WEIGHTS_DIR

        p = WEIGHTS_DIR / "face_sbi.onnx"
        if p.is_file():
            from verity.models import file_sha256

            h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


class ScoreCache:
    """Detector scores of examples, per detector, in a JSON file.

    A detector's scores are kept only while its :func:`detector_fingerprint` is unchanged, so after a
    detector or its weights change only that detector is re-run.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.fps: dict[str, str] = {}
        self.scores: dict[str, dict[str, float | None]] = {}
        if self.path and self.path.is_file():
            try:
                doc = json.loads(self.path.read_text())
                if doc.get("format") == 2:
                    self.fps, self.scores = doc["detectors"], doc["scores"]
            except (OSError, ValueError, KeyError):
                pass

    def sync(self, detectors: list[str], force: tuple[str, ...] = ()) -> list[str]:
        """Drop the scores of detectors whose fingerprint changed (or in ``force``); returns them."""
        stale = []
        for d in detectors:
            fp = detector_fingerprint(d)
            if self.fps.get(d) != fp or d in force:
                stale.append(d)
                for s in self.scores.values():
                    s.pop(d, None)
                self.fps[d] = fp
        return stale

    def missing(self, key: str, detectors: list[str]) -> list[str]:
        s = self.scores.get(key)
        return list(detectors) if s is None else [d for d in detectors if d not in s]

    def write(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": 2, "detectors": self.fps, "scores": self.scores}))
        tmp.replace(self.path)


_WORKER_PIPES: dict[tuple[str, ...], Any] = {}


def _score_item(job: tuple[Item, list[tuple[str, str, tuple[str, ...]]]]) -> tuple[dict[str, dict], list, int]:
    """Score the views of one item: ``job`` is (item, [(view, cache key, detector names)]); returns
    the cache entries by key, the failures and the number of views. Runs in the parent or in a
    worker process."""
    from verity.core.errors import InputError
    from verity.core.fusion import FusionModel
    from verity.core.io import decode
    from verity.pipeline import Pipeline

    item, views = job
    entries: dict[str, dict] = {}
    failed: list[tuple[str, str]] = []
    try:
        eq = item_pixels(item, {})
    except (InputError, ValueError, OSError) as e:
        return entries, [(item.path, str(e))], len(views)
    for view, key, names in views:
        if names not in _WORKER_PIPES:
            _WORKER_PIPES[names] = Pipeline(list(names), fusion=FusionModel())
        try:
            sample = decode(view_bytes(eq, view), path=item.path)
        except (InputError, ValueError, OSError) as e:
            failed.append((item.path, f"{view}: {e}"))
            continue
        findings, _t, _errors = _WORKER_PIPES[names].run_findings(sample)
        got = {f.detector: (None if f.score is None else float(f.score)) for f in findings}
        entries[key] = {d: got.get(d) for d in names}
    return entries, failed, len(views)


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


def score_examples(examples: list[Example], detectors: list[str], cache: ScoreCache, root: str = "",
                   progress: bool | None = None, save_every: int = 40,
                   workers: int = 1) -> tuple[dict[str, dict], list, float]:
    """Run the detectors each example still lacks in ``cache``; returns (scores by key, failures, seconds).

    ``workers`` > 1 scores items in that many processes (each image's views in one process); the
    cache is written by this process only, every ``save_every`` examples.
    """
    from tqdm import tqdm

    todo: dict[Item, list[tuple[str, str, tuple[str, ...]]]] = {}
    for ex in examples:
        miss = cache.missing(ex.key(root), detectors)
        if miss:
            names = tuple(d for d in detectors if d in miss)
            todo.setdefault(ex.item, []).append((ex.view, ex.key(root), names))
    failed: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    bar = tqdm(total=sum(len(v) for v in todo.values()), desc="scoring examples", unit="img", file=sys.stderr,
               disable=(None if progress is None else not progress), dynamic_ncols=True)
    jobs = list(todo.items())
    since = 0
    pool = None
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork" if sys.platform != "win32" else "spawn").Pool(workers, _worker_init)
        results = pool.imap_unordered(_score_item, jobs, chunksize=1)
    else:
        results = map(_score_item, jobs)
    try:
        for entries, fails, n in results:
            failed += fails
            for key, entry in entries.items():
                cache.scores.setdefault(key, {}).update(entry)
            since += n
            bar.update(n)
            if since >= save_every:
                cache.write()
                since = 0
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
        cache.write()
    return cache.scores, failed, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------------
# Features and fitting
# --------------------------------------------------------------------------------------------------


def features(scores: list[dict[str, float | None]], detectors: list[str],
             centers: dict[str, float] | None = None) -> np.ndarray:
    """``logit(clip(score)) - logit(clip(center))`` per detector (center 0.5 unless ``centers`` names
    one), 0 for abstentions / missing, shape (N, D)."""
    import numpy as np

    from verity.core.fusion import logit

    c = {d: logit(v) for d, v in (centers or {}).items()}
    X = np.zeros((len(scores), len(detectors)))
    for i, s in enumerate(scores):
        for j, d in enumerate(detectors):
            v = s.get(d)
            if v is not None:
                X[i, j] = logit(v) - c.get(d, 0.0)
    return X


def _log_softmax(Z: np.ndarray) -> np.ndarray:
    import numpy as np

    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-example weights N / (K * n_class) so that every present class weighs the same."""
    import numpy as np

    classes, counts = np.unique(y, return_counts=True)
    w = {c: len(y) / (len(classes) * n) for c, n in zip(classes.tolist(), counts.tolist())}
    return np.array([w[c] for c in y.tolist()])


def fit_multinomial(
    X: np.ndarray,
    y: np.ndarray,
    offsets: np.ndarray | None = None,
    C: float = 1.0,
    sample_weight: np.ndarray | None = None,
    n_fit: int = 2,
    fit_bias: bool = True,
    mask: np.ndarray | None = None,
    nonneg: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression with class 0 as reference and fixed per-class offsets.

    The logits are ``z_0 = o_0``, ``z_k = o_k + b_k + W_k . x`` for the ``n_fit`` fitted classes
    ``k = 1..n_fit``, and ``z_k = o_k`` for any further (fixed) class: exactly the form of
    :class:`~verity.core.fusion.FusionModel`, where the offsets hold the contributions of
    hand-set detectors and the fixed ``face_manipulated`` logit. Minimises
    ``sum_i w_i NLL_i + ||W||^2 / (2 C)`` (scikit-learn's scaling; the biases are not penalised) with
    L-BFGS.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
        Class indices in ``0..n_fit``.
    offsets : ndarray, shape (N, K), K >= n_fit + 1, optional
        Fixed logits added to every class (default zeros with K = n_fit + 1).
    C : float
        Inverse L2 strength.
    sample_weight : ndarray, shape (N,), optional
    n_fit : int
    fit_bias : bool
        When False the biases stay 0 (put fixed biases in ``offsets``): only the weights are fitted.
    mask : ndarray of bool, shape (n_fit, D), optional
        Which weights may be non-zero (default all), e.g. only the classes a detector speaks for.
    nonneg : bool
        Constrain the free weights to be >= 0 (a detector's high score never counts *against* its
        class).

    Returns
    -------
    W : ndarray, shape (n_fit, D)
    b : ndarray, shape (n_fit,)
    """
    import numpy as np
    from scipy.optimize import minimize

    N, D = X.shape
    O = np.zeros((N, n_fit + 1)) if offsets is None else np.asarray(offsets, float)
    w = np.ones(N) if sample_weight is None else np.asarray(sample_weight, float)
    Y = np.zeros((N, O.shape[1]))
    Y[np.arange(N), y] = 1.0
    sl = slice(1, 1 + n_fit)

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[: n_fit * D].reshape(n_fit, D)
        b = theta[n_fit * D :]
        Z = O.copy()
        Z[:, sl] += X @ W.T + b
        lp = _log_softmax(Z)
        loss = float(-(w * (Y * lp).sum(axis=1)).sum() + (W * W).sum() / (2 * C))
        G = (np.exp(lp) - Y)[:, sl] * w[:, None]  # dL/dz of the fitted classes, (N, n_fit)
        gW = G.T @ X + W / C
        gb = G.sum(axis=0) if fit_bias else np.zeros(n_fit)
        return loss, np.r_[gW.ravel(), gb]

    M = np.ones((n_fit, D), bool) if mask is None else np.asarray(mask, bool)
    lo = 0.0 if nonneg else None
    bounds = [(lo, None) if m else (0.0, 0.0) for m in M.ravel()] + [(None, None) if fit_bias else (0.0, 0.0)] * n_fit
    res = minimize(f, np.zeros(n_fit * D + n_fit), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 5000, "gtol": 1e-8})
    theta = res.x
    return theta[: n_fit * D].reshape(n_fit, D), theta[n_fit * D :]


def fit_temperature(fitted: np.ndarray, y: np.ndarray, offsets: np.ndarray | None = None,
                    sample_weight: np.ndarray | None = None) -> float:
    """Temperature T > 0 minimising the (weighted) negative log-likelihood of
    ``softmax(fitted / T + offsets)``: only the fitted part of the logits is rescaled.

    Parameters
    ----------
    fitted : ndarray, shape (N, K)
        Logits of the fitted model (zeros in the reference and fixed columns).
    y : ndarray of int, shape (N,)
    offsets : ndarray, shape (N, K), optional
    sample_weight : ndarray, shape (N,), optional
    """
    import numpy as np
    from scipy.optimize import minimize_scalar

    O = np.zeros_like(fitted) if offsets is None else offsets
    w = np.ones(len(y)) if sample_weight is None else sample_weight

    def nll(log_t: float) -> float:
        lp = _log_softmax(fitted / np.exp(log_t) + O)
        return float(-(w * lp[np.arange(len(y)), y]).sum() / w.sum())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def group_folds(groups: np.ndarray, n_folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split example indices into ``n_folds`` (train, test) pairs that never split a group; groups are
    shuffled with ``seed`` and dealt largest first to the currently smallest fold."""
    import numpy as np

    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of = np.zeros(len(uniq), int)
    sizes = np.zeros(n_folds, int)
    for g in order:
        k = int(np.argmin(sizes))
        fold_of[g] = k
        sizes[k] += counts[g]
    f = fold_of[inv]
    return [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(n_folds)]


def fit_fusion(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    offsets: np.ndarray | None = None,
    Cs=(0.01, 0.1, 1.0, 10.0),
    n_folds: int = 5,
    seed: int = 0,
    fit_bias: bool = True,
    mask: np.ndarray | None = None,
    nonneg: bool = False,
) -> dict[str, Any]:
    """Fit the fusion weights: ``C`` by group-wise cross-validation, a temperature from the out-of-fold
    logits folded into the weights, then a final fit on all examples.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        Features of the fitted detectors (see :func:`features`).
    y : ndarray of int, shape (N,)
        Class indices into :data:`FIT_CLASSES` (0 = authentic).
    groups : ndarray, shape (N,)
        Group of each example (folds never split a group).
    offsets : ndarray, shape (N, K), optional
        Fixed logits per class (hand-set detectors' contributions; column 3 = face_manipulated's
        fixed logit); default zeros over the three fitted classes.
    fit_bias : bool
        Fit the biases too (default); when False they stay 0 and only the weights are fitted.
    mask, nonneg
        Passed to :func:`fit_multinomial`.

    Returns
    -------
    dict
        ``W`` (3, D) and ``b`` (3,), referenced to authentic (row 0 is zero) and already divided by
        the temperature; ``C``; ``temperature``; ``cv_nll`` per C (class-balanced mean NLL).
    """
    import numpy as np

    K = len(FIT_CLASSES)
    n_fit = K - 1
    N = len(y)
    O = np.zeros((N, K)) if offsets is None else np.asarray(offsets, float)
    sw = balanced_weights(y)
    folds = min(n_folds, len(set(groups.tolist())))
    cv_nll: dict[float, float] = {}
    oof_by_c: dict[float, np.ndarray] = {}
    if folds >= 2:
        splits = group_folds(groups, folds, seed)
        for C in Cs:
            oof = np.zeros((N, O.shape[1]))
            for tr, te in splits:
                W, b = fit_multinomial(X[tr], y[tr], O[tr], C, sw[tr], n_fit, fit_bias, mask, nonneg)
                oof[te, 1 : 1 + n_fit] = X[te] @ W.T + b
            lp = _log_softmax(oof + O)
            cv_nll[C] = float(-(sw * lp[np.arange(N), y]).sum() / sw.sum())
            oof_by_c[C] = oof
        best = min(cv_nll, key=cv_nll.get)
        temperature = fit_temperature(oof_by_c[best], y, O, sw)
    else:
        best, temperature = 1.0, 1.0
    W, b = fit_multinomial(X, y, O, best, sw, n_fit, fit_bias, mask, nonneg)
    W_full = np.vstack([np.zeros((1, X.shape[1])), W]) / temperature
    b_full = np.r_[0.0, b] / temperature
    return {"W": W_full, "b": b_full, "C": best, "temperature": temperature,
            "cv_nll": {str(k): round(v, 4) for k, v in cv_nll.items()}}


def hand_set_offsets(
    scores: list[dict[str, float | None]], fitted: list[str], model=None, face_only: bool = True
) -> np.ndarray:
    """Fixed logits per class, shape (N, 4) in :data:`~verity.core.types.CLASSES` order.

    Always: the hand-set ``face_manipulated`` bias and every detector's hand-set
    ``face_manipulated`` contribution (that class is not fitted). With ``face_only=False`` also the
    hand-set contributions of the detectors not in ``fitted`` to the other classes.

    ``verity train fusion`` uses ``face_only=True``: on re-encoded training data the hand-set
    (container) detectors abstain or give one constant score, and taking that constant as an offset
    would fold it into the fitted biases, which then misfire on files that do carry metadata and in
    pipelines that run a subset of the detectors.
    """
    import numpy as np

    from verity.core.fusion import FusionModel
    from verity.core.types import CLASSES

    model = model or FusionModel()
    O = np.zeros((len(scores), len(CLASSES)))
    O[:, 3] = model.bias.get("face_manipulated", 0.0)
    for i, s in enumerate(scores):
        contrib = model.contributions(_findings(s))
        for k, c in enumerate(CLASSES[1:], start=1):
            for d, v in contrib[c].items():
                if c == "face_manipulated" or (not face_only and d not in fitted):
                    O[i, k] += v
    return O


def _findings(s: dict[str, float | None]) -> list:
    from verity.core.registry import get_detector_class
    from verity.core.types import Finding

    out = []
    for d, v in s.items():
        try:
            cls = get_detector_class(d)
            lab, kind = list(cls.labels), cls.kind
        except KeyError:
            lab, kind = [], "metadata"
        out.append(Finding(detector=d, score=v, labels=lab, kind=kind))
    return out


def held_out_metrics(model, scores: list[dict[str, float | None]], labels: list[str]) -> dict[str, Any]:
    """Accuracy, ECE, detection AUCs and rates of a :class:`FusionModel` on examples' detector scores."""
    import numpy as np

    from verity.core.types import CLASSES
    from verity.eval.metrics import FAKE_CLASSES, Accuracy, BinaryDetection, CalibrationError

    probs, verdicts = [], []
    for s in scores:
        fs = _findings(s)
        p = model.probabilities(fs)
        probs.append([p[c] for c in CLASSES])
        verdicts.append(model.verdict(p, fs))
    P = np.array(probs)
    acc = Accuracy()
    acc.update(verdicts, labels)
    ece = CalibrationError(15)
    ece.update(P, [CLASSES.index(x) for x in labels])
    top = Accuracy()
    top.update([CLASSES[k] for k in P.argmax(axis=1)], labels)
    out: dict[str, Any] = {"n": len(labels), "accuracy": acc.compute(), "top_class_accuracy": top.compute(),
                           "ece": ece.compute(),
                           "inconclusive_rate": verdicts.count("inconclusive") / max(1, len(verdicts)),
                           "fpr_authentic": float(np.mean([v in FAKE_CLASSES for v, lab in zip(verdicts, labels)
                                                           if lab == "authentic"] or [np.nan]))}
    y_auth = np.array([lab == "authentic" for lab in labels])
    for c in ("ai_generated", "edited"):
        sel = y_auth | (np.array(labels) == c)
        m = BinaryDetection()
        m.update(P[sel, CLASSES.index(c)], (~y_auth[sel]).astype(int))
        r = m.compute()
        out[f"auc_{c}"] = r["auc"]
        out[f"tpr@5%fpr_{c}"] = r["tpr@5%fpr"]
    m = BinaryDetection()
    m.update(1 - P[:, 0], (~y_auth).astype(int))
    r = m.compute()
    out["auc_any_fake"], out["tpr@5%fpr_any_fake"] = r["auc"], r["tpr@5%fpr"]
    return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else (None if isinstance(v, float) else v))
            for k, v in out.items()}


# --------------------------------------------------------------------------------------------------
# Calibration, decision thresholds, evaluation on examples
# --------------------------------------------------------------------------------------------------


def fit_calibration(fitted: np.ndarray, y: np.ndarray, offsets: np.ndarray | None = None,
                    sample_weight: np.ndarray | None = None, n_fit: int = 2,
                    scaled: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Second stage: scales ``a`` and shifts ``delta`` of the fitted logits such that
    ``softmax(a * fitted + delta + offsets)`` minimises the (weighted) negative log-likelihood.

    Parameters
    ----------
    fitted : ndarray, shape (N, K)
        Logits of the first stage (zeros in the reference and fixed columns).
    y : ndarray of int, shape (N,)
    offsets : ndarray, shape (N, K), optional
        Fixed logits (hand-set detectors, the face_manipulated class).
    sample_weight : ndarray, shape (N,), optional
    n_fit : int
        Columns ``1..n_fit`` get a fitted shift; the reference column 0 and further fixed columns
        keep scale 1 and shift 0.
    scaled : sequence of sequences of int, optional
        Groups of columns that share one fitted scale ``1 / T``; columns in no group keep scale 1.
        Default: one temperature for all fitted columns ``[[1, ..., n_fit]]``; ``[[1], [2]]`` is
        vector scaling, ``[[1]]`` rescales only column 1.

    Returns
    -------
    scale : ndarray, shape (K,)
        Multiplies each column of ``fitted``.
    delta : ndarray, shape (K,)
    """
    import numpy as np
    from scipy.optimize import minimize

    N, K = fitted.shape
    O = np.zeros_like(fitted) if offsets is None else np.asarray(offsets, float)
    w = np.ones(N) if sample_weight is None else np.asarray(sample_weight, float)
    Y = np.zeros((N, K))
    Y[np.arange(N), y] = 1.0
    sl = slice(1, 1 + n_fit)
    groups = [list(g) for g in (scaled if scaled is not None else [list(range(1, 1 + n_fit))]) if len(g)]
    n_s = len(groups)
    M = np.zeros((n_s, K))  # group -> columns
    for i, g in enumerate(groups):
        M[i, g] = 1.0

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.ones(K)
        for i, g in enumerate(groups):
            a[g] = np.exp(-theta[i])
        d = np.zeros(K)
        d[sl] = theta[n_s:]
        return a, d

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, d = unpack(theta)
        Z = fitted * a + d + O
        lp = _log_softmax(Z)
        loss = float(-(w * (Y * lp).sum(axis=1)).sum() / w.sum())
        G = (np.exp(lp) - Y) * w[:, None] / w.sum()
        g_cols = -(G * fitted * a).sum(axis=0)  # d loss / d log T of each column
        return loss, np.r_[M @ g_cols, G[:, sl].sum(axis=0)]

    res = minimize(f, np.zeros(n_s + n_fit), jac=True, method="L-BFGS-B",
                   bounds=[(np.log(0.05), np.log(20.0))] * n_s + [(-10.0, 10.0)] * n_fit)
    return unpack(res.x)


def fake_verdict_rates(P: np.ndarray, labels: list[str], t: float) -> tuple[float, float]:
    """With fake verdicts only at probability >= ``t`` (authentic at argmax): the share of authentic
    examples called a fake class, and the share of fake examples called their own class."""
    import numpy as np

    from verity.core.types import CLASSES

    top = P.argmax(axis=1)
    conf = P.max(axis=1)
    lab = np.array([CLASSES.index(x) for x in labels])
    fake_call = (top > 0) & (conf >= t)
    auth = lab == 0
    fpr = float(fake_call[auth].mean()) if auth.any() else float("nan")
    tpr = float((fake_call & (top == lab))[~auth].mean()) if (~auth).any() else float("nan")
    return fpr, tpr


def choose_fake_threshold(P: np.ndarray, labels: list[str], max_fpr: float = 0.02, lowest: float = 0.5,
                          highest: float = 0.99) -> tuple[float, list[dict[str, float]]]:
    """The least threshold in ``lowest..highest`` (steps of 0.01) for a fake verdict such that at most
    ``max_fpr`` of the authentic examples get one; ``highest`` when none does. Also returns the
    trade-off table (threshold, FPR, TPR) at every step."""
    import numpy as np

    table = []
    chosen = None
    for t in np.round(np.arange(lowest, highest + 1e-9, 0.01), 2):
        fpr, tpr = fake_verdict_rates(P, labels, float(t))
        table.append({"threshold": float(t), "fpr_authentic": round(fpr, 4), "tpr": round(tpr, 4)})
        if chosen is None and fpr <= max_fpr:
            chosen = float(t)
    return (chosen if chosen is not None else float(highest)), table


def example_metrics(model, examples: list[Example], scores: dict[str, dict], root: str = "") -> dict[str, Any]:
    """:func:`held_out_metrics` of ``model`` per view of ``examples``, plus per perturbed view the share
    of items whose verdict equals their ``eq`` verdict (``unchanged``)."""
    by_view: dict[str, list[Example]] = {}
    for e in examples:
        if e.key(root) in scores:
            by_view.setdefault(e.view, []).append(e)
    out: dict[str, Any] = {}
    eq_verdict: dict[Item, str] = {}
    verdicts: dict[tuple[Item, str], str] = {}
    for view, exs in by_view.items():
        ss = [scores[e.key(root)] for e in exs]
        out[view] = held_out_metrics(model, ss, [e.label for e in exs])
        for e, s in zip(exs, ss):
            fs = _findings(s)
            v = model.verdict(model.probabilities(fs), fs)
            verdicts[(e.item, view)] = v
            if view == "eq":
                eq_verdict[e.item] = v
    for view in by_view:
        if view == "eq":
            continue
        pairs = [(verdicts[(it, view)], v0) for it, v0 in eq_verdict.items() if (it, view) in verdicts]
        if pairs:
            out[view]["unchanged"] = round(sum(a == b for a, b in pairs) / len(pairs), 4)
    return out


#: Bin edges of the reliability table (probability of one class).
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 1.0)


def beta_interval(k: float, n: float, level: float = 0.9) -> tuple[float, float]:
    """Jeffreys interval (Beta(k + 1/2, n - k + 1/2) quantiles) of a frequency ``k / n``; counts may
    be fractional (views of one image share one count). The bounds at k = 0 and k = n are 0 and 1."""
    from scipy.stats import beta

    a = (1.0 - level) / 2.0
    lo = 0.0 if k <= 0 else float(beta.ppf(a, k + 0.5, n - k + 0.5))
    hi = 1.0 if k >= n else float(beta.ppf(1.0 - a, k + 0.5, n - k + 0.5))
    return lo, hi


def reliability_table(P: np.ndarray, labels: list[str], images: list[str], level: float = 0.9,
                      edges: Sequence[float] = RELIABILITY_EDGES, min_images: float = 5.0) -> dict[str, list[dict]]:
    """Per class, reliability bins of its predicted probability: how often examples whose probability
    fell in a bin really were of that class, with a ``level`` interval on that frequency.

    Every image counts once: its views (JPEG 75, half size...) share a weight of 1, because they are
    not independent evidence. Bins backed by fewer than ``min_images`` images are merged into their
    neighbour (left to right, the last into the one before), so every interval rests on at least that
    many images.

    Parameters
    ----------
    P : ndarray, shape (N, 4)
        Fused probabilities in :data:`~verity.core.types.CLASSES` order.
    labels : list of str
        True class of each example.
    images : list of str
        Which image each example is a view of.

    Returns
    -------
    dict
        class -> list of ``{"lo", "hi", "examples", "images", "positives", "observed", "low", "high"}``
        (``lo <= p < hi``, the last bin includes 1; ``images``/``positives`` are image-weighted counts).
    """
    import numpy as np

    from verity.core.types import CLASSES

    per_image = Counter(images)
    w = np.array([1.0 / per_image[i] for i in images])
    lab = np.asarray(labels)
    out: dict[str, list[dict]] = {}
    for c in FIT_CLASSES:
        p = P[:, CLASSES.index(c)]
        pos = (lab == c).astype(float)
        bins = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (p >= lo) & ((p < hi) | (hi >= 1.0))
            bins.append([lo, hi, int(m.sum()), float(w[m].sum()), float((w * pos)[m].sum())])
        merged: list[list] = []
        for b in bins:
            if merged and merged[-1][3] < min_images:
                last = merged[-1]
                merged[-1] = [last[0], b[1], last[2] + b[2], last[3] + b[3], last[4] + b[4]]
            else:
                merged.append(b)
        while len(merged) > 1 and merged[-1][3] < min_images:
            b = merged.pop()
            last = merged[-1]
            merged[-1] = [last[0], b[1], last[2] + b[2], last[3] + b[3], last[4] + b[4]]
        rows = []
        for lo, hi, n_ex, n_img, k in merged:
            if n_ex == 0:
                continue
            low, high = beta_interval(k, n_img, level)
            rows.append({"lo": lo, "hi": hi, "examples": n_ex, "images": round(n_img, 2), "positives": round(k, 2),
                         "observed": round(k / n_img, 4), "low": round(low, 4), "high": round(high, 4)})
        out[c] = rows
    return out


def reliability_section(model, examples: list[Example], scores: dict[str, dict], root: str = "",
                        level: float = 0.9, min_images: float = 5.0) -> dict[str, Any]:
    """The ``reliability`` entry of a fusion file: :func:`reliability_table` of ``model`` on the
    calibration side's ``examples`` (their cached detector scores), with what backs it."""
    import numpy as np

    from verity.core.types import CLASSES

    exs = [e for e in examples if e.key(root) in scores]
    P = np.array([[p[c] for c in CLASSES] for p in (model.probabilities(_findings(scores[e.key(root)])) for e in exs)])
    imgs = [f"{e.item.label}|{e.item.path}|{e.item.seed}" for e in exs]
    return {
        "level": level,
        "method": "per class, reliability bins of the fused probability on the calibration side (every view; "
                  "the views of one image share a weight of 1); Jeffreys interval on the observed share of "
                  f"that class in the bin; bins with fewer than {min_images:g} images merged",
        "data": f"calibration side: {len(exs)} examples of {len(set(imgs))} images "
                f"({', '.join(f'{k} {v}' for k, v in sorted(Counter(e.label for e in exs).items()))} examples)",
        "caveat": "the examples are metadata-free re-encoded copies, so the interval speaks for the pixel "
                  "detectors; no face-manipulated examples exist, so that class has no interval",
        "classes": reliability_table(P, [e.label for e in exs], imgs, level, min_images=min_images),
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def fit_from_scores(train: list[Example], calib: list[Example], scores: dict[str, dict], det_names: list[str],
                    kinds: dict[str, str], root: str = "", seed: int = 0, min_scored: int = 10,
                    free_weights: bool = False, calibrate: str = "calib", max_fpr: float = 0.02,
                    authentic_threshold: float = 0.5, scale: str = "ai", center: bool = True,
                    threshold_rule: str = "joint") -> tuple[Any, dict[str, Any]]:
    """Both stages and the thresholds from cached scores (no detector is run).

    Returns the :class:`~verity.core.fusion.FusionModel` and a dict of fitting facts for the provenance.
    """
    import numpy as np

    from verity.core.fusion import DEFAULT_BIAS, DEFAULT_INCONCLUSIVE_BELOW, FusionModel
    from verity.core.registry import get_detector_class

    s_tr = [scores[e.key(root)] for e in train]
    X_tr = features(s_tr, det_names)
    y_tr = np.array([FIT_CLASSES.index(e.label) for e in train])
    g_tr = np.array([e.group for e in train])
    scored = np.array([sum(s.get(d) is not None for s in s_tr) for d in det_names])
    kept_default: dict[str, str] = {}
    fit_idx = []
    for j, d in enumerate(det_names):
        labels = set(get_detector_class(d).labels) if d in kinds else set()
        if kinds.get(d) in CONTAINER_KINDS:
            kept_default[d] = f"{kinds[d]} detector: reads the container, which the equalised examples lack"
        elif not free_weights and not labels & set(FIT_CLASSES[1:]):
            kept_default[d] = "speaks only for classes without training examples (" + ", ".join(sorted(labels)) + ")"
        elif scored[j] < min_scored:
            kept_default[d] = f"scored {int(scored[j])} training examples (< {min_scored})"
        elif X_tr[:, j].std() <= 1e-9:
            kept_default[d] = "gave the same score to every training example"
        else:
            fit_idx.append(j)
    if not fit_idx:
        raise ValueError("no detector scored enough training examples to fit anything")
    fitted = [det_names[j] for j in fit_idx]
    # centre each fitted detector on its median score over the training side's real photos, so that
    # its usual "nothing found" score contributes nothing and the biases stay class priors
    centers: dict[str, float] = {}
    if center:
        for d in fitted:
            if "face_manipulated" in get_detector_class(d).labels:
                continue  # its face_manipulated weight is hand-set, on the plain logit
            v = [s[d] for s, lab in zip(s_tr, y_tr) if lab == 0 and s.get(d) is not None]
            if v:
                centers[d] = round(float(np.clip(np.median(v), 0.01, 0.99)), 4)
    X_tr = features(s_tr, fitted, centers)
    O_tr = hand_set_offsets(s_tr, fitted, face_only=False)
    if free_weights:
        mask, nonneg = None, False
    else:  # each detector speaks only for its own labels, and only in their favour
        mask = np.array([[c in get_detector_class(d).labels for d in fitted] for c in FIT_CLASSES[1:]])
        nonneg = True
    fit = fit_fusion(X_tr, y_tr, g_tr, offsets=O_tr, seed=seed, fit_bias=True, mask=mask, nonneg=nonneg)
    W, b = fit["W"], fit["b"]  # (3, D), (3,), the out-of-fold temperature already folded in
    facts: dict[str, Any] = {"fitted_detectors": fitted, "hand_set_detectors": kept_default, "centers": centers,
                             "C": fit["C"],
                             "cv_nll": fit["cv_nll"], "stage1_oof_temperature": round(fit["temperature"], 4)}
    scale_v, delta = np.ones(len(FIT_CLASSES) + 1), np.zeros(len(FIT_CLASSES) + 1)
    s_cal = [scores[e.key(root)] for e in calib]
    y_cal = np.array([FIT_CLASSES.index(e.label) for e in calib])
    if calibrate == "calib" and len(calib) and len(set(y_cal.tolist())) == len(FIT_CLASSES):
        X_cal = features(s_cal, fitted, centers)
        F_cal = np.zeros((len(calib), len(FIT_CLASSES) + 1))
        F_cal[:, 1:3] = X_cal @ W[1:].T + b[1:]
        O_cal = hand_set_offsets(s_cal, fitted, face_only=False)
        groups = {"shared": [[1, 2]], "per-class": [[1], [2]], "ai": [[1]], "none": []}[scale]
        scale_v, delta = fit_calibration(F_cal, y_cal, O_cal, balanced_weights(y_cal), scaled=groups)
    facts["stage2"] = {"on": calibrate, "scale": scale,
                       "temperature": {c: round(1.0 / float(scale_v[k]), 4) for k, c in enumerate(FIT_CLASSES) if k},
                       "delta": {c: round(float(delta[k]), 4) for k, c in enumerate(FIT_CLASSES) if k}}
    k3 = len(FIT_CLASSES)
    W, b = W * scale_v[:k3, None], b * scale_v[:k3] + delta[:k3]
    weights: dict[str, dict[str, float]] = {}
    for k, d in enumerate(fitted):
        cls = get_detector_class(d)
        w = {c: round(float(W[FIT_CLASSES.index(c), k]), 5) for c in FIT_CLASSES[1:]}
        w["face_manipulated"] = float(cls.weight) if "face_manipulated" in cls.labels else 0.0
        weights[d] = w
    bias = {c: round(float(b[FIT_CLASSES.index(c)]), 5) for c in FIT_CLASSES[1:]}
    bias["face_manipulated"] = DEFAULT_BIAS["face_manipulated"]
    model = FusionModel(bias=bias, weights=weights, temperature=1.0, inconclusive_below=DEFAULT_INCONCLUSIVE_BELOW,
                        thresholds={"authentic": authentic_threshold}, centers=centers, source="fitted")
    # decision threshold of the fake classes: at most max_fpr of the calibration side's real photos
    # (every view) called fake
    sel = calib if len(calib) else train
    P = np.array([[p[c] for c in ("authentic", "ai_generated", "edited", "face_manipulated")]
                  for p in (model.probabilities(_findings(scores[e.key(root)])) for e in sel)])
    labels = [e.label for e in sel]
    t, table = choose_fake_threshold(P, labels, max_fpr)
    facts["threshold"] = {"fake": t, "authentic": authentic_threshold, "max_fpr": max_fpr,
                          "rule": threshold_rule,
                          "chosen_on": "calib" if len(calib) else "train (not held out)",
                          "tradeoff": [r for r in table if r["threshold"] in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, t)]}
    if threshold_rule == "per-class":
        per = {c: choose_class_threshold(P, labels, c, max_fpr) for c in ("ai_generated", "edited")}
        model.thresholds.update(per)
        facts["threshold"]["per_class"] = per
        facts["threshold"]["fpr_authentic_combined"] = round(fake_verdict_rates_per_class(P, labels, per), 4)
    else:
        model.thresholds.update({"ai_generated": t, "edited": t})
    return model, facts


def choose_class_threshold(P: np.ndarray, labels: list[str], cls_name: str, max_fpr: float = 0.02,
                           lowest: float = 0.5, highest: float = 0.99) -> float:
    """The least threshold in ``lowest..highest`` (steps of 0.01) such that at most ``max_fpr`` of the
    authentic examples get the verdict ``cls_name``; ``highest`` when none does."""
    import numpy as np

    from verity.core.types import CLASSES

    k = CLASSES.index(cls_name)
    auth = np.array([x == "authentic" for x in labels])
    if not auth.any():
        return float(highest)
    top, conf = P.argmax(axis=1), P.max(axis=1)
    for t in np.round(np.arange(lowest, highest + 1e-9, 0.01), 2):
        if float(((top == k) & (conf >= t))[auth].mean()) <= max_fpr:
            return float(t)
    return float(highest)


def fake_verdict_rates_per_class(P: np.ndarray, labels: list[str], thresholds: dict[str, float]) -> float:
    """Share of authentic examples given a fake verdict when each fake class has its own threshold."""
    import numpy as np

    from verity.core.types import CLASSES

    auth = np.array([x == "authentic" for x in labels])
    top, conf = P.argmax(axis=1), P.max(axis=1)
    call = np.zeros(len(labels), bool)
    for c, t in thresholds.items():
        call |= (top == CLASSES.index(c)) & (conf >= t)
    return float(call[auth].mean()) if auth.any() else float("nan")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DATASET",
                   help="dataset (the shared data folder, class folders or a CSV manifest)")
    p.add_argument("--out", default=str(FUSION_FILE), metavar="FUSION.json",
                   help="where to write the fitted fusion (default: the shipped file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the subsets and the edits")
    p.add_argument("--authentic", type=int, default=90, metavar="N",
                   help="real photos on the training side (default 90)")
    p.add_argument("--edited", type=int, default=90, metavar="N",
                   help="synthetic edits on the training side (default 90)")
    p.add_argument("--edited-val", type=int, default=40, metavar="N",
                   help="synthetic edits over the calibration and test sides (default 40)")
    p.add_argument("--held-out", nargs=2, action="append", default=[], metavar=("DATASET", "HELDOUT.csv"),
                   help="a further dataset whose split is fixed: the files HELDOUT.csv lists (`verity train "
                   "semantic-head --heldout-csv`; the learned detectors never saw them) calibrate and test, "
                   "the rest joins the training side; repeatable")
    p.add_argument("--generated", type=int, default=None, metavar="N",
                   help="at most N generated images on the training side, balanced over sources (default: all)")
    p.add_argument("--val-max", type=int, default=None, metavar="N",
                   help="at most N real photos and N generated images on each of the calibration and test "
                   "sides, balanced over sources (default: all)")
    p.add_argument("--test-csv", metavar="FILE.csv",
                   help="also write the test side's real and generated files here (path,label,group,source) "
                   "for `verity eval`")
    p.add_argument("--views", type=int, default=2, metavar="K",
                   help="random perturbed views of each training image besides its equalised copy (default 2; "
                   "generated images get K + 2)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="share of groups held out (default 0.3)")
    p.add_argument("--test-fraction", type=float, default=0.5,
                   help="share of the held-out side kept for testing; the rest calibrates (default 0.5)")
    p.add_argument("--detectors", metavar="A,B", help="detectors to run (default: the default set)")
    p.add_argument("--min-scored", type=int, default=10, metavar="K",
                   help="fit a detector only when it scored at least K training examples (default 10)")
    p.add_argument("--cache", metavar="FILE.json",
                   help="reuse / store detector scores here; a detector whose code or weights changed is re-run")
    p.add_argument("--rescore", metavar="A,B", help="re-run these detectors even when their scores are cached")
    p.add_argument("--free-weights", action="store_true",
                   help="let every fitted detector weigh on every class, with either sign (default: only on "
                   "the classes its labels name, and >= 0)")
    p.add_argument("--calibrate", choices=("calib", "none"), default="calib",
                   help="second stage on the calibration side: scale and class shifts (default), or none")
    p.add_argument("--scale", choices=("ai", "shared", "per-class", "none"), default="ai",
                   help="which logits the second stage rescales: 'ai' only the ai_generated one (default: the "
                   "learned detectors were trained on the training side's generated images and are over-confident "
                   "there), 'shared' one temperature, 'per-class' one each, 'none' shifts only")
    p.add_argument("--authentic-threshold", type=float, default=0.5,
                   help="least probability for an authentic verdict (default 0.5)")
    p.add_argument("--max-fpr", type=float, default=0.02,
                   help="share of the calibration side's real photos (all views) that may get a fake verdict; "
                   "sets the fake classes' decision threshold (default 0.02)")
    p.add_argument("--threshold-rule", choices=("joint", "per-class"), default="joint",
                   help="'joint' (default): one threshold for both fake classes, at most --max-fpr of the "
                   "calibration side's real photos called fake; 'per-class': ai_generated and edited each get "
                   "the least threshold at which at most --max-fpr of those photos get that verdict (together "
                   "up to twice --max-fpr; provenance.threshold.fpr_authentic_combined records the share)")
    p.add_argument("--include-detector-training", action="store_true",
                   help="do not remove the files the shipped learned detectors were trained on from the "
                   "held-out side (default: removed, so the held-out figures are clean)")
    p.add_argument("--reliability-only", action="store_true",
                   help="do not refit: score only the calibration side (with --cache) and write the reliability "
                   "bins of the fusion already in --out into that file, leaving its weights and thresholds as they are")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="score images in N processes (default 1; each uses one core)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


class PlanError(Exception):
    """A usage problem found while planning a run; ``code`` is the exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def plan_run(args: argparse.Namespace) -> argparse.Namespace:
    """Read the datasets, split them and plan the examples, the way ``verity train fusion`` does.

    Shared with ``benchmarks/fusion_compare.py``, which scores fusion files on the same test side.
    Returns a namespace with ``records`` (the ``--data`` dataset), ``records_all`` (with the
    ``--held-out`` datasets), ``det_names``, ``kinds``, ``split``, ``examples`` and ``root``;
    raises :class:`PlanError`.
    """
    from verity.exit_codes import EXIT_MISSING, EXIT_USAGE

    from verity.core.fusion import FusionModel
    from verity.pipeline import Pipeline
    from verity.train.data import detector_training_paths, read_dataset

    records = read_dataset(args.data)
    held_sets = []
    for spec, csv_path in args.held_out:
        recs = read_dataset(spec)
        real = {os.path.realpath(r.path) for r in read_dataset(csv_path)}
        listed = {r.path for r in recs if os.path.realpath(r.path) in real}
        if not listed:
            raise PlanError(f"{csv_path} lists none of the files of {spec}", EXIT_USAGE)
        held_sets.append((recs, listed))
    records_all = records + [r for recs, _ in held_sets for r in recs]
    labels_present = Counter(r.label for r in records_all)
    if not labels_present.get("authentic") or not labels_present.get("ai_generated"):
        raise PlanError("the dataset needs authentic and ai_generated images", EXIT_USAGE)
    dets = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    try:
        pipe = Pipeline(dets, fusion=FusionModel())  # only the detector list is used
    except KeyError as e:
        raise PlanError(e.args[0], EXIT_USAGE) from None
    det_names = [d.name for d in pipe.detectors]
    if not det_names:
        raise PlanError("no detectors are registered and available", EXIT_MISSING)
    kinds = {d.name: d.kind for d in pipe.detectors}
    exclude = {} if args.include_detector_training else detector_training_paths(args.data, records)
    train_r, calib_r, test_r, split = split_sides(records, args.val_fraction, args.seed, exclude, args.test_fraction,
                                                  held_sets)
    examples = plan_examples(train_r, calib_r, test_r, args.seed, args.authentic, args.edited, args.edited_val,
                             args.views, args.views + 2, args.generated, args.val_max)
    root = os.path.commonpath([os.path.abspath(r.path) for r in records_all]) if records_all else ""
    return argparse.Namespace(records=records, records_all=records_all, det_names=det_names, kinds=kinds,
                              split=split, examples=examples, root=root)


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from verity.exit_codes import EXIT_MISSING, EXIT_OK, EXIT_USAGE

    import cv2

    cv2.setNumThreads(1)
    from verity import __version__
    from verity.core.fusion import FusionModel

    if args.workers < 1 or (args.generated is not None and args.generated < 1) or (args.val_max is not None and args.val_max < 1):
        sys.stderr.write("verity train fusion: --workers, --generated and --val-max must be at least 1\n")
        return EXIT_USAGE
    if min(args.authentic, args.edited) < 10 or args.edited_val < 0 or args.views < 0:
        sys.stderr.write("verity train fusion: --authentic and --edited must be at least 10, --views >= 0\n")
        return EXIT_USAGE
    if not 0.05 <= args.val_fraction <= 0.8 or not 0.1 <= args.test_fraction <= 0.9:
        sys.stderr.write("verity train fusion: --val-fraction must be in [0.05, 0.8], --test-fraction in [0.1, 0.9]\n")
        return EXIT_USAGE
    if not 0.0 <= args.max_fpr < 1.0 or not 0.25 <= args.authentic_threshold <= 0.99:
        sys.stderr.write("verity train fusion: --max-fpr must be in [0, 1), --authentic-threshold in [0.25, 0.99]\n")
        return EXIT_USAGE
    t_start = time.perf_counter()
    try:
        plan = plan_run(args)
    except PlanError as e:
        sys.stderr.write(f"verity train fusion: {e.args[0]}\n")
        return e.code
    det_names, kinds, split, examples, root = plan.det_names, plan.kinds, plan.split, plan.examples, plan.root
    cache = ScoreCache(args.cache)
    force = tuple(d.strip() for d in (args.rescore or "").split(",") if d.strip())
    stale = cache.sync(det_names, force)
    if args.reliability_only:
        return _reliability_only(args, examples, det_names, cache, root)
    scores, failed, secs = score_examples(examples, det_names, cache, root, False if args.quiet else None,
                                          workers=args.workers)
    examples = [e for e in examples if e.key(root) in scores and all(d in scores[e.key(root)] for d in det_names)]
    side = {s: [e for e in examples if e.side == s] for s in ("train", "calib", "test")}
    if not side["train"] or not {e.label for e in side["train"]} >= set(FIT_CLASSES):
        sys.stderr.write("verity train fusion: too few training examples of each class could be made\n")
        return EXIT_USAGE
    try:
        model, facts = fit_from_scores(side["train"], side["calib"], scores, det_names, kinds, root, args.seed,
                                       args.min_scored, args.free_weights, args.calibrate, args.max_fpr,
                                       args.authentic_threshold, args.scale, threshold_rule=args.threshold_rule)
    except ValueError as e:
        sys.stderr.write(f"verity train fusion: {e}\n")
        return EXIT_MISSING
    held = {"fitted": example_metrics(model, side["test"], scores, root),
            "hand_set": example_metrics(FusionModel(), side["test"], scores, root)}
    train_metrics = held_out_metrics(model, [scores[e.key(root)] for e in side["train"]],
                                     [e.label for e in side["train"]])
    reliability = reliability_section(model, side["calib"], scores, root) if side["calib"] else None
    doc = {
        "bias": model.bias,
        "weights": model.weights,
        "temperature": 1.0,
        "inconclusive_below": model.inconclusive_below,
        "thresholds": model.thresholds,
        "centers": model.centers,
        **({"reliability": reliability} if reliability else {}),
        "provenance": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tool": f"verity {__version__} train fusion",
            "command": "verity train fusion " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["train", "fusion"] else "",
            "data": Path(args.data).name,
            **({"held_out_data": [[Path(d).name, Path(c).name] for d, c in args.held_out]} if args.held_out else {}),
            "data_fingerprint": split["dataset_fingerprint"],
            "seed": args.seed,
            "split": split,
            "sizes": {s: {"examples": len(v), "images": len({e.item for e in v}), **Counter(e.label for e in v)}
                      for s, v in side.items()} | {"failed": len(failed)},
            "examples": "every image decoded and re-encoded as a metadata-free JPEG at quality 90 (the way "
                        "`verity eval` equalises), and perturbed copies of that: training side random JPEG "
                        "60..95, down-scale 0.5..1, central crop 0.6..0.95; calibration and test sides "
                        + ", ".join(FIXED_VIEWS) + "; edited = splice / copy-move / inpaint (verity.lab.edits) "
                        "on a random 384..1024 px crop of a real photo of the same side, JPEG 60..95",
            "detectors": det_names,
            "detector_fingerprints": {d: cache.fps.get(d) for d in det_names},
            "rescored": stale,
            "model": "stage 1: multinomial logistic regression on logit(score) (abstention = 0), authentic as "
                     "reference, hand-set detectors and the face_manipulated logit as fixed offsets, class-balanced, "
                     "biases fitted, each fitted detector centred on its median score over real training photos, "
                     "L2 with C by group 5-fold CV, out-of-fold temperature folded in"
                     + ("" if args.free_weights else "; weights only on each detector's labels, >= 0")
                     + "; stage 2 (" + args.calibrate + f", scale {args.scale}): logit scale and class shifts fitted "
                     "on the calibration side (class-balanced), folded into weights and biases; fake-class decision "
                     "threshold: the "
                     f"least with at most {args.max_fpr:.0%} of the calibration side's real photos (all views) called fake",
            "priors": "probabilities are calibrated for equal shares of authentic, ai_generated and edited images",
            **facts,
            "held_out_test": held,
            "train_metrics_not_held_out": train_metrics,
            "scoring_seconds": round(secs, 1),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    FusionModel.load(out)  # the file must load
    if args.test_csv:
        import csv

        tp = Path(args.test_csv)
        tp.parent.mkdir(parents=True, exist_ok=True)
        with tp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "group", "source"])
            for it in sorted({e.item for e in side["test"] if e.item.edit is None}, key=lambda i: i.path):
                w.writerow([str(Path(it.path).resolve()), it.label, it.group, it.source])
    n = {s: len({e.item for e in v}) for s, v in side.items()}
    print(f"fitted {len(facts['fitted_detectors'])} detector{'' if len(facts['fitted_detectors']) == 1 else 's'} on {len(side['train'])} training examples "
          f"({n['train']} images); C={facts['C']}; calibration on {len(side['calib'])} examples ({n['calib']} images): "
          f"T={facts['stage2']['temperature']}; fake threshold {facts['threshold']['fake']}")
    if stale:
        print(f"ran {len(stale)} detector{'' if len(stale) == 1 else 's'} anew: {', '.join(stale)}")
    for name, m in held.items():
        for view in FIXED_VIEWS:
            if view in m:
                r = m[view]
                print(f"test ({n['test']} images) {name:<8} {view:<9} acc {r['accuracy']} ECE {r['ece']} "
                      f"FPR {r['fpr_authentic']} AUC ai {r['auc_ai_generated']} edited {r['auc_edited']} "
                      f"any {r['auc_any_fake']}" + (f" unchanged {r['unchanged']}" if "unchanged" in r else ""))
    if failed:
        print(f"{len(failed)} examples could not be made (unreadable files)")
    print(f"wrote {out} in {time.perf_counter() - t_start:.0f} s")
    return EXIT_OK


def _reliability_only(args: argparse.Namespace, examples: list[Example], det_names: list[str], cache: ScoreCache,
                      root: str) -> int:
    """``--reliability-only``: add the reliability bins of the fusion in ``--out`` to that file."""
    from verity.exit_codes import EXIT_MISSING, EXIT_OK, EXIT_USAGE
    from verity.core.fusion import FusionModel

    out = Path(args.out)
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"verity train fusion: --reliability-only needs a fusion file in --out: {e}\n")
        return EXIT_USAGE
    prov = doc.get("provenance") or {}
    shipped = prov.get("detector_fingerprints") or {}
    changed = [d for d in det_names if d in shipped and shipped[d] != cache.fps.get(d)]
    if changed:
        sys.stderr.write("verity train fusion: these detectors changed since the fusion was fitted, so its "
                         f"calibration data would be scored differently: {', '.join(changed)}; refit instead\n")
        return EXIT_USAGE
    calib = [e for e in examples if e.side == "calib"]
    if not calib:
        sys.stderr.write("verity train fusion: the split has no calibration side\n")
        return EXIT_MISSING
    scores, failed, secs = score_examples(calib, det_names, cache, root, False if args.quiet else None)
    model = FusionModel.load(out)
    section = reliability_section(model, calib, scores, root)
    section["command"] = ("verity train fusion " + " ".join(sys.argv[3:])) if sys.argv[1:3] == ["train", "fusion"] else ""
    section["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    new = {}
    for k, v in doc.items():  # keep the file's order: reliability goes before the provenance
        if k == "provenance":
            new["reliability"] = section
        if k != "reliability":
            new[k] = v
    new.setdefault("reliability", section)
    out.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")
    FusionModel.load(out)
    print(f"wrote the reliability bins of {out} ({section['data']}; scoring {secs:.0f} s, {len(failed)} failed)")
    return EXIT_OK
