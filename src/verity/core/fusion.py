"""Fusion: findings in, four class probabilities and a verdict out.

The model is a multinomial logistic combination of detector scores:

.. math::

    z_c = b_c + \\sum_d w_{d,c} \\, \\mathrm{logit}(\\mathrm{clip}(s_d, \\epsilon, 1-\\epsilon)),
    \\qquad z_{\\mathrm{authentic}} = 0, \\qquad p = \\mathrm{softmax}(z / T)

for every non-authentic class ``c`` that detector ``d`` lists in its finding's labels. A detector
that abstains (score ``None``) contributes nothing, and a score of 0.5 contributes zero; scores below
0.5 are evidence *for* authenticity. A fitted file may give a detector a *center* ``s0_d``, its
typical score on real photos: its contribution is then ``w_{d,c} (logit(s_d) - logit(s0_d))``, so
that its usual "nothing found" score moves nothing and the fitted biases stay true class priors (they
do not absorb the detectors' typical scores, which would misfire when a detector is not run).

The verdict is the most probable class when its probability reaches that class's decision threshold
(``thresholds[c]``, else ``inconclusive_below``, default 0.6), else ``inconclusive``. A fitted file sets a higher threshold for the fake classes, chosen on validation
data so that few real photos are called fake (see ``docs/eval.md``).

Weights come from a JSON file fitted on a validation split by ``verity train fusion`` when one is
shipped (``verity/models/weights/fusion.json``); otherwise from each detector's hand-set ``weight``
class attribute with the biases below.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verity.core.types import CLASSES, Finding

FAKE_CLASSES: tuple[str, ...] = CLASSES[1:]
#: Hand-set prior logits of the non-authentic classes relative to authentic.
DEFAULT_BIAS: dict[str, float] = {"ai_generated": -1.5, "edited": -1.5, "face_manipulated": -2.5}
#: Below this top probability the verdict is ``inconclusive``.
DEFAULT_INCONCLUSIVE_BELOW = 0.6
EPS = 0.01
FUSION_FILE = Path(__file__).resolve().parent.parent / "models" / "weights" / "fusion.json"


def logit(p: float, eps: float = EPS) -> float:
    p = min(1.0 - eps, max(eps, float(p)))
    return math.log(p / (1.0 - p))


@dataclass
class FusionModel:
    """Parameters of the logistic fusion (see the module docstring)."""

    bias: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BIAS))
    #: detector name -> class -> weight. Missing detectors fall back to ``default_weights``.
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    #: detector name -> weight used for every class the finding lists (hand-set defaults).
    default_weights: dict[str, float] = field(default_factory=dict)
    temperature: float = 1.0
    inconclusive_below: float = DEFAULT_INCONCLUSIVE_BELOW
    #: detector name -> score that contributes zero (default 0.5; see the module docstring).
    centers: dict[str, float] = field(default_factory=dict)
    #: class -> least probability for that verdict (default ``inconclusive_below``).
    thresholds: dict[str, float] = field(default_factory=dict)
    source: str = "hand-set"

    @classmethod
    def load(cls, path: str | Path | None = None) -> "FusionModel":
        """Load fitted weights from ``path`` (default: the shipped file), or hand-set defaults."""
        p = Path(path) if path else FUSION_FILE
        if p.is_file():
            d = json.loads(p.read_text())
            return cls(
                bias={**DEFAULT_BIAS, **d.get("bias", {})},
                weights=d.get("weights", {}),
                temperature=float(d.get("temperature", 1.0)),
                inconclusive_below=float(d.get("inconclusive_below", DEFAULT_INCONCLUSIVE_BELOW)),
                thresholds={str(k): float(v) for k, v in d.get("thresholds", {}).items()},
                centers={str(k): float(v) for k, v in d.get("centers", {}).items()},
                source=str(p.name),
            )
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {
            "bias": self.bias,
            "weights": self.weights,
            "temperature": self.temperature,
            "inconclusive_below": self.inconclusive_below,
            "thresholds": self.thresholds,
            "centers": self.centers,
        }

    def weight(self, finding: Finding, cls_name: str) -> float:
        w = self.weights.get(finding.detector)
        if w is not None:
            return float(w.get(cls_name, 0.0))
        if cls_name not in finding.labels:
            return 0.0
        if finding.detector in self.default_weights:
            return self.default_weights[finding.detector]
        return _class_weight(finding.detector)

    def contributions(self, findings: list[Finding]) -> dict[str, dict[str, float]]:
        """Per class, each detector's additive contribution to the logit."""
        out: dict[str, dict[str, float]] = {c: {} for c in FAKE_CLASSES}
        for f in findings:
            if f.score is None:
                continue
            lg = logit(f.score)
            if f.detector in self.centers:
                lg -= logit(self.centers[f.detector])
            for c in FAKE_CLASSES:
                w = self.weight(f, c)
                if w:
                    out[c][f.detector] = w * lg
        return out

    def probabilities(self, findings: list[Finding]) -> dict[str, float]:
        contrib = self.contributions(findings)
        z = {"authentic": 0.0}
        for c in FAKE_CLASSES:
            z[c] = self.bias.get(c, 0.0) + sum(contrib[c].values())
        t = max(self.temperature, 1e-6)
        m = max(v / t for v in z.values())
        e = {k: math.exp(v / t - m) for k, v in z.items()}
        s = sum(e.values())
        return {c: e[c] / s for c in CLASSES}

    def verdict(self, probabilities: dict[str, float], findings: list[Finding]) -> str:
        if all(f.score is None for f in findings):
            return "inconclusive"
        best = max(CLASSES, key=lambda c: probabilities[c])
        return best if probabilities[best] >= self.threshold(best) else "inconclusive"

    def threshold(self, cls_name: str) -> float:
        """Least probability of ``cls_name`` for it to be the verdict."""
        return float(self.thresholds.get(cls_name, self.inconclusive_below))


def _class_weight(name: str) -> float:
    try:
        from verity.core.registry import get_detector_class

        return float(get_detector_class(name).weight)
    except KeyError:
        return 1.0


def fuse(findings: list[Finding], model: FusionModel | None = None) -> tuple[str, dict[str, float]]:
    """Return ``(verdict, probabilities)`` for a list of findings."""
    model = model or FusionModel.load()
    probs = model.probabilities(findings)
    return model.verdict(probs, findings), probs


def explain(verdict: str, probabilities: dict[str, float], findings: list[Finding], model: FusionModel) -> str:
    """One paragraph built from the evidence that moved the verdict most."""
    contrib = model.contributions(findings)
    by_det: dict[str, float] = {}
    target = verdict if verdict in FAKE_CLASSES else None
    for c, d in contrib.items():
        for det, v in d.items():
            if target is None or c == target:
                # towards the verdict: positive contributions for a fake class, negative for authentic
                val = v if target else -v
                by_det[det] = max(by_det.get(det, -1e9), val)
    ranked = [det for det, v in sorted(by_det.items(), key=lambda kv: -kv[1]) if v > 0.2]
    sentences: list[str] = []
    fmap = {f.detector: f for f in findings}
    for det in ranked[:3]:
        if fmap[det].evidence:
            sentences.append(fmap[det].evidence[0].rstrip(".") + ".")
    pct = {c: f"{100 * p:.0f}%" for c, p in probabilities.items()}
    words = {
        "authentic": "shows no sign of generation or manipulation",
        "ai_generated": "looks AI-generated",
        "edited": "looks edited (parts of it were altered)",
        "face_manipulated": "contains a manipulated face",
        "inconclusive": "cannot be called either way with confidence",
    }
    head = f"The image {words[verdict]}"
    best = max(probabilities, key=probabilities.get)
    head += f" ({best.replace('_', ' ')} {pct[best]})." if verdict != "inconclusive" else (
        f": the most likely class, {best.replace('_', ' ')}, has only {pct[best]}."
    )
    if not sentences:
        n = sum(f.score is not None for f in findings)
        sentences.append(f"{n} detector{'' if n == 1 else 's'} gave an opinion; none found strong evidence.")
    return " ".join([head] + sentences)
