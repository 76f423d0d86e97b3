"""``analyze(sample) -> Verdict``: run the detectors, fuse their findings, explain the verdict."""

from __future__ import annotations

import time
from collections.abc import Sequence

from verity.core.fusion import FusionModel, evidence_roles, explain
from verity.core.registry import Detector, create_detector, get_detector_class, list_detectors
from verity.core.types import Finding, Sample, Verdict


class Pipeline:
    """A reusable set of detector instances plus a fusion model.

    Parameters
    ----------
    detectors : sequence of str, optional
        Names to run; default: every registered detector whose ``default`` is True and whose
        optional dependencies are installed.
    fusion : FusionModel, optional
        Default: :meth:`FusionModel.load` (the shipped fitted weights, else hand-set).
    """

    def __init__(self, detectors: Sequence[str] | None = None, fusion: FusionModel | None = None):
        names = list(detectors) if detectors else list_detectors(default_only=True)
        self.skipped: dict[str, str] = {}
        self.detectors: list[Detector] = []
        for n in names:
            cls = get_detector_class(n)
            if not cls.available():
                self.skipped[n] = f"optional dependency missing ({', '.join(cls.requires)})"
                continue
            self.detectors.append(create_detector(n))
        self.fusion = fusion or FusionModel.load()

    def run_findings(self, sample: Sample) -> tuple[list[Finding], dict[str, float], list[str]]:
        findings: list[Finding] = []
        timings: dict[str, float] = {}
        errors: list[str] = []
        for det in self.detectors:
            t0 = time.perf_counter()
            try:
                if not det.accepts(sample):
                    continue
                f = det.run(sample)
            except Exception as e:  # a detector bug must not lose the other findings
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                errors.append(f"{det.name}: {type(e).__name__}: {msg}")
                f = det.abstain(f"detector failed: {type(e).__name__}: {msg}")
            finally:
                timings[det.name] = time.perf_counter() - t0
            findings.append(f)
        return findings, timings, errors

    def analyze(self, sample: Sample) -> Verdict:
        t0 = time.perf_counter()
        findings, timings, errors = self.run_findings(sample)
        decision = self.fusion.decide(findings)
        probs, verdict = decision.probabilities, decision.verdict
        faces = [face for f in findings for face in f.faces]
        timings["total"] = time.perf_counter() - t0
        warnings = []
        if sample.frames > 1:
            what = {"GIF": "animated GIF", "WEBP": "animated WebP", "TIFF": "multi-page TIFF"}.get(sample.format, "file")
            note = (f"Only frame 1 of the {sample.frames} in this {what} was analysed; "
                    "the other frames were not checked.")
            warnings.append(note)
        return Verdict(
            verdict=verdict,
            probabilities=probs,
            findings=findings,
            path=sample.path,
            faces=faces,
            explanation=explain(verdict, probs, findings, self.fusion, decision),
            decided_by=decision.decided_by,
            fused_probabilities=decision.fused_probabilities,
            provenance=decision.rule,
            image={
                "format": sample.format,
                "width": sample.width,
                "height": sample.height,
                "mode": sample.mode,
                "bit_depth": sample.bit_depth,
                "has_alpha": sample.alpha is not None,
                "orientation": sample.orientation,
                "frames": sample.frames,
                "bytes": len(sample.data),
                "sha256": sample.sha256,
            },
            timings=timings,
            errors=errors,
            # calibration intervals describe fused probabilities; after the provenance rule they do not apply
            intervals={} if decision.rule else self.fusion.intervals(probs, findings),
            roles=evidence_roles(verdict, findings, self.fusion),
            warnings=warnings,
        )


_DEFAULT: Pipeline | None = None


def analyze(sample: Sample, detectors: Sequence[str] | None = None) -> Verdict:
    """Analyse one sample with the default pipeline (or the named detectors)."""
    global _DEFAULT
    if detectors:
        return Pipeline(detectors).analyze(sample)
    if _DEFAULT is None:
        _DEFAULT = Pipeline()
    return _DEFAULT.analyze(sample)
