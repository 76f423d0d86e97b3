"""`verity analyze` text output agrees with the verdict (issue 13): marks follow what each finding did
to the verdict, probabilities are never 0 % or 100 %, and an animation says only frame 1 was analysed."""

from __future__ import annotations

import io

import numpy as np

from verity.core.fusion import FusionModel, evidence_roles
from verity.core.types import Finding, Verdict


def _verdict(findings, model):
    p = model.probabilities(findings)
    v = model.verdict(p, findings)
    return Verdict(verdict=v, probabilities=p, findings=findings, path="x.jpg", explanation="e",
                   intervals=model.intervals(p, findings), roles=evidence_roles(v, findings, model))


def test_marks_follow_the_roles_on_an_authentic_verdict():
    from verity.cli.analyze import _human

    m = FusionModel(default_weights={"weak": 0.05, "camera": 3.0, "strong": 2.0})
    fs = [Finding(detector="weak", score=0.9, labels=["edited"], evidence=["weak sees something"]),
          Finding(detector="camera", score=0.05, labels=["ai_generated", "edited"], evidence=["a camera record"]),
          Finding(detector="strong", score=0.75, labels=["edited"], evidence=["strong sees something"])]
    v = _verdict(fs, m)
    assert v.verdict == "authentic"
    out = io.StringIO()
    _human(v, out)
    lines = out.getvalue().splitlines()
    assert "100%" not in lines[0] and " 0%" not in lines[0]
    marks = {ln.split()[2]: ln.split()[0] for ln in lines if ln.startswith("  ") and "[" in ln}
    # before: "!" on both suspicious scores although neither decided anything
    assert marks == {"camera": "+", "strong": "!", "weak": "-"}
    assert "(outweighed by the other evidence)" in next(ln for ln in lines if " strong " in ln)
    assert lines[2].split()[2] == "camera"  # the decisive finding is listed first


def test_animated_gif_says_only_frame_one_was_analysed(tmp_path, capsys):
    from PIL import Image

    from verity.cli.main import main

    rng = np.random.default_rng(0)
    frames = [Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert main(["analyze", str(path), "--detectors", "exif_camera", "-q"]) == 0
    out = capsys.readouterr().out
    assert "note: Only frame 1 of the 3 in this animated GIF was analysed" in out
    assert main(["analyze", str(path), "--detectors", "exif_camera", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["image"]["frames"] == 3 and doc["warnings"] == [
        "Only frame 1 of the 3 in this animated GIF was analysed; the other frames were not checked."]
