"""Probabilities are never shown as 0 % or 100 % (issue 13, defect 3), anywhere they are written."""

from __future__ import annotations

import re

import pytest

from verity.core.display import format_class_probability, format_interval, format_probability
from verity.core.fusion import FusionModel, evidence_roles, explain
from verity.core.types import Finding, Verdict

EXTREMES = [0.0, 1e-9, 0.0001, 0.004, 0.005, 0.0099, 0.9901, 0.995, 0.9999, 0.99999999, 1.0]


@pytest.mark.parametrize("p", EXTREMES + [0.01, 0.5, 0.912, 0.99])
def test_never_zero_or_hundred(p):
    text = format_probability(p)
    assert text not in ("0%", "100%")
    assert re.fullmatch(r"(<1|>99|[1-9]\d?)%", text), text


def test_values():
    assert format_probability(0.9999) == ">99%"
    assert format_probability(0.0001) == "<1%"
    assert format_probability(0.912) == "91%"
    assert format_probability(0.01) == "1%" and format_probability(0.99) == "99%"
    assert format_probability(0.994) == ">99%" and format_probability(0.006) == "<1%"
    assert format_probability(0.985) == "99%" and format_probability(0.014) == "1%"
    assert format_interval(0.78, 0.97) == "90% interval 78-97%"
    assert format_interval(0.0, 1.0) == "90% interval <1% to >99%"
    assert format_interval(0.7036, 1.0) == "90% interval 70% to >99%"
    assert format_interval(0.5, 0.5) == "90% interval 50%"
    iv = {"level": 0.9, "low": 0.78, "high": 0.97}
    assert format_class_probability("edited", 0.912, iv) == "edited 91% (90% interval 78-97%)"
    assert format_class_probability("ai_generated", 0.9999) == "ai generated >99%"


def _certain():
    return [Finding(detector="x", score=0.99, labels=["ai_generated"], evidence=["x is sure"])]


def test_explanation_never_says_100_percent():
    m = FusionModel(default_weights={"x": 12.0}, bias={"ai_generated": 0.0, "edited": -5, "face_manipulated": -5})
    fs = _certain()
    p = m.probabilities(fs)
    assert p["ai_generated"] > 0.9999
    text = explain(m.verdict(p, fs), p, fs, m)
    assert "100%" not in text and ">99%" in text


def test_cli_line_never_says_100_or_0_percent():
    import io

    from verity.cli.analyze import _human

    v = Verdict(verdict="ai_generated", probabilities={"authentic": 0.00004, "ai_generated": 0.99995, "edited": 0.00001,
                                                        "face_manipulated": 0.0}, findings=_certain(), path="x.png",
                explanation="e")
    out = io.StringIO()
    _human(v, out)
    head = out.getvalue().splitlines()[0]
    assert "100%" not in head and " 0%" not in head, head
    assert "ai generated >99%" in head and "authentic <1%" in head


def test_report_bars_never_say_100_or_0_percent():
    from verity.report.html import _bars

    html = _bars({"authentic": 0.00004, "ai_generated": 0.99995, "edited": 0.00001, "face_manipulated": 0.0})
    vals = re.findall(r'class="val">([^<]*)<', html)
    assert vals == ["&lt;1%", "&gt;99%", "&lt;1%", "&lt;1%"], vals


def test_shipped_fusion_has_intervals_from_the_calibration_side():
    m = FusionModel.load()
    rel = m.reliability
    assert rel and rel["level"] == 0.9 and "calibration side" in rel["data"]
    for c in ("authentic", "ai_generated", "edited"):
        rows = rel["classes"][c]
        assert rows[0]["lo"] == 0.0 and rows[-1]["hi"] == 1.0
        assert all(a["hi"] == b["lo"] for a, b in zip(rows, rows[1:]))  # the bins tile [0, 1]
        for r in rows:
            assert r["images"] >= 5 and r["examples"] >= r["images"]  # every interval rests on >= 5 images
            assert 0.0 <= r["low"] <= r["observed"] <= r["high"] <= 1.0
        for p in (0.0, 0.3, 0.71, 0.999, 1.0):
            iv = m.interval(c, p)
            assert iv is not None and iv["bin"][0] <= p <= iv["bin"][1]
    assert m.interval("face_manipulated", 0.9) is None  # no calibration data for that class
    assert FusionModel().interval("edited", 0.9) is None  # the hand-set fusion has none


def test_no_interval_when_metadata_decides():
    """The calibration examples are metadata-free: a verdict a hand-set detector decided gets no interval."""
    m = FusionModel.load()
    pixel = [Finding(detector="learned_semantic", score=0.97, labels=["ai_generated"])]
    assert m.intervals(m.probabilities(pixel), pixel)
    meta = pixel + [Finding(detector="generator_metadata", score=0.99, labels=["ai_generated"], kind="metadata")]
    assert m.intervals(m.probabilities(meta), meta) == {}


def test_verdict_json_carries_intervals_and_roles():
    from verity.core.types import CLASSES

    m = FusionModel.load()
    fs = [Finding(detector="learned_semantic", score=0.97, labels=["ai_generated"]),
          Finding(detector="jpeg_ela", score=0.9, labels=["edited"])]
    p = m.probabilities(fs)
    verdict = m.verdict(p, fs)
    v = Verdict(verdict=verdict, probabilities=p, findings=fs, intervals=m.intervals(p, fs),
                roles=evidence_roles(verdict, fs, m))
    d = v.to_dict()
    assert set(d["intervals"]) <= set(CLASSES) and "ai_generated" in d["intervals"]
    iv = d["intervals"]["ai_generated"]
    assert iv["level"] == 0.9 and iv["low"] <= iv["high"] and iv["examples"] > 0
    roles = {f["detector"]: f["role"] for f in d["findings"]}
    assert roles["jpeg_ela"] == "minor"  # fitted weight 0: a high score moves nothing
    assert d["warnings"] == []
