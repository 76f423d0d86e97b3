"""Fusion: probabilities sum to one, evidence moves them the right way, weak evidence is inconclusive."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from verity.core.fusion import FusionModel, explain, logit
from verity.core.types import CLASSES, Finding


def f(name, score, labels=("edited",)):
    return Finding(detector=name, score=score, labels=list(labels), evidence=[f"{name} says {score}"])


def model():
    return FusionModel(default_weights={"a": 1.0, "b": 2.0, "c": 1.0})


def test_probabilities_sum_to_one_and_cover_classes():
    p = model().probabilities([f("a", 0.9), f("b", 0.2, ("ai_generated",))])
    assert set(p) == set(CLASSES)
    assert math.isclose(sum(p.values()), 1.0)


def test_strong_evidence_wins():
    m = model()
    findings = [f("b", 0.99, ("ai_generated",)), f("a", 0.5)]
    p = m.probabilities(findings)
    assert max(p, key=p.get) == "ai_generated"
    assert m.verdict(p, findings) == "ai_generated"


def test_scores_below_half_support_authentic():
    m = model()
    lo = m.probabilities([f("a", 0.1)])
    mid = m.probabilities([f("a", 0.5)])
    assert lo["authentic"] > mid["authentic"]
    assert lo["edited"] < mid["edited"]


def test_all_abstain_is_inconclusive():
    m = model()
    findings = [f("a", None), f("b", None)]
    assert m.verdict(m.probabilities(findings), findings) == "inconclusive"


def test_weak_evidence_is_inconclusive():
    m = model()
    findings = [f("a", 0.6), f("c", 0.6, ("ai_generated",))]
    p = m.probabilities(findings)
    assert max(p.values()) < m.inconclusive_below
    assert m.verdict(p, findings) == "inconclusive"


def test_abstention_contributes_nothing():
    m = model()
    assert m.probabilities([f("a", None)]) == m.probabilities([])


def test_fitted_weights_override_labels(tmp_path):
    p = tmp_path / "fusion.json"
    p.write_text(json.dumps({"bias": {"edited": -3.0}, "weights": {"a": {"ai_generated": 2.0}}, "temperature": 2.0}))
    m = FusionModel.load(p)
    assert m.bias["edited"] == -3.0 and m.temperature == 2.0
    contrib = m.contributions([f("a", 0.9)])
    assert contrib["edited"] == {}
    assert contrib["ai_generated"]["a"] == pytest.approx(2.0 * logit(0.9))


def test_logit_is_clipped():
    assert np.isfinite(logit(0.0)) and np.isfinite(logit(1.0))
    assert logit(1.0) == pytest.approx(-logit(0.0))


def test_explanation_names_strongest_evidence():
    m = model()
    findings = [f("b", 0.99, ("ai_generated",)), f("a", 0.55)]
    p = m.probabilities(findings)
    text = explain(m.verdict(p, findings), p, findings, m)
    assert "AI-generated" in text and "b says 0.99" in text


def test_class_thresholds(tmp_path):
    p = tmp_path / "fusion.json"
    p.write_text(json.dumps({"bias": {"ai_generated": 0.0}, "weights": {"a": {"ai_generated": 1.0}},
                             "thresholds": {"ai_generated": 0.9, "authentic": 0.5}}))
    m = FusionModel.load(p)
    assert m.threshold("ai_generated") == 0.9 and m.threshold("authentic") == 0.5
    assert m.threshold("edited") == m.inconclusive_below  # default for classes the file does not name
    strong, weak = [f("a", 0.999, ("ai_generated",))], [f("a", 0.85, ("ai_generated",))]
    assert m.verdict(m.probabilities(strong), strong) == "ai_generated"
    p_weak = m.probabilities(weak)
    assert max(p_weak, key=p_weak.get) == "ai_generated" and p_weak["ai_generated"] < 0.9
    assert m.verdict(p_weak, weak) == "inconclusive"  # most likely fake, but below its threshold
    auth = [f("a", 0.3, ("ai_generated",))]
    assert m.verdict(m.probabilities(auth), auth) == "authentic"
    assert FusionModel.load(p).to_dict()["thresholds"] == {"ai_generated": 0.9, "authentic": 0.5}


def test_strong_hand_set_evidence_needs_only_the_hand_set_threshold(tmp_path):
    # a fitted file's thresholds were chosen where container detectors abstain: a strong finding of
    # a hand-set detector (not among the file's weights) decides at inconclusive_below instead
    p = tmp_path / "fusion.json"
    p.write_text(json.dumps({"bias": {"ai_generated": -1.0}, "weights": {"fitted": {"ai_generated": 1.0}},
                             "thresholds": {"ai_generated": 0.95, "edited": 0.95, "authentic": 0.5},
                             "inconclusive_below": 0.6}))
    m = FusionModel.load(p)
    m.default_weights["meta"] = 1.0
    meta = [f("meta", 0.97, ("ai_generated",))]
    pm = m.probabilities(meta)
    assert 0.6 <= pm["ai_generated"] < 0.95
    assert m.verdict(pm, meta) == "ai_generated"
    # the same probability from a fitted detector stays below its fitted threshold
    fitted = [f("fitted", 0.97, ("ai_generated",))]
    pf = m.probabilities(fitted)
    assert 0.6 <= pf["ai_generated"] < 0.95 and m.verdict(pf, fitted) == "inconclusive"
    # a weak hand-set finding, or one for another class, does not lower the threshold
    weak = [f("meta", 0.7, ("ai_generated",)), f("fitted", 0.9, ("ai_generated",))]
    pw = m.probabilities(weak)
    assert pw["ai_generated"] < 0.95 and m.verdict(pw, weak) == "inconclusive"
    other = [f("meta", 0.9, ("edited",)), f("fitted", 0.995, ("ai_generated",))]
    po = m.probabilities(other)
    assert max(po, key=po.get) == "ai_generated" and po["ai_generated"] < 0.95
    assert m.verdict(po, other) == "inconclusive"
    # the hand-set fusion (no fitted weights) keeps its own thresholds
    h = FusionModel(default_weights={"meta": 1.0}, thresholds={"ai_generated": 0.99})
    ph = h.probabilities(meta)
    assert ph["ai_generated"] < 0.99 and h.verdict(ph, meta) == "inconclusive"


def test_centers_make_the_usual_score_neutral(tmp_path):
    p = tmp_path / "fusion.json"
    p.write_text(json.dumps({"bias": {"edited": -1.0}, "weights": {"a": {"edited": 2.0}}, "centers": {"a": 0.42}}))
    m = FusionModel.load(p)
    assert m.centers == {"a": 0.42}
    assert m.contributions([f("a", 0.42)])["edited"]["a"] == pytest.approx(0.0, abs=1e-12)
    assert m.contributions([f("a", 0.9)])["edited"]["a"] == pytest.approx(2.0 * (logit(0.9) - logit(0.42)))
    # its usual score, an abstention and not running it all leave the prior alone
    assert m.probabilities([f("a", 0.42)]) == pytest.approx(m.probabilities([]))
    assert m.probabilities([f("a", None)]) == m.probabilities([])
    # a detector without a center keeps 0.5 as its neutral score
    assert m.contributions([f("b", 0.5)])["edited"].get("b", 0.0) == 0.0


def test_evidence_roles_agree_with_the_verdict():
    """Issue 13 defect 5: only findings that drive the verdict are decisive; a suspicious score on an
    authentic verdict is outweighed (strong weight) or minor (little weight), never decisive."""
    from verity.core.fusion import evidence_roles

    m = FusionModel(default_weights={"strong": 2.0, "weak": 0.05, "auth": 3.0})
    authentic = [f("strong", 0.8), f("weak", 0.95), f("auth", 0.03, ("ai_generated", "edited")),
                 Finding(detector="none", score=None, labels=["edited"])]
    p = m.probabilities(authentic)
    assert m.verdict(p, authentic) == "authentic"
    roles = {k: v["role"] for k, v in evidence_roles("authentic", authentic, m).items()}
    assert roles == {"strong": "outweighed", "weak": "minor", "auth": "decisive", "none": "abstained"}
    edited = [f("strong", 0.99), f("weak", 0.95)]
    roles = {k: v["role"] for k, v in evidence_roles("edited", edited, m).items()}
    assert roles == {"strong": "decisive", "weak": "minor"}
    r = evidence_roles("inconclusive", edited, m)
    assert r["strong"]["role"] == "outweighed" and r["strong"]["contribution"]["edited"] > 1.0
