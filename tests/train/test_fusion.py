"""verity.train.fusion: the fitting maths on synthetic features, and ``verity train fusion`` end to end
with toy detectors on a tiny generated dataset."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")

from verity.cli.main import main  # noqa: E402
from verity.core import registry  # noqa: E402
from verity.core.fusion import FusionModel  # noqa: E402
from verity.core.registry import Detector  # noqa: E402
from verity.core.types import Finding  # noqa: E402
from verity.lab.edits import camera_exif, sd_png, textured_image  # noqa: E402
from verity.train import fusion as F  # noqa: E402
from verity.train.data import Record, read_dataset  # noqa: E402


def _synthetic(rng, n):
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 1, (n, 3))
    X[:, 0] += 2.0 * (y == 1)  # detector 0 speaks for ai_generated
    X[:, 1] += 2.0 * (y == 2)  # detector 1 speaks for edited
    return X, y  # detector 2 is noise


def test_fit_fusion_recovers_structure_and_calibrates(rng):
    X, y = _synthetic(rng, 900)
    groups = np.arange(900) // 3
    fit = F.fit_fusion(X, y, groups)
    W, b = fit["W"], fit["b"]
    assert W.shape == (3, 3) and np.allclose(W[0], 0) and b[0] == 0  # authentic is the reference
    assert W[1, 0] > 1.0 and W[2, 1] > 1.0
    assert abs(W[1, 2]) < 0.3 and abs(W[2, 2]) < 0.3
    assert 0.5 < fit["temperature"] < 2.0
    # calibrated on fresh data from the same distribution
    X2, y2 = _synthetic(np.random.default_rng(99), 3000)
    z = X2 @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    from verity.eval.metrics import expected_calibration_error

    ece = expected_calibration_error(p.max(1), p.argmax(1) == y2)
    assert ece < 0.05
    assert (p.argmax(1) == y2).mean() > 0.6


def test_fit_temperature_undoes_scaling(rng):
    y = rng.integers(0, 3, 4000)
    true_logits = rng.normal(0, 1, (4000, 3)) + 1.5 * np.eye(3)[y]
    # sample labels from softmax(true_logits) so that T=1 is right for true_logits
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=pi) for pi in p])
    assert F.fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.15)
    assert F.fit_temperature(true_logits, y) == pytest.approx(1.0, rel=0.15)


def test_features_abstain_is_zero():
    X = F.features([{"a": 0.5, "b": None}, {"a": 0.99, "b": 0.0}, {}], ["a", "b"])
    assert X[0, 0] == 0 and X[0, 1] == 0 and X[2].tolist() == [0, 0]
    assert X[1, 0] == pytest.approx(np.log(99)) and X[1, 1] == pytest.approx(-np.log(99))


def test_plan_examples_split_by_group_and_balanced():
    recs = []
    for g in range(30):
        recs += [Record(f"/d/cam{g}_{i}.jpg", "authentic", f"cam{g}", "real_camera/x") for i in range(2)]
    for g in range(10):
        recs += [Record(f"/d/sd{g}_{i}.png", "ai_generated", f"sd{g}", "ai_generated/sd1") for i in range(3)]
    recs += [Record(f"/d/lfw{i}.jpg", "authentic", f"lfw{i}", "faces/lfw_gray") for i in range(20)]
    ex, split = F.plan_examples(recs, 60, 0.3, seed=0)
    tr = [e for e in ex if e.side == "train"]
    va = [e for e in ex if e.side == "val"]
    assert not ({e.group for e in tr} & {e.group for e in va})
    assert all("lfw" not in e.path for e in ex)  # grayscale folder left out
    from collections import Counter

    c = Counter(e.label for e in tr)
    assert c["authentic"] == c["ai_generated"] == c["edited"] == 14
    assert all(e.donor and e.donor != e.path for e in ex if e.label == "edited")
    assert split["groups"]["train"] + split["groups"]["val"] == 60
    ex2, _ = F.plan_examples(recs, 60, 0.3, seed=0)
    assert ex2 == ex
    # val side: each generated image at most once
    vk = [e.path for e in va if e.label == "ai_generated"]
    assert len(vk) == len(set(vk))


class ToyContainer(Detector):
    """Reads the container only (abstains on re-encoded files)."""

    name = "toy_container"
    kind = "metadata"
    labels = ("ai_generated",)
    weight = 2.5

    def run(self, sample):
        if sample.format == "PNG" or sample.info.get("exif"):
            return self.finding(0.95 if sample.format == "PNG" else 0.05)
        return self.abstain("nothing to read")


class ToyQuant(Detector):
    """A metadata detector that scores re-encoded files too (from the quantization table)."""

    name = "toy_quant"
    kind = "metadata"
    labels = ("edited",)
    weight = 3.0

    def run(self, sample):
        q = (sample.quantization or {0: [50]})[0][0]
        return self.finding(min(0.9, q / 40.0))


class ToyRed(Detector):
    """The mean of the red channel."""

    name = "toy_red"
    kind = "learned"
    labels = ("ai_generated",)
    weight = 1.0

    def run(self, sample):
        return self.finding(float(sample.pixels[..., 0].mean()) / 255.0)


def _image(rng, red):
    img = textured_image(rng, (120, 160)).astype(np.int16)
    img[..., 0] = np.clip(img[..., 0] // 3 + red, 0, 255)
    return img.astype(np.uint8)


@pytest.fixture
def toy_setup(tmp_path, monkeypatch):
    registry._discover()
    monkeypatch.setitem(registry._REGISTRY, "toy_container", ToyContainer)
    monkeypatch.setitem(registry._REGISTRY, "toy_red", ToyRed)
    monkeypatch.setitem(registry._REGISTRY, "toy_quant", ToyQuant)
    rng = np.random.default_rng(3)
    root = tmp_path / "ds"
    (root / "authentic").mkdir(parents=True)
    (root / "ai_generated").mkdir()
    for i in range(16):
        buf = io.BytesIO()
        Image.fromarray(_image(rng, int(rng.integers(20, 90)))).save(buf, format="JPEG", quality=92, exif=camera_exif())
        (root / "authentic" / f"c{i}.jpg").write_bytes(buf.getvalue())
        (root / "ai_generated" / f"s{i}.png").write_bytes(sd_png(_image(rng, int(rng.integers(120, 200)))))
    return root


def test_train_fusion_end_to_end(toy_setup, tmp_path, capsys, monkeypatch):
    import verity.train.data

    # the toy dataset was not used to train any shipped detector
    monkeypatch.setattr(verity.train.data, "detector_training_paths", lambda *a, **k: {})
    out = tmp_path / "fusion.json"
    cache = tmp_path / "cache.json"
    argv = ["train", "fusion", "--data", str(toy_setup), "--out", str(out), "--limit", "60", "--seed", "1",
            "--detectors", "toy_container,toy_red,toy_quant", "--cache", str(cache), "-q"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    # the container detector abstains on re-encoded data: it keeps its hand-set weight
    assert "toy_container" not in doc["weights"]
    assert "toy_container" in doc["provenance"]["hand_set_detectors"]
    # a metadata detector is never fitted on re-encoded data, even when it scores it
    assert "toy_quant" not in doc["weights"] and "container" in doc["provenance"]["hand_set_detectors"]["toy_quant"]
    assert doc["provenance"]["fitted_detectors"] == ["toy_red"]
    assert doc["weights"]["toy_red"]["ai_generated"] > 0.5
    assert doc["weights"]["toy_red"]["face_manipulated"] == 0.0
    assert doc["bias"]["face_manipulated"] == -2.5
    prov = doc["provenance"]
    assert prov["sizes"]["train"]["edited"] > 5 and prov["sizes"]["val"]["authentic"] > 3
    assert prov["held_out"]["fitted"]["auc_ai_generated"] > 0.9
    assert set(prov["held_out"]) == {"fitted", "fitted_balanced_prior", "hand_set"}
    # shipped biases = class-balanced fit + hand-set prior log-odds
    assert doc["bias"]["ai_generated"] == pytest.approx(prov["balanced_bias"]["ai_generated"] - 1.5, abs=1e-4)
    assert prov["split"]["dataset_fingerprint"]
    model = FusionModel.load(out)
    # an unfitted detector keeps its class weight; a fitted one uses the file
    f_meta = Finding("toy_container", 0.95, ["ai_generated"])
    assert model.weight(f_meta, "ai_generated") == 2.5
    assert model.weight(Finding("toy_red", 0.9, ["ai_generated"]), "ai_generated") == doc["weights"]["toy_red"]["ai_generated"]
    printed = capsys.readouterr().out
    assert "held-out" in printed and "kept hand-set weights: toy_container, toy_quant" in printed
    # a second run reuses the cached scores and writes the same weights
    out2 = tmp_path / "fusion2.json"
    argv[argv.index(str(out))] = str(out2)
    assert main(argv) == 0
    doc2 = json.loads(out2.read_text())
    assert doc2["weights"] == doc["weights"] and doc2["bias"] == doc["bias"]
    assert doc2["provenance"]["scoring_seconds"] < 1.0

    # verity eval --heldout recomputes the same validation groups
    ev = tmp_path / "ev"
    assert main(["eval", str(toy_setup), "--heldout", "--fusion", str(out2), "--detectors", "toy_container,toy_red",
                 "--out", str(ev), "-q", "--equalize", "none"]) == 0
    evdoc = json.loads((ev / "metrics.json").read_text())
    from verity.train.data import group_split

    _, val = group_split(read_dataset(toy_setup), 0.3, 1)
    assert evdoc["settings"]["n_records"] == len(val)
    ev2 = tmp_path / "ev2"
    assert main(["eval", str(toy_setup), "--heldout", "--split-from", str(out2), "--fusion", "hand-set",
                 "--detectors", "toy_red", "--out", str(ev2), "-q", "--equalize", "none"]) == 0
    ev2doc = json.loads((ev2 / "metrics.json").read_text())
    assert ev2doc["settings"]["n_records"] == len(val) and ev2doc["fusion"] == "hand-set"


def test_train_fusion_usage_errors(toy_setup, tmp_path, capsys):
    base = ["train", "fusion", "--data", str(toy_setup), "--out", str(tmp_path / "f.json"), "-q"]
    assert main(base + ["--limit", "5"]) == 2
    assert main(base + ["--detectors", "nope"]) == 2
    assert main(["train", "fusion", "--data", str(tmp_path / "missing"), "-q"]) == 2
    # only a container detector: nothing can be fitted on re-encoded data
    assert main(base + ["--detectors", "toy_container", "--limit", "30"]) == 4
    assert not (tmp_path / "f.json").exists()


def test_fit_multinomial_matches_sklearn_when_unregularised(rng):
    from sklearn.linear_model import LogisticRegression

    X, y = _synthetic(rng, 600)
    W, b = F.fit_multinomial(X, y, C=1e6)
    m = LogisticRegression(C=1e6, max_iter=5000, tol=1e-10).fit(X, y)
    ref_W = m.coef_[1:] - m.coef_[0]
    ref_b = m.intercept_[1:] - m.intercept_[0]
    np.testing.assert_allclose(W, ref_W, atol=2e-3)
    np.testing.assert_allclose(b, ref_b, atol=2e-3)


def test_fit_multinomial_respects_offsets(rng):
    X, y = _synthetic(rng, 800)
    # a hand-set detector that already carries feature 0's evidence for ai_generated, as an offset
    O = np.zeros((800, 4))
    O[:, 1] = 2.0 * X[:, 0]
    O[:, 3] = -50.0  # a fixed class that never wins (face_manipulated with no evidence)
    W_off, _ = F.fit_multinomial(X, y, O, C=1e6)
    W_free, _ = F.fit_multinomial(X, y, C=1e6)
    assert W_free[0, 0] == pytest.approx(2.0, abs=0.4)
    assert W_off[0, 0] == pytest.approx(W_free[0, 0] - 2.0, abs=1e-2)  # only what the offset lacks
    assert W_off[1, 1] == pytest.approx(W_free[1, 1], abs=1e-2)


def test_group_folds_keep_groups_together():
    groups = np.repeat(np.arange(23), np.arange(23) % 4 + 1)
    folds = F.group_folds(groups, 5, seed=0)
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(groups)))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    sizes = [len(te) for _, te in folds]
    assert max(sizes) - min(sizes) <= 4


def test_hand_set_offsets(toy_setup):
    scores = [{"toy_container": 0.95, "toy_red": 0.8}, {"toy_container": None, "toy_red": 0.2}]
    assert F.hand_set_offsets(scores, ["toy_red"])[:, :3].tolist() == [[0, 0, 0], [0, 0, 0]]  # face only
    O = F.hand_set_offsets(scores, ["toy_red"], face_only=False)
    assert O.shape == (2, 4)
    assert O[0, 1] == pytest.approx(2.5 * np.log(0.95 / 0.05))  # hand-set weight x logit
    assert O[1, 1] == 0.0 and O[:, 2].tolist() == [0.0, 0.0]
    assert O[0, 3] == -2.5  # the face_manipulated bias


def test_plan_examples_keeps_detector_training_files_off_the_val_side():
    recs = []
    for g in range(30):
        recs += [Record(f"/d/cam{g}_{i}.jpg", "authentic", f"cam{g}", "real_camera/x") for i in range(2)]
    for g in range(10):
        recs += [Record(f"/d/sd{g}_{i}.png", "ai_generated", f"sd{g}", "ai_generated/sd1") for i in range(3)]
    trained = {r.path for r in recs[::2]}
    ex, split = F.plan_examples(recs, 90, 0.3, seed=0, exclude_val={"learned": trained})
    va = [e for e in ex if e.side == "val"]
    assert va and not any(e.path in trained or (e.donor in trained) for e in va)
    assert any(e.path in trained for e in ex if e.side == "train")  # the training side keeps them
    assert split["val_files_excluded_as_detector_training"]["learned"] > 0
