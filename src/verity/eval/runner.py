"""Run a pipeline over a labelled dataset: raw files, equalised re-encodes and perturbed copies.

:func:`evaluate` never raises on a bad file: unreadable inputs are collected in
:attr:`EvalRun.unreadable` with their reason, and an analysis that fails is recorded as an error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import InputError
from verity.core.types import CLASSES, VERDICTS
from verity.train.data import Equalize, Perturbation, Record, equalize_pixels, perturb

RAW = "raw"
EQUALIZED = "equalized"


@dataclass
class Prediction:
    """One analysed variant of one dataset item."""

    path: str
    label: str
    source: str
    group: str
    variant: str
    verdict: str
    probabilities: dict[str, float]
    scores: dict[str, float | None]
    seconds: float
    width: int = 0
    height: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def p_fake(self) -> float:
        return 1.0 - float(self.probabilities.get("authentic", 0.0))


@dataclass
class EvalRun:
    """Everything :func:`evaluate` produced."""

    predictions: list[Prediction]
    unreadable: list[tuple[str, str]]
    variants: list[str]
    detectors: list[str]
    settings: dict[str, Any]
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, variant, reason)

    def by_variant(self, variant: str) -> list[Prediction]:
        return [p for p in self.predictions if p.variant == variant]

    @property
    def base_variant(self) -> str:
        """The variant perturbations are compared with (equalised when run, else raw)."""
        return EQUALIZED if EQUALIZED in self.variants else RAW


def variant_names(equalize: Equalize | None, perturbations: Sequence[Perturbation]) -> list[str]:
    """``raw``, then ``equalized`` when ``equalize`` is set, then each perturbation's name."""
    return [RAW] + ([EQUALIZED] if equalize else []) + [p.name for p in perturbations]


def evaluate(
    records: Sequence[Record],
    pipeline: Any,
    equalize: Equalize | None = None,
    perturbations: Sequence[Perturbation] = (),
    progress: bool | None = None,
    loader: Callable[[Record], bytes] | None = None,
) -> EvalRun:
    """Analyse every record raw, equalised and perturbed.

    Parameters
    ----------
    records : sequence of Record
    pipeline : verity.pipeline.Pipeline
        Anything with ``analyze(sample) -> Verdict`` and a ``detectors`` list.
    equalize : Equalize or None
        When set, each image is also decoded, stripped of metadata and re-encoded this way.
    perturbations : sequence of Perturbation
        Applied to the decoded pixels of the equalised copy (the raw pixels when ``equalize`` is
        None); see :func:`verity.train.data.perturb`.
    progress : bool or None
        Show a tqdm bar on stderr (None: only on a terminal).
    loader : callable, optional
        ``loader(record) -> bytes``; default reads ``record.path`` with the size limit.

    Returns
    -------
    EvalRun
    """
    from tqdm import tqdm

    from verity.core.io import decode, read_bytes

    variants = variant_names(equalize, perturbations)
    preds: list[Prediction] = []
    unreadable: list[tuple[str, str]] = []
    failed: list[tuple[str, str, str]] = []
    load = loader or (lambda r: read_bytes(r.path))
    bar = tqdm(
        records, desc="evaluating", unit="img", file=sys.stderr, disable=(None if progress is None else not progress),
        dynamic_ncols=True,
    )

    def run(rec: Record, variant: str, data: bytes) -> np.ndarray | None:
        try:
            sample = decode(data, path=rec.path)
        except InputError as e:
            if variant == RAW:
                raise
            failed.append((rec.path, variant, f"re-encoded copy unreadable: {e}"))
            return None
        t0 = time.perf_counter()
        try:
            v = pipeline.analyze(sample)
        except Exception as e:  # noqa: BLE001 - an evaluation must survive a pipeline bug
            failed.append((rec.path, variant, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
            return None
        preds.append(
            Prediction(
                path=rec.path, label=rec.label, source=rec.source, group=rec.group, variant=variant,
                verdict=v.verdict, probabilities={c: float(v.probabilities.get(c, 0.0)) for c in CLASSES},
                scores={f.detector: (None if f.score is None else float(f.score)) for f in v.findings},
                seconds=time.perf_counter() - t0, width=sample.width, height=sample.height, errors=list(v.errors),
            )
        )
        return sample.pixels

    for rec in bar:
        try:
            data = load(rec)
            pixels = run(rec, RAW, data)
        except InputError as e:
            unreadable.append((rec.path, str(e)))
            continue
        except OSError as e:
            unreadable.append((rec.path, f"cannot read file: {e.strerror or e}"))
            continue
        if pixels is None:
            continue
        base = pixels
        if equalize is not None:
            eq_pixels = run(rec, EQUALIZED, equalize_pixels(pixels, equalize))
            if eq_pixels is None:
                continue
            base = eq_pixels
        for p in perturbations:
            run(rec, p.name, perturb(base, p, equalize))
        bar.set_postfix(unreadable=len(unreadable), refresh=False)
    bar.close()
    det_names = [d.name for d in getattr(pipeline, "detectors", [])]
    return EvalRun(
        predictions=preds,
        unreadable=unreadable,
        variants=variants,
        detectors=det_names,
        settings={
            "equalize": equalize.name if equalize else None,
            "perturbations": [p.name for p in perturbations],
            "n_records": len(records),
        },
        failed=failed,
    )


def refuse(run: EvalRun, fusion: Any) -> EvalRun:
    """The same run with every prediction's probabilities and verdict recomputed by another fusion
    model from the detector scores it recorded (no detector is run again).

    Parameters
    ----------
    run : EvalRun
    fusion : verity.core.fusion.FusionModel

    Returns
    -------
    EvalRun
        A copy whose predictions carry ``fusion``'s probabilities and verdicts.
    """
    from dataclasses import replace

    from verity.core.registry import get_detector_class
    from verity.core.types import Finding

    meta: dict[str, tuple[list[str], str]] = {}

    def findings(scores: dict[str, float | None]) -> list[Finding]:
        out = []
        for d, v in scores.items():
            if d not in meta:
                try:
                    cls = get_detector_class(d)
                    meta[d] = (list(cls.labels), cls.kind)
                except KeyError:
                    meta[d] = ([], "metadata")
            out.append(Finding(detector=d, score=v, labels=meta[d][0], kind=meta[d][1]))
        return out

    preds = []
    for p in run.predictions:
        fs = findings(p.scores)
        probs = fusion.probabilities(fs)
        preds.append(replace(p, verdict=fusion.verdict(probs, fs),
                             probabilities={c: float(probs.get(c, 0.0)) for c in CLASSES}))
    return replace(run, predictions=preds)


def load_predictions(path: str | Path) -> EvalRun:
    """Read a ``predictions.csv`` written by :func:`verity.eval.report.write_outputs` back into an
    :class:`EvalRun` (detector scores rounded to 5 decimals; an empty score, abstained or not run,
    becomes ``None``). Use it with :func:`refuse` to evaluate another fusion without running the
    detectors again.

    Raises
    ------
    verity.train.data.DatasetError
        When the file is missing or is not such a table.
    """
    import csv

    from verity.train.data import DatasetError

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    need = {"path", "label", "variant", "verdict"} | {f"p_{c}" for c in CLASSES}
    if not rows or not need <= set(rows[0]):
        raise DatasetError(f"{path} is not a predictions.csv written by verity eval")
    dets = [k[len("score_"):] for k in rows[0] if k.startswith("score_")]
    preds = []
    try:
        for r in rows:
            preds.append(Prediction(
                path=r["path"], label=r["label"], source=r.get("source", ""), group=r.get("group", ""),
                variant=r["variant"], verdict=r["verdict"],
                probabilities={c: float(r[f"p_{c}"]) for c in CLASSES},
                scores={d: (float(r[f"score_{d}"]) if r.get(f"score_{d}") else None) for d in dets},
                seconds=float(r.get("seconds") or 0.0), width=int(r.get("width") or 0), height=int(r.get("height") or 0),
                errors=[e for e in (r.get("errors") or "").split(" | ") if e],
            ))
    except ValueError as e:
        raise DatasetError(f"{path}: bad value ({e})") from None
    variants = list(dict.fromkeys(p.variant for p in preds))
    eq = [v for v in variants if v == EQUALIZED]
    return EvalRun(
        predictions=preds, unreadable=[], variants=variants, detectors=dets,
        settings={"equalize": "from " + str(path) if eq else None,
                  "perturbations": [v for v in variants if v not in (RAW, EQUALIZED)],
                  "n_records": len({p.path for p in preds}), "scores_from": str(path)},
    )


def make_synthetic_edits(
    records: Sequence[Record],
    n: int,
    out_dir: str | Path,
    seed: int = 0,
    crop_side: tuple[int, int] = (384, 1024),
) -> tuple[list[Record], list[tuple[str, str]]]:
    """Write ``n`` synthetic "edited" images made from the authentic records into ``out_dir``.

    Each is a random native-resolution crop of an authentic photo (grayscale sources skipped),
    altered by :func:`verity.train.data.synthetic_edit` (splice from another authentic photo,
    copy-move or inpainting fill, drawn in turn) and saved as a metadata-free JPEG at quality 60..95.
    The new record keeps the host's group (so group-wise held-out selection still holds) and gets
    the source ``synthetic/<kind>``.

    Returns
    -------
    records : list of Record
        The edited images written.
    skipped : list of (path, reason)
        Hosts that could not be read.
    """
    from verity.core.io import load_sample
    from verity.train.data import EDIT_KINDS, random_geometry, synthetic_edit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hosts = [r for r in records if r.label == "authentic" and "gray" not in r.source]
    made: list[Record] = []
    skipped: list[tuple[str, str]] = []
    if not hosts or n <= 0:
        return made, skipped
    order = [hosts[i] for i in rng.permutation(len(hosts))]
    i = 0
    attempts = 0
    while len(made) < n and attempts < 3 * n + len(order):
        host = order[i % len(order)]
        donor_rec = order[(i + 1 + int(rng.integers(0, max(1, len(order) - 1)))) % len(order)]
        i += 1
        attempts += 1
        try:
            hp = random_geometry(load_sample(host.path).pixels, rng, crop_side=crop_side, resize_prob=0.0)
            dp = load_sample(donor_rec.path).pixels if donor_rec.path != host.path else None
        except InputError as e:
            skipped.append((host.path, str(e)))
            continue
        if min(hp.shape[:2]) < 64:
            continue
        kind = EDIT_KINDS[len(made) % len(EDIT_KINDS)]
        data, _mask, kind = synthetic_edit(hp, dp, rng, kind=kind)
        path = out / f"edited_{len(made):04d}_{kind}.jpg"
        path.write_bytes(data)
        made.append(Record(path=str(path), label="edited", group=host.group, source=f"synthetic/{kind}",
                           extra={"host": host.path}))
    return made, skipped


__all__ = ["EQUALIZED", "RAW", "EvalRun", "Prediction", "evaluate", "load_predictions", "make_synthetic_edits", "refuse",
           "variant_names"]
