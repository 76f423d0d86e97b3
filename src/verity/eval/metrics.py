"""Evaluation metrics as small stateful classes (``update`` / ``compute`` / ``reset``, after
torchmetrics) over plain numpy, plus the pure functions they use.

Conventions
-----------
* Binary metrics take ``targets`` in {0, 1} (1 = the fake class, 0 = authentic) and ``scores`` where
  larger means "more likely fake". Ties are handled exactly as scikit-learn does: all samples with
  the same score share one operating point.
* A metric that is undefined on the data seen (one class missing, no samples) is ``nan``; the report
  prints it as ``n/a``.

The functions agree with scikit-learn (``roc_curve(drop_intermediate=False)``, ``roc_auc_score``,
``average_precision_score``, ``confusion_matrix``, ``calibration_curve``); ``tests/eval`` checks it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from verity.core.types import CLASSES, VERDICTS

FAKE_CLASSES: tuple[str, ...] = CLASSES[1:]


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------


def _binary_inputs(targets: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"targets and scores differ in length: {y.size} vs {s.size}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("binary targets must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def _clf_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false and true positives at each distinct score, highest score first."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return fps.astype(np.float64), tps.astype(np.float64), s[last]


def roc_curve(targets: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic at every distinct score.

    Parameters
    ----------
    targets : array_like of {0, 1}, shape (N,)
    scores : array_like of float, shape (N,)

    Returns
    -------
    fpr, tpr : ndarray, shape (K + 1,)
        Starting at (0, 0) for a threshold above every score.
    thresholds : ndarray, shape (K + 1,)
        Decreasing; ``thresholds[0] = inf``. Same as ``sklearn.metrics.roc_curve(...,
        drop_intermediate=False)``. ``fpr`` (``tpr``) is ``nan`` when there are no negatives
        (positives).
    """
    y, s = _binary_inputs(targets, scores)
    if y.size == 0:
        return np.array([0.0]), np.array([0.0]), np.array([np.inf])
    fps, tps, thr = _clf_curve(y, s)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thr = np.r_[np.inf, thr]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, thr


def roc_auc(targets: Any, scores: Any) -> float:
    """Area under the ROC curve (trapezoidal over distinct scores, ties counted as one half).

    ``nan`` when either class is absent.
    """
    y, s = _binary_inputs(targets, scores)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def average_precision(targets: Any, scores: Any) -> float:
    """Average precision: the sum over distinct thresholds of (R_k - R_{k-1}) * P_k, with no
    interpolation (scikit-learn's definition). ``nan`` when there is no positive.
    """
    y, s = _binary_inputs(targets, scores)
    if y.size == 0 or y.sum() == 0:
        return float("nan")
    fps, tps, _ = _clf_curve(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    drecall = np.diff(np.r_[0.0, recall])
    return float(np.sum(drecall * precision))


def tpr_at_fpr(targets: Any, scores: Any, max_fpr: float) -> float:
    """Highest true-positive rate over thresholds whose false-positive rate is at most ``max_fpr``.

    This is the detection rate a deployment gets when the threshold is set on authentic images to
    flag at most ``max_fpr`` of them. ``nan`` when either class is absent.
    """
    y, s = _binary_inputs(targets, scores)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max())


def confusion_matrix(targets: Sequence[str], preds: Sequence[str], labels: Sequence[str] = VERDICTS) -> np.ndarray:
    """Counts with rows = true label, columns = predicted label, in ``labels`` order.

    Items whose true or predicted label is not in ``labels`` are ignored (as scikit-learn does).
    """
    idx = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(targets, preds, strict=True):
        if t in idx and p in idx:
            m[idx[t], idx[p]] += 1
    return m


def calibration_bins(
    confidences: Any, correct: Any, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width reliability bins over [0, 1].

    Bin ``b`` holds confidences in ``(b / n, (b + 1) / n]`` (the first bin also holds 0), the rule of
    ``sklearn.calibration.calibration_curve(strategy="uniform")``.

    Parameters
    ----------
    confidences : array_like, shape (N,)
        Predicted probability of the event, in [0, 1].
    correct : array_like, shape (N,)
        1 when the event happened (the top class was right / the sample is positive), else 0.
    n_bins : int

    Returns
    -------
    edges : ndarray, shape (n_bins + 1,)
    counts : ndarray of int, shape (n_bins,)
    mean_confidence, frequency : ndarray, shape (n_bins,)
        Per bin; ``nan`` in empty bins.
    """
    c = np.clip(np.asarray(confidences, np.float64).ravel(), 0.0, 1.0)
    a = np.asarray(correct, np.float64).ravel()
    if c.shape != a.shape:
        raise ValueError("confidences and correct differ in length")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], c, side="left")
    counts = np.bincount(ids, minlength=n_bins)
    sum_c = np.bincount(ids, weights=c, minlength=n_bins)
    sum_a = np.bincount(ids, weights=a, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return edges, counts, sum_c / counts, sum_a / counts


def expected_calibration_error(confidences: Any, correct: Any, n_bins: int = 15) -> float:
    """ECE = sum over bins of (n_b / N) * |frequency_b - mean_confidence_b| (``nan`` when empty)."""
    _, counts, conf, freq = calibration_bins(confidences, correct, n_bins)
    n = counts.sum()
    if n == 0:
        return float("nan")
    nz = counts > 0
    return float(np.sum(counts[nz] / n * np.abs(freq[nz] - conf[nz])))


def ece_noise_floor(probabilities: Any, n_bins: int = 15, draws: int = 200, seed: int = 0) -> float:
    """Expected ECE of a *perfectly calibrated* model with these probabilities on this many images.

    Labels are drawn from each row of ``probabilities`` (so the model is calibrated by construction)
    ``draws`` times and the top-class ECE is averaged. On small sets ECE is biased upwards by
    sampling noise alone; an ECE near this floor is as good as the set can show.

    Parameters
    ----------
    probabilities : array-like, shape (N, K)
    n_bins, draws, seed : int

    Returns
    -------
    float
        ``nan`` for an empty set.
    """
    P = np.asarray(probabilities, float)
    if P.ndim != 2 or len(P) == 0:
        return float("nan")
    P = np.clip(P, 0, None)
    P = P / P.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    conf, top = P.max(axis=1), P.argmax(axis=1)
    cum = P.cumsum(axis=1)
    vals = []
    for _ in range(draws):
        u = rng.random(len(P))[:, None]
        y = np.minimum((u > cum).sum(axis=1), P.shape[1] - 1)
        vals.append(expected_calibration_error(conf, y == top, n_bins))
    return float(np.mean(vals))


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


# --------------------------------------------------------------------------------------------------
# Stateful metrics
# --------------------------------------------------------------------------------------------------


class Metric:
    """Base: accumulate with :meth:`update`, read with :meth:`compute`, clear with :meth:`reset`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def update(self, *args: Any, **kw: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def compute(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class BinaryDetection(Metric):
    """ROC AUC, average precision and TPR at fixed FPRs of one "fake vs authentic" problem.

    Parameters
    ----------
    fprs : sequence of float
        False-positive rates at which to report the TPR (default 1 % and 5 %).

    Examples
    --------
    >>> m = BinaryDetection()
    >>> m.update([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> m.compute()["auc"]
    0.75
    """

    def __init__(self, fprs: Sequence[float] = (0.01, 0.05)) -> None:
        self.fprs = tuple(fprs)
        super().__init__()

    def reset(self) -> None:
        self._s: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    def update(self, scores: Any, targets: Any) -> None:
        y, s = _binary_inputs(targets, scores)
        self._s.append(s)
        self._y.append(y)

    @property
    def scores(self) -> np.ndarray:
        return np.concatenate(self._s) if self._s else np.zeros(0)

    @property
    def targets(self) -> np.ndarray:
        return np.concatenate(self._y) if self._y else np.zeros(0, np.int64)

    def compute(self) -> dict[str, float]:
        y, s = self.targets, self.scores
        out: dict[str, float] = {
            "n_pos": int(y.sum()),
            "n_neg": int(y.size - y.sum()),
            "auc": roc_auc(y, s),
            "ap": average_precision(y, s),
        }
        for f in self.fprs:
            out[f"tpr@{100 * f:g}%fpr"] = tpr_at_fpr(y, s, f)
        return out

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return roc_curve(self.targets, self.scores)


class Accuracy(Metric):
    """Share of predictions equal to the target (``nan`` when empty)."""

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, preds: Iterable[Any], targets: Iterable[Any]) -> None:
        p, t = list(preds), list(targets)
        if len(p) != len(t):
            raise ValueError("preds and targets differ in length")
        self.correct += sum(a == b for a, b in zip(p, t))
        self.total += len(t)

    def compute(self) -> float:
        return self.correct / self.total if self.total else float("nan")


class ConfusionMatrix(Metric):
    """Confusion matrix of the five-way verdict (rows true, columns predicted, :data:`VERDICTS` order).

    Parameters
    ----------
    labels : sequence of str
        Row / column order (default the five verdicts).
    """

    def __init__(self, labels: Sequence[str] = VERDICTS) -> None:
        self.labels = tuple(labels)
        super().__init__()

    def reset(self) -> None:
        self.matrix = np.zeros((len(self.labels), len(self.labels)), np.int64)

    def update(self, preds: Sequence[str], targets: Sequence[str]) -> None:
        self.matrix += confusion_matrix(list(targets), list(preds), self.labels)

    def compute(self) -> np.ndarray:
        return self.matrix.copy()


class CalibrationError(Metric):
    """Expected calibration error with equal-width bins (15 by default).

    ``update(probs, targets)`` accepts either

    * multi-class: ``probs`` of shape (N, K) and integer ``targets`` in [0, K): the top-label ECE,
      confidence = max probability, event = "the top class is the true class"; or
    * binary: ``probs`` of shape (N,) (probability of the positive class) and ``targets`` in {0, 1}:
      confidence = ``probs``, event = "positive" (torchmetrics' binary convention).
    """

    def __init__(self, n_bins: int = 15) -> None:
        self.n_bins = int(n_bins)
        super().__init__()

    def reset(self) -> None:
        self._c: list[np.ndarray] = []
        self._a: list[np.ndarray] = []

    def update(self, probs: Any, targets: Any) -> None:
        p = np.asarray(probs, np.float64)
        t = np.asarray(targets).astype(np.int64).ravel()
        if p.ndim == 2:
            if p.shape[0] != t.size:
                raise ValueError("probs and targets differ in length")
            conf = p.max(axis=1)
            correct = (p.argmax(axis=1) == t).astype(np.float64)
        elif p.ndim == 1:
            if p.size != t.size:
                raise ValueError("probs and targets differ in length")
            conf, correct = p, (t == 1).astype(np.float64)
        else:
            raise ValueError("probs must be 1-D or 2-D")
        self._c.append(conf)
        self._a.append(correct)

    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._c:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self._c), np.concatenate(self._a)

    def compute(self) -> float:
        return expected_calibration_error(*self._data(), n_bins=self.n_bins)

    def bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(edges, counts, mean_confidence, frequency)`` for a reliability diagram."""
        return calibration_bins(*self._data(), n_bins=self.n_bins)


class PerSourceTable(Metric):
    """Per-source summary: count, accuracy, verdict counts, mean probability of the true class and
    of "not authentic", and for authentic sources the false-positive rate (share called a fake class)
    and the inconclusive rate.
    """

    def reset(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"n": 0, "correct": 0, "verdicts": defaultdict(int), "p_true": 0.0, "p_fake": 0.0}
        )

    def update(
        self,
        sources: Sequence[str],
        labels: Sequence[str],
        verdicts: Sequence[str],
        probs: Sequence[dict[str, float]],
    ) -> None:
        for src, lab, ver, pr in zip(sources, labels, verdicts, probs, strict=True):
            r = self._rows[(src, lab)]
            r["n"] += 1
            r["correct"] += int(ver == lab)
            r["verdicts"][ver] += 1
            r["p_true"] += float(pr.get(lab, 0.0))
            r["p_fake"] += 1.0 - float(pr.get("authentic", 0.0))

    def compute(self) -> list[dict[str, Any]]:
        out = []
        for (src, lab), r in sorted(self._rows.items()):
            n = r["n"]
            v = {k: int(r["verdicts"].get(k, 0)) for k in VERDICTS}
            row = {
                "source": src,
                "label": lab,
                "n": n,
                "accuracy": r["correct"] / n,
                "mean_p_true": r["p_true"] / n,
                "mean_p_fake": r["p_fake"] / n,
                "inconclusive_rate": v["inconclusive"] / n,
                "verdicts": v,
            }
            if lab == "authentic":
                row["fpr"] = sum(v[c] for c in FAKE_CLASSES) / n
            else:
                row["detection_rate"] = sum(v[c] for c in FAKE_CLASSES) / n
            out.append(row)
        return out


__all__ = [
    "Accuracy",
    "BinaryDetection",
    "CalibrationError",
    "ConfusionMatrix",
    "Metric",
    "PerSourceTable",
    "average_precision",
    "calibration_bins",
    "confusion_matrix",
    "expected_calibration_error",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]
