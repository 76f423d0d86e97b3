"""``verity train fusion``: fit the fusion weights (see :mod:`verity.core.fusion`) on detector scores.

Recipe
------
1. Read the dataset and split it **by group** (:func:`verity.train.data.group_split`) into train and
   validation sides; the split is made on the whole dataset so that ``verity eval --heldout`` can
   recompute it.
2. On each side build examples of three classes, all made the same way so that the format is not a
   feature: every image is decoded, randomly cropped at native resolution (sometimes down-scaled,
   flipped) and re-encoded as a metadata-free JPEG at a random quality 60..95
   (:func:`verity.train.data.augment`):

   * ``authentic``: real photos (camera, processed, colour faces; the grayscale LFW folder is left
     out because grayscale exists only on the authentic side);
   * ``ai_generated``: the Stable Diffusion images (several augmented views each, as there are few);
   * ``edited``: splices, copy-moves and inpainting fills made on the fly from real photos of the
     same side with :mod:`verity.lab.edits` (:func:`verity.train.data.synthetic_edit`).

   Half of the real photos and of the edit hosts instead take the *native* route: a grid-aligned
   crop re-encoded with the JPEG's own tables (:func:`verity.train.data.jpeg_native_crop`), which
   keeps a camera original's single compression, so that double compression is not "every real
   photo".

3. Run the detectors; a score ``s`` becomes the feature ``logit(clip(s, 0.01, 0.99))`` and an
   abstention becomes 0 (exactly what the fusion does at inference).
4. Fit a multinomial logistic regression in the fusion's own form (``z_authentic = 0``; L2 with ``C``
   chosen by group-wise cross-validation on the train side; classes balanced), with the fixed
   ``face_manipulated`` logit as an offset; fit a temperature on the out-of-fold logits and fold it
   into the fitted weights. By default each detector gets weights only for the classes its labels
   name, constrained to be >= 0 (``--free-weights`` lifts both), and the class-balanced biases stay
   0 (``--fit-bias`` fits them): a detector that scores 0.5, abstains or is not run then moves
   nothing, as the score contract says, whereas a fitted bias absorbs the detectors' typical scores
   and misfires in pipelines that run a subset of them. Finally the biases are shifted by the
   hand-set prior log-odds (``DEFAULT_BIAS``; ``--prior balanced`` skips this) because authentic
   images are far more common in use than in the balanced training set. Pure numpy / scipy.
5. Detectors that cannot be fitted (kind ``metadata`` or ``provenance``, which read the container
   that re-encoding removes; fewer than ``--min-scored`` non-abstaining training examples, such as
   face detectors on images without faces; a constant score) are left out of
   ``weights`` so that :class:`~verity.core.fusion.FusionModel` keeps their hand-set weights; the
   ``face_manipulated`` class keeps its hand-set bias and weights (no training data).
6. Report held-out metrics of the final model on the validation side only, next to the hand-set
   fusion on the same findings, and write the JSON with its provenance. Files that the shipped learned
   detectors were trained on (:func:`verity.train.data.detector_training_paths`) are removed from
   the validation side; they stay on the training side, so the fitted weights may trust those
   detectors somewhat more than unseen data warrants.
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DATASET",
                   help="dataset (the shared data folder, class folders or a CSV manifest)")
    p.add_argument("--out", default=str(FUSION_FILE), metavar="FUSION.json",
                   help="where to write the fitted fusion (default: the shipped file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the subset and the augmentation")
    p.add_argument("--limit", type=int, default=900, metavar="N",
                   help="number of examples over both sides, split evenly over the three classes; the "
                   "held-out side is capped by the clean files available (default 900: about 3 minutes "
                   "with the default detectors on a quiet 2-core machine)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="share of groups held out (default 0.3)")
    p.add_argument("--detectors", metavar="A,B", help="detectors to run (default: the default set)")
    p.add_argument("--min-scored", type=int, default=10, metavar="K",
                   help="fit a detector only when it scored at least K training examples (default 10)")
    p.add_argument("--cache", metavar="FILE.json",
                   help="reuse / store the detector scores of the examples here (same data, seed and limit)")
    p.add_argument("--prior", choices=("hand-set", "balanced"), default="hand-set",
                   help="class prior of the shipped biases: 'hand-set' adds the hand-set prior log-odds "
                   "(authentic more likely, as in deployment) to the class-balanced fit; 'balanced' keeps "
                   "equal priors (default hand-set)")
    p.add_argument("--fit-bias", action="store_true",
                   help="fit the class biases too (default: keep them at the prior, so that a detector "
                   "scoring 0.5, abstaining or not run moves nothing, as the score contract says; a fitted "
                   "bias absorbs the detectors' typical scores and misfires in pipelines that run a subset)")
    p.add_argument("--free-weights", action="store_true",
                   help="let every fitted detector weigh on every class, with either sign (default: only "
                   "on the classes its labels name, and >= 0)")
    p.add_argument("--include-detector-training", action="store_true",
                   help="do not remove the files the shipped learned detectors were trained on from the "
                   "held-out side (default: removed, so the held-out figures are clean)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One training or validation example: which file(s), which class, which augmentation seed."""

    side: str  # "train" or "val"
    label: str
    path: str
    group: str
    source: str
    seed: int
    donor: str | None = None
    #: "reencode" (decode, crop, re-encode at a random quality) or "native" (a grid-aligned crop that
    #: keeps a JPEG's own compression, see :func:`verity.train.data.jpeg_native_crop`)
    route: str = "reencode"

    @property
    def key(self) -> str:
        return f"{self.side}|{self.label}|{self.path}|{self.donor or ''}|{self.seed}|{self.route}"


def plan_examples(
    records, limit: int, val_fraction: float, seed: int, exclude_val: dict[str, set[str]] | None = None
) -> tuple[list[Example], dict[str, Any]]:
    """Choose the examples of both sides (deterministic given ``seed``).

    Parameters
    ----------
    records : list of Record
        The whole dataset (the split is made on all of it).
    limit : int
        Examples over both sides.
    val_fraction : float
    seed : int
    exclude_val : dict of str to set of str, optional
        Paths that must not appear on the validation side (files the shipped learned detectors were
        trained on, see :func:`verity.train.data.detector_training_paths`), by model family.

    Returns the examples and a description of the split.
    """
    import numpy as np

    from verity.train.data import fingerprint, group_split, stratified_subset

    train_recs, val_recs = group_split(records, val_fraction, seed)
    rng = np.random.default_rng(seed + 1)
    per_side = {"train": int(round(limit * (1 - val_fraction))), "val": 0}
    per_side["val"] = limit - per_side["train"]
    examples: list[Example] = []
    excluded = set().union(*exclude_val.values()) if exclude_val else set()
    val_clean = [r for r in val_recs if r.path not in excluded]
    for side, recs in (("train", train_recs), ("val", val_clean)):
        n_class = max(1, per_side[side] // len(FIT_CLASSES))
        real = [r for r in recs if r.label == "authentic" and "gray" not in r.source]
        fake = [r for r in recs if r.label == "ai_generated"]
        auth = stratified_subset(real, n_class, seed=seed + 2)
        hosts = stratified_subset(real, n_class, seed=seed + 3)
        for i, r in enumerate(auth):
            route = "native" if i % 2 == 0 else "reencode"  # half keep their own compression
            examples.append(Example(side, "authentic", r.path, r.group, r.source, int(rng.integers(2**31)),
                                    route=route))
        if fake:
            # few generated images: several augmented views each on the train side, one on the val side
            reps = int(np.ceil(n_class / len(fake))) if side == "train" else 1
            chosen = [fake[i % len(fake)] for i in rng.permutation(len(fake) * reps)[:n_class]]
            for r in chosen:
                examples.append(Example(side, "ai_generated", r.path, r.group, r.source, int(rng.integers(2**31))))
        for i, r in enumerate(hosts):
            others = [h for h in real if h.group != r.group]
            donor = others[int(rng.integers(len(others)))].path if others else None
            examples.append(Example(side, "edited", r.path, r.group, "synthetic/" + r.source, int(rng.integers(2**31)),
                                    donor, route="native" if i % 2 == 0 else "reencode"))
    info = {
        "method": "verity.train.data.group_split",
        "val_fraction": val_fraction,
        "seed": seed,
        "dataset_fingerprint": fingerprint(records),
        "groups": {"train": len({r.group for r in train_recs}), "val": len({r.group for r in val_recs})},
        "val_files": len(val_recs),
        "val_files_excluded_as_detector_training": {
            k: len({r.path for r in val_recs} & v) for k, v in (exclude_val or {}).items()
        },
    }
    return examples, info


def make_example_bytes(ex: Example, cache: dict[str, np.ndarray] | None = None) -> bytes:
    """The metadata-free JPEG of one example (see the module docstring)."""
    import numpy as np

    from verity.train.data import (
        augment, decode_pixels, jpeg_native_crop, load_pixels, random_geometry, synthetic_edit,
    )

    rng = np.random.default_rng(ex.seed)

    def load(path: str) -> np.ndarray:
        if cache is not None and path in cache:
            return cache[path]
        px = load_pixels(path)
        if cache is not None:
            if len(cache) > 16:
                cache.pop(next(iter(cache)))
            cache[path] = px
        return px

    if ex.route == "native":
        from verity.core.io import read_bytes

        native = jpeg_native_crop(read_bytes(ex.path), rng)
        if native is not None:
            if ex.label != "edited":
                return native
            host = decode_pixels(native)
            donor = load(ex.donor) if ex.donor else None
            return synthetic_edit(host, donor, rng)[0]
    px = load(ex.path)
    if ex.label != "edited":
        return augment(px, rng)
    host = random_geometry(px, rng, crop_side=(256, 768))
    if min(host.shape[:2]) < 96:
        host = px
    donor = load(ex.donor) if ex.donor else None
    data, _mask, _kind = synthetic_edit(host, donor, rng)
    return data


# --------------------------------------------------------------------------------------------------
# Features and fitting
# --------------------------------------------------------------------------------------------------


def features(scores: list[dict[str, float | None]], detectors: list[str]) -> np.ndarray:
    """``logit(clip(score))`` per detector, 0 for abstentions / missing, shape (N, D)."""
    import numpy as np

    from verity.core.fusion import logit

    X = np.zeros((len(scores), len(detectors)))
    for i, s in enumerate(scores):
        for j, d in enumerate(detectors):
            v = s.get(d)
            if v is not None:
                X[i, j] = logit(v)
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
# Main
# --------------------------------------------------------------------------------------------------


def _score_examples(examples: list[Example], pipe, cache_path: Path | None, cache_key: str, progress: bool | None):
    import numpy as np

    from tqdm import tqdm

    from verity.core.errors import InputError
    from verity.core.io import decode

    cached: dict[str, Any] = {}
    if cache_path and cache_path.is_file():
        try:
            doc = json.loads(cache_path.read_text())
            if doc.get("key") == cache_key:
                cached = doc["scores"]
        except (OSError, ValueError, KeyError):
            cached = {}
    scores: dict[str, dict[str, float | None]] = {}
    failed: list[tuple[str, str]] = []
    px_cache: dict[str, np.ndarray] = {}
    todo = [e for e in examples if e.key not in cached]
    t0 = time.perf_counter()
    for ex in tqdm(todo, desc="scoring examples", unit="img", file=sys.stderr,
                   disable=(None if progress is None else not progress), dynamic_ncols=True):
        try:
            sample = decode(make_example_bytes(ex, px_cache), path=ex.path)
        except (InputError, ValueError, OSError) as e:
            failed.append((ex.path, str(e)))
            continue
        findings, _t, _errors = pipe.run_findings(sample)
        scores[ex.key] = {f.detector: (None if f.score is None else float(f.score)) for f in findings}
        if cache_path and len(scores) % 25 == 0:
            _write_cache(cache_path, cache_key, {**cached, **scores})
    if cache_path:
        _write_cache(cache_path, cache_key, {**cached, **scores})
    return {**cached, **scores}, failed, time.perf_counter() - t0


def _examples_fingerprint(examples: list[Example]) -> str:
    import hashlib

    paths = [e.path for e in examples] + [e.donor for e in examples if e.donor]
    root = os.path.commonpath(paths) if paths else ""
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda x: x.key):
        rel = os.path.relpath(e.path, root)
        donor = os.path.relpath(e.donor, root) if e.donor else ""
        h.update(f"{e.side}|{e.label}|{rel}|{donor}|{e.seed}\n".encode())
    return h.hexdigest()[:16]


def _write_cache(path: Path, key: str, scores: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "scores": scores}))
    tmp.replace(path)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from verity.cli.main import EXIT_MISSING, EXIT_OK, EXIT_USAGE

    import cv2

    cv2.setNumThreads(1)
    from verity import __version__
    from verity.core.fusion import DEFAULT_BIAS, DEFAULT_INCONCLUSIVE_BELOW, FusionModel
    from verity.core.registry import get_detector_class
    from verity.pipeline import Pipeline
    from verity.train.data import detector_training_paths, fingerprint, read_dataset

    if args.limit < 30:
        sys.stderr.write("verity train fusion: --limit must be at least 30\n")
        return EXIT_USAGE
    if not 0.05 <= args.val_fraction <= 0.8:
        sys.stderr.write("verity train fusion: --val-fraction must be in [0.05, 0.8]\n")
        return EXIT_USAGE
    t_start = time.perf_counter()
    records = read_dataset(args.data)
    labels_present = Counter(r.label for r in records)
    if not labels_present.get("authentic") or not labels_present.get("ai_generated"):
        sys.stderr.write("verity train fusion: the dataset needs authentic and ai_generated images\n")
        return EXIT_USAGE
    dets = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    try:
        pipe = Pipeline(dets, fusion=FusionModel())  # hand-set fusion; only findings are used
    except KeyError as e:
        sys.stderr.write(f"verity train fusion: {e.args[0]}\n")
        return EXIT_USAGE
    det_names = [d.name for d in pipe.detectors]
    if not det_names:
        sys.stderr.write("verity train fusion: no detectors are registered and available\n")
        return EXIT_MISSING
    exclude = {} if args.include_detector_training else detector_training_paths(args.data, records)
    examples, split = plan_examples(records, args.limit, args.val_fraction, args.seed, exclude)
    cache_key = fingerprint(records, args.seed, args.limit, args.val_fraction, sorted(det_names), __version__,
                            sorted(sorted(v) for v in exclude.values()))
    scores, failed, secs = _score_examples(
        examples, pipe, Path(args.cache) if args.cache else None, cache_key, False if args.quiet else None
    )
    examples = [e for e in examples if e.key in scores]
    train = [e for e in examples if e.side == "train"]
    val = [e for e in examples if e.side == "val"]
    X_tr = features([scores[e.key] for e in train], det_names)
    y_tr = np.array([FIT_CLASSES.index(e.label) for e in train])
    g_tr = np.array([e.group for e in train])
    scored = np.array([sum(scores[e.key].get(d) is not None for e in train) for d in det_names])
    kinds = {d.name: d.kind for d in pipe.detectors}
    kept_default: dict[str, str] = {}
    fit_idx = []
    for j, d in enumerate(det_names):
        if kinds[d] in CONTAINER_KINDS:
            kept_default[d] = f"{kinds[d]} detector: reads the container, which the re-encoded training data lacks"
        elif scored[j] < args.min_scored:
            kept_default[d] = f"scored {int(scored[j])} training examples (< {args.min_scored})"
        elif X_tr[:, j].std() <= 1e-9:
            kept_default[d] = "gave the same score to every training example"
        else:
            fit_idx.append(j)
    if not fit_idx:
        sys.stderr.write("verity train fusion: no detector scored enough training examples to fit anything\n")
        return EXIT_MISSING
    fitted_names = [det_names[j] for j in fit_idx]
    offsets = hand_set_offsets([scores[e.key] for e in train], fitted_names)
    if args.free_weights:
        mask, nonneg = None, False
    else:  # each detector speaks only for its own labels, and only in their favour
        mask = np.array([[c in get_detector_class(d).labels for d in fitted_names] for c in FIT_CLASSES[1:]])
        nonneg = True
    fit = fit_fusion(X_tr[:, fit_idx], y_tr, g_tr, offsets=offsets, seed=args.seed, fit_bias=args.fit_bias,
                     mask=mask, nonneg=nonneg)
    weights: dict[str, dict[str, float]] = {}
    for k, j in enumerate(fit_idx):
        d = det_names[j]
        cls = get_detector_class(d)
        w = {c: round(float(fit["W"][FIT_CLASSES.index(c), k]), 5) for c in FIT_CLASSES[1:]}
        w["face_manipulated"] = float(cls.weight) if "face_manipulated" in cls.labels else 0.0
        weights[d] = w
    balanced_bias = {c: float(fit["b"][FIT_CLASSES.index(c)]) for c in FIT_CLASSES[1:]}
    shift = {c: (DEFAULT_BIAS[c] if args.prior == "hand-set" else 0.0) for c in FIT_CLASSES[1:]}
    bias = {c: round(balanced_bias[c] + shift[c], 5) for c in FIT_CLASSES[1:]}
    bias["face_manipulated"] = DEFAULT_BIAS["face_manipulated"]
    model = FusionModel(bias=bias, weights=weights, temperature=1.0, inconclusive_below=DEFAULT_INCONCLUSIVE_BELOW,
                        source="fitted")
    val_scores = [scores[e.key] for e in val]
    val_labels = [e.label for e in val]
    balanced = FusionModel(bias={**bias, **{c: round(balanced_bias[c], 5) for c in balanced_bias}},
                           weights=weights, source="fitted, balanced prior")
    held = {
        "fitted": held_out_metrics(model, val_scores, val_labels),
        "fitted_balanced_prior": held_out_metrics(balanced, val_scores, val_labels),
        "hand_set": held_out_metrics(FusionModel(), val_scores, val_labels),
    }
    train_metrics = held_out_metrics(model, [scores[e.key] for e in train], [e.label for e in train])
    doc = {
        "bias": bias,
        "weights": weights,
        "temperature": 1.0,
        "inconclusive_below": DEFAULT_INCONCLUSIVE_BELOW,
        "provenance": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tool": f"verity {__version__} train fusion",
            "command": "verity train fusion " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["train", "fusion"] else "",
            "data": Path(args.data).name,
            "data_fingerprint": split["dataset_fingerprint"],
            "examples_fingerprint": _examples_fingerprint(examples),
            "seed": args.seed,
            "limit": args.limit,
            "split": split,
            "sizes": {
                "train": dict(Counter(e.label for e in train)),
                "val": dict(Counter(e.label for e in val)),
                "failed": len(failed),
            },
            "augmentation": "decode, random native-resolution crop 256..768 px per side, 30% down-scale 0.5..1, "
                            "50% flip, metadata-free JPEG quality 60..95 (every class alike); edited = "
                            "splice / copy-move / inpaint (verity.lab.edits) on real photos",
            "detectors": det_names,
            "fitted_detectors": [det_names[j] for j in fit_idx],
            "hand_set_detectors": kept_default,
            "model": "multinomial logistic regression on logit(score) (abstention = 0), authentic as "
                     "reference, face_manipulated logit as a fixed offset, class-balanced, L2 with C by group "
                     "5-fold CV, temperature from out-of-fold logits folded into the weights"
                     + ("" if args.free_weights else "; weights only on each detector's labels, >= 0")
                     + ("; biases fitted" if args.fit_bias else "; biases fixed (0 when balanced)")
                     + ("; hand-set prior log-odds added to the biases" if args.prior == "hand-set" else ""),
            "prior": args.prior,
            "fit_bias": bool(args.fit_bias),
            "free_weights": bool(args.free_weights),
            "balanced_bias": {c: round(v, 5) for c, v in balanced_bias.items()},
            "prior_shift": shift,
            "C": fit["C"],
            "cv_nll": fit["cv_nll"],
            "fitted_temperature": round(fit["temperature"], 4),
            "held_out": held,
            "train_metrics_not_held_out": train_metrics,
            "scoring_seconds": round(secs, 1),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    FusionModel.load(out)  # the file must load
    print(f"fitted {len(fit_idx)} detectors on {len(train)} training examples "
          f"({dict(Counter(e.label for e in train))}); C={fit['C']}, temperature {fit['temperature']:.2f}")
    if kept_default:
        print(f"kept hand-set weights: {', '.join(kept_default)}")
    for name, m in held.items():
        print(f"held-out ({len(val)} examples, {split['groups']['val']} groups), {name}: "
              f"acc {m['accuracy']} (top class {m['top_class_accuracy']}), ECE {m['ece']}, AUC ai {m['auc_ai_generated']}, "
              f"edited {m['auc_edited']}, any-fake {m['auc_any_fake']}, inconclusive {m['inconclusive_rate']}")
    if failed:
        print(f"{len(failed)} examples could not be made (unreadable files)")
    print(f"wrote {out} in {time.perf_counter() - t_start:.0f} s")
    return EXIT_OK
