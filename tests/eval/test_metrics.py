"""verity.eval.metrics checked against scikit-learn on seeded random data, with ties and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")
from sklearn.calibration import calibration_curve  # noqa: E402

from verity.eval import metrics as M  # noqa: E402


def _binary(rng, n=200, ties=False, pos=0.4):
    y = (rng.random(n) < pos).astype(int)
    s = rng.normal(0, 1, n) + 0.8 * y
    if ties:
        s = np.round(s, 1)  # many equal scores across both classes
    return y, s


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_matches_sklearn(seed, ties):
    y, s = _binary(np.random.default_rng(seed), ties=ties)
    fpr, tpr, thr = M.roc_curve(y, s)
    f2, t2, th2 = sklearn_metrics.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    np.testing.assert_allclose(thr[1:], th2[1:])
    assert np.isinf(thr[0])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auc_ap_match_sklearn(seed, ties):
    y, s = _binary(np.random.default_rng(seed), n=int(50 + 100 * seed), ties=ties)
    assert M.roc_auc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
    assert M.average_precision(y, s) == pytest.approx(sklearn_metrics.average_precision_score(y, s), abs=1e-12)


def test_all_tied_scores(rng):
    y = (rng.random(40) < 0.5).astype(int)
    s = np.full(40, 0.5)
    assert M.roc_auc(y, s) == pytest.approx(0.5)
    assert M.average_precision(y, s) == pytest.approx(sklearn_metrics.average_precision_score(y, s))
    # the only operating points are "flag nothing" and "flag everything"
    assert M.tpr_at_fpr(y, s, 0.05) == 0.0


def test_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert M.roc_auc(y, s) == 1.0
    assert M.roc_auc(y, -s) == 0.0
    assert M.average_precision(y, s) == 1.0
    assert M.tpr_at_fpr(y, s, 0.0) == 1.0
    assert M.tpr_at_fpr(y, -s, 0.01) == 0.0


def test_single_class_is_nan():
    assert math.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(M.roc_auc([0, 0], [0.1, 0.2]))
    assert math.isnan(M.average_precision([0, 0], [0.1, 0.2]))
    assert math.isnan(M.tpr_at_fpr([1, 1], [0.1, 0.2], 0.05))
    assert math.isnan(M.roc_auc([], []))
    with pytest.raises(ValueError):
        M.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        M.roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError):
        M.roc_auc([0, 1], [0.1, float("nan")])


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("max_fpr", [0.0, 0.01, 0.05, 0.2])
def test_tpr_at_fpr_matches_sklearn_curve(seed, max_fpr):
    y, s = _binary(np.random.default_rng(seed), n=500, ties=seed == 5)
    f, t, _ = sklearn_metrics.roc_curve(y, s)  # default drop_intermediate=True gives the same maximum
    expected = t[f <= max_fpr].max()
    assert M.tpr_at_fpr(y, s, max_fpr) == pytest.approx(expected)


def test_binary_detection_accumulates_batches(rng):
    y, s = _binary(rng, n=300, ties=True)
    m = M.BinaryDetection()
    for i in range(0, 300, 70):
        m.update(s[i : i + 70], y[i : i + 70])
    out = m.compute()
    assert out["n_pos"] == y.sum() and out["n_neg"] == 300 - y.sum()
    assert out["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y, s))
    assert out["ap"] == pytest.approx(sklearn_metrics.average_precision_score(y, s))
    f, t, _ = sklearn_metrics.roc_curve(y, s)
    assert out["tpr@1%fpr"] == pytest.approx(t[f <= 0.01].max())
    assert out["tpr@5%fpr"] == pytest.approx(t[f <= 0.05].max())
    m.reset()
    assert math.isnan(m.compute()["auc"])


def test_confusion_matrix_matches_sklearn(rng):
    labels = list(M.VERDICTS)
    t = [labels[i] for i in rng.integers(0, 4, 300)]  # true labels never "inconclusive"
    p = [labels[i] for i in rng.integers(0, 5, 300)]
    cm = M.ConfusionMatrix()
    cm.update(p[:100], t[:100])
    cm.update(p[100:], t[100:])
    np.testing.assert_array_equal(cm.compute(), sklearn_metrics.confusion_matrix(t, p, labels=labels))
    assert cm.compute()[4].sum() == 0
    # unknown labels are ignored, as in sklearn
    np.testing.assert_array_equal(
        M.confusion_matrix(["authentic", "x"], ["authentic", "edited"]),
        sklearn_metrics.confusion_matrix(["authentic", "x"], ["authentic", "edited"], labels=labels),
    )


def test_accuracy(rng):
    t = rng.integers(0, 4, 101)
    p = np.where(rng.random(101) < 0.7, t, (t + 1) % 4)
    a = M.Accuracy()
    a.update(list(p[:50]), list(t[:50]))
    a.update(list(p[50:]), list(t[50:]))
    assert a.compute() == pytest.approx(sklearn_metrics.accuracy_score(t, p))
    assert math.isnan(M.Accuracy().compute())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_ece_matches_calibration_curve(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(1000)
    y = (rng.random(1000) < p ** 1.5).astype(int)  # miscalibrated on purpose
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    counts = np.histogram(p, bins=np.linspace(0, 1, 16))[0]
    counts = counts[counts > 0]
    expected = np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred))
    m = M.CalibrationError(15)
    m.update(p, y)
    assert m.compute() == pytest.approx(expected, abs=1e-12)
    assert m.compute() > 0.02  # it really is miscalibrated


def test_ece_bin_edges_follow_sklearn():
    # a confidence exactly on an edge belongs to the lower bin, 0 to the first
    edges, counts, conf, freq = M.calibration_bins([0.0, 1 / 15, 0.5, 1.0], [1, 0, 1, 1], n_bins=15)
    assert counts[0] == 2 and counts[7] == 1 and counts[14] == 1 and counts.sum() == 4
    assert freq[0] == 0.5 and np.isnan(conf[3])


def test_multiclass_ece_top_label(rng):
    logits = rng.normal(0, 2, (500, 4))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    t = rng.integers(0, 4, 500)  # labels unrelated to the probabilities: badly calibrated
    m = M.CalibrationError()
    m.update(p, t)
    conf = p.max(1)
    acc = (p.argmax(1) == t).astype(float)
    edges = np.linspace(0, 1, 16)
    ids = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
    ref = sum(
        (ids == b).mean() * abs(acc[ids == b].mean() - conf[ids == b].mean()) for b in range(15) if (ids == b).any()
    )
    assert edges.size == 16
    assert m.compute() == pytest.approx(ref, abs=1e-9)
    assert m.compute() > 0.2
    # perfectly calibrated one-hot predictions that are always right: ECE 0
    m2 = M.CalibrationError()
    m2.update(np.eye(4)[t], t)
    assert m2.compute() == pytest.approx(0.0)


def test_per_source_table():
    t = M.PerSourceTable()
    t.update(
        ["cam", "cam", "cam", "sd"],
        ["authentic", "authentic", "authentic", "ai_generated"],
        ["authentic", "ai_generated", "inconclusive", "ai_generated"],
        [{"authentic": 0.9}, {"authentic": 0.2, "ai_generated": 0.8}, {"authentic": 0.5}, {"authentic": 0.1, "ai_generated": 0.7}],
    )
    rows = {r["source"]: r for r in t.compute()}
    assert rows["cam"]["n"] == 3
    assert rows["cam"]["accuracy"] == pytest.approx(1 / 3)
    assert rows["cam"]["fpr"] == pytest.approx(1 / 3)
    assert rows["cam"]["inconclusive_rate"] == pytest.approx(1 / 3)
    assert rows["cam"]["mean_p_fake"] == pytest.approx((0.1 + 0.8 + 0.5) / 3)
    assert rows["sd"]["detection_rate"] == 1.0 and rows["sd"]["mean_p_true"] == pytest.approx(0.7)


def test_ece_noise_floor():
    from verity.eval.metrics import ece_noise_floor, expected_calibration_error

    rng = np.random.default_rng(5)
    P = rng.dirichlet([1, 1, 1], 60)
    floor = ece_noise_floor(P)
    assert 0.03 < floor < 0.3  # 60 images: sampling noise alone gives a sizeable ECE
    assert ece_noise_floor(np.repeat(P, 50, axis=0)) < floor / 3  # shrinks with more images
    # certain predictions have no noise
    assert ece_noise_floor(np.eye(3)[rng.integers(0, 3, 40)]) == 0.0
    assert np.isnan(ece_noise_floor(np.zeros((0, 3))))
    # the floor is what a calibrated model shows: labels drawn from P give an ECE of that size
    y = np.array([rng.choice(3, p=p) for p in P])
    e = expected_calibration_error(P.max(1), P.argmax(1) == y)
    assert e < 3 * floor
