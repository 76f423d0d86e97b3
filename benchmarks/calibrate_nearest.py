"""Measure the cosine similarities behind ``verity lab nearest``'s near-copy threshold.

    .venv/bin/python benchmarks/calibrate_nearest.py DIR [DIR ...] [--heldout 0.2] [--crops 4]

The images are split by a hash of their path into a gallery (the "training set") and held-out
images. Positives are what a memorising generator would emit: 64 px downscales of crops of gallery
images whose side is 50-100 % of the short side, anywhere in the image. Negatives are the same kind of
crops of held-out images (not in the gallery, so never copies). For each crop the best cosine
similarity to the gallery's views (:func:`verity.lab.nearest.views`) is computed. Prints quantiles
and the false-positive / true-positive rates at candidate thresholds.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--heldout", type=float, default=0.2)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    import os

    import torch

    from verity.lab.data import list_images, read_rgb, resize_area, split_heldout
    from verity.lab.fd import FeatureExtractor
    from verity.lab.nearest import l2n, views

    torch.set_num_threads(a.threads)
    files = sorted({f.resolve() for d in a.dirs for f in list_images(d)})
    root = os.path.commonpath([str(f) for f in files])
    gallery, held = split_heldout(files, root, a.heldout)
    fe = FeatureExtractor.shared()
    rng = np.random.default_rng(0)

    def crops(img):
        h, w = img.shape[:2]
        s = min(h, w)
        out = []
        for _ in range(a.crops):
            side = int(s * rng.uniform(0.5, 1.0))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            out.append(resize_area(img[y:y + side, x:x + side], 64))
        return out

    gfeat, pos = [], []
    for f in gallery:
        im = read_rgb(f, 384)
        gfeat.append(fe.features(views(im, 64)[0]))
        pos += crops(im)
    neg = [c for f in held for c in crops(read_rgb(f, 384))]
    g = l2n(np.concatenate(gfeat))
    sp = (l2n(fe.features(pos)) @ g.T).max(1)
    sn = (l2n(fe.features(neg)) @ g.T).max(1)
    q = [0.01, 0.05, 0.5, 0.95, 0.99]
    res = {"gallery": len(gallery), "heldout": len(held), "positives": len(sp), "negatives": len(sn),
           "pos_quantiles": dict(zip(map(str, q), np.quantile(sp, q).round(3).tolist())),
           "neg_quantiles": dict(zip(map(str, q), np.quantile(sn, q).round(3).tolist())),
           "neg_max": round(float(sn.max()), 3),
           "thresholds": {str(t): {"tpr": round(float((sp >= t).mean()), 3), "fpr": round(float((sn >= t).mean()), 3)}
                          for t in (0.8, 0.85, 0.88, 0.9, 0.92, 0.95)}}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
