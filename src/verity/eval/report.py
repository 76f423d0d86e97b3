"""Turn an :class:`~verity.eval.runner.EvalRun` into metrics (``summarize``) and files
(``write_outputs``: ``report.md``, ``metrics.json``, ``predictions.csv``, ``roc.png``,
``reliability.png``).
"""

from __future__ import annotations

import csv
import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.types import CLASSES, VERDICTS
from verity.eval.metrics import (
    FAKE_CLASSES,
    Accuracy,
    BinaryDetection,
    CalibrationError,
    ConfusionMatrix,
    PerSourceTable,
    _nan_to_none,
    ece_noise_floor,
)
from verity.eval.runner import EQUALIZED, RAW, EvalRun, Prediction

N_BINS = 15


def _detection(preds: list[Prediction], cls: str | None) -> BinaryDetection:
    """Class ``cls`` (positives, scored by P(cls)) against authentic (negatives); ``None``: every
    fake class against authentic, scored by 1 - P(authentic)."""
    m = BinaryDetection()
    sel = [p for p in preds if p.label == "authentic" or (p.label == cls if cls else p.label != "authentic")]
    if sel:
        s = [p.probabilities[cls] if cls else p.p_fake for p in sel]
        m.update(s, [int(p.label != "authentic") for p in sel])
    return m


def summarize_variant(preds: list[Prediction], detectors: list[str]) -> dict[str, Any]:
    """Metrics of one variant: accuracy, confusion matrix, per-class detection, ECE, per source,
    per detector."""
    labels = [p.label for p in preds]
    verdicts = [p.verdict for p in preds]
    acc = Accuracy()
    acc.update(verdicts, labels)
    decided = [p for p in preds if p.verdict != "inconclusive"]
    dacc = Accuracy()
    dacc.update([p.verdict for p in decided], [p.label for p in decided])
    top = Accuracy()
    top.update([max(CLASSES, key=p.probabilities.__getitem__) for p in preds], labels)
    cm = ConfusionMatrix()
    cm.update(verdicts, labels)
    ece = CalibrationError(N_BINS)
    if preds:
        ece.update(np.array([[p.probabilities[c] for c in CLASSES] for p in preds]), [CLASSES.index(x) for x in labels])
    ece_floor = ece_noise_floor([[p.probabilities[c] for c in CLASSES] for p in preds], N_BINS) if preds else float("nan")
    ece_fake = CalibrationError(N_BINS)
    if preds:
        ece_fake.update([p.p_fake for p in preds], [int(x != "authentic") for x in labels])
    src = PerSourceTable()
    src.update([p.source for p in preds], labels, verdicts, [p.probabilities for p in preds])
    present = [c for c in FAKE_CLASSES if c in labels]
    detection = {c: _detection(preds, c).compute() for c in present}
    detection["any_fake"] = _detection(preds, None).compute()
    auth = [p for p in preds if p.label == "authentic"]
    per_det: dict[str, Any] = {}
    for d in detectors:
        abst = sum(1 for p in preds if p.scores.get(d) is None)
        entry: dict[str, Any] = {"abstain_rate": abst / len(preds) if preds else float("nan"), "auc": {}}
        for c in present + ["any_fake"]:
            sel = [p for p in preds if p.label == "authentic" or (p.label == c if c != "any_fake" else p.label != "authentic")]
            m = BinaryDetection()
            if sel:
                m.update([0.5 if p.scores.get(d) is None else p.scores[d] for p in sel], [int(p.label != "authentic") for p in sel])
            entry["auc"][c] = m.compute()["auc"]
        per_det[d] = entry
    secs = [p.seconds for p in preds]
    return {
        "n": len(preds),
        "labels": {c: labels.count(c) for c in CLASSES if c in labels},
        "accuracy": acc.compute(),
        "decided_accuracy": dacc.compute(),
        "top_class_accuracy": top.compute(),
        "coverage": len(decided) / len(preds) if preds else float("nan"),
        "fpr_authentic": (sum(p.verdict in FAKE_CLASSES for p in auth) / len(auth)) if auth else float("nan"),
        "inconclusive_rate": verdicts.count("inconclusive") / len(preds) if preds else float("nan"),
        "confusion": {"labels": list(VERDICTS), "matrix": cm.compute().tolist()},
        "detection": detection,
        "ece": ece.compute(),
        "ece_noise_floor": ece_floor,
        "ece_fake_binary": ece_fake.compute(),
        "per_source": src.compute(),
        "detectors": per_det,
        "seconds_per_image_median": float(np.median(secs)) if secs else float("nan"),
    }


def stability(run: EvalRun) -> dict[str, Any]:
    """Per perturbation: share of verdicts unchanged against the base variant (same file), and the
    false-positive rate on authentic images (share given a fake-class verdict), with the base's."""
    base = run.base_variant
    base_by = {p.path: p for p in run.by_variant(base)}
    out: dict[str, Any] = {}
    for v in run.settings.get("perturbations", []):
        ps = [p for p in run.by_variant(v) if p.path in base_by]
        same = [p.verdict == base_by[p.path].verdict for p in ps]
        auth = [p for p in ps if p.label == "authentic"]
        fake = [p for p in ps if p.label != "authentic"]
        out[v] = {
            "base": base,
            "n": len(ps),
            "unchanged": float(np.mean(same)) if same else float("nan"),
            "fake_prob_shift_median": float(np.median([abs(p.p_fake - base_by[p.path].p_fake) for p in ps])) if ps else float("nan"),
            "fpr_authentic": (sum(p.verdict in FAKE_CLASSES for p in auth) / len(auth)) if auth else float("nan"),
            "fpr_authentic_base": (sum(base_by[p.path].verdict in FAKE_CLASSES for p in auth) / len(auth)) if auth else float("nan"),
            "detection_rate": (sum(p.verdict in FAKE_CLASSES for p in fake) / len(fake)) if fake else float("nan"),
            "any_fake_auc": _detection(ps, None).compute()["auc"],
        }
    if base == EQUALIZED and RAW in run.variants:
        # the equalised copy is the raw file re-saved as JPEG (or PNG) with every piece of metadata gone
        raw_by = {p.path: p for p in run.by_variant(RAW)}
        ps = [p for p in run.by_variant(base) if p.path in raw_by]
        auth = [p for p in ps if p.label == "authentic"]
        out["raw_to_equalized"] = {
            "base": RAW,
            "n": len(ps),
            "unchanged": float(np.mean([p.verdict == raw_by[p.path].verdict for p in ps])) if ps else float("nan"),
            "fake_prob_shift_median": float(np.median([abs(p.p_fake - raw_by[p.path].p_fake) for p in ps])) if ps else float("nan"),
            "fpr_authentic": (sum(p.verdict in FAKE_CLASSES for p in auth) / len(auth)) if auth else float("nan"),
            "fpr_authentic_base": (sum(raw_by[p.path].verdict in FAKE_CLASSES for p in auth) / len(auth)) if auth else float("nan"),
            "detection_rate": (sum(p.verdict in FAKE_CLASSES for p in ps if p.label != "authentic")
                               / max(1, sum(p.label != "authentic" for p in ps))),
            "any_fake_auc": _detection(ps, None).compute()["auc"],
        }
    return out


def summarize(run: EvalRun, **context: Any) -> dict[str, Any]:
    """The whole ``metrics.json`` document (NaN become ``null``)."""
    doc = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        **context,
        "settings": run.settings,
        "detectors": run.detectors,
        "variants": {v: summarize_variant(run.by_variant(v), run.detectors) for v in run.variants},
        "stability": stability(run),
        "unreadable": [{"path": p, "reason": r} for p, r in run.unreadable],
        "failed": [{"path": p, "variant": v, "reason": r} for p, v, r in run.failed],
    }
    return _nan_to_none(doc)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def write_predictions(run: EvalRun, path: Path) -> None:
    """One row per (image, variant): labels, verdict, the four probabilities, each detector's score
    (empty when it abstained or did not run)."""
    dets = sorted({d for p in run.predictions for d in p.scores} | set(run.detectors))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "source", "group", "variant", "verdict", *[f"p_{c}" for c in CLASSES],
                    "width", "height", "seconds", *[f"score_{d}" for d in dets], "errors"])
        for p in run.predictions:
            w.writerow([p.path, p.label, p.source, p.group, p.variant, p.verdict,
                        *[f"{p.probabilities[c]:.6f}" for c in CLASSES], p.width, p.height, f"{p.seconds:.4f}",
                        *["" if p.scores.get(d) is None else f"{p.scores[d]:.5f}" for d in dets],
                        " | ".join(p.errors)])


def _plots(run: EvalRun, out: Path) -> list[str]:
    """``roc.png`` (fake classes vs authentic, per variant) and ``reliability.png`` (top-label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in run.variants if v in ("raw", "equalized")] or run.variants[:1]
    files = []
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 4.6), squeeze=False)
    for ax, v in zip(axes[0], variants):
        preds = run.by_variant(v)
        for c in [*[c for c in FAKE_CLASSES if any(p.label == c for p in preds)], None]:
            m = _detection(preds, c)
            r = m.compute()
            if math.isnan(r["auc"]):
                continue
            fpr, tpr, _ = m.curve()
            name = c or "any fake"
            ax.plot(fpr, tpr, lw=1.8 if c else 1.2, ls="-" if c else "--",
                    label=f"{name} (AUC {r['auc']:.3f}, n={r['n_pos']}+{r['n_neg']})")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate (authentic)", ylabel="true-positive rate",
               title=f"ROC, {v}")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)
    files.append("roc.png")

    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 4.6), squeeze=False)
    for ax, v in zip(axes[0], variants):
        preds = run.by_variant(v)
        m = CalibrationError(N_BINS)
        if preds:
            m.update(np.array([[p.probabilities[c] for c in CLASSES] for p in preds]), [CLASSES.index(p.label) for p in preds])
        edges, counts, conf, freq = m.bins()
        centers = (edges[:-1] + edges[1:]) / 2
        nz = counts > 0
        ax.bar(centers[nz], freq[nz], width=1 / N_BINS, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
        ax.scatter(conf[nz], freq[nz], s=np.clip(counts[nz], 8, 200), color="C3", zorder=3, label="bin (size = count)")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class probability)", ylabel="share correct",
               title=f"reliability, {v}: ECE {m.compute():.3f}")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)
    files.append("reliability.png")
    return files


def _f(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def render_markdown(doc: dict[str, Any], pictures: list[str]) -> str:
    """The human report (``report.md``) from a :func:`summarize` document."""
    L: list[str] = []
    st = doc["settings"]
    L.append(f"# verity evaluation: {doc.get('dataset', '')}\n")
    L.append(f"- date: {doc['created']}; machine: {doc.get('machine_note') or doc['machine']}")
    if doc.get("command"):
        L.append(f"- command: `{doc['command']}`")
    L.append(f"- images: {st['n_records']} listed, {len(doc['unreadable'])} unreadable; "
             f"equalize: {st['equalize'] or 'none'}; perturbations: {', '.join(st['perturbations']) or 'none'}")
    if doc.get("selection"):
        L.append(f"- selection: {doc['selection']}")
    L.append(f"- detectors ({len(doc['detectors'])}): {', '.join(doc['detectors']) or 'none'}")
    L.append(f"- fusion: {doc.get('fusion', 'shipped')}")
    if doc.get("note"):
        L.append(f"\n> {doc['note']}")
    L.append("\n`raw` analyses the files as they are (containers and metadata included); `equalized` "
             "decodes, strips all metadata and re-encodes every image identically, so nothing wins by "
             "reading the container. Detection AUCs score class c against authentic by P(c); `any fake` "
             "uses 1 - P(authentic). TPR@x% is the detection rate at a threshold that flags at most x% of "
             "authentic images. *Accuracy* counts `inconclusive` as wrong; *decided* accuracy leaves those "
             "images out; *top-class* accuracy ignores the inconclusive threshold. *ECE floor*: the ECE a "
             "perfectly calibrated model with the same probabilities would show on this many images "
             "(sampling noise alone); on small sets an ECE near it is as good as the set can show.\n")
    L.append("## Summary\n")
    L.append("| variant | n | accuracy | decided acc. (coverage) | top-class acc. | FPR authentic | ECE (15 bins) | ECE floor | any-fake AUC | any-fake TPR@1% | any-fake TPR@5% |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, m in doc["variants"].items():
        a = m["detection"]["any_fake"]
        L.append(f"| {v} | {m['n']} | {_f(m['accuracy'], True)} | {_f(m['decided_accuracy'], True)} ({_f(m['coverage'], True)}) "
                 f"| {_f(m['top_class_accuracy'], True)} | {_f(m['fpr_authentic'], True)} | {_f(m['ece'])} "
                 f"| {_f(m.get('ece_noise_floor'))} | {_f(a['auc'])} | {_f(a['tpr@1%fpr'], True)} | {_f(a['tpr@5%fpr'], True)} |")
    L.append("\n## Detection per class (vs authentic)\n")
    L.append("| variant | class | positives | negatives | ROC AUC | AP | TPR@1% FPR | TPR@5% FPR |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for v, m in doc["variants"].items():
        for c, r in m["detection"].items():
            L.append(f"| {v} | {c} | {r['n_pos']} | {r['n_neg']} | {_f(r['auc'])} | {_f(r['ap'])} | "
                     f"{_f(r['tpr@1%fpr'], True)} | {_f(r['tpr@5%fpr'], True)} |")
    if doc["stability"]:
        L.append("\n## Robustness to perturbations\n")
        L.append("Each perturbed copy is made from the decoded pixels of its *base* copy; *unchanged* is the share "
                 "of verdicts equal to the base's. `raw_to_equalized` compares the equalised copy (re-saved, "
                 "all metadata gone) with the file as it came.\n")
        L.append("| perturbation | base | n | verdict unchanged | FPR authentic (base) | detection rate | any-fake AUC | median shift of P(fake) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for v, s in doc["stability"].items():
            L.append(f"| {v} | {s['base']} | {s['n']} | {_f(s['unchanged'], True)} | {_f(s['fpr_authentic'], True)} ({_f(s['fpr_authentic_base'], True)}) "
                     f"| {_f(s['detection_rate'], True)} | {_f(s['any_fake_auc'])} | {_f(s['fake_prob_shift_median'])} |")
    for v in [x for x in ("raw", "equalized") if x in doc["variants"]]:
        m = doc["variants"][v]
        L.append(f"\n## Confusion matrix, {v} (rows: truth, columns: verdict)\n")
        labs = m["confusion"]["labels"]
        L.append("| truth \\ verdict | " + " | ".join(labs) + " |")
        L.append("|---|" + "---:|" * len(labs))
        for lab, row in zip(labs, m["confusion"]["matrix"]):
            if sum(row):
                L.append(f"| {lab} | " + " | ".join(str(x) for x in row) + " |")
        L.append(f"\n## Per source, {v}\n")
        L.append("| source | label | n | accuracy | FPR / detection rate | inconclusive | mean P(not authentic) |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for r in m["per_source"]:
            rate = r.get("fpr", r.get("detection_rate"))
            kind = "FPR" if "fpr" in r else "det."
            L.append(f"| {r['source']} | {r['label']} | {r['n']} | {_f(r['accuracy'], True)} | {kind} {_f(rate, True)} "
                     f"| {_f(r['inconclusive_rate'], True)} | {_f(r['mean_p_fake'])} |")
        if m["detectors"]:
            classes = list(next(iter(m["detectors"].values()))["auc"])
            L.append(f"\n## Per detector, {v} (score alone; abstentions count as 0.5)\n")
            L.append("| detector | abstains | " + " | ".join(f"AUC {c}" for c in classes) + " |")
            L.append("|---|---:|" + "---:|" * len(classes))
            for d, e in m["detectors"].items():
                L.append(f"| {d} | {_f(e['abstain_rate'], True)} | " + " | ".join(_f(e["auc"][c]) for c in classes) + " |")
    if pictures:
        L.append("\n## Pictures\n")
        for p in pictures:
            L.append(f"![{p}]({p})")
    if doc["unreadable"]:
        L.append(f"\n## Unreadable files ({len(doc['unreadable'])})\n")
        for u in doc["unreadable"][:200]:
            L.append(f"- `{u['path']}`: {u['reason']}")
        if len(doc["unreadable"]) > 200:
            L.append(f"- ... and {len(doc['unreadable']) - 200} more (see metrics.json)")
    if doc["failed"]:
        L.append(f"\n## Analyses that failed ({len(doc['failed'])})\n")
        for u in doc["failed"][:50]:
            L.append(f"- `{u['path']}` ({u['variant']}): {u['reason']}")
    return "\n".join(L) + "\n"


def write_outputs(run: EvalRun, out: str | Path, **context: Any) -> dict[str, Any]:
    """Write ``predictions.csv``, ``metrics.json``, ``roc.png``, ``reliability.png`` (when matplotlib
    is installed) and ``report.md`` into ``out``; return the metrics document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = summarize(run, **context)
    write_predictions(run, out / "predictions.csv")
    pictures: list[str] = []
    try:
        pictures = _plots(run, out) if run.predictions else []
    except ImportError:
        doc["pictures_note"] = "matplotlib is not installed: no pictures (pip install 'verity[eval]')"
    doc["pictures"] = pictures
    (out / "metrics.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(doc, pictures), encoding="utf-8")
    return doc


__all__ = ["render_markdown", "stability", "summarize", "summarize_variant", "write_outputs", "write_predictions"]
