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

Provenance is applied *after* this fusion (:func:`apply_provenance`): the ``c2pa`` finding is not
summed with the others (:data:`POST_FUSION_DETECTORS`). A valid signed manifest that declares the
image AI-generated (or generative-AI composited) decides the verdict outright; every other manifest
outcome multiplies the fused probabilities by a fixed, bounded likelihood ratio
(:data:`PROVENANCE_LIKELIHOOD_RATIOS`) and renormalises -- a Bayes update of the fused posterior.
The fitted weights are untouched by this rule.

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


#: Detectors whose finding is applied by :func:`apply_provenance` after fusion, not summed in it.
POST_FUSION_DETECTORS: tuple[str, ...] = ("c2pa",)

#: Manifest outcomes (``details["provenance"]["claim"]`` of the ``c2pa`` finding) that decide the
#: verdict: a valid signature over a declaration *against the signer's interest* (that the image is
#: generated, or has generated content composited in). Nobody gains from falsely labelling a real
#: photo AI-made except someone discrediting it, which is why the explanation names the signer and
#: says whether it is trusted.
PROVENANCE_DECISIVE: dict[str, str] = {"ai_generated": "ai_generated", "ai_composite": "edited"}

#: Bounded evidence: manifest outcome -> class -> likelihood ratio P(outcome | class) /
#: P(outcome | authentic). The fused probabilities are multiplied by these and renormalised, so no
#: outcome here can move a class's odds by more than its ratio: a signed capture lowers the fake
#: classes' odds 15-fold (trusted signer) or 4-fold (self-asserted signer) but leaves a verdict
#: that strong pixel evidence of editing made (fused odds above 15 x the threshold's) standing.
PROVENANCE_LIKELIHOOD_RATIOS: dict[str, dict[str, float]] = {
    # the bytes covered by the signature changed after signing (pixels edited, or re-encoded by a
    # tool that kept the manifest): strong tampering evidence, not proof (a metadata tool can do it)
    "tampered_content": {"edited": 40.0},
    # ... and the signed claim (intact) had declared the image generated
    "tampered_content_ai": {"edited": 40.0, "ai_generated": 15.0},
    # the manifest itself was altered after signing
    "tampered_manifest": {"edited": 15.0},
    # intact manifest recording content-changing edits (c2pa.placed, c2pa.removed)
    "edits_content": {"edited": 8.0},
    # intact manifest recording c2pa.edited / c2pa.drawing (also used for benign retouching)
    "edits": {"edited": 4.0},
    # an ingredient composited into the image declares generated content
    "ai_component": {"edited": 8.0},
    # intact manifest of a capture (digitalCapture...) with only processing actions
    "capture_trusted": {"ai_generated": 1 / 15, "edited": 1 / 15, "face_manipulated": 1 / 15},
    "capture_untrusted": {"ai_generated": 1 / 4, "edited": 1 / 4, "face_manipulated": 1 / 4},
}


#: Score at which a hand-set detector's finding counts as decisive container evidence for the
#: verdict threshold (see :meth:`FusionModel.verdict`).
HAND_SET_DECISIVE = 0.8


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
    #: The fitted file's reliability bins (see :meth:`interval`); empty for the hand-set fusion.
    reliability: dict[str, Any] = field(default_factory=dict)

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
                reliability=d.get("reliability") or {},
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
            if f.score is None or f.detector in POST_FUSION_DETECTORS:
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
        """The most probable class if its probability reaches its threshold, else ``inconclusive``.

        A fitted file's fake-class thresholds were chosen on re-encoded copies, where the hand-set
        detectors (container evidence: generator text chunks, EXIF thumbnails, C2PA, DigitalSourceType;
        detectors without training data) abstain, so they say nothing about those detectors' evidence:
        when a hand-set detector reports the class strongly (score >= :data:`HAND_SET_DECISIVE`), the
        class needs only ``inconclusive_below``, the hand-set fusion's threshold.
        """
        if all(f.score is None for f in findings):
            return "inconclusive"
        best = max(CLASSES, key=lambda c: probabilities[c])
        t = self.threshold(best)
        if best != "authentic" and self.weights and any(
            f.score is not None and f.score >= HAND_SET_DECISIVE and best in f.labels and f.detector not in self.weights
            for f in findings
        ):
            t = min(t, self.inconclusive_below)
        return best if probabilities[best] >= t else "inconclusive"

    def interval(self, cls_name: str, p: float) -> dict[str, Any] | None:
        """What the calibration data says about a probability ``p`` of ``cls_name``.

        The reliability bin of the fitted file that ``p`` falls in: among the calibration examples
        whose fused probability of that class was in the same bin, the observed share that really was
        of that class, and a ``level`` (90 %) interval on it. ``None`` when the file has no bins for
        the class (the hand-set fusion, ``face_manipulated``).

        Returns
        -------
        dict or None
            ``{"level", "low", "high", "observed", "bin": [lo, hi], "examples", "images"}``.
        """
        rel = self.reliability or {}
        rows = (rel.get("classes") or {}).get(cls_name) or []
        p = float(p)
        for i, r in enumerate(rows):
            last = i == len(rows) - 1
            if float(r["lo"]) <= p and (p < float(r["hi"]) or last):
                return {
                    "level": float(rel.get("level", 0.9)),
                    "low": float(r["low"]),
                    "high": float(r["high"]),
                    "observed": float(r["observed"]),
                    "bin": [float(r["lo"]), float(r["hi"])],
                    "examples": int(r["examples"]),
                    "images": float(r["images"]),
                }
        return None

    def intervals(self, probabilities: dict[str, float], findings: list[Finding] | None = None) -> dict[str, dict[str, Any]]:
        """:meth:`interval` of every class that has one.

        Empty when one of ``findings`` comes from a detector the fitted weights do not cover (hand-set:
        metadata, C2PA, faces) and moved a class logit by at least :data:`DECISIVE_LOGIT`: the
        calibration examples are metadata-free copies, so their bins cannot speak for such a verdict.
        """
        if findings and self.weights:
            for d in self.contributions(findings).values():
                if any(det not in self.weights and abs(v) >= DECISIVE_LOGIT for det, v in d.items()):
                    return {}
        out = {}
        for c, p in probabilities.items():
            iv = self.interval(c, p)
            if iv is not None:
                out[c] = iv
        return out

    def threshold(self, cls_name: str) -> float:
        """Least probability of ``cls_name`` for it to be the verdict."""
        return float(self.thresholds.get(cls_name, self.inconclusive_below))

    def decide(self, findings: list[Finding]) -> "Decision":
        """Fusion followed by the provenance rule: verdict, probabilities and how they were reached."""
        fused = self.probabilities(findings)
        d = apply_provenance(fused, findings)
        if d.decided_by == "provenance":
            return d
        # a finding summed by fusion, or one whose provenance claim moved the probabilities
        opinions = [f for f in findings if f.score is not None and (f.detector not in POST_FUSION_DETECTORS or d.rule)]
        d.verdict = self.verdict(d.probabilities, opinions) if opinions else "inconclusive"
        return d


@dataclass
class Decision:
    """What :meth:`FusionModel.decide` concluded.

    Attributes
    ----------
    verdict : str
    probabilities : dict
        The final probabilities (after the provenance rule).
    fused_probabilities : dict
        What the detectors' fusion alone gave, before the provenance rule.
    decided_by : str
        ``"fusion"``, or ``"provenance"`` when a signed manifest decided the verdict (the
        probabilities are then 1 for that class: the certainty of a signed declaration, not a
        statistical estimate).
    rule : dict or None
        The provenance rule that applied: ``claim``, ``likelihood_ratios`` or ``decides``,
        ``sentence`` (the manifest evidence), ``trusted``, ``signer``.
    """

    verdict: str
    probabilities: dict[str, float]
    fused_probabilities: dict[str, float]
    decided_by: str = "fusion"
    rule: dict[str, Any] | None = None


def provenance_claim(findings: list[Finding]) -> dict[str, Any] | None:
    """The ``details["provenance"]`` of the first post-fusion finding that carries one."""
    for f in findings:
        if f.detector in POST_FUSION_DETECTORS and isinstance(f.details.get("provenance"), dict):
            return f.details["provenance"]
    return None


def apply_provenance(fused: dict[str, float], findings: list[Finding]) -> Decision:
    """Apply the provenance rule to fused probabilities (see the module docstring).

    * ``details["provenance"]["claim"]`` in :data:`PROVENANCE_DECISIVE`: the verdict is that class,
      probabilities 1 for it and 0 for the others, ``decided_by="provenance"``.
    * in :data:`PROVENANCE_LIKELIHOOD_RATIOS`: ``p'_c = p_c LR_c / sum_k p_k LR_k`` with
      ``LR_authentic = 1`` (the verdict is left for :meth:`FusionModel.verdict` to make).
    * anything else (no manifest, remote or unreadable, a neutral manifest): unchanged.
    """
    fused = dict(fused)
    claim = provenance_claim(findings)
    name = str(claim.get("claim")) if claim else ""
    base = {k: claim.get(k) for k in ("claim", "sentence", "trusted", "signer", "state")} if claim else {}
    if name in PROVENANCE_DECISIVE:
        cls = PROVENANCE_DECISIVE[name]
        probs = {c: (1.0 if c == cls else 0.0) for c in CLASSES}
        return Decision(cls, probs, fused, "provenance", {**base, "decides": cls})
    lr = PROVENANCE_LIKELIHOOD_RATIOS.get(name)
    if not lr:
        return Decision("inconclusive", fused, fused)
    w = {c: fused[c] * float(lr.get(c, 1.0)) for c in CLASSES}
    total = sum(w.values()) or 1.0
    probs = {c: w[c] / total for c in CLASSES}
    return Decision("inconclusive", probs, fused, "fusion", {**base, "likelihood_ratios": dict(lr)})


def _class_weight(name: str) -> float:
    try:
        from verity.core.registry import get_detector_class

        return float(get_detector_class(name).weight)
    except KeyError:
        return 1.0


def fuse(findings: list[Finding], model: FusionModel | None = None) -> tuple[str, dict[str, float]]:
    """Return ``(verdict, probabilities)`` for a list of findings (fusion and the provenance rule)."""
    model = model or FusionModel.load()
    d = model.decide(findings)
    return d.verdict, d.probabilities


#: A finding whose contribution to a class logit reaches this (odds times e) is decisive evidence.
DECISIVE_LOGIT = 1.0
#: What a finding did to the verdict (see :func:`evidence_roles`).
ROLES: tuple[str, ...] = ("decisive", "outweighed", "minor", "abstained")


def evidence_roles(verdict: str, findings: list[Finding], model: FusionModel) -> dict[str, dict[str, Any]]:
    """What each finding did to the verdict, for displays that must agree with it.

    Per detector: ``contribution`` (class -> its additive logit, :meth:`FusionModel.contributions`)
    and ``role``:

    * ``decisive``: it drives the verdict: a fake verdict's logit rose by at least
      :data:`DECISIVE_LOGIT` through it, or, for an ``authentic`` verdict, it lowered every fake class
      it speaks for by at least that much;
    * ``outweighed``: decisive on its own, but pointing away from the verdict (a suspicious finding
      on an authentic or inconclusive verdict, an authentic-looking one on a fake verdict);
    * ``minor``: it gave a score but moved no class by :data:`DECISIVE_LOGIT` (small or zero weight);
    * ``abstained``: no score.

    Displays show heatmaps by default and red or green badges only for ``decisive`` findings.
    """
    contrib = model.contributions(findings)
    out: dict[str, dict[str, Any]] = {}
    for f in findings:
        c = {k: v[f.detector] for k, v in contrib.items() if f.detector in v}
        if f.score is None:
            role = "abstained"
        else:
            up = max(c.values(), default=0.0)
            down = min(c.values(), default=0.0)
            if verdict in FAKE_CLASSES and c.get(verdict, 0.0) >= DECISIVE_LOGIT:
                role = "decisive"
            elif verdict == "authentic" and c and down <= -DECISIVE_LOGIT and up < DECISIVE_LOGIT:
                role = "decisive"
            elif up >= DECISIVE_LOGIT or down <= -DECISIVE_LOGIT:
                role = "outweighed"
            else:
                role = "minor"
        out[f.detector] = {"role": role, "contribution": {k: round(v, 3) for k, v in c.items() if v}}
    return out


_WORDS = {
    "authentic": "shows no sign of generation or manipulation",
    "ai_generated": "looks AI-generated",
    "edited": "looks edited (parts of it were altered)",
    "face_manipulated": "contains a manipulated face",
    "inconclusive": "cannot be called either way with confidence",
}
_DECLARED = {"ai_generated": "is AI-generated", "edited": "contains generative-AI content composited into it (edited)"}


def _pcts(p: dict[str, float]) -> str:
    from verity.core.display import format_probability

    return ", ".join(f"{c.replace('_', ' ')} {format_probability(v)}" for c, v in sorted(p.items(), key=lambda kv: -kv[1]))


def explain(
    verdict: str, probabilities: dict[str, float], findings: list[Finding], model: FusionModel,
    decision: Decision | None = None, intervals: bool = True,
) -> str:
    """One paragraph built from the evidence that moved the verdict most (and the provenance rule).

    ``intervals=False`` leaves out the calibration interval (for verdicts the calibration does not
    describe, such as a video's).
    """
    if decision is not None and decision.decided_by == "provenance" and decision.rule:
        r = decision.rule
        who = "" if r.get("trusted") else " (an untrusted signer's declaration: anyone can sign one)"
        return (
            f"The image {_DECLARED.get(verdict, verdict)} according to its Content Credentials: decided by "
            f"provenance{who}, a signed declaration rather than a statistical estimate. "
            f"{str(r.get('sentence', '')).rstrip('.')}. The detectors alone gave: {_pcts(decision.fused_probabilities)}."
        )
    # calibration intervals describe the fused probabilities; after the provenance rule they no longer apply
    text = _explain_fusion(verdict, probabilities, findings, model, intervals=intervals and not (decision and decision.rule))
    if decision is not None and decision.rule and decision.rule.get("likelihood_ratios"):
        r = decision.rule
        lr = ", ".join(
            f"{c.replace('_', ' ')} x{v:g}" if v >= 1 else f"{c.replace('_', ' ')} x1/{1 / v:.0f}"
            for c, v in r["likelihood_ratios"].items()
        )
        text += (
            f" Content Credentials: {str(r.get('sentence', '')).rstrip('.')}; applied after fusion as bounded "
            f"evidence (odds {lr}; the detectors alone gave {_pcts(decision.fused_probabilities)})."
        )
    return text


def _explain_fusion(
    verdict: str, probabilities: dict[str, float], findings: list[Finding], model: FusionModel, intervals: bool = True
) -> str:
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
    from verity.core.display import format_interval, format_probability

    pct = {c: format_probability(p) for c, p in probabilities.items()}
    head = f"The image {_WORDS[verdict]}"
    best = max(probabilities, key=probabilities.get)
    if verdict != "inconclusive":
        iv = model.intervals(probabilities, findings).get(best) if intervals else None  # calibration data
        shown = f"{best.replace('_', ' ')} {pct[best]}"
        if iv:
            shown += f", {format_interval(iv['low'], iv['high'], iv['level'])}"
        head += f" ({shown})."
    else:
        head += f": the most likely class, {best.replace('_', ' ')}, has only {pct[best]}."
    if not sentences:
        n = sum(f.score is not None and f.detector not in POST_FUSION_DETECTORS for f in findings)
        sentences.append(f"{n} detector{'' if n == 1 else 's'} gave an opinion; none found strong evidence.")
    return " ".join([head] + sentences)
