"""Heatmap rendering and the HTML report."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from verity.core.types import Face, Finding, Sample, Verdict
from verity.report.html import ReportItem, render_html
from verity.report.render import colorize, heatmap_png


def test_colorize_resizes_orients_and_maps_alpha():
    h = np.zeros((3, 4), np.float32)
    h[0, 0] = 1.0
    out = colorize(h, (30, 40), orientation=6)  # rotated 90 degrees clockwise for display
    assert out.shape == (40, 30, 4) and out.dtype == np.uint8
    assert out[..., 3].max() > 150 and out[-1, 0, 3] == 0  # bright top-left moves to top-right
    assert out[0, -1, 3] > out[0, 0, 3]


def test_heatmap_png_is_png_capped_in_size():
    png = heatmap_png(np.random.default_rng(0).random((10, 10)), (4000, 3000), max_side=500)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and max(im.size) == 500


def test_report_contains_verdict_overlays_faces_and_escapes():
    px = np.zeros((20, 30, 3), np.uint8)
    s = Sample(data=b"x", pixels=px, format="PNG", path="<b>evil</b>.png")
    f = Finding("ela", 0.8, ["edited"], ["<script>alert(1)</script>"], heatmap=np.ones((2, 3)), kind="compression")
    v = Verdict("edited", {"authentic": 0.1, "ai_generated": 0.1, "edited": 0.7, "face_manipulated": 0.1}, [f],
                path=s.path, faces=[Face(box=(1, 2, 10, 12), manipulation_score=0.3)])
    html = render_html([ReportItem(path=s.path, verdict=v, sample=s), ReportItem(path="bad.jpg", error="truncated")])
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;evil" in html
    assert 'data-name="ela"' in html and 'class="face"' in html
    assert "Could not be analysed: truncated" in html


def test_report_agrees_with_the_verdict_and_never_says_100_percent():
    """Issue 13: heatmaps start on and findings are red only when they drive the verdict; the
    probabilities read <1% / >99%; an animation says only frame 1 was analysed."""
    from verity.core.fusion import FusionModel, evidence_roles

    px = np.zeros((20, 30, 3), np.uint8)
    s = Sample(data=b"x", pixels=px, format="GIF", path="a.gif", frames=5)
    m = FusionModel(default_weights={"weak": 0.05, "camera": 3.0, "clone": 4.0})
    weak = Finding("weak", 0.9, ["edited"], ["weak sees a region"], heatmap=np.ones((2, 3)), kind="compression")
    camera = Finding("camera", 0.05, ["ai_generated", "edited"], ["a camera record"], kind="metadata")

    def item(findings):
        p = m.probabilities(findings)
        verdict = m.verdict(p, findings)
        v = Verdict(verdict, p, findings, path=s.path, roles=evidence_roles(verdict, findings, m),
                    warnings=["Only frame 1 of the 5 in this animated GIF was analysed; the other frames were not checked."])
        return v, render_html([ReportItem(path=s.path, verdict=v, sample=s)])

    v, html = item([weak, camera])
    assert v.verdict == "authentic"
    assert 'data-ov="weak" checked' not in html and 'data-name="weak" src' in html
    assert 'class="f hot"' not in html and "little weight in the verdict" in html
    assert "Only frame 1 of the 5" in html
    clone = Finding("clone", 0.999, ["edited"], ["a cloned region"], heatmap=np.ones((2, 3)), kind="copy-move")
    v, html = item([clone, weak])
    assert v.verdict == "edited" and v.probabilities["edited"] > 0.999
    assert 'data-ov="clone" checked' in html and 'data-ov="weak" checked' not in html
    assert 'class="f hot"><b>clone' in html
    assert 'class="val">100' not in html and 'class="val">&gt;99%' in html
