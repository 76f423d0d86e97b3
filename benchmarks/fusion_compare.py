"""Score several fusion files on the test side of one ``verity train fusion`` plan.

The plan (datasets, ``--held-out`` datasets, caps, seed) is given with the same options as ``verity
train fusion``; the detector scores come from its ``--cache`` (nothing is run: examples the cache
lacks are left out and counted). For each ``--fusion NAME=FILE`` (``hand_set`` for the hand-set
weights) and each view of the test side it prints, separately for the ``--data`` dataset and for
the ``--held-out`` datasets: ai_generated ROC AUC and TPR at 5 % FPR against real photos (from the
fused ai_generated probability), the share of real photos given a fake verdict, the share of
generated images called ``ai_generated``, and the share of verdicts that are ``inconclusive``.

Example::

    .venv/bin/python benchmarks/fusion_compare.py --data ../shared/data \\
        --held-out /work/corpus out/semantic_heldout.csv --authentic 200 --edited 100 --generated 200 \\
        --val-max 100 --cache out/fz/cache.json \\
        --fusion shipped=src/verity/models/weights/fusion.json --fusion refit=out/fz/fusion.json
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def _metrics(model, exs, scores, root):
    from sklearn.metrics import roc_auc_score

    from verity.train.fusion import _findings

    rows = []
    for e in exs:
        fs = _findings(scores[e.key(root)])
        p = model.probabilities(fs)
        rows.append((e.label, p["ai_generated"], model.verdict(p, fs)))
    lab = np.array([r[0] for r in rows])
    pa = np.array([r[1] for r in rows])
    ver = np.array([r[2] for r in rows])
    real, gen = lab == "authentic", lab == "ai_generated"
    out = {"n_real": int(real.sum()), "n_gen": int(gen.sum())}
    if real.any() and gen.any():
        sel = real | gen
        out["auc"] = roc_auc_score(gen[sel].astype(int), pa[sel])
        t = np.quantile(pa[real], 0.95)
        out["tpr5"] = float(np.mean(pa[gen] > t))
    out["real_fake"] = float(np.mean(np.isin(ver[real], ("ai_generated", "edited", "face_manipulated")))) if real.any() else np.nan
    out["gen_called"] = float(np.mean(ver[gen] == "ai_generated")) if gen.any() else np.nan
    out["inconclusive"] = float(np.mean(ver == "inconclusive"))
    return out


def main() -> int:
    from verity.core.fusion import FusionModel
    from verity.train import fusion as F

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    F.add_arguments(p)
    p.add_argument("--fusion", action="append", required=True, metavar="NAME=FILE",
                   help="a fusion file to score (NAME=hand_set for the hand-set weights); repeatable")
    p.add_argument("--side", default="test", choices=("calib", "test"))
    args = p.parse_args()
    if not args.cache or not os.path.isfile(args.cache):
        sys.stderr.write("fusion_compare: --cache must name the score cache of a `verity train fusion` run\n")
        return 2
    plan = F.plan_run(args)
    cache = F.ScoreCache(args.cache)
    root = plan.root
    held_paths = {r.path for r in plan.records_all} - {r.path for r in plan.records}
    exs = [e for e in plan.examples if e.side == args.side and e.item.edit is None]
    have = [e for e in exs if all(d in cache.scores.get(e.key(root), {}) for d in plan.det_names)]
    print(f"{args.side} side: {len(have)} of {len(exs)} real/generated examples scored in the cache")
    models = {}
    for spec in args.fusion:
        name, _, path = spec.partition("=")
        models[name] = FusionModel() if path in ("", "hand_set") else FusionModel.load(path)
    views = sorted({e.view for e in have}, key=lambda v: (v != "eq", v))
    print("| fusion | data | view | real | gen | ai AUC | TPR@5%FPR | real called fake | gen called ai | inconclusive |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        for part, keep in (("data", lambda e: e.item.path not in held_paths),
                           ("held-out", lambda e: e.item.path in held_paths)):
            for view in views:
                sel = [e for e in have if e.view == view and keep(e)]
                if not sel:
                    continue
                m = _metrics(model, sel, cache.scores, root)
                f = lambda k: ("-" if k not in m or m[k] != m[k] else f"{m[k]:.3f}")  # noqa: E731
                print(f"| {name} | {part} | {view} | {m['n_real']} | {m['n_gen']} | {f('auc')} | {f('tpr5')} | "
                      f"{f('real_fake')} | {f('gen_called')} | {f('inconclusive')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
