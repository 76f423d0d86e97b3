"""At which scale should the shipped semantic file score an image?

Its head was trained on equalised copies resampled to a 384-1024 px short side
(:func:`verity.train.equalize.equalize_training_image`), not on native pixels. This scores held-out
corpus images (the ``--heldout-csv`` that ``verity train semantic-head`` writes), each re-encoded as
JPEG q90 without metadata, the way the detector does (up to 6 crops of 224 px, mean of the top-2
logits) after five treatments: native pixels, resampled to a short side of 384, 512 or 640 px, and
clamped into 384-1024 px. Printed per treatment: ROC AUC, TPR at the threshold that calls 5 % of the
real photos fake, and the shares of real and generated images above 0.5.

Example::

    .venv/bin/python benchmarks/semantic_scale_probe.py out/semantic_heldout.csv --n 130
"""

from __future__ import annotations

import argparse
import csv
import io

import numpy as np


def main() -> int:
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    from verity.models.runtime import run_outputs
    from verity.ops.npr import rescale, score_image
    from verity.train.data import load_pixels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("heldout", help="CSV path,label,... of held-out images")
    ap.add_argument("--n", type=int, default=130, help="images per class (random, seed 0)")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.heldout, newline="")))
    rng = np.random.default_rng(0)
    picked = []
    for lab in ("ai_generated", "authentic"):
        rs = [r for r in rows if r["label"] == lab]
        picked += [rs[i] for i in sorted(rng.permutation(len(rs))[: a.n])]

    def logits(b):
        return np.asarray(run_outputs("learned_semantic", b)["logit"], np.float64).reshape(-1)

    def jpeg90(px):
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="JPEG", quality=90)
        return np.asarray(Image.open(buf).convert("RGB"))

    def short(s):
        return lambda p: rescale(p, s / min(p.shape[:2]))

    def clamp(p):
        m = min(p.shape[:2])
        return rescale(p, 384 / m) if m < 384 else rescale(p, 1024 / m) if m > 1024 else p

    treatments = {"native": lambda p: p, "short 384": short(384), "short 512": short(512),
                  "short 640": short(640), "clamp 384-1024": clamp}
    y, s = [], {k: [] for k in treatments}
    for r in picked:
        try:
            px = jpeg90(load_pixels(r["path"]))
        except Exception:  # noqa: BLE001 - unreadable rows are left out
            continue
        y.append(int(r["label"] == "ai_generated"))
        for k, f in treatments.items():
            s[k].append(score_image(f(px), logits, 224, 6, 2)["logit"])
    y = np.array(y)
    print(f"{(y == 1).sum()} generated, {(y == 0).sum()} real")
    print("| treatment | ROC AUC | TPR at 5 % FPR | real above 0.5 | generated above 0.5 |\n|---|---:|---:|---:|---:|")
    for k, v in s.items():
        v = np.array(v)
        thr = np.quantile(v[y == 0], 0.95)
        print(f"| {k} | {roc_auc_score(y, v):.3f} | {(v[y == 1] > thr).mean():.3f} | {(v[y == 0] > 0).mean():.3f} | "
              f"{(v[y == 1] > 0).mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
