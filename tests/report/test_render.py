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
