"""``verity eval`` end to end with two toy detectors on a tiny generated dataset."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from verity.cli.main import main
from verity.core import registry
from verity.core.registry import Detector
from verity.eval.runner import EQUALIZED, RAW, evaluate, make_synthetic_edits
from verity.lab.edits import camera_exif, sd_png, textured_image
from verity.train.data import Equalize, Record, parse_perturbations, read_dataset


class ToyContainer(Detector):
    """Reads the container only: PNG -> fake, EXIF JPEG -> authentic, anything else abstains."""

    name = "toy_container"
    kind = "metadata"
    labels = ("ai_generated",)
    weight = 2.0

    def run(self, sample):
        if sample.format == "PNG":
            return self.finding(0.95, ["png"])
        if sample.info.get("exif"):
            return self.finding(0.1, ["exif"])
        return self.abstain("no container evidence")


class ToyRed(Detector):
    """Pixels only: the mean of the red channel."""

    name = "toy_red"
    kind = "learned"
    labels = ("ai_generated",)
    weight = 1.5

    def run(self, sample):
        return self.finding(float(sample.pixels[..., 0].mean()) / 255.0, ["red"])


@pytest.fixture
def toy_detectors(monkeypatch):
    registry._discover()
    monkeypatch.setitem(registry._REGISTRY, "toy_container", ToyContainer)
    monkeypatch.setitem(registry._REGISTRY, "toy_red", ToyRed)
    return "toy_container,toy_red"


@pytest.fixture
def fusion_file(tmp_path):
    p = tmp_path / "fusion.json"
    p.write_text(json.dumps({"bias": {"ai_generated": 0.0, "edited": -3.0, "face_manipulated": -3.0},
                             "weights": {}, "temperature": 1.0, "inconclusive_below": 0.5}))
    return p


def _image(rng, red):
    img = textured_image(rng, (96, 128)).astype(np.int16)
    img[..., 0] = np.clip(img[..., 0] // 3 + red, 0, 255)
    return img.astype(np.uint8)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(7)
    root = tmp_path / "ds"
    (root / "authentic").mkdir(parents=True)
    (root / "ai_generated").mkdir()
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(_image(rng, 40 + 5 * i)).save(buf, format="JPEG", quality=92, exif=camera_exif())
        (root / "authentic" / f"cam{i}.jpg").write_bytes(buf.getvalue())
        (root / "ai_generated" / f"sd{i}.png").write_bytes(sd_png(_image(rng, 150 + 5 * i)))
    (root / "authentic" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_eval_cli_end_to_end(dataset, tmp_path, toy_detectors, fusion_file, capsys):
    out = tmp_path / "out"
    rc = main(["eval", str(dataset), "--perturb", "jpeg75,crop0.8", "--out", str(out), "--detectors",
               toy_detectors, "--fusion", str(fusion_file), "-q"])
    assert rc == 3  # done, but one file was unreadable
    for f in ("report.md", "metrics.json", "predictions.csv", "roc.png", "reliability.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 100, f
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "metrics.json").read_text())
    assert [u["path"].rsplit("/", 1)[-1] for u in doc["unreadable"]] == ["broken.jpg"]
    assert list(doc["variants"]) == [RAW, EQUALIZED, "jpeg75", "crop0.8"]
    raw, eq = doc["variants"][RAW], doc["variants"][EQUALIZED]
    assert raw["n"] == eq["n"] == 12
    # raw: the container detector separates the classes perfectly; equalised, it must abstain
    assert raw["detectors"]["toy_container"]["abstain_rate"] == 0.0
    assert raw["detectors"]["toy_container"]["auc"]["ai_generated"] == 1.0
    assert eq["detectors"]["toy_container"]["abstain_rate"] == 1.0
    assert eq["detectors"]["toy_container"]["auc"]["ai_generated"] == 0.5
    assert eq["detectors"]["toy_red"]["auc"]["ai_generated"] == 1.0
    assert eq["detection"]["ai_generated"]["auc"] == 1.0
    assert eq["accuracy"] == 1.0 and eq["fpr_authentic"] == 0.0
    assert sum(map(sum, eq["confusion"]["matrix"])) == 12
    assert {r["source"] for r in eq["per_source"]} == {"authentic", "ai_generated"}
    st = doc["stability"]
    assert set(st) == {"jpeg75", "crop0.8", "raw_to_equalized"} and st["jpeg75"]["base"] == EQUALIZED
    assert st["raw_to_equalized"]["base"] == RAW and st["raw_to_equalized"]["n"] == 12
    assert st["jpeg75"]["n"] == 12 and 0.0 <= st["jpeg75"]["unchanged"] <= 1.0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 * 4
    assert {r["variant"] for r in rows} == {RAW, EQUALIZED, "jpeg75", "crop0.8"}
    eq_rows = [r for r in rows if r["variant"] == EQUALIZED]
    assert all(r["score_toy_container"] == "" for r in eq_rows)
    assert all(r["score_toy_container"] != "" for r in rows if r["variant"] == RAW)
    crop = [r for r in rows if r["variant"] == "crop0.8"]
    assert all((int(r["width"]), int(r["height"])) == (102, 77) for r in crop)
    report = (out / "report.md").read_text()
    assert "broken.jpg" in report and "| equalized |" in report and "Robustness" in report
    printed = capsys.readouterr().out
    assert "equalized" in printed and "report:" in printed


def test_eval_cli_limit_and_no_equalize(dataset, tmp_path, toy_detectors, fusion_file):
    out = tmp_path / "o2"
    rc = main(["eval", str(dataset), "--equalize", "none", "--limit", "4", "--out", str(out), "--detectors",
               toy_detectors, "--fusion", str(fusion_file), "-q"])
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["variants"]) == [RAW]
    assert doc["settings"]["n_records"] == 4
    assert doc["variants"][RAW]["labels"] in ({"authentic": 2, "ai_generated": 2}, {"authentic": 1, "ai_generated": 2})
    assert rc in (0, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ["--equalize", "webp"],
        ["--perturb", "rotate5"],
        ["--limit", "0"],
        ["--detectors", "no_such_detector"],
        ["--fusion", "/nonexistent/fusion.json"],
    ],
)
def test_eval_cli_usage_errors(dataset, tmp_path, argv, capsys):
    rc = main(["eval", str(dataset), "--out", str(tmp_path / "o"), "-q", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("verity eval")


def test_eval_cli_missing_dataset(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "-q"]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_evaluate_survives_failing_pipeline(dataset):
    class Boom:
        detectors: list = []

        def analyze(self, sample):
            raise RuntimeError("kaput")

    recs = read_dataset(dataset)
    run = evaluate(recs, Boom(), Equalize("jpeg", 90), parse_perturbations("jpeg50"), progress=False)
    assert run.predictions == []
    assert len(run.unreadable) == 1
    assert len(run.failed) == 12 and all("kaput" in r for _, _, r in run.failed)


def test_make_synthetic_edits(dataset, tmp_path):
    recs = [r for r in read_dataset(dataset) if not r.path.endswith("broken.jpg")]
    made, skipped = make_synthetic_edits(recs, 5, tmp_path / "se", seed=1, crop_side=(64, 96))
    assert len(made) == 5 and not skipped
    assert all(r.label == "edited" and r.source.startswith("synthetic/") for r in made)
    hosts = {r.group for r in recs if r.label == "authentic"}
    assert {r.group for r in made} <= hosts  # keeps the host's group
    assert len({r.source for r in made}) >= 2
    again, _ = make_synthetic_edits(recs, 5, tmp_path / "se2", seed=1, crop_side=(64, 96))
    assert [open(a.path, "rb").read() for a in made] == [open(b.path, "rb").read() for b in again]


def test_evaluate_with_synthetic_edits_reports_edited_class(dataset, tmp_path, toy_detectors, fusion_file):
    out = tmp_path / "o3"
    rc = main(["eval", str(dataset), "--synth-edited", "3", "--out", str(out), "--detectors", toy_detectors,
               "--fusion", str(fusion_file), "-q"])
    assert rc == 3
    doc = json.loads((out / "metrics.json").read_text())
    eq = doc["variants"][EQUALIZED]
    assert eq["labels"]["edited"] == 3
    assert "edited" in eq["detection"] and eq["detection"]["edited"]["n_pos"] == 3


def test_records_with_missing_files_are_unreadable(tmp_path, toy_detectors, fusion_file):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("path,label\nnope.jpg,authentic\n")
    rc = main(["eval", str(csv_path), "--out", str(tmp_path / "o4"), "--detectors", toy_detectors,
               "--fusion", str(fusion_file), "-q"])
    assert rc == 3
    doc = json.loads((tmp_path / "o4" / "metrics.json").read_text())
    assert doc["unreadable"][0]["reason"] == "no such file"
    assert doc["variants"][RAW]["n"] == 0
    assert Record  # imported for type use in other tests


@pytest.mark.data
def test_eval_on_shared_data_equalize_removes_container_cues(shared_data, tmp_path, toy_detectors, fusion_file):
    out = tmp_path / "shared"
    rc = main(["eval", str(shared_data), "--limit", "8", "--seed", "3", "--out", str(out), "--detectors",
               toy_detectors, "--fusion", str(fusion_file), "-q"])
    assert rc == 0
    doc = json.loads((out / "metrics.json").read_text())
    raw, eq = doc["variants"][RAW], doc["variants"][EQUALIZED]
    assert raw["labels"] == {"authentic": 4, "ai_generated": 4}
    # camera photos are EXIF JPEGs and SD images PNGs: the container alone separates them raw ...
    assert raw["detectors"]["toy_container"]["auc"]["ai_generated"] >= 0.9
    # ... and says nothing once every image is re-encoded the same way
    assert eq["detectors"]["toy_container"]["abstain_rate"] == 1.0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert {r["source"] for r in rows} >= {"ai_generated/sd1"}


def test_eval_cli_hand_set_fusion(dataset, tmp_path, toy_detectors):
    out = tmp_path / "hs"
    rc = main(["eval", str(dataset), "--fusion", "hand-set", "--equalize", "none", "--out", str(out),
               "--detectors", toy_detectors, "-q"])
    assert rc == 3
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["fusion"] == "hand-set"
    assert doc["variants"][RAW]["top_class_accuracy"] >= doc["variants"][RAW]["accuracy"]


def test_eval_scores_from_refuses_without_running_detectors(dataset, tmp_path, toy_detectors, fusion_file, monkeypatch):
    out = tmp_path / "out"
    assert main(["eval", str(dataset), "--perturb", "jpeg75", "--out", str(out), "--detectors", toy_detectors,
                 "--fusion", str(fusion_file), "-q", "--compare", "hand-set"]) == 3
    first = json.loads((out / "metrics.json").read_text())
    hand = json.loads((out / "compare" / "metrics.json").read_text())
    assert hand["fusion"].startswith("hand-set") and hand["settings"] == first["settings"]

    # no detector may run when the scores come from predictions.csv
    def boom(*a, **k):
        raise AssertionError("a detector ran")

    monkeypatch.setattr(ToyRed, "run", boom)
    monkeypatch.setattr(ToyContainer, "run", boom)
    again = tmp_path / "again"
    assert main(["eval", str(dataset), "--scores-from", str(out / "predictions.csv"), "--fusion", str(fusion_file),
                 "--compare", "hand-set", "--out", str(again), "-q"]) == 0
    doc = json.loads((again / "metrics.json").read_text())
    for v in (RAW, EQUALIZED, "jpeg75"):
        for k in ("n", "accuracy", "fpr_authentic", "confusion"):
            assert doc["variants"][v][k] == first["variants"][v][k], (v, k)
        # scores are stored with 5 decimals: probabilities agree to about 1e-5
        assert doc["variants"][v]["ece"] == pytest.approx(first["variants"][v]["ece"], abs=1e-4)
        assert doc["variants"][v]["detection"]["any_fake"]["auc"] == first["variants"][v]["detection"]["any_fake"]["auc"]
    assert doc["stability"]["jpeg75"]["unchanged"] == first["stability"]["jpeg75"]["unchanged"]
    hand2 = json.loads((again / "compare" / "metrics.json").read_text())
    assert hand2["variants"][EQUALIZED]["confusion"] == hand["variants"][EQUALIZED]["confusion"]
    assert "no detector was run" in doc["selection"]
    # a file that is not a predictions table is a usage error
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["eval", str(dataset), "--scores-from", str(bad), "--out", str(tmp_path / "x"), "-q"]) == 2
    assert main(["eval", str(dataset), "--scores-from", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x"),
                 "-q"]) == 2
    assert main(["eval", str(dataset), "--scores-from", str(out / "predictions.csv"), "--fusion",
                 str(tmp_path / "nofusion.json"), "--out", str(tmp_path / "x"), "-q"]) == 2
