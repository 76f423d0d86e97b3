"""Issue-2 acceptance: synthetic forgeries through the *default* pipeline (all detectors + fusion)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import photo
from verity.core.io import load_sample
from verity.lab.edits import camera_exif, encode_jpeg, make_copy_move, make_splice, sd_png
from verity.ops.regions import heatmap_mask, mask_iou
from verity.pipeline import Pipeline


@pytest.fixture(scope="module")
def pipe():
    return Pipeline()


def _best_heatmap_iou(verdict, mask, labels=("edited",)):
    best = 0.0
    for f in verdict.findings:
        if f.heatmap is None or f.score is None or not set(labels) & set(f.labels):
            continue
        for t in (0.5, 0.3):
            best = max(best, mask_iou(heatmap_mask(f.heatmap, mask.shape, t), mask))
    return best


@pytest.mark.parametrize("seed,host,donor", [(1, "astronaut", "coffee"), (2, "chelsea", "astronaut"), (3, "coffee", "chelsea")])
def test_splice_is_edited_and_localised(pipe, seed, host, donor):
    rng = np.random.default_rng(seed)
    forgery = make_splice(photo(host), photo(donor), rng, q_host=92, q_donor=60)
    v = pipe.analyze(load_sample(forgery.data, name="splice.jpg"))
    assert v.verdict == "edited", (v.probabilities, [(f.detector, f.score) for f in v.findings])
    assert _best_heatmap_iou(v, forgery.mask) >= 0.3


@pytest.mark.parametrize("seed,name", [(4, "astronaut"), (5, "coffee"), (6, "chelsea")])
def test_copy_move_is_found(pipe, seed, name):
    rng = np.random.default_rng(seed)
    forgery = make_copy_move(photo(name), rng, size=80, quality=95)
    v = pipe.analyze(load_sample(forgery.data, name="copymove.jpg"))
    cm = [f for f in v.findings if f.kind == "copy-move"]
    assert cm and cm[0].score is not None and cm[0].score >= 0.65
    both = forgery.mask | forgery.source_mask
    assert mask_iou(heatmap_mask(cm[0].heatmap, both.shape, 0.5), both) >= 0.5
    assert v.verdict == "edited"


def test_stable_diffusion_png_is_ai_generated_with_evidence(pipe):
    v = pipe.analyze(load_sample(sd_png(photo("astronaut")), name="sd.png"))
    assert v.verdict == "ai_generated"
    text = " ".join(e for f in v.findings for e in f.evidence)
    assert "parameters" in text and "Stable Diffusion" in text


@pytest.mark.parametrize("name,q", [("astronaut", 92), ("coffee", 85), ("chelsea", 95)])
def test_camera_jpeg_is_not_edited(pipe, name, q):
    data = encode_jpeg(photo(name), q, exif=camera_exif())
    v = pipe.analyze(load_sample(data, name="camera.jpg"))
    for f in v.findings:
        if f.kind == "metadata" and "edited" in f.labels and f.score is not None:
            assert f.score < 0.5, (f.detector, f.score, f.evidence)
    assert v.verdict != "edited", (v.probabilities, [(f.detector, f.score) for f in v.findings])
