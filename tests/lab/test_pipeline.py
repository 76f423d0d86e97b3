"""verity's own pipeline must recognise the lab's outputs as AI-generated (from their XMP mark)."""

from __future__ import annotations

import pytest

from tests.lab.conftest import TINY
from verity.core.io import load_sample


def _xmp_detectors() -> list[str]:
    from verity.core.registry import get_detector_class, list_detectors

    return [n for n in list_detectors(default_only=True)
            if n == "digital_source_type" or "xmp" in (get_detector_class(n).__doc__ or "").lower()]


@pytest.fixture
def lab_outputs(image_dir, tmp_path):
    from verity.lab.sample import reconstruct_paths, sample_run
    from verity.lab.trainer import train

    out = []
    for fam in ("gan", "autoencoder"):
        run = tmp_path / fam
        train(fam, image_dir, run, steps=2, every=2, fd_n=0, threads=1, max_side=128, progress=False,
              **TINY[fam])
        out += sample_run(run, 1, tmp_path / f"s_{fam}", seed=0, progress=False)
    written, _ = reconstruct_paths(tmp_path / "autoencoder", [str(next(image_dir.glob("*.jpg")))],
                                   tmp_path / "rec", progress=False)
    return out + written


def test_pipeline_says_ai_generated(lab_outputs):
    names = _xmp_detectors()
    if not names:
        pytest.skip("no registered detector reads XMP DigitalSourceType yet")
    from verity.pipeline import analyze

    for p in lab_outputs:
        v = analyze(load_sample(p))
        assert v.verdict == "ai_generated", (p, v.verdict, v.probabilities)
        f = v.finding("digital_source_type")
        if f is not None:
            assert f.score is not None and f.score > 0.9
            assert any("trainedAlgorithmicMedia" in e for e in f.evidence)
