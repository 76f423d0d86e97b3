"""``verity train zed``: train the zero-shot coding-surprise model on real photos only, and measure it.

The model (:class:`verity.models.nets.ZedNet`) is a causal predictive coder of 8-bit luma: for every
pixel it predicts a discretised Laplace distribution from the pixels above and to the left. It is
trained by maximum likelihood on **real photos only** (the training side of the learned detectors'
group split, :func:`verity.train.detector.select_records`; the held-out side is never seen), with
the same augmentation chain as the learned detectors (:mod:`verity.train.augment`: rescale, crop,
flip, blur, noise, JPEG 50-100; every crop ends as decoded 8-bit pixels), at three resolutions (the
crop and its 2x and 4x reductions, :func:`verity.ops.zed.pyramid`).

No generated image is used for training or for the decision threshold: the threshold on the
surprise ``D = NLL - H`` (see :mod:`verity.ops.zed`) is a low quantile of ``D`` over the training-side
real photos, so every generator is unseen.

``--eval`` scores the held-out side like an analysis would (each image re-encoded as JPEG q90 without
metadata; real photos also after JPEG q75, halving and a sigma-1 blur) and prints AUC / TPR at 5 % FPR
of Stable Diffusion against the held-out real photos per real source, the false-positive rate of the
real photos at the threshold, per-source medians, and the same figures for "smoothness" baselines
(mean absolute Laplacian, the model's coding cost alone).

Imports torch only inside :func:`train` and :func:`export`; onnxruntime only in :func:`onnx_predictor`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

#: Augmented 256 px crops drawn per training photo, by kind.
CROPS = {"camera": 8, "face": 2}
SIDE = 256
WINDOW = 64
#: Quantile of the training-side real photos' surprise used as the decision threshold (score 0.5).
THRESHOLD_QUANTILE = 0.05


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="shared data folder (with manifest.csv)")
    p.add_argument("--out", required=True,
                   help="folder for learned_zed.onnx (an experiment: no detector uses it, nothing is shipped)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, augmentation and training (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=1500, help="optimisation steps (default 1500)")
    p.add_argument("--batch", type=int, default=32, help="64 px windows per step (default 32)")
    p.add_argument("--width", type=int, default=16, help="channels of the coder (default 16)")
    p.add_argument("--coarse", action=argparse.BooleanOptionalAction, default=True,
                   help="condition each level on its own 2x reduction (coarse-to-fine coder; default on)")
    p.add_argument("--eval", action="store_true", help="measure on the held-out side and print the tables")
    p.add_argument("--eval-only", action="store_true", help="do not train: measure the ONNX file already in --out")
    p.add_argument("--report", default=None, help="write the measurements as JSON to this file")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images per source (smoke tests)")


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def load_items(data: str | Path, seed: int, limit: int | None = None) -> list[dict]:
    """Decoded records of the learned detectors' split: dicts with path, source, label, val, kind, pixels."""
    from verity.train.detector import decode_records, select_records

    chosen, val_paths = select_records(data, seed, limit)
    return [{"path": r.path, "source": r.source, "label": int(r.label == "ai_generated"), "val": r.path in val_paths,
             "kind": kind, "pixels": px} for r, px, kind in decode_records(chosen, progress=False)]


def build_bank(items: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """Augmented luma crops of the training-side real photos at three levels: [(N,256,256), (N,128,128), (N,64,64)]."""
    from verity.ops.zed import luma8, pyramid
    from verity.train.augment import AugmentConfig, augment_crop

    cfg = AugmentConfig(sharpen_prob=0.0)
    lv: list[list[np.ndarray]] = [[], [], []]
    for it in items:
        if it["label"] != 0 or it["val"]:
            raise ValueError("the zero-shot coder trains on training-side real photos only")
        for _ in range(CROPS[it["kind"]]):
            pyr = pyramid(luma8(augment_crop(it["pixels"], SIDE, rng, cfg)), 3)
            for i in range(3):
                lv[i].append(pyr[i])
    return [np.stack(v) for v in lv]


def _batch(bank: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty((n, 1, WINDOW, WINDOW), np.float32)
    for j in range(n):
        lvl = bank[int(rng.integers(0, len(bank)))]
        img = lvl[int(rng.integers(0, len(lvl)))]
        y0 = int(rng.integers(0, img.shape[0] - WINDOW + 1))
        x0 = int(rng.integers(0, img.shape[1] - WINDOW + 1))
        out[j, 0] = img[y0:y0 + WINDOW, x0:x0 + WINDOW]
    return out


def train(bank: list[np.ndarray], steps: int, batch: int, seed: int, width: int = 16, threads: int = 1,
          coarse: bool = True):
    """Fit :class:`ZedNet` by maximum likelihood (mean NLL in bits, borders and saturated pixels skipped)."""
    import torch

    from verity.models.nets import ZedNet, discretized_laplace_logp

    torch.set_num_threads(max(1, int(threads)))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ZedNet(width=width, coarse=coarse)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    ema = None
    t0 = time.perf_counter()
    for step in range(steps):
        x = torch.from_numpy(_batch(bank, rng, batch))
        out = net(x)
        logp = discretized_laplace_logp(x, out[:, :1], out[:, 1:])
        keep = ((x > 0) & (x < 255)).float()
        keep[:, :, :2] = 0
        keep[:, :, :, :2] = 0
        keep[:, :, :, -2:] = 0
        loss = -(logp * keep).sum() / keep.sum().clamp(min=1) / np.log(2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        v = loss.item()
        ema = v if ema is None else 0.98 * ema + 0.02 * v
        if (step + 1) % max(1, steps // 10) == 0:
            print(f"  step {step + 1}/{steps}: NLL (EMA) {ema:.3f} bits/pixel  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    return net.eval()


def export(net, path: Path) -> None:
    """Export to ONNX opset 17: input ``luma`` (N, 1, H, W) float32 grey levels, output ``params`` (N, 2, H, W)."""
    import torch

    from verity.train.detector import export_onnx

    x = torch.randint(0, 256, (2, 1, 64, 64), generator=torch.Generator().manual_seed(0)).float()
    export_onnx(torch, net, path, "params", example=x, input_name="luma", output_axes={0: "n", 2: "h", 3: "w"})


def onnx_predictor(path: str | Path):
    """``batch (N, 1, h, w) float32 -> params (N, 2, h, w)`` with a one-thread onnxruntime session."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda b: sess.run(None, {"luma": np.ascontiguousarray(b, np.float32)})[0]


# --------------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------------


def mean_abs_laplacian(px: np.ndarray) -> float:
    """The "smoothness" baseline: mean absolute 3x3 Laplacian of the luma (whole image)."""
    from verity.ops.npr import texture_energy
    from verity.ops.zed import luma8

    return float(texture_energy(luma8(px).astype(np.float32)).mean())


def image_features(px: np.ndarray, predict, crop: int = 128, max_crops: int = 4) -> dict:
    """The per-image numbers the evaluation compares (surprise per level, costs, baselines)."""
    from verity.ops.zed import image_stats

    st = image_stats(px, predict, crop, max_crops)
    f = {"d": st["d"], "nll": st["nll"], "entropy": st["entropy"], "lap": mean_abs_laplacian(px)}
    for lv in st["levels"]:
        f[f"d{lv['level']}"] = lv["d"]
        f[f"nll{lv['level']}"] = lv["nll"]
        f[f"ratio{lv['level']}"] = lv["nll"] / max(lv["entropy"], 1e-9)
    return f


def _auc_tpr(neg: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """AUC and TPR at 5 % FPR of ``pos`` against ``neg`` (non-finite scores dropped; NaN without both)."""
    from verity.train.detector import _metrics

    y = np.r_[np.zeros(len(neg), np.int64), np.ones(len(pos), np.int64)]
    s = np.r_[neg, pos]
    ok = np.isfinite(s)
    m = _metrics(y[ok], s[ok])
    return m.get("auc", float("nan")), m.get("tpr_at_5fpr", float("nan"))


#: Suspicion scores compared (higher = more likely generated), each with its a-priori direction.
SCORES = {
    "zed: -(NLL - H), mean of 3 levels": lambda f: -f["d"],
    "zed level 0 only: -(NLL - H)": lambda f: -f.get("d0", np.nan),
    "zed level 1 only": lambda f: -f.get("d1", np.nan),
    "zed level 2 only": lambda f: -f.get("d2", np.nan),
    "zed slope: -(D0 - D1)": lambda f: -(f.get("d0", np.nan) - f.get("d1", np.nan)),
    "a posteriori: +(NLL - H) (reversed)": lambda f: f["d"],
    "baseline: -NLL (coding cost alone)": lambda f: -f["nll"],
    "baseline: -H (expected cost alone)": lambda f: -f["entropy"],
    "baseline: -mean |Laplacian|": lambda f: -f["lap"],
    "a posteriori: +NLL (reversed)": lambda f: f["nll"],
    "a posteriori: +mean |Laplacian| (reversed)": lambda f: f["lap"],
}


def evaluate(items: list[dict], predict) -> dict:
    """Measure every score of :data:`SCORES` on the held-out side (see the module docstring)."""
    import cv2

    from verity.train.data import resize
    from verity.train.detector import _equalized

    def feats(pxs, desc):
        t0 = time.perf_counter()
        out = [image_features(p, predict) for p in pxs]
        print(f"  {desc}: {len(pxs)} images in {time.perf_counter() - t0:.0f} s", flush=True)
        return out

    tr_real = [it for it in items if it["label"] == 0 and not it["val"]]
    va_real = [it for it in items if it["label"] == 0 and it["val"]]
    sd_all = [it for it in items if it["label"] == 1]
    f_tr = feats([_equalized(it["pixels"]) for it in tr_real], "training-side reals (threshold)")
    f_va = feats([_equalized(it["pixels"]) for it in va_real], "held-out reals")
    f_sd = feats([_equalized(it["pixels"]) for it in sd_all], "all SD images")
    big = [it for it in va_real if min(it["pixels"].shape[:2]) >= 128]
    f_pert = {
        "plain": [f for it, f in zip(va_real, f_va) if min(it["pixels"].shape[:2]) >= 128],
        "jpeg75": feats([_equalized(it["pixels"], 75) for it in big], "held-out reals, JPEG 75"),
        "resize0.5": feats([_equalized(resize(it["pixels"], 0.5)) for it in big], "held-out reals, resize 0.5"),
        "blur1": feats([_equalized(cv2.GaussianBlur(it["pixels"], (0, 0), 1.0)) for it in big], "held-out reals, blur 1"),
    }
    sd_val = np.array([it["val"] for it in sd_all])
    groups = {"all held-out reals": [True] * len(va_real),
              "camera": [it["kind"] == "camera" and it["source"].startswith("real_camera") for it in va_real],
              "processed": [it["source"].startswith("real_processed") for it in va_real],
              "faces": [it["kind"] == "face" for it in va_real]}
    res: dict = {"n": {"train_reals": len(tr_real), "heldout_reals": len(va_real), "sd_heldout": int(sd_val.sum()),
                       "sd_all": len(sd_all), "perturbed_reals": len(big)}, "scores": {}}
    for name, fn in SCORES.items():
        s_tr = np.array([fn(f) for f in f_tr])
        s_va = np.array([fn(f) for f in f_va])
        s_sd = np.array([fn(f) for f in f_sd])
        thr = float(np.nanquantile(s_tr, 1 - THRESHOLD_QUANTILE))  # flags 5 % of training-side reals
        m: dict = {"threshold": thr}
        for gname, mask in groups.items():
            neg = s_va[np.array(mask, bool)]
            if len(neg) == 0:
                continue
            m[f"heldout_sd vs {gname}"] = _auc_tpr(neg, s_sd[sd_val])
            m[f"all_sd vs {gname}"] = _auc_tpr(neg, s_sd)
        for pname, fl in f_pert.items():
            sp = np.array([fn(f) for f in fl])
            m[f"fpr_{pname}"] = float(np.mean(sp >= thr))
        m["tpr_sd_heldout_at_thr"] = float(np.mean(s_sd[sd_val] >= thr))
        m["tpr_sd_all_at_thr"] = float(np.mean(s_sd >= thr))
        med = defaultdict(list)
        for it, v in zip(va_real, s_va):
            med[it["source"]].append(v)
        for it, v in zip(sd_all, s_sd):
            med[f"{it['source']} ({'held-out' if it['val'] else 'training side'})"].append(v)
        m["median_by_source"] = {k: [float(np.nanmedian(v)), len(v)] for k, v in sorted(med.items())}
        res["scores"][name] = m
    raw = {"train_reals": f_tr, "heldout_reals": f_va, "sd": f_sd}
    res["raw"] = {k: [{q: float(x) for q, x in f.items()} for f in v] for k, v in raw.items()}
    res["raw"]["sd_heldout"] = [bool(v) for v in sd_val]
    res["raw"]["heldout_real_sources"] = [it["source"] for it in va_real]
    res["raw"]["perturbed"] = {k: [{q: float(x) for q, x in f.items()} for f in v] for k, v in f_pert.items()}
    res["raw_medians"] = {k: {q: float(np.nanmedian([f.get(q, np.nan) for f in v])) for q in sorted(v[0])}
                          for k, v in raw.items() if v}
    d_tr = np.array([f["d"] for f in f_tr])
    res["calibration"] = {"threshold_d": float(np.nanquantile(d_tr, THRESHOLD_QUANTILE)),
                          "scale_d": float(1.4826 * np.nanmedian(np.abs(d_tr - np.nanmedian(d_tr))))}
    _print(res)
    return res


def _print(res: dict) -> None:
    n = res["n"]
    print(f"\nheld-out side, JPEG q90 without metadata: {n['heldout_reals']} real ({n['perturbed_reals']} perturbed), "
          f"{n['sd_heldout']} held-out SD, {n['sd_all']} SD in all; thresholds from {n['train_reals']} training-side reals")
    cols = ["all held-out reals", "camera", "processed", "faces"]
    print(f"  {'score':38s} " + " ".join(f"{c[:12]:>13s}" for c in cols) + "  (AUC/TPR@5%FPR, held-out SD)")
    for name, m in res["scores"].items():
        vals = [m.get(f"heldout_sd vs {c}") for c in cols]
        print(f"  {name:38s} " + " ".join("          n/a" if v is None else f"{v[0]:.3f}/{v[1]:.3f}".rjust(13) for v in vals))
    print(f"  {'score':38s} " + " ".join(f"{c[:12]:>13s}" for c in cols) + "  (AUC/TPR@5%FPR, all SD)")
    for name, m in res["scores"].items():
        vals = [m.get(f"all_sd vs {c}") for c in cols]
        print(f"  {name:38s} " + " ".join("          n/a" if v is None else f"{v[0]:.3f}/{v[1]:.3f}".rjust(13) for v in vals))
    print(f"  {'score':38s} {'FPR plain':>9s} {'jpeg75':>7s} {'resize.5':>8s} {'blur1':>6s} {'TPR SD ho':>9s} {'TPR SD all':>10s}")
    for name, m in res["scores"].items():
        print(f"  {name:38s} {m['fpr_plain']:9.3f} {m['fpr_jpeg75']:7.3f} {m['fpr_resize0.5']:8.3f} "
              f"{m['fpr_blur1']:6.3f} {m['tpr_sd_heldout_at_thr']:9.3f} {m['tpr_sd_all_at_thr']:10.3f}")
    print("  raw medians (bits/pixel; lap in grey levels):")
    for k, v in res["raw_medians"].items():
        print(f"    {k:14s} " + "  ".join(f"{q} {x:.3f}" for q, x in v.items()))
    first = next(iter(res["scores"].values()))
    print(f"  medians of {next(iter(res['scores']))} by source:")
    for src, (med, cnt) in first["median_by_source"].items():
        print(f"    {src:48s} n={cnt:3d}  {med:+.3f}")
    print(f"  calibration (training-side reals): D threshold {res['calibration']['threshold_d']:.4f}, "
          f"scale {res['calibration']['scale_d']:.4f}")


# --------------------------------------------------------------------------------------------------
# command
# --------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    from verity.models import file_sha256

    t_start = time.perf_counter()
    data = Path(args.data)
    if not (data / "manifest.csv").is_file():
        print(f"verity train zed: {data}/manifest.csv not found", file=sys.stderr)
        return 4
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    out_dir = Path(args.out)
    path = out_dir / "learned_zed.onnx"
    items = load_items(data, args.seed, args.limit)
    train_reals = [it for it in items if it["label"] == 0 and not it["val"]]
    print(f"images: {len(train_reals)} training-side real photos (the only training data), "
          f"{sum(it['label'] == 0 and it['val'] for it in items)} held-out real, "
          f"{sum(it['label'] == 1 for it in items)} generated (measurement only)")
    if not args.eval_only:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("verity train zed: torch is not installed (pip install 'verity[train]')", file=sys.stderr)
            return 4
        bank = build_bank(train_reals, np.random.default_rng(args.seed + 1))
        print(f"training crops: {len(bank[0])} x 3 levels (256, 128, 64 px), augmented; {args.steps} steps x "
              f"{args.batch} windows of {WINDOW} px", flush=True)
        net = train(bank, args.steps, args.batch, args.seed, args.width, args.threads, args.coarse)
        del bank
        export(net, path)
        print(f"wrote {path}  sha256 {file_sha256(path)}  ({path.stat().st_size} bytes)")
        print(f"training took {time.perf_counter() - t_start:.0f} s")
    elif not path.is_file():
        print(f"verity train zed: {path} not found", file=sys.stderr)
        return 4
    if args.eval or args.eval_only:
        try:
            res = evaluate(items, onnx_predictor(path))
        except ImportError as e:
            print(f"verity train zed: {e.name} is needed for --eval", file=sys.stderr)
            return 4
        res["sha256"] = file_sha256(path)
        if args.report:
            Path(args.report).parent.mkdir(parents=True, exist_ok=True)
            Path(args.report).write_text(json.dumps(res, indent=1))
            print(f"report written to {args.report}")
    print(f"total time {time.perf_counter() - t_start:.0f} s")
    return 0
