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
from collections import Counter  # noqa: E402

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


def _records():
    recs = []
    for g in range(30):
        recs += [Record(f"/d/cam{g}_{i}.jpg", "authentic", f"cam{g}", "real_camera/x") for i in range(2)]
    for g in range(10):
        recs += [Record(f"/d/sd{g}_{i}.png", "ai_generated", f"sd{g}", "ai_generated/sd1") for i in range(3)]
    recs += [Record(f"/d/lfw{i}.jpg", "authentic", f"lfw{i}", "faces/lfw_gray") for i in range(20)]
    return recs


def test_split_sides_are_disjoint_groups_and_clean():
    recs = _records()
    trained = {r.path for r in recs[::3]}
    tr, ca, te, info = F.split_sides(recs, 0.3, 0, {"learned": trained})
    g = [{r.group for r in side} for side in (tr, ca, te)]
    assert not (g[0] & g[1]) and not (g[0] & g[2]) and not (g[1] & g[2])
    assert ca and te and not any(r.path in trained for r in ca + te)  # held-out sides are clean
    assert any(r.path in trained for r in tr)  # the training side keeps them
    assert info["calibration_groups"] == sorted(g[1])
    assert info["val_files_excluded_as_detector_training"]["learned"] > 0


def test_plan_examples_views_balance_and_determinism():
    recs = _records()
    tr, ca, te, _ = F.split_sides(recs, 0.3, 0)
    ex = F.plan_examples(tr, ca, te, seed=0, n_authentic=14, n_edited=14, n_edited_val=6, views=2)
    items = {e.item for e in ex}
    train_items = [i for i in items if i.side == "train"]
    c = Counter(i.label for i in train_items)
    assert c["authentic"] == c["edited"] == 14 and c["ai_generated"] == sum(r.label == "ai_generated" for r in tr)
    assert all("lfw" not in i.path for i in items)  # grayscale folder left out
    assert all(i.donor and i.donor != i.path and i.edit in ("splice", "copy_move", "inpaint")
               for i in items if i.label == "edited")
    assert sum(i.label == "edited" for i in items if i.side != "train") == 6
    for it in items:
        views = [e.view for e in ex if e.item == it]
        if it.side == "train":
            assert views[0] == "eq" and len(views) == (5 if it.label == "ai_generated" else 3)
        else:
            assert views == list(F.FIXED_VIEWS)
    assert F.plan_examples(tr, ca, te, seed=0, n_authentic=14, n_edited=14, n_edited_val=6, views=2) == ex
    # seeds depend on the file, not on the order of planning: keys survive a different split
    keys = {e.key("/d") for e in ex if e.item.label != "edited"}
    tr2, ca2, te2, _ = F.split_sides(recs, 0.3, 0, test_fraction=0.7)
    ex2 = F.plan_examples(tr2, ca2, te2, seed=0, n_authentic=14, n_edited=14, n_edited_val=6, views=2)
    assert {e.key("/d") for e in ex2 if e.item.side != "train" and e.item.label != "edited"} <= keys


def _corpus_records():
    recs = []
    for g in range(12):
        recs += [Record(f"/c/real{g}_{i}.jpg", "authentic", f"src{g}:{g}", f"src{g % 4}") for i in range(3)]
    for g in range(12):
        recs += [Record(f"/c/gen{g}_{i}.png", "ai_generated", f"fam{g}:{g}", f"fam{g % 6}") for i in range(4)]
    return recs


def test_split_sides_held_out_dataset_keeps_its_fixed_split():
    recs, corpus = _records(), _corpus_records()
    listed = {r.path for r in corpus if int(r.group.split(":")[1]) % 4 == 0}
    tr, ca, te, info = F.split_sides(recs, 0.3, 0, {}, 0.5, [(corpus, listed)])
    on_val = {r.path for r in ca + te}
    assert listed <= on_val  # every listed file calibrates or tests
    assert {r.path for r in corpus} - listed <= {r.path for r in tr}  # the rest trains
    assert not (on_val & {r.path for r in tr})
    # the first dataset's own split is the one `verity eval --heldout` recomputes
    tr0, ca0, te0, info0 = F.split_sides(recs, 0.3, 0, {}, 0.5)
    assert {r.path for r in tr if r.path.startswith("/d/")} == {r.path for r in tr0}
    assert info["dataset_fingerprint"] == info0["dataset_fingerprint"]
    assert info["held_out_datasets"][0]["held_out_files"] == len(listed)


def test_plan_examples_caps_generated_and_validation_sides():
    recs, corpus = _records(), _corpus_records()
    listed = {r.path for r in corpus if int(r.group.split(":")[1]) % 2 == 0}
    tr, ca, te, _ = F.split_sides(recs, 0.3, 0, {}, 0.5, [(corpus, listed)])
    ex = F.plan_examples(tr, ca, te, seed=0, n_authentic=10, n_edited=10, n_edited_val=4, views=1,
                         views_generated=1, n_generated=7, val_max=5)
    items = {e.item for e in ex}
    assert sum(i.label == "ai_generated" for i in items if i.side == "train") == 7
    for side in ("calib", "test"):
        c = Counter(i.label for i in items if i.side == side and i.edit is None)
        assert 0 < c["authentic"] <= 5 and 0 < c["ai_generated"] <= 5
    gens = sorted({i.source for i in items if i.side == "train" and i.label == "ai_generated"})
    assert len(gens) >= 4  # balanced over sources, not the first files
    again = F.plan_examples(tr, ca, te, seed=0, n_authentic=10, n_edited=10, n_edited_val=4, views=1,
                            views_generated=1, n_generated=7, val_max=5)
    assert again == ex


def test_random_views_parse():
    from verity.train.data import parse_perturbations

    views = F.random_views(np.random.default_rng(0), 30)
    assert {v[:4] for v in views} == {"jpeg", "resi", "crop"}
    assert all(len(parse_perturbations(v)) == 1 for v in views)


def test_view_bytes(astronaut):
    from verity.core.io import decode

    eq = astronaut[:200, :240]
    for view, shape in (("eq", (200, 240)), ("jpeg75", (200, 240)), ("resize0.5", (100, 120)), ("crop0.8", (160, 192))):
        s = decode(F.view_bytes(eq, view))
        assert s.format == "JPEG" and (s.height, s.width) == shape and not s.info.get("exif")


def test_fit_calibration_recovers_temperature_and_shift(rng):
    n = 6000
    y = rng.integers(0, 3, n)
    true = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[y]
    true[:, 0] = 0.0
    p = np.exp(true) / np.exp(true).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=pi) for pi in p])
    fitted = np.zeros((n, 4))
    fitted[:, 1:3] = 2.0 * (true[:, 1:3] - 0.7)  # over-confident and shifted
    offsets = np.zeros((n, 4))
    offsets[:, 3] = -50.0
    scale, delta = F.fit_calibration(fitted, y, offsets)  # one temperature for both fitted classes
    assert 1 / scale[1] == pytest.approx(2.0, rel=0.1) and scale[1] == scale[2]
    assert scale[0] == 1 and scale[3] == 1
    assert delta[1] == pytest.approx(0.7, abs=0.12) and delta[2] == pytest.approx(0.7, abs=0.12)
    assert delta[0] == 0 and delta[3] == 0
    # vector scaling: class 2 over-confident by 2, class 1 by 4
    fitted2 = fitted.copy()
    fitted2[:, 1] *= 2.0
    scale2, _ = F.fit_calibration(fitted2, y, offsets, scaled=[[1], [2]])
    assert 1 / scale2[1] == pytest.approx(4.0, rel=0.12) and 1 / scale2[2] == pytest.approx(2.0, rel=0.12)
    # only column 1 rescaled: column 2 keeps scale 1
    scale3, _ = F.fit_calibration(fitted2, y, offsets, scaled=[[1]])
    assert scale3[2] == 1 and 1 / scale3[1] > 2.5


def test_choose_fake_threshold():
    # authentic rows: top class authentic except two confident fakes (0.7 and 0.9)
    P = np.array([[0.8, 0.1, 0.1, 0.0]] * 98 + [[0.2, 0.7, 0.1, 0.0], [0.05, 0.05, 0.9, 0.0]]
                 + [[0.1, 0.85, 0.05, 0.0]] * 50 + [[0.2, 0.6, 0.2, 0.0]] * 50)
    labels = ["authentic"] * 100 + ["ai_generated"] * 100
    t, table = F.choose_fake_threshold(P, labels, max_fpr=0.01)
    assert t == pytest.approx(0.71)  # one false positive (the 0.9) is allowed, the 0.7 is not
    row = {r["threshold"]: r for r in table}
    assert row[0.71]["fpr_authentic"] == 0.01 and row[0.71]["tpr"] == 0.5
    assert row[0.5]["fpr_authentic"] == 0.02 and row[0.5]["tpr"] == 1.0
    t0, _ = F.choose_fake_threshold(P, labels, max_fpr=0.0)
    assert t0 == pytest.approx(0.91)
    assert F.fake_verdict_rates(P, labels, 0.95) == (0.0, 0.0)


def test_choose_class_threshold_counts_only_its_class():
    # the same rows: the ai_generated false positive is at 0.7, the edited one at 0.9
    P = np.array([[0.8, 0.1, 0.1, 0.0]] * 98 + [[0.2, 0.7, 0.1, 0.0], [0.05, 0.05, 0.9, 0.0]]
                 + [[0.1, 0.85, 0.05, 0.0]] * 50 + [[0.2, 0.6, 0.2, 0.0]] * 50)
    labels = ["authentic"] * 100 + ["ai_generated"] * 100
    assert F.choose_class_threshold(P, labels, "ai_generated", 0.0) == pytest.approx(0.71)
    assert F.choose_class_threshold(P, labels, "edited", 0.0) == pytest.approx(0.91)
    assert F.choose_class_threshold(P, labels, "ai_generated", 0.01) == pytest.approx(0.5)  # one allowed
    per = {"ai_generated": 0.5, "edited": 0.5}
    assert F.fake_verdict_rates_per_class(P, labels, per) == pytest.approx(0.02)  # together up to twice
    assert F.fake_verdict_rates_per_class(P, labels, {"ai_generated": 0.71, "edited": 0.91}) == 0.0
    assert F.choose_class_threshold(P, ["ai_generated"] * 200, "edited") == 0.99  # no real photos


def test_score_cache_reruns_only_changed_detectors(tmp_path, monkeypatch):
    fps = {"a": "1", "b": "1"}
    monkeypatch.setattr(F, "detector_fingerprint", lambda d: fps[d])
    c = F.ScoreCache(tmp_path / "c.json")
    assert c.sync(["a", "b"]) == ["a", "b"]
    c.scores["k"] = {"a": 0.2, "b": None}
    c.write()
    c2 = F.ScoreCache(tmp_path / "c.json")
    assert c2.sync(["a", "b"]) == [] and c2.missing("k", ["a", "b"]) == []
    fps["b"] = "2"
    c3 = F.ScoreCache(tmp_path / "c.json")
    assert c3.sync(["a", "b"]) == ["b"] and c3.missing("k", ["a", "b"]) == ["b"] and c3.scores["k"] == {"a": 0.2}
    assert c3.sync(["a", "b"], force=("a",)) == ["a"] and c3.missing("k", ["a", "b"]) == ["a", "b"]
    assert c3.missing("other", ["a"]) == ["a"]


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
    argv = ["train", "fusion", "--data", str(toy_setup), "--out", str(out), "--authentic", "10", "--edited", "10",
            "--edited-val", "6", "--views", "1", "--seed", "1", "--detectors", "toy_container,toy_red,toy_quant",
            "--cache", str(cache), "-q"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    prov = doc["provenance"]
    # the container detector abstains on equalised data: it keeps its hand-set weight
    assert "toy_container" not in doc["weights"] and "toy_container" in prov["hand_set_detectors"]
    # a metadata detector is never fitted on equalised data, even when it scores it
    assert "toy_quant" not in doc["weights"] and "container" in prov["hand_set_detectors"]["toy_quant"]
    assert prov["fitted_detectors"] == ["toy_red"]
    assert doc["weights"]["toy_red"]["ai_generated"] > 0.5
    assert doc["weights"]["toy_red"]["edited"] == 0.0 and doc["weights"]["toy_red"]["face_manipulated"] == 0.0
    assert doc["bias"]["face_manipulated"] == -2.5
    assert prov["sizes"]["train"]["edited"] >= 10 and prov["sizes"]["calib"]["images"] > 3
    assert prov["sizes"]["test"]["images"] > 3
    assert prov["held_out_test"]["fitted"]["eq"]["auc_ai_generated"] > 0.9
    assert set(prov["held_out_test"]) == {"fitted", "hand_set"}
    assert "unchanged" in prov["held_out_test"]["fitted"]["jpeg75"]
    assert doc["thresholds"]["authentic"] == 0.5
    assert 0.5 <= doc["thresholds"]["ai_generated"] == doc["thresholds"]["edited"] <= 0.99
    assert prov["stage2"]["on"] == "calib" and prov["stage2"]["scale"] == "ai"
    assert prov["stage2"]["temperature"]["ai_generated"] > 0 and prov["stage2"]["temperature"]["edited"] == 1.0
    assert set(doc["centers"]) == {"toy_red"} and 0.01 <= doc["centers"]["toy_red"] <= 0.99
    assert prov["split"]["dataset_fingerprint"] and prov["split"]["calibration_groups"]
    model = FusionModel.load(out)
    # an unfitted detector keeps its class weight; a fitted one uses the file
    assert model.weight(Finding("toy_container", 0.95, ["ai_generated"]), "ai_generated") == 2.5
    assert model.weight(Finding("toy_red", 0.9, ["ai_generated"]), "ai_generated") == doc["weights"]["toy_red"]["ai_generated"]
    assert model.threshold("edited") == doc["thresholds"]["edited"]
    printed = capsys.readouterr().out
    assert "test (" in printed and "fitted" in printed and "hand_set" in printed
    # a second run reuses every cached score and writes the same weights
    out2 = tmp_path / "fusion2.json"
    argv[argv.index(str(out))] = str(out2)
    assert main(argv) == 0
    doc2 = json.loads(out2.read_text())
    assert doc2["weights"] == doc["weights"] and doc2["bias"] == doc["bias"] and doc2["provenance"]["rescored"] == []
    # --rescore runs one detector again
    assert main(argv + ["--rescore", "toy_red"]) == 0
    assert json.loads(out2.read_text())["provenance"]["rescored"] == ["toy_red"]
    # reliability bins of the calibration side are written; --reliability-only rewrites only them
    rel = doc["reliability"]
    assert rel["level"] == 0.9 and set(rel["classes"]) == {"authentic", "ai_generated", "edited"}
    assert sum(r["examples"] for r in rel["classes"]["authentic"]) == prov["sizes"]["calib"]["examples"]
    assert FusionModel.load(out).interval("ai_generated", 0.5) is not None
    before = json.loads(out2.read_text())
    before.pop("reliability")
    out2.write_text(json.dumps(before))
    assert main(argv + ["--reliability-only"]) == 0
    after = json.loads(out2.read_text())
    assert after["reliability"]["classes"] == rel["classes"]
    assert {k: v for k, v in after.items() if k != "reliability"} == before  # nothing else changed
    assert list(after).index("reliability") == list(after).index("provenance") - 1

    # verity eval --heldout recomputes the test side: validation groups less the calibration groups
    ev = tmp_path / "ev"
    assert main(["eval", str(toy_setup), "--heldout", "--fusion", str(out2), "--detectors", "toy_container,toy_red",
                 "--out", str(ev), "-q", "--equalize", "none", "--compare", "hand-set"]) == 0
    evdoc = json.loads((ev / "metrics.json").read_text())
    _, _, test, _ = F.split_sides(read_dataset(toy_setup), 0.3, 1, {})
    assert evdoc["settings"]["n_records"] == len(test) and len(test) > 0
    assert "calibration" in evdoc["selection"]
    cmp = json.loads((ev / "compare" / "metrics.json").read_text())
    assert cmp["fusion"].startswith("hand-set") and cmp["settings"] == evdoc["settings"]
    ev2 = tmp_path / "ev2"
    assert main(["eval", str(toy_setup), "--heldout", "--split-from", str(out2), "--fusion", "hand-set",
                 "--detectors", "toy_red", "--out", str(ev2), "-q", "--equalize", "none"]) == 0
    ev2doc = json.loads((ev2 / "metrics.json").read_text())
    assert ev2doc["settings"]["n_records"] == len(test) and ev2doc["fusion"] == "hand-set"


def test_train_fusion_workers_and_held_out_dataset(toy_setup, tmp_path, capsys, monkeypatch):
    import csv

    import verity.train.data

    monkeypatch.setattr(verity.train.data, "detector_training_paths", lambda *a, **k: {})
    # a second dataset with a fixed split: its listed files calibrate and test, the rest trains
    rng = np.random.default_rng(5)
    corpus = tmp_path / "corpus"
    rows = []
    for i in range(12):
        for label, red, ext in (("authentic", int(rng.integers(20, 90)), "jpg"), ("ai_generated", int(rng.integers(120, 200)), "png")):
            rel = f"{label}/x{i}.{ext}"
            (corpus / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_image(rng, red)).save(corpus / rel, quality=90)
            rows.append([rel, label, f"g{i}", f"src{i % 3}"])
    with (corpus / "manifest.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "group", "source"]] + rows)
    held = tmp_path / "held.csv"
    with held.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label"]] + [[str(corpus / r[0]), r[1]] for r in rows if int(r[2][1:]) % 2])
    base = ["train", "fusion", "--data", str(toy_setup), "--authentic", "10", "--edited", "10",
            "--edited-val", "6", "--views", "1", "--seed", "1", "--detectors", "toy_container,toy_red,toy_quant",
            "--held-out", str(corpus), str(held), "-q"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main(base + ["--out", str(one), "--cache", str(tmp_path / "c1.json"), "--test-csv", str(tmp_path / "t.csv")]) == 0
    assert main(base + ["--out", str(two), "--cache", str(tmp_path / "c2.json"), "--workers", "2"]) == 0
    d1, d2 = json.loads(one.read_text()), json.loads(two.read_text())
    assert d1["weights"] == d2["weights"] and d1["bias"] == d2["bias"]  # same scores from 2 processes
    assert json.loads((tmp_path / "c1.json").read_text())["scores"] == json.loads((tmp_path / "c2.json").read_text())["scores"]
    split = d1["provenance"]["split"]
    assert split["held_out_datasets"][0]["held_out_files"] == 12
    tested = [r["path"] for r in csv.DictReader((tmp_path / "t.csv").open())]
    listed = {str(corpus / r[0]) for r in rows if int(r[2][1:]) % 2}
    unlisted = {str(corpus / r[0]) for r in rows} - listed
    assert tested and not set(tested) & unlisted  # the trained-on files never test
    assert set(tested) & listed  # held-out files do
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\n/nowhere/x.png,ai_generated\n")
    assert main(base + ["--out", str(tmp_path / "b.json")] + ["--held-out", str(corpus), str(bad)]) == 2
    assert "lists none of the files" in capsys.readouterr().err


def test_train_fusion_usage_errors(toy_setup, tmp_path, capsys):
    base = ["train", "fusion", "--data", str(toy_setup), "--out", str(tmp_path / "f.json"), "-q"]
    assert main(base + ["--authentic", "5"]) == 2
    assert main(base + ["--max-fpr", "1.5"]) == 2
    assert main(base + ["--detectors", "nope"]) == 2
    assert main(["train", "fusion", "--data", str(tmp_path / "missing"), "-q"]) == 2
    # only a container detector: nothing can be fitted on equalised data
    assert main(base + ["--detectors", "toy_container", "--authentic", "10", "--edited", "10", "--edited-val", "3",
                        "--views", "0"]) == 4
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


def test_detector_fingerprint_covers_shared_base_classes(monkeypatch):
    """A learned detector's cached scores must be invalidated when its shared base module changes."""
    import inspect

    import verity.detectors.learned._base as base
    from verity.train import fusion as F

    before = F.detector_fingerprint("learned_npr")
    assert before == F.detector_fingerprint("learned_npr")
    real_read = F.Path.read_bytes
    base_file = inspect.getsourcefile(base)

    def read_bytes(self):
        data = real_read(self)
        return data + b"# changed" if str(self) == base_file else data

    monkeypatch.setattr(F.Path, "read_bytes", read_bytes)
    assert F.detector_fingerprint("learned_npr") != before


def test_detector_fingerprint_covers_the_ops_modules_it_uses(monkeypatch):
    """copy_move's numeric work lives in verity.ops.copymove (imported inside a method): a change
    there must invalidate its cached scores, and a change in an unrelated ops module must not."""
    import verity.ops.copymove as cm
    import verity.ops.zed as zed
    from verity.train import fusion as F

    before = F.detector_fingerprint("copy_move")
    real_read = F.Path.read_bytes
    real_text = F.Path.read_text

    def patched(target):
        def read_bytes(self):
            data = real_read(self)
            return data + b"# changed" if str(self) == target else data

        def read_text(self, *a, **k):
            data = real_text(self, *a, **k)
            return data + "# changed" if str(self) == target else data

        monkeypatch.setattr(F.Path, "read_bytes", read_bytes)
        monkeypatch.setattr(F.Path, "read_text", read_text)

    patched(zed.__file__)
    assert F.detector_fingerprint("copy_move") == before
    patched(cm.__file__)
    assert F.detector_fingerprint("copy_move") != before


def test_ops_modules_parsing():
    from verity.train.fusion import _ops_modules

    text = ("from verity.ops.copymove import detect_copy_move\n    from verity.ops import jpeg as J, noise\n"
            "see :func:`verity.ops.regions.bbox`")
    assert sorted(set(_ops_modules(text))) == ["copymove", "jpeg", "noise", "regions"]



def test_reliability_table_weighs_images_not_views_and_merges_thin_bins():
    from verity.core.types import CLASSES

    # 20 images x 5 views; the probability of "edited" is 0.95 for the 10 edited images, 0.05 otherwise
    labels, images, P = [], [], []
    for i in range(20):
        lab = "edited" if i < 10 else "authentic"
        for _ in range(5):
            p = np.zeros(len(CLASSES))
            p[CLASSES.index("edited")] = 0.95 if lab == "edited" else 0.05
            p[0] = 1 - p[CLASSES.index("edited")]
            P.append(p)
            labels.append(lab)
            images.append(f"img{i}")
    table = F.reliability_table(np.array(P), labels, images, min_images=8)
    rows = table["edited"]
    assert [(r["lo"], r["hi"]) for r in rows] == [(0.0, 0.1), (0.1, 1.0)]  # empty bins merged into a neighbour
    low, high = rows[-1], rows[0]
    assert low["examples"] == 50 and low["images"] == 10 and low["observed"] == 1.0 and low["high"] == 1.0
    # Jeffreys interval on 10 (not 50) independent images: wide
    assert 0.7 < low["low"] < 0.9
    assert high["observed"] == 0.0 and high["low"] == 0.0 and 0.1 < high["high"] < 0.3
    assert F.beta_interval(5, 10, 0.9)[0] < 0.5 < F.beta_interval(5, 10, 0.9)[1]
    # a bin with fewer images than min_images is merged into its neighbour
    few = F.reliability_table(np.array(P[:15] + P[50:]), labels[:15] + labels[50:], images[:15] + images[50:],
                              min_images=8)["edited"]
    assert all(r["images"] >= 8 for r in few) and len(few) == 1
