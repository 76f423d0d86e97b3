"""Run the metadata and provenance detectors over a folder tree and count what they find.

Usage::

    python -m verity.eval.survey /work/shared/data [--detectors a,b,...] [--json out.json]
    python -m verity.eval.survey /work/shared/data/real_camera --thumbnail-splices

Prints, per top-level folder/sub-folder, how many files each detector flagged for
``ai_generated`` or ``edited`` (score > 0.5 with that label), scored as authentic (< 0.5), or
abstained, the verdicts of the metadata-only fused pipeline, and the median time per detector.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

#: The detectors of this area, in report order.
METADATA_DETECTORS = (
    "generator_metadata",
    "digital_source_type",
    "exif_camera",
    "edit_history",
    "exif_thumbnail",
    "jpeg_qtables",
    "c2pa",
)


def survey(root: Path, detectors: tuple[str, ...] = METADATA_DETECTORS, progress: bool = True) -> dict:
    """Analyse every image under ``root``; return counts per ``<class>/<source>`` folder."""
    from tqdm import tqdm

    from verity.core.errors import InputError
    from verity.core.io import iter_image_paths, load_sample
    from verity.pipeline import Pipeline

    pipe = Pipeline(list(detectors))
    paths = iter_image_paths([str(root)])
    counts: dict[str, dict] = defaultdict(lambda: {"files": 0, "verdicts": Counter(), "detectors": defaultdict(Counter)})
    times: dict[str, list[float]] = defaultdict(list)
    for p in tqdm(paths, desc="survey", unit="img", disable=not progress, file=sys.stderr):
        rel = Path(p).relative_to(root)
        group = "/".join(rel.parts[:2]) if len(rel.parts) > 2 else str(rel.parent)
        c = counts[group]
        c["files"] += 1
        try:
            sample = load_sample(p)
        except InputError as e:
            c["verdicts"][f"unreadable ({e.code})"] += 1
            continue
        t0 = time.perf_counter()
        v = pipe.analyze(sample)
        times["total"].append(time.perf_counter() - t0)
        c["verdicts"][v.verdict] += 1
        for f in v.findings:
            times[f.detector].append(v.timings.get(f.detector, 0.0))
            d = c["detectors"][f.detector]
            if f.score is None:
                d["abstain"] += 1
            elif f.score > 0.5:
                for lab in f.labels:
                    d[f"flag_{lab}"] += 1
                if not f.labels:
                    d["no_opinion"] += 1
            elif f.score < 0.5:
                d["authentic"] += 1
            else:
                d["no_opinion"] += 1
    return {
        "groups": {g: {"files": c["files"], "verdicts": dict(c["verdicts"]),
                       "detectors": {k: dict(v) for k, v in c["detectors"].items()}} for g, c in sorted(counts.items())},
        "median_ms": {k: round(1000 * statistics.median(v), 2) for k, v in times.items() if v},
        "p95_ms": {k: round(1000 * sorted(v)[int(0.95 * (len(v) - 1))], 2) for k, v in times.items() if v},
    }  # fmt: skip


def thumbnail_splice_experiment(folder: Path, seed: int = 0, max_pixels: float = 4e6) -> dict:
    """How often :func:`~verity.provenance.thumbnail.compare_thumbnail` sees a splice.

    For every photo under ``folder`` with an EXIF preview (and at most ``max_pixels``), paste the
    same box of another photo of the folder (resized to the same size) into it, for boxes with
    sides of 10-15%, 15-35% and 35-50% of the picture, and compare with the photo's own preview.
    Also reports the untouched photos. Returns, per condition, the largest changed region of
    every photo and the share reaching the ``exif_thumbnail`` thresholds (1% and 2%).
    """
    import io

    import numpy as np
    from PIL import Image

    from verity.core.io import iter_image_paths, load_sample
    from verity.lab.edits import random_box
    from verity.provenance.metadata import exif_thumbnail
    from verity.provenance.thumbnail import compare_thumbnail

    rng = np.random.default_rng(seed)
    pairs = []
    for p in iter_image_paths([str(folder)]):
        s = load_sample(p)
        t = exif_thumbnail(s.info.get("exif"))
        if t is None or s.width * s.height > max_pixels:
            continue
        try:
            with Image.open(io.BytesIO(t)) as im:
                pairs.append((s.pixels, np.asarray(im.convert("RGB"))))
        except Exception:  # noqa: BLE001
            continue
    out: dict[str, dict] = {}
    conds = [("untouched", None), ("box 10-15%", (0.1, 0.15)), ("box 15-35%", (0.15, 0.35)), ("box 35-50%", (0.35, 0.5))]
    for name, frac in conds:
        largest = []
        for i, (px, th) in enumerate(pairs):
            img = px
            if frac is not None:
                donor = pairs[(i + 7) % len(pairs)][0]
                h, w = px.shape[:2]
                x0, y0, x1, y1 = random_box(rng, (h, w), frac)
                d = np.asarray(Image.fromarray(donor).resize((w, h)))
                img = px.copy()
                img[y0:y1, x0:x1] = d[y0:y1, x0:x1]
            largest.append(compare_thumbnail(img, th).largest_region_fraction)
        a = np.array(largest)
        out[name] = {"n": len(a), "at_1pct": float((a >= 0.01).mean()) if len(a) else 0.0,
                     "at_2pct": float((a >= 0.02).mean()) if len(a) else 0.0,
                     "max": float(a.max()) if len(a) else 0.0, "median": float(np.median(a)) if len(a) else 0.0}
    return out


def format_report(result: dict) -> str:
    """Plain-text tables of :func:`survey`'s result."""
    lines = []
    for g, c in result["groups"].items():
        lines.append(f"{g}: {c['files']} files; verdicts {c['verdicts']}")
        for det, d in c["detectors"].items():
            lines.append(f"    {det:20s} " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
    lines.append("median ms: " + ", ".join(f"{k} {v}" for k, v in result["median_ms"].items()))
    lines.append("p95 ms:    " + ", ".join(f"{k} {v}" for k, v in result["p95_ms"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verity.eval.survey", description=__doc__.splitlines()[0])
    ap.add_argument("root", help="folder of images (e.g. /work/shared/data)")
    ap.add_argument("--detectors", default=",".join(METADATA_DETECTORS), help="comma-separated detector names")
    ap.add_argument("--json", help="also write the counts to this JSON file")
    ap.add_argument("--thumbnail-splices", action="store_true",
                    help="instead: measure how often the EXIF-preview comparison sees pasted boxes (camera photos)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root}: not a folder", file=sys.stderr)
        return 3
    if args.thumbnail_splices:
        res = thumbnail_splice_experiment(root)
        for k, v in res.items():
            print(f"{k:12s} n={v['n']} changed region >=1%: {v['at_1pct']:.2f}  >=2%: {v['at_2pct']:.2f}  "
                  f"median {v['median']:.4f}  max {v['max']:.4f}")
        return 0
    res = survey(root, tuple(d for d in args.detectors.split(",") if d))
    print(format_report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
