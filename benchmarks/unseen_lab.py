"""Unseen-generator check: the shipped learned detectors and the fused verdict on samples of the lab's
generators (never in any detector's training) against real portraits prepared the way the lab
prepares its training data.

Real side: congress portraits the learned detectors were not trained on, cut as the lab's framed
crops (centre crop 0.8 of the short side at 0.42 of the height) and reduced to the samples' size.
Every image is re-encoded as a metadata-free JPEG q90 before analysis (equalised).

Example (sample folders from ``verity lab sample --run RUN --n 120 --out DIR --seed 7``)::

    .venv/bin/python benchmarks/unseen_lab.py --data ../shared/data \
        --fakes gan=/tmp/lead/unseen/gan diffusion=/tmp/lead/unseen/diffusion
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data folder (with manifest.csv)")
    ap.add_argument("--fakes", nargs="+", required=True, metavar="NAME=DIR", help="folders of lab samples (PNG)")
    ap.add_argument("--n-real", type=int, default=120, help="real crops (default 120)")
    ap.add_argument("--min-side", type=int, default=None,
                    help="override the learned detectors' smallest scored side (to reproduce the figures "
                         "before it was raised from 32 to 128 px)")
    args = ap.parse_args(argv)
    if args.min_side is not None:
        import verity.detectors.learned._base as learned_base

        learned_base.MIN_SIDE = args.min_side

    import numpy as np
    from PIL import Image
    from sklearn.metrics import roc_auc_score, roc_curve

    from verity.core.io import load_sample
    from verity.core.registry import create_detector
    from verity.lab.data import ImageSet
    from verity.pipeline import analyze
    from verity.train.data import encode
    from verity.train.detector import select_records

    fams = {}
    for spec in args.fakes:
        name, _, d = spec.partition("=")
        files = sorted(glob.glob(str(Path(d) / "*.png")))
        if not files:
            print(f"unseen_lab: no PNG samples in {d}", file=sys.stderr)
            return 2
        fams[name] = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    size = min(min(px.shape[:2]) for v in fams.values() for px in v)
    chosen, _ = select_records(args.data, 0)
    used = {r.path for r in chosen}
    portraits = sorted(p for p in glob.glob(str(Path(args.data) / "faces/congress_portraits/*")) if p not in used)
    ims = ImageSet([Path(f) for f in portraits], size, max_side=384, crop_mode="center", crop_scale=0.8, crop_y=0.42).load()
    real = list(ims.fixed_crops(args.n_real, seed=7))
    dets = {n: create_detector(n) for n in ("learned_semantic", "learned_npr")}

    def score(pxs):
        rows = []
        for px in pxs:
            s = load_sample(encode(px, "jpeg", 90), name="x.jpg")
            row = {n: d.run(s).score for n, d in dets.items()}
            v = analyze(s)
            row["P(ai_generated)"], row["verdict"] = v.probabilities["ai_generated"], v.verdict
            rows.append(row)
        return rows

    R = score(real)
    print(f"real: {len(R)} congress portrait crops at {size} px (from {len(portraits)} portraits unused by the learned detectors)")
    print(f"  verdicts: {dict(Counter(r['verdict'] for r in R))}")
    print("| generator | n | score | AUC | TPR@5%FPR | median real | median fake |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for fam, pxs in fams.items():
        F = score(pxs)
        y = np.r_[np.zeros(len(R)), np.ones(len(F))]
        for k in ("learned_semantic", "learned_npr", "P(ai_generated)"):
            s = np.array([r[k] if r[k] is not None else 0.5 for r in R + F], float)  # abstention = 0.5
            fpr, tpr, _ = roc_curve(y, s)
            print(f"| {fam} | {len(F)} | {k} | {roc_auc_score(y, s):.3f} | {np.interp(0.05, fpr, tpr):.3f} | "
                  f"{np.median(s[y == 0]):.3f} | {np.median(s[y == 1]):.3f} |")
        print(f"  {fam} verdicts: {dict(Counter(r['verdict'] for r in F))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
