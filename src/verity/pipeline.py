"""``analyze(sample) -> Verdict``: run the detectors, fuse their findings, explain the verdict."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from verity.core.fusion import FusionModel, evidence_roles, explain
from verity.core.registry import Detector, create_detector, get_detector_class, list_detectors
from verity.core.types import Finding, Sample, Verdict


#: Environment variable with the default per-detector time limit in seconds (``0`` or ``none``: no limit).
ENV_DETECTOR_TIMEOUT = "VERITY_DETECTOR_TIMEOUT"
#: Built-in per-detector time limit, seconds. Generous: the slowest shipped detector takes well under
#: a second at 12 MP on one core; the limit is there so that a pathological input cannot hang a run.
DEFAULT_DETECTOR_TIMEOUT = 60.0

_UNSET: Any = object()


def default_detector_timeout() -> float | None:
    """``$VERITY_DETECTOR_TIMEOUT`` (seconds; ``0``/``none``/``off`` = no limit), else 60 s.

    Raises
    ------
    ConfigError
        When the variable is neither a non-negative number nor ``none``/``off``.
    """
    import math
    import os

    from verity.core.errors import ConfigError

    raw = os.environ.get(ENV_DETECTOR_TIMEOUT)
    if raw is None or not raw.strip():
        return DEFAULT_DETECTOR_TIMEOUT
    if raw.strip().lower() in ("none", "off", "0"):
        return None
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (v >= 0 and math.isfinite(v)):
        raise ConfigError(f"${ENV_DETECTOR_TIMEOUT}={raw!r} is not a number of seconds (or 'none')")
    return v or None


class Pipeline:
    """A reusable set of detector instances plus a fusion model.

    Parameters
    ----------
    detectors : sequence of str, optional
        Names to run; default: every registered detector whose ``default`` is True and whose
        optional dependencies are installed.
    fusion : FusionModel, optional
        Default: :meth:`FusionModel.load` (the shipped fitted weights, else hand-set).
    detector_timeout : float or None, optional
        Seconds one detector may take on one image (``accepts`` plus ``run``); ``None`` = no limit.
        Default: :func:`default_detector_timeout` (``$VERITY_DETECTOR_TIMEOUT``, else 60 s).

    Notes
    -----
    Python cannot kill a thread, so a time limit is enforced by a watchdog: each detector runs in
    its own daemon thread and the pipeline waits at most ``detector_timeout`` for it. A detector
    that overruns abstains (its evidence says it timed out) and its thread is *abandoned*: it keeps
    its CPU until it returns by itself and its result is discarded. Until then that detector is
    not started again by this pipeline (later images get an abstention saying it is still busy),
    so a hung detector costs at most one thread, never one per image.
    """

    def __init__(
        self,
        detectors: Sequence[str] | None = None,
        fusion: FusionModel | None = None,
        *,
        detector_timeout: float | None = _UNSET,
    ):
        if detector_timeout is _UNSET:
            detector_timeout = default_detector_timeout()
        if detector_timeout is not None and not detector_timeout > 0:
            raise ValueError(f"detector_timeout must be positive or None, got {detector_timeout!r}")
        self.detector_timeout: float | None = detector_timeout
        #: threads abandoned after a timeout, by detector name, while they are still running
        self._abandoned: dict[str, threading.Thread] = {}
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
                f = self._run_one(det, sample, errors)
            except Exception as e:  # a detector bug must not lose the other findings
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                errors.append(f"{det.name}: {type(e).__name__}: {msg}")
                f = det.abstain(f"detector failed: {type(e).__name__}: {msg}")
            finally:
                timings[det.name] = time.perf_counter() - t0
            if f is not None:
                findings.append(f)
        return findings, timings, errors

    def _run_one(self, det: Detector, sample: Sample, errors: list[str]) -> Finding | None:
        """``det.run(sample)``, or ``None`` when it does not accept the sample; under the time limit."""
        timeout = self.detector_timeout
        if timeout is None:
            return det.run(sample) if det.accepts(sample) else None
        old = self._abandoned.get(det.name)
        if old is not None:
            if old.is_alive():
                errors.append(f"{det.name}: still running after an earlier timeout; not started")
                return det.abstain(
                    f"not run: this detector timed out on an earlier image and has not finished yet "
                    f"(time limit {timeout:g} s)",
                    timed_out=True,
                    timeout_s=timeout,
                )
            del self._abandoned[det.name]
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["finding"] = det.run(sample) if det.accepts(sample) else None
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = e

        th = threading.Thread(target=work, name=f"verity-detector-{det.name}", daemon=True)
        th.start()
        th.join(timeout)
        if th.is_alive():
            self._abandoned[det.name] = th
            errors.append(f"{det.name}: timed out after {timeout:g} s")
            return det.abstain(
                f"timed out: stopped waiting after {timeout:g} s and abstained (limit: --detector-timeout "
                f"or ${ENV_DETECTOR_TIMEOUT})",
                timed_out=True,
                timeout_s=timeout,
            )
        if "error" in box:
            raise box["error"]
        return box.get("finding")

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
            generator_family=generator_family(verdict, findings),
        )


def generator_family(verdict: str, findings: Sequence[Finding]) -> dict | None:
    """The semantic branch's generator lineage when the verdict is ``ai_generated`` and the branch
    names it (its call is probable and was reliable on unseen families; else None)."""
    if verdict != "ai_generated":
        return None
    f = next((f for f in findings if f.detector == "learned_semantic" and f.score is not None), None)
    fam = (f.details or {}).get("generator_family") if f else None
    return dict(fam) if isinstance(fam, dict) and fam.get("named") else None


_DEFAULT: Pipeline | None = None


def analyze(sample: Sample, detectors: Sequence[str] | None = None) -> Verdict:
    """Analyse one sample with the default pipeline (or the named detectors)."""
    global _DEFAULT
    if detectors:
        return Pipeline(detectors).analyze(sample)
    if _DEFAULT is None:
        _DEFAULT = Pipeline()
    return _DEFAULT.analyze(sample)
