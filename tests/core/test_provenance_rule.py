"""The provenance rule applied after fusion (core.fusion.apply_provenance / FusionModel.decide)."""

from __future__ import annotations

import pytest

from verity.core.fusion import (
    POST_FUSION_DETECTORS,
    PROVENANCE_LIKELIHOOD_RATIOS,
    FusionModel,
    apply_provenance,
    explain,
)
from verity.core.types import CLASSES, Finding


def c2pa(claim: str, trusted: bool = False, score: float = 0.5, labels=()) -> Finding:
    return Finding("c2pa", score, list(labels), ["The manifest says so."], kind="provenance",
                   details={"provenance": {"claim": claim, "trusted": trusted, "signer": "S", "state": "Valid",
                                           "sentence": "A valid C2PA manifest signed by S says so."}})  # fmt: skip


def double_jpeg(score: float) -> Finding:
    return Finding("jpeg_double", score, ["edited"], ["a region was compressed twice"], kind="compression")


@pytest.fixture(params=["shipped", "hand-set"])
def model(request):
    return FusionModel.load() if request.param == "shipped" else FusionModel()


def test_c2pa_is_not_summed_by_fusion(model):
    assert "c2pa" in POST_FUSION_DETECTORS
    base = [double_jpeg(0.8)]
    assert model.probabilities(base + [c2pa("ai_generated", score=0.98, labels=["ai_generated"])]) == \
        model.probabilities(base)  # fmt: skip


def test_declared_ai_decides_the_verdict(model):
    fs = [double_jpeg(0.3), c2pa("ai_generated", score=0.95, labels=["ai_generated"])]
    d = model.decide(fs)
    assert d.verdict == "ai_generated" and d.decided_by == "provenance"
    assert d.probabilities == {c: (1.0 if c == "ai_generated" else 0.0) for c in CLASSES}
    assert d.fused_probabilities == model.probabilities(fs) and d.fused_probabilities["ai_generated"] < 0.5
    text = explain(d.verdict, d.probabilities, fs, model, d)
    assert "decided by provenance" in text and "untrusted signer" in text and "The detectors alone gave" in text
    assert model.decide([c2pa("ai_composite")]).verdict == "edited"


def test_tampered_content_is_editing_evidence(model):
    fs = [c2pa("tampered_content", score=0.93, labels=["edited"])]
    d = model.decide(fs)
    assert d.decided_by == "fusion" and d.verdict == "edited"
    fused = d.fused_probabilities
    odds = d.probabilities["edited"] / d.probabilities["authentic"]
    assert odds == pytest.approx(40 * fused["edited"] / fused["authentic"])
    assert "odds edited x40" in explain(d.verdict, d.probabilities, fs, model, d)


def test_signed_capture_lowers_but_does_not_override_strong_editing_evidence(model):
    trusted = c2pa("capture_trusted", trusted=True, score=0.15, labels=["ai_generated", "edited"])
    weak = model.decide([double_jpeg(0.75), trusted])
    alone = model.decide([double_jpeg(0.75)])
    for c in ("ai_generated", "edited", "face_manipulated"):
        assert weak.probabilities[c] < alone.probabilities[c]
    assert weak.probabilities["authentic"] > alone.probabilities["authentic"]
    # strong pixel evidence of editing keeps its verdict under a trusted camera manifest
    strong = model.decide([double_jpeg(0.999), trusted])
    assert model.decide([double_jpeg(0.999)]).verdict == "edited" and strong.verdict == "edited"
    # a self-asserted signer lowers less than a trusted one
    untrusted = model.decide([double_jpeg(0.75), c2pa("capture_untrusted", score=0.3, labels=["ai_generated", "edited"])])
    assert weak.probabilities["edited"] < untrusted.probabilities["edited"] < alone.probabilities["edited"]


def test_bounded_ratios_are_exactly_applied():
    fused = {"authentic": 0.4, "ai_generated": 0.3, "edited": 0.2, "face_manipulated": 0.1}
    fs = [c2pa("capture_trusted", trusted=True)]
    d = apply_provenance(fused, fs)
    lr = PROVENANCE_LIKELIHOOD_RATIOS["capture_trusted"]
    z = 0.4 + sum(fused[c] * lr[c] for c in CLASSES[1:])
    assert d.probabilities["authentic"] == pytest.approx(0.4 / z)
    assert sum(d.probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("claim", ["none", "invalid", "unknown-claim"])
def test_neutral_outcomes_change_nothing(model, claim):
    fs = [double_jpeg(0.8), c2pa(claim)]
    d = model.decide(fs)
    assert d.probabilities == model.probabilities(fs) and d.rule is None and d.decided_by == "fusion"
    assert d.verdict == model.verdict(model.probabilities(fs), fs)
    # a neutral manifest alone is no opinion: inconclusive, like every detector abstaining
    assert model.decide([c2pa(claim)]).verdict == "inconclusive"


def test_no_manifest_is_plain_fusion(model):
    fs = [double_jpeg(0.9), Finding("c2pa", None, [], ["No C2PA manifest"], kind="provenance")]
    d = model.decide(fs)
    assert d.probabilities == model.probabilities(fs) and d.verdict == model.verdict(d.probabilities, fs)
