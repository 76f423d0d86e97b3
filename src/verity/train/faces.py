"""``verity train faces``: train the face-manipulation network on self-blended images (SBI) and
export it to ONNX; with ``--identity``, measure the same-person threshold of ``verity identity``.

Protocol
--------
* Faces: every photo of ``faces/`` in the shared data; MTCNN finds the largest face and the fixed
  crop recipe of :mod:`verity.face.manipulation` cuts it (256 px, similarity-aligned, zoom 0.8).
  Crops and landmarks are cached under ``--cache`` (``/tmp``, never in the repository).
* Split by source and identity: the ``--held-out`` sources (default ``frl_london`` and
  ``deepface_tests``) are never seen in training or calibration; 12 % of the identities of the
  other sources form the calibration split; the rest train.
* Training pairs each real crop with a self-blended version of itself (:func:`verity.face.sbi.self_blend`)
  in the same batch. Both classes then go through the same processing: random flip, JPEG at quality
  60-95 (80 % of samples), an occasional down-up resize, area reduction to 128 px, 5 % grayscale.
  Loss: binary cross-entropy on the logit plus a Face X-ray style per-pixel loss on the 32 x 32
  blending-boundary map (target ``4 M (1 - M)`` for blended faces, 0 for real ones).
* Calibration: ``offset`` = 99th percentile of the logits of real calibration faces (JPEG 75 and 90
  copies), ``slope`` from a 1-D logistic fit of real vs blended calibration faces.
* Evaluation on the held-out sources: ROC AUC of real faces vs self-blended faces (both JPEG 90,
  one fixed-seed blend per face) and the false-positive rate (score >= 0.5) of the real held-out faces
  re-saved as JPEG 75. There is no real face-swap data here: the AUC measures SBI-vs-real only.

Imports torch only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_HELD_OUT = ("frl_london", "deepface_tests")
CACHE_VERSION = 2
#: deepface_tests has no identity labels; these groups of file numbers were made by eye.
DEEPFACE_PEOPLE = {
    "p01": [1, 2, 4, 5, 6, 7, 10, 11], "p02": [3, 12, 53, 54, 55, 56], "p03": [8, 9, 47, 48, 49, 50, 51],
    "p04": [13, 14, 15, 57, 58], "p05": [16, 17, 59, 61, 62], "p06": [18, 19, 67], "p07": [20, 21],
    "p08": [22, 23], "p09": [24, 25], "p10": [26, 27, 28, 42, 43, 44, 45, 46], "p11": [29, 30, 31, 32, 33],
    "p12": [34, 35, 36, 37], "p13": [38, 39, 40, 41],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from verity.face.manipulation import MODEL_FILE

    p.add_argument("--data", required=True, help="shared data folder (with manifest.csv and faces/)")
    p.add_argument("--out", default=str(MODEL_FILE), help=f"ONNX file to write (default {MODEL_FILE})")
    p.add_argument("--cache", default="/tmp/verity_faces_cache", help="folder for cached face crops (default /tmp/verity_faces_cache)")
    p.add_argument("--held-out", default=",".join(DEFAULT_HELD_OUT), help="comma-separated face sources kept for evaluation")
    p.add_argument("--steps", type=int, default=600, help="optimisation steps (default 600)")
    p.add_argument("--batch", type=int, default=32, help="batch size, half real and half blended (default 32)")
    p.add_argument("--minutes", type=float, default=13.0, help="stop training after this many minutes (default 13)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: faster than 2 on a busy 2-core machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", default=None, help="write the metrics as JSON to this file")
    p.add_argument("--limit", type=int, default=None, help="at most this many photos per source (smoke tests)")
    p.add_argument("--identity", action="store_true", help="measure the identity threshold (FAR/FRR) instead of training")


# --------------------------------------------------------------------------------------------- data


def face_items(data: Path, limit: int | None = None) -> list[dict]:
    """Face photos listed in ``manifest.csv``: path, source and identity."""
    import re

    man = data / "manifest.csv"
    if not man.is_file():
        raise FileNotFoundError(f"{man} not found")
    deep = {n: k for k, v in DEEPFACE_PEOPLE.items() for n in v}
    out, per_source = [], {}
    with man.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["class"] != "faces":
                continue
            extra = dict(kv.split("=", 1) for kv in row["extra"].split(";") if "=" in kv)
            ident = extra.get("identity") or extra.get("group") or row["path"]
            if row["source"] == "deepface_tests":
                m = re.search(r"img(\d+)", row["path"])
                ident = "deepface:" + (deep.get(int(m.group(1)), row["path"]) if m else row["path"])
            n = per_source.get(row["source"], 0)
            if limit is not None and n >= limit:
                continue
            per_source[row["source"]] = n + 1
            out.append({"path": str(data / row["path"]), "source": row["source"], "identity": ident, "sha256": row["sha256"]})
    return out


def build_cache(items: list[dict], cache: Path) -> dict:
    """Detect, align and cache one 256 px crop per photo (the largest face).

    Returns
    -------
    dict
        ``crops`` (N, 256, 256, 3) uint8, ``landmarks`` (N, 5, 2) in crop pixels, ``gray`` (N,) bool,
        ``source``, ``identity``, ``sha256`` (N,) str arrays, plus ``emb_crops`` (N, 160, 160, 3).
    """
    from tqdm import tqdm

    from verity.core.errors import InputError
    from verity.core.io import load_sample
    from verity.face.align import EMBEDDING, align_face
    from verity.face.detect import detect_faces
    from verity.face.manipulation import CUT

    key = hashlib.sha256(("|".join(sorted(i["sha256"] for i in items)) + f"v{CACHE_VERSION}").encode()).hexdigest()[:16]
    path = cache / f"faces_{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    cache.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {k: [] for k in ("crops", "landmarks", "gray", "source", "identity", "sha256", "emb_crops")}
    missed = 0
    for it in tqdm(items, desc="faces: detect and align", file=sys.stderr, unit="img"):
        try:
            s = load_sample(it["path"])
        except InputError:
            missed += 1
            continue
        img = np.ascontiguousarray(s.display_pixels())
        dets = detect_faces(img, min_score=0.9)  # the threshold the shipped face weights were trained with
        if not dets:
            missed += 1
            continue
        d = max(dets, key=lambda q: q.width * q.height)
        crop, m = align_face(img, d.landmarks, CUT)
        lm = d.landmarks @ m[:, :2].T + m[:, 2]
        rows["crops"].append(crop)
        rows["landmarks"].append(lm.astype(np.float32))
        rows["gray"].append(bool(s.mode in ("L", "LA", "I;16", "1") or np.ptp(img[::4, ::4].astype(np.int16), axis=2).max() <= 2))
        rows["source"].append(it["source"])
        rows["identity"].append(it["identity"])
        rows["sha256"].append(it["sha256"])
        rows["emb_crops"].append(align_face(img, d.landmarks, EMBEDDING)[0])
    print(f"faces: {len(rows['crops'])} faces cached, {missed} photos without a face or unreadable", file=sys.stderr)
    out = {k: np.asarray(v) for k, v in rows.items()}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def split(cache: dict, held_out: set[str], seed: int, val_frac: float = 0.12) -> np.ndarray:
    """0 = train, 1 = calibration (identities of training sources), 2 = held-out source.

    At least two identities go to calibration when there are four or more to split.
    """
    out = np.zeros(len(cache["source"]), np.int8)
    ids = sorted({str(i) for s, i in zip(cache["source"], cache["identity"]) if s not in held_out})
    h = {i: int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for i in ids}
    val = {i for i in ids if h[i] < val_frac}
    if len(val) < 2 and len(ids) >= 4:
        val = set(sorted(ids, key=lambda i: h[i])[:2])
    for k, (src, ident) in enumerate(zip(cache["source"], cache["identity"])):
        out[k] = 2 if src in held_out else (1 if str(ident) in val else 0)
    return out


def _flip(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = img.shape[1]
    lm = lm.copy()
    lm[:, 0] = w - 1 - lm[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), lm[[1, 0, 2, 4, 3]]


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def process(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The class-blind processing every training crop gets: JPEG, down-up resize, reduction, grayscale."""
    import cv2

    from verity.face.manipulation import reduce_crop

    x = img
    if rng.random() < 0.25:
        f = rng.uniform(0.45, 0.9)
        s = x.shape[0]
        x = cv2.resize(cv2.resize(x, (int(s * f), int(s * f)), interpolation=cv2.INTER_AREA), (s, s), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.8:
        x = _jpeg(x, int(rng.integers(60, 96)))
    x = reduce_crop(x)
    if rng.random() < 0.05:
        g = (x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
        x = np.repeat(g[..., None], 3, axis=2)
    return x


def make_pair(img: np.ndarray, lm: np.ndarray, gray: bool, rng: np.random.Generator, augment: bool = True):
    """A real crop and its self-blend, both processed; returns (real128, fake128, boundary32)."""
    import cv2

    from verity.face.manipulation import BOUNDARY_SIZE
    from verity.face.sbi import self_blend

    if augment and rng.random() < 0.5:
        img, lm = _flip(img, lm)
    sb = self_blend(img, lm, rng, gray=gray)
    real = process(img, rng) if augment else img
    fake = process(sb.image, rng) if augment else sb.image
    b = cv2.resize(sb.boundary, (BOUNDARY_SIZE, BOUNDARY_SIZE), interpolation=cv2.INTER_AREA)
    return real, fake, b


# -------------------------------------------------------------------------------------------- model


def build_net(torch):
    """The face-manipulation CNN: about 0.3 M parameters, 55 M multiply-adds at 128 px."""
    nn = torch.nn
    F = torch.nn.functional

    def cbr(i: int, o: int, s: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class SBINet(nn.Module):
        """128 px RGB in [0, 1] -> (logit, boundary logits at 32 x 32)."""

        def __init__(self, w: tuple[int, int, int, int] = (16, 32, 64, 128)):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
            self.stem = nn.Sequential(cbr(3, w[0], 2), cbr(w[0], w[0]))  # 64
            self.s2 = nn.Sequential(cbr(w[0], w[1], 2), cbr(w[1], w[1]))  # 32
            self.s3 = nn.Sequential(cbr(w[1], w[2], 2), cbr(w[2], w[2]))  # 16
            self.s4 = nn.Sequential(cbr(w[2], w[3], 2), cbr(w[3], w[3]))  # 8
            self.fc = nn.Linear(2 * w[3], 1)
            self.boundary = nn.Sequential(nn.Conv2d(w[1] + w[2] + w[3], 16, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 1, 1))
            self.drop = nn.Dropout(0.2)

        def forward(self, x):
            x = (x - self.mean) * 4.0
            a = self.s2(self.stem(x))
            b = self.s3(a)
            c = self.s4(b)
            pooled = torch.cat([c.mean((2, 3)), c.amax((2, 3))], 1)
            logit = self.fc(self.drop(pooled))[:, 0]
            size = a.shape[2:]
            feats = torch.cat([a, F.interpolate(b, size=size, mode="bilinear", align_corners=False),
                               F.interpolate(c, size=size, mode="bilinear", align_corners=False)], 1)
            return logit, self.boundary(feats)

    class Exported(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            logit, b = self.net(image)
            return logit, torch.sigmoid(b)

    return SBINet, Exported


def _predict(torch, net, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[i:i + batch])).permute(0, 3, 1, 2).float() / 255
            out.append(net(x)[0].numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def eval_sets(cache: dict, idx: np.ndarray, seed: int) -> dict:
    """Fixed-seed evaluation crops: reals at JPEG 90 and 75 and one blend per face at JPEG 90."""
    from verity.face.manipulation import reduce_crop

    rng = np.random.default_rng(seed + 7919)
    real90, real75, fake90 = [], [], []
    for i in idx:
        img, lm = cache["crops"][i], cache["landmarks"][i]
        _, fake, _ = make_pair(img, lm, bool(cache["gray"][i]), rng, augment=False)
        real90.append(reduce_crop(_jpeg(img, 90)))
        real75.append(reduce_crop(_jpeg(img, 75)))
        fake90.append(reduce_crop(_jpeg(fake, 90)))
    return {"real90": np.asarray(real90), "real75": np.asarray(real75), "fake90": np.asarray(fake90)}


def _auc(neg: np.ndarray, pos: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    return float(roc_auc_score(y, np.r_[neg, pos]))


# --------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> int:
    if args.identity:
        return identity_main(args)
    import torch

    torch.set_num_threads(max(1, int(args.threads)))
    torch.manual_seed(args.seed)
    import cv2

    cv2.setNumThreads(1)
    from verity.face.manipulation import BOUNDARY_SIZE, INPUT_SIZE

    t_start = time.time()
    data = Path(args.data)
    held = {s.strip() for s in args.held_out.split(",") if s.strip()}
    cache = build_cache(face_items(data, args.limit), Path(args.cache))
    sp = split(cache, held, args.seed)
    tr, va, te = (np.nonzero(sp == k)[0] for k in (0, 1, 2))
    print(f"faces: train {len(tr)}, calibration {len(va)}, held-out {len(te)} ({', '.join(sorted(held))})", file=sys.stderr)
    if len(tr) < 2 or len(va) < 2:
        print("verity train faces: not enough faces to train", file=sys.stderr)
        return 4

    SBINet, Exported = build_net(torch)
    net = SBINet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = int(args.steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed)
    half = max(1, args.batch // 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    t0, ema, done = time.time(), None, 0
    order = rng.permutation(tr)
    pos = 0
    net.train()
    for step in range(steps):
        if pos + half > len(order):
            order, pos = rng.permutation(tr), 0
        idx = order[pos:pos + half]
        pos += half
        xs, ys, bs = [], [], []
        for i in idx:
            real, fake, b = make_pair(cache["crops"][i], cache["landmarks"][i], bool(cache["gray"][i]), rng)
            xs += [real, fake]
            ys += [0.0, 1.0]
            bs += [np.zeros_like(b), b]
        x = (torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255).contiguous(memory_format=torch.channels_last)
        y = torch.tensor(ys)
        bt = torch.from_numpy(np.stack(bs)).float()[:, None]
        logit, bmap = net(x)
        loss = bce(logit, y) + 2.0 * bce(bmap, bt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        done = step + 1
        lv = float(loss.detach())
        ema = lv if ema is None else 0.97 * ema + 0.03 * lv
        if done % 50 == 0:
            el = time.time() - t0
            print(f"step {done}/{steps}  loss {ema:.3f}  {el / done:.2f} s/step", file=sys.stderr)
        if time.time() - t0 > args.minutes * 60:
            print(f"faces: time budget of {args.minutes} min reached after {done} steps", file=sys.stderr)
            break
    train_s = time.time() - t0
    net.eval()

    # calibration on the training sources' held-out identities
    cal = eval_sets(cache, va, args.seed)
    lr = np.r_[_predict(torch, net, cal["real75"]), _predict(torch, net, cal["real90"])]
    lf = _predict(torch, net, cal["fake90"])
    offset = float(np.percentile(lr, 99))
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=100.0).fit(np.r_[lr, lf][:, None] - offset, np.r_[np.zeros(len(lr)), np.ones(len(lf))])
    slope = float(max(fit.coef_[0, 0], 0.05))

    def score(lg: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(slope * (lg - offset), -40, 40)))

    metrics: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "verity train faces " + " ".join(sys.argv[3:] if len(sys.argv) > 3 else []),
        "steps": done, "train_seconds": round(train_s, 1), "threads": args.threads, "seed": args.seed,
        "n_train": int(len(tr)), "n_calibration": int(len(va)), "n_held_out": int(len(te)),
        "held_out_sources": sorted(held), "offset": offset, "slope": slope,
        "calibration": {"auc_sbi_vs_real": _auc(lr, lf), "fpr_real": float((score(lr) >= 0.5).mean())},
    }
    if len(te):
        ev = eval_sets(cache, te, args.seed)
        r90, r75, f90 = (_predict(torch, net, ev[k]) for k in ("real90", "real75", "fake90"))
        metrics["held_out"] = {
            "auc_sbi_vs_real_jpeg90": _auc(r90, f90),
            "auc_sbi_jpeg90_vs_real_jpeg75": _auc(r75, f90),
            "fpr_real_jpeg75": float((score(r75) >= 0.5).mean()),
            "fpr_real_jpeg90": float((score(r90) >= 0.5).mean()),
            "tpr_sbi_jpeg90": float((score(f90) >= 0.5).mean()),
        }
        per = {}
        srcs = cache["source"][te]
        for s in sorted(set(srcs.tolist())):
            k = srcs == s
            per[s] = {"n": int(k.sum()), "auc": _auc(r90[k], f90[k]), "fpr_jpeg75": float((score(r75[k]) >= 0.5).mean())}
        metrics["held_out_per_source"] = per
    print(json.dumps(metrics, indent=2))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export(torch, Exported(net).eval(), out, metrics)
    print(f"faces: wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t_start:.0f} s total", file=sys.stderr)
    if args.report:
        Path(args.report).write_text(json.dumps(metrics, indent=2))
    return 0


def export(torch, model, path: Path, metrics: dict) -> None:
    """Export to ONNX (opset 17, dynamic batch) and store the calibration in the metadata."""
    import io
    import warnings

    import onnx

    from verity.face.manipulation import INPUT_SIZE

    x = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["logit", "boundary"],
                          dynamic_axes={"image": {0: "n"}, "logit": {0: "n"}, "boundary": {0: "n"}})
    m = onnx.load_from_string(buf.getvalue())
    entry = m.metadata_props.add()
    entry.key, entry.value = "verity", json.dumps(metrics)
    m.producer_name = "verity train faces"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(m.SerializeToString())
    tmp.replace(path)


# ---------------------------------------------------------------------------------------- identity


def identity_main(args: argparse.Namespace) -> int:
    """Measure same-person vs different-person cosine similarities and pick a threshold.

    Genuine pairs: photos of the same person in ``deepface_tests`` (identities by eye, see
    :data:`DEEPFACE_PEOPLE`). Impostor pairs: every other pair among deepface_tests, lfw_gray,
    congress_portraits, frl_london and mebeauty_wild (one photo per person in those folders).
    Prints the impostor similarity at a false accept rate of 0.1 % and FAR/FRR (with a 95 % Wilson
    interval for the FRR, which rests on only 140 genuine pairs) at round thresholds.
    """
    from verity.face.facenet import get_facenet

    data = Path(args.data)
    cache = build_cache(face_items(data, args.limit), Path(args.cache))
    emb = get_facenet().embed(cache["emb_crops"])
    ident = cache["identity"]
    src = cache["source"]
    S = emb @ emb.T
    iu = np.triu_indices(len(ident), 1)
    same = ident[iu[0]] == ident[iu[1]]
    sims = S[iu]
    gen, imp = sims[same], sims[~same]
    target_far = 1e-3
    thr = float(np.quantile(imp, 1 - target_far))

    def wilson(k: int, n: int) -> list[float]:
        if n == 0:
            return [0.0, 1.0]
        p, z = k / n, 1.96
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return [float(max(0.0, c - h)), float(min(1.0, c + h))]

    res = {
        "date": time.strftime("%Y-%m-%d"),
        "n_faces": int(len(ident)), "genuine_pairs": int(len(gen)), "impostor_pairs": int(len(imp)),
        "genuine_identities": sorted({str(i) for i in ident[src == "deepface_tests"]}),
        "threshold_far_0.1pct": thr,
        "genuine_quantiles": {q: float(np.quantile(gen, q)) for q in (0.01, 0.05, 0.5)},
        "impostor_quantiles": {q: float(np.quantile(imp, q)) for q in (0.5, 0.99, 0.999, 0.9999)},
    }
    for t in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65):
        k_fr = int((gen < t).sum())
        res[f"at_{t:.2f}"] = {"far": float((imp >= t).mean()), "frr": float(k_fr / len(gen)),
                              "frr_95ci": wilson(k_fr, len(gen)), "false_rejects": k_fr,
                              "false_accepts": int((imp >= t).sum())}
    print(json.dumps(res, indent=2))
    if args.report:
        Path(args.report).write_text(json.dumps(res, indent=2))
    return 0
