"""Leave-one-family-out and leave-one-source-out evaluation of the semantic head (issue 12).

``verity train lofo --data ../shared/data --data CORPUS`` measures how the semantic branch's recipe
(frozen ImageNet features + an L2 logistic head, :func:`verity.train.detector._fit_head`) generalises
to generators and cameras it never saw:

* every image is turned into ``--crops`` size- and format-blind training files
  (:func:`verity.train.equalize.equalize_training_image`: metadata gone, random size, texture-matched
  crop, baseline JPEG at a random quality, the same for both classes); the centre 224 px of each is
  described by the frozen extractor once (cached in ``--cache``);
* **leave-one-family-out**: for each generator family F and each of ``--folds`` group folds of the
  real photos, the head is fitted on every other family's images and the other folds' real photos,
  then scores F and the held-out fold. A real photo is scored only by heads that did not see its
  group; a fake of F by heads that saw no image of F (its score is the mean over the folds). The
  table gives F's ROC AUC against all real photos, and the TPR at the threshold that calls 5 % of
  those real photos fake;
* **leave-one-source-out** (real photos): for each real source S and each fold of the fake groups,
  the head is fitted without S and without that fold; S's photos are scored against the held-out
  fakes (AUC) and against the 5 % FPR threshold of the other sources' out-of-fold scores;
* ``--shipped``: the same crops scored by the shipped ``learned_semantic`` ONNX file, zero-shot (it
  was trained on ``../shared/data``, so only the corpus rows are unseen data for it).

An image's score is the mean of its crops' logits. Families are the manifest's ``family`` column
(the corpus builder writes it) or, without one, the generated image's source folder; ``--merge
a=b`` pools small families (``sdxl_turbo=sdxl``). Families with fewer than ``--min-family`` images
are pooled into ``other`` for the table; they still count as training fakes for the other folds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True,
                   help="dataset folder with manifest.csv (repeatable: ../shared/data, a built corpus)")
    p.add_argument("--crops", type=int, default=3, help="equalised crops per image (default 3)")
    p.add_argument("--folds", type=int, default=5, help="group folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-family", type=int, default=10,
                   help="families with fewer images are pooled into 'other' in the table (default 10)")
    p.add_argument("--merge", default="", help="comma-separated a=b: count family a as b (e.g. sdxl_turbo=sdxl)")
    p.add_argument("--no-faces", action="store_true", help="leave out face folders (faces/...) of the data")
    p.add_argument("--backbone", default="both", choices=("mobilenetv2", "efficientnet_lite0", "both"))
    p.add_argument("--cache", default=".cache/lofo", help="feature cache folder (default .cache/lofo)")
    p.add_argument("--shipped", action="store_true", help="also score the shipped learned_semantic file zero-shot")
    p.add_argument("--limit", type=int, default=None, help="at most this many images per source (smoke tests)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", help="write the tables as JSON here")
    p.add_argument("--markdown", help="write the tables as Markdown here")


@dataclass
class Entry:
    path: str
    y: int
    family: str  # generator family, "real" for photos
    source: str
    group: str


def collect(specs: list[str], merge: dict[str, str] | None = None, faces: bool = True,
            limit: int | None = None) -> list[Entry]:
    """Entries of every dataset in ``specs`` (authentic and ai_generated only)."""
    from verity.train.data import read_dataset

    merge = merge or {}
    out: list[Entry] = []
    for spec in specs:
        per_source: Counter = Counter()
        for r in read_dataset(spec):
            if r.label not in ("authentic", "ai_generated"):
                continue
            if not faces and r.source.startswith("faces/"):
                continue
            per_source[r.source] += 1
            if limit and per_source[r.source] > limit:
                continue
            y = int(r.label == "ai_generated")
            fam = r.extra.get("family") or (r.source.split("/")[-1] if y else "real")
            fam = "real" if not y else merge.get(fam, fam)
            out.append(Entry(r.path, y, fam, r.source, f"{spec}|{r.group}"))
    return out


def _key(e: Entry, crops: int, seed: int, backbone: str) -> str:
    st = Path(e.path).stat()
    return hashlib.sha256(f"{e.path}|{st.st_size}|{st.st_mtime_ns}|{crops}|{seed}|{backbone}|v1".encode()).hexdigest()[:24]


def equalised_crops(path: str, crops: int, seed: int, side: int = 224) -> list[np.ndarray]:
    """``crops`` equalised training files of one image, decoded, centre ``side`` px each."""
    from verity.train.data import decode_pixels, load_pixels
    from verity.train.equalize import equalize_training_image

    px = load_pixels(path)
    rng = np.random.default_rng([seed, int(hashlib.sha256(path.encode()).hexdigest()[:8], 16)])
    out = []
    for _ in range(crops):
        c = decode_pixels(equalize_training_image(px, rng))
        y0, x0 = (c.shape[0] - side) // 2, (c.shape[1] - side) // 2
        out.append(np.ascontiguousarray(c[y0:y0 + side, x0:x0 + side]))
    return out


def compute_features(entries: list[Entry], args) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-crop features (N*crops, D), the entry index of each row, and shipped scores per crop."""
    import tempfile

    import onnxruntime as ort
    import torch
    from tqdm import tqdm

    from verity.train.detector import _semantic_features, export_onnx

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, args.threads))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, args.threads)
    shipped = None
    if args.shipped:
        from verity.models import weight_path

        shipped = ort.InferenceSession(str(weight_path("learned_semantic")), opts, providers=["CPUExecutionProvider"])
    sess = None
    feats, owner, ship = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, e in enumerate(tqdm(entries, desc="features", file=sys.stderr)):
            f = cache / f"{_key(e, args.crops, args.seed, args.backbone)}.npz"
            z = None
            if f.is_file():
                z = dict(np.load(f))
                if args.shipped and "shipped" not in z:
                    z = None
            if z is None:
                try:
                    cs = equalised_crops(e.path, args.crops, args.seed)
                except Exception as ex:  # noqa: BLE001 - report and skip unreadable files
                    print(f"skipping {e.path}: {ex}", file=sys.stderr)
                    continue
                xb = np.ascontiguousarray(np.stack(cs).transpose(0, 3, 1, 2), np.float32) / np.float32(255)
                if sess is None:
                    path = Path(tmp) / "fx.onnx"
                    export_onnx(torch, _semantic_features(torch, args.backbone), path, output="features")
                    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                z = {"features": sess.run(None, {"image": xb})[0].astype(np.float32)}
                if shipped is not None:
                    z["shipped"] = np.asarray(shipped.run(None, {"image": xb})[0], np.float32).reshape(-1)
                np.savez(f, **z)
            feats.append(z["features"])
            owner.extend([i] * len(z["features"]))
            if shipped is not None:
                ship.append(z["shipped"])
    return (np.concatenate(feats).astype(np.float64), np.asarray(owner),
            np.concatenate(ship).astype(np.float64) if shipped is not None else None)


def _fold_of(groups: list[str], k: int, seed: int) -> dict[str, int]:
    """Group -> fold, groups shuffled and dealt round robin (sizes balanced greedily)."""
    rng = np.random.default_rng(seed)
    sizes = Counter(groups)
    order = sorted(sizes, key=lambda g: (-sizes[g], g))
    order = [order[i] for i in rng.permutation(len(order))]
    order.sort(key=lambda g: -sizes[g])
    load = [0] * k
    out = {}
    for g in order:
        j = int(np.argmin(load))
        out[g] = j
        load[j] += sizes[g]
    return out


def _per_image_mean(z: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Mean of the crop values ``z`` per image (``owner`` gives each crop's image); NaN for none."""
    s = np.full(n, np.nan)
    tot = np.bincount(owner, weights=z, minlength=n)
    cnt = np.bincount(owner, minlength=n)
    ok = cnt > 0
    s[ok] = tot[ok] / cnt[ok]
    return s


def _image_scores(X, owner, head, n: int) -> np.ndarray:
    mu, sd, coef, b = head
    return _per_image_mean(((X - mu) / sd) @ coef + b, owner, n)


def _auc_tpr(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    real, fake = real[np.isfinite(real)], fake[np.isfinite(fake)]
    if len(real) == 0 or len(fake) == 0:
        return float("nan"), float("nan")
    auc = float(roc_auc_score(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake]))
    thr = float(np.quantile(real, 0.95))
    return auc, float((fake > thr).mean())


def _fold_column(entries, y: np.ndarray, cls: int, folds: int, seed: int) -> np.ndarray:
    """Per image, the group fold (0..folds-1) of the images of class ``cls``; -1 for the others."""
    idx = np.flatnonzero(y == cls)
    fold = _fold_of([entries[i].group for i in idx], folds, seed)
    out = np.full(len(entries), -1)
    for i in idx:
        out[i] = fold[entries[i].group]
    return out


def leave_one_family_out(entries, X, owner, folds: int, seed: int, min_family: int, fit) -> list[dict]:
    """Rows ``family, n, auc, tpr_at_5fpr`` (see the module docstring)."""
    n = len(entries)
    y = np.array([e.y for e in entries])
    fam = np.array([e.family for e in entries])
    rfold = _fold_column(entries, y, 0, folds, seed)
    row_y, row_fam, row_fold = y[owner], fam[owner], rfold[owner]
    counts = Counter(fam[y == 1])
    # every family is left out on its own; a fake is scored by heads that saw no image of its family,
    # a real photo by heads that did not see its fold (one score per family left out, averaged)
    fake_s = np.full(n, np.nan)
    real_by_fam: dict[str, np.ndarray] = {}
    for f in sorted(counts):
        real_s = np.full(n, np.nan)
        fake_acc = np.zeros(n)
        in_f = (fam == f) & (y == 1)
        for k in range(folds):
            tr = ((row_y == 0) & (row_fold != k)) | ((row_y == 1) & (row_fam != f))
            s = _image_scores(X, owner, fit(X[tr], row_y[tr]), n)
            te_real = (y == 0) & (rfold == k)
            real_s[te_real] = s[te_real]
            fake_acc[in_f] += s[in_f] / folds
        fake_s[in_f] = fake_acc[in_f]
        real_by_fam[f] = real_s
    table = sorted(f for f, c in counts.items() if c >= min_family)
    small = sorted(f for f, c in counts.items() if c < min_family)
    rows = []
    for fams in [[f] for f in table] + ([small] if small else []):
        in_f = np.isin(fam, fams) & (y == 1)
        real = np.nanmean(np.stack([real_by_fam[f][y == 0] for f in fams]), axis=0)
        auc, tpr = _auc_tpr(real, fake_s[in_f])
        name = fams[0] if len(fams) == 1 else "other (" + ", ".join(f"{f} {counts[f]}" for f in fams) + ")"
        rows.append({"family": name, "n": int(in_f.sum()), "n_real": int((y == 0).sum()),
                     "auc": auc, "tpr_at_5fpr": tpr})
    return rows


def leave_one_source_out(entries, X, owner, folds: int, seed: int, fit) -> list[dict]:
    """Rows ``source, n, auc, fpr``: each real source scored by heads that never saw it."""
    n = len(entries)
    y = np.array([e.y for e in entries])
    src = np.array([e.source for e in entries])
    ffold = _fold_column(entries, y, 1, folds, seed)
    row_y, row_src, row_fold = y[owner], src[owner], ffold[owner]
    rows = []
    for s_name in sorted(set(src[y == 0])):
        real_s = np.zeros(n)
        fake_s = np.full(n, np.nan)
        for k in range(folds):
            tr = ((row_y == 0) & (row_src != s_name)) | ((row_y == 1) & (row_fold != k))
            s = _image_scores(X, owner, fit(X[tr], row_y[tr]), n)
            te = (y == 1) & (ffold == k)
            fake_s[te] = s[te]
            real_s += s / folds
        mine = (y == 0) & (src == s_name)
        auc, tpr = _auc_tpr(real_s[mine], fake_s[y == 1])
        # the threshold of a 5 % FPR on the fakes' held-out folds is not defined by reals; use the
        # fakes' 5th percentile instead: the share of this source's photos scored above it
        thr = float(np.nanquantile(fake_s[y == 1], 0.05))
        rows.append({"source": s_name, "n": int(mine.sum()), "auc": auc,
                     "above_fake_p05": float((real_s[mine] > thr).mean())})
    return rows


def shipped_rows(entries, owner, ship) -> list[dict]:
    """Zero-shot AUC of the shipped file per family, against every real photo of the corpus entries."""
    n = len(entries)
    z = np.log(np.clip(ship, 1e-6, 1 - 1e-6) / (1 - np.clip(ship, 1e-6, 1 - 1e-6))) if ship.min() >= 0 and ship.max() <= 1 else ship
    s = _per_image_mean(z, owner, n)
    y = np.array([e.y for e in entries])
    fam = np.array([e.family for e in entries])
    rows = []
    for f in sorted(set(fam[y == 1])):
        auc, tpr = _auc_tpr(s[y == 0], s[(y == 1) & (fam == f)])
        rows.append({"family": f, "n": int(((y == 1) & (fam == f)).sum()), "auc": auc, "tpr_at_5fpr": tpr})
    return rows


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def markdown(report: dict) -> str:
    lines = ["| held-out family | fakes | real photos | ROC AUC | TPR at 5 % FPR |", "|---|---:|---:|---:|---:|"]
    for r in report["lofo"]:
        lines.append(f"| {r['family']} | {r['n']} | {r['n_real']} | {_fmt(r['auc'])} | {_fmt(r['tpr_at_5fpr'])} |")
    aucs = [r["auc"] for r in report["lofo"] if r["auc"] == r["auc"]]
    lines.append("")
    lines.append(f"Median leave-one-family-out AUC {np.median(aucs):.3f}; families at >= 0.90: "
                 f"{sum(a >= 0.9 for a in aucs)} of {len(aucs)}.")
    lines += ["", "| held-out real source | photos | ROC AUC vs held-out fakes | share above the fakes' 5th percentile |",
              "|---|---:|---:|---:|"]
    for r in report["loso"]:
        lines.append(f"| {r['source']} | {r['n']} | {_fmt(r['auc'])} | {_fmt(r['above_fake_p05'])} |")
    if report.get("shipped"):
        lines += ["", "| family (shipped learned_semantic, zero-shot) | fakes | ROC AUC | TPR at 5 % FPR |", "|---|---:|---:|---:|"]
        for r in report["shipped"]:
            lines.append(f"| {r['family']} | {r['n']} | {_fmt(r['auc'])} | {_fmt(r['tpr_at_5fpr'])} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    from verity.train.detector import _fit_head

    merge = dict(kv.split("=", 1) for kv in args.merge.split(",") if "=" in kv)
    entries = collect(args.data, merge, faces=not args.no_faces, limit=args.limit)
    c = Counter(e.family for e in entries)
    print("images per family: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())), file=sys.stderr)
    X, owner, ship = compute_features(entries, args)
    fit = _fit_head  # the shipped head's recipe
    report = {
        "command": "verity train lofo " + " ".join(f"--data {d}" for d in args.data)
        + f" --crops {args.crops} --folds {args.folds} --seed {args.seed} --min-family {args.min_family}"
        + (f" --merge {args.merge}" if args.merge else "") + (" --no-faces" if args.no_faces else ""),
        "lofo": leave_one_family_out(entries, X, owner, args.folds, args.seed, args.min_family, fit),
        "loso": leave_one_source_out(entries, X, owner, args.folds, args.seed, fit),
    }
    if ship is not None:
        report["shipped"] = shipped_rows(entries, owner, ship)
    text = markdown(report)
    print(text)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0
