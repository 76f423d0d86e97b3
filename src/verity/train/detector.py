"""``verity train detector``: train the learned AI-image detectors and export them to ONNX.

Reproduces ``learned_semantic.onnx`` (frozen ImageNet MobileNetV2 and EfficientNet-Lite0 features,
concatenated, + a logistic head; ``--backbone`` picks either one alone) and
``learned_npr.onnx`` (a small CNN on the neighbouring-pixel residual) from the shared data, any
fake folders given with ``--fakes``, and sharp content-matched fakes it makes itself: real photos
reconstructed at native resolution through four small autoencoders (2x reduction, decoders with
nearest, bilinear, transposed-convolution and pixel-shuffle up-sampling; :mod:`verity.train.sharp_ae`),
so that real and fake share content and format and only the decoder's trace differs (the B-Free /
"aligned dataset" idea). Each training photo also gets a "softened twin" in the real class, blurred
to the sharpness of its reconstruction, so that softness alone cannot mark a fake.

Protocol
--------
* Real: ``real_camera`` and ``real_processed`` photos, plus a fixed per-source subset of the face
  folders (portraits are real too, but have no fake counterpart: they are reported per source).
  Fake: ``ai_generated/sd1``, the ``--fakes`` folders, the autoencoder reconstructions.
* Split by ``group`` (30 % of the groups of each label held out, seed ``--seed``); reconstructions
  inherit the side of the photo they were made from. Shipped weights are trained on the training
  side only, so the printed evaluation is held-out.
* Every image is decoded to pixels (metadata gone) and augmented the same way whatever its class
  (:mod:`verity.train.augment`): scale 0.5-1.5, crop, flip, blur, noise, grayscale, JPEG 50-100.
* Calibration (``--calibrate FRAC``): both branches are refitted without ``FRAC`` of the training
  groups, that part is scored like an analysis does (plus JPEG q75 and halved copies of its real
  photos), and a Platt scale and shift fitted there are folded into the final networks' last layer.
* Evaluation (``--eval``): every held-out image is re-encoded as JPEG q90 without metadata and
  scored like ``verity analyze`` does (native-resolution crops, mean of the top-k crop logits);
  real photos are also scored after JPEG q75 and after resizing by 0.5. ``--eval-only`` evaluates
  the files already in ``--out`` without training (same split, same reconstructions).
* ``--baselines`` adds a CNNDetection-style and an NPR-paper-style network trained on the same data;
  ``--logo`` retrains without each generated family and tests on it (leave one generator out).

Imports torch only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Face photos used per face source (they are many, and a content confound).
FACE_QUOTA = {"deepface_tests": 30, "lfw_gray": 30, "congress_portraits": 50, "frl_london": 20, "mebeauty_wild": 70}
#: Augmented crops drawn per image, by kind of source.
CROPS_PER_IMAGE = {"camera": 5, "face": 1, "sd": 6, "ae": 2, "lab": 2, "soft": 1}
BANK_SIDE = 256
#: Settings of each training recipe (command-line values left unset take these).
RECIPES = {
    "v1": {"ae_steps": 250, "soft_reals": False, "calibrate": 0.0, "sharpen_prob": 0.0, "fit_prob": 0.0, "fakes": "tiny"},
    "v2": {"ae_steps": 400, "soft_reals": True, "calibrate": 0.25, "sharpen_prob": 0.1, "fit_prob": 0.0, "fakes": "sharp"},
    "v3": {"ae_steps": 250, "soft_reals": False, "calibrate": 0.0, "sharpen_prob": 0.0, "fit_prob": 0.35,
           "fit_side": (512, 1024), "fakes": "tiny"},
}
#: The recipe of the shipped weights.
RECIPE = "v1"
#: Frozen feature extractors the semantic head can sit on.
BACKBONES = ("mobilenetv2", "efficientnet_lite0", "both")
#: The backbone of the shipped ``learned_semantic.onnx`` (round 3; rounds 1-2 used mobilenetv2).
SEMANTIC_BACKBONE = "both"
#: Title of the held-out table the trainer prints.
HELDOUT_TITLE = ("held-out groups, JPEG q90 without metadata (FPR columns: held-out real photos re-saved q75 / "
                 "resized 0.5 / blurred sigma 1 / reduced to 512 px long side)")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="shared data folder (with manifest.csv)")
    p.add_argument("--fakes", nargs="*", default=[], metavar="DIR",
                   help="extra folders of generated images; each sub-folder (or the folder) is one family")
    p.add_argument("--out", default=None, help="where to write the ONNX files (default: the package's weights folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, augmentation and training (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; at most 2 on shared machines)")
    p.add_argument("--npr-steps", type=int, default=600, help="optimisation steps of each from-scratch network")
    p.add_argument("--semantic-crops", type=int, default=900, help="most training crops the semantic head sees")
    p.add_argument("--backbone", choices=BACKBONES, default=SEMANTIC_BACKBONE,
                   help=f"frozen ImageNet features of the semantic head: MobileNetV2, EfficientNet-Lite0, or both "
                        f"concatenated (default {SEMANTIC_BACKBONE}, the shipped weights)")
    p.add_argument("--skip-npr", action="store_true",
                   help="train, write, pin and evaluate the semantic branch only (the NPR file is left as it is)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=RECIPE,
                   help=f"training recipe (default {RECIPE}, the shipped weights): v1 = blurry fakes of two tiny 4x "
                        "autoencoders, no calibration; v2 = sharp fakes of four 2x autoencoders, softened real twins, "
                        "sharpening augmentation, Platt calibration; v3 = v1 + whole images reduced to web sizes "
                        "(long side 512-1024 px) for 35 %% of the training crops (measured, not shipped)")
    p.add_argument("--ae-steps", type=int, default=None,
                   help="optimisation steps per autoencoder (0: no autoencoder fakes; default: the recipe's)")
    p.add_argument("--ae-kinds", default="nearest,deconv,bilinear,shuffle",
                   help="up-sampling layers of the fake-making autoencoders, comma-separated (default: all four)")
    p.add_argument("--ae-factor", type=int, default=2, choices=(2, 4), help="spatial reduction of the autoencoders")
    p.add_argument("--ae-latent", type=int, default=8, help="latent channels of the autoencoders")
    p.add_argument("--ae-freq-weight", type=float, default=10.0,
                   help="weight of the Fourier-amplitude term of the autoencoder loss (0: plain L1)")
    p.add_argument("--ae-region", type=int, default=512, help="side of the photo region each autoencoder reconstructs")
    p.add_argument("--soft-reals", dest="soft_reals", action=argparse.BooleanOptionalAction, default=None,
                   help="add softened real twins (each training photo blurred to the sharpness of its reconstruction; "
                        "default: the recipe's)")
    p.add_argument("--cache", default=None, help="folder to keep autoencoder reconstructions in between runs")
    p.add_argument("--logo-sources", default=None,
                   help="with --logo: only leave out these generated sources (comma-separated, default all)")
    p.add_argument("--calibrate", type=float, default=None, metavar="FRAC",
                   help="Platt-scale each branch on this fraction of the training groups, held aside from a "
                        "second fit (0: no calibration; default: the recipe's)")
    p.add_argument("--eval", action="store_true", help="evaluate on the held-out groups and print a table")
    p.add_argument("--baselines", action="store_true", help="also train and evaluate CNNDetection- and NPR-paper-style baselines")
    p.add_argument("--logo", action="store_true", help="leave-one-generator-out evaluation of both branches")
    p.add_argument("--report", default=None, help="write the evaluation as JSON to this file")
    p.add_argument("--eval-only", action="store_true",
                   help="do not train: evaluate the ONNX files already in --out (same split and fakes as training)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images per source (smoke tests)")
    p.add_argument("--no-pin", action="store_true", help="do not rewrite the sha256 pins in verity/models/__init__.py")


@dataclass
class Item:
    """One image of the training/evaluation pool."""

    key: str
    label: int  # 1 = ai_generated
    group: str
    source: str
    kind: str  # camera | face | sd | ae | lab
    pixels: np.ndarray
    val: bool = False


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def select_records(data: str | Path, seed: int = 0, limit: int | None = None):
    """The shared-data records the trainer uses and the paths of the held-out ones.

    Returns
    -------
    chosen : list of verity.train.data.Record
        Real and generated records (face folders cut to :data:`FACE_QUOTA`, ``limit`` per source).
    val_paths : set of str
        Paths on the held-out side of the group split (30 % of the groups of each label).
    """
    from verity.train.data import group_split, read_dataset

    recs = read_dataset(data)
    chosen = []
    by_source: dict[str, list] = defaultdict(list)
    for r in recs:
        by_source[r.source].append(r)
    for src in sorted(by_source):
        rs = sorted(by_source[src], key=lambda r: r.path)
        sub = src.split("/")[-1]
        if src.startswith("faces/"):
            q = FACE_QUOTA.get(sub, 20)
            idx = np.random.default_rng(seed + 17).permutation(len(rs))[:q]
            rs = [rs[i] for i in sorted(idx)]
        if limit:
            rs = rs[:limit]
        chosen.extend(rs)
    chosen = [r for r in chosen if r.label in ("authentic", "ai_generated")]
    _, val = group_split(chosen, 0.3, seed)
    return chosen, {r.path for r in val}


def decode_records(records, progress: bool = True):
    """``(record, pixels, kind)`` for each decodable record at least 64 px a side (unreadable files are
    reported on stderr and skipped); ``kind`` is ``sd``, ``face`` or ``camera``."""
    from verity.train.data import load_pixels

    if progress:
        from tqdm import tqdm

        records = tqdm(records, desc="decoding", file=sys.stderr, leave=False)
    out = []
    for r in records:
        try:
            px = load_pixels(r.path)
        except Exception as e:  # noqa: BLE001 - report and skip unreadable files
            print(f"skipping {r.path}: {e}", file=sys.stderr)
            continue
        if min(px.shape[:2]) < 64:
            continue
        kind = "sd" if r.label == "ai_generated" else ("face" if r.source.startswith("faces/") else "camera")
        out.append((r, px, kind))
    return out


def _load_pool(args, rng: np.random.Generator) -> list[Item]:
    chosen, val_keys = select_records(args.data, args.seed, args.limit)
    pool = [Item(r.path, int(r.label == "ai_generated"), r.group, r.source, kind, px, r.path in val_keys)
            for r, px, kind in decode_records(chosen)]
    for d in args.fakes:
        pool.extend(_load_fake_dir(Path(d), args))
    return pool


def _load_fake_dir(root: Path, args) -> list[Item]:
    """Generated images of a folder: each sub-folder is one family (else the folder itself)."""
    from verity.train.data import load_pixels

    if not root.is_dir():
        raise SystemExit(f"--fakes {root}: not a folder")
    fams = [p for p in sorted(root.iterdir()) if p.is_dir()] or [root]
    out = []
    for fam in fams:
        files = [f for f in sorted(fam.rglob("*")) if f.suffix.lower() in _IMAGE_SUFFIXES]
        if args.limit:
            files = files[: args.limit]
        for f in files:
            try:
                px = load_pixels(f)
            except Exception:  # noqa: BLE001
                continue
            if min(px.shape[:2]) < 64:
                continue
            stem = re.sub(r"_?\d+$", "", f.stem) or f.stem
            # a stable hash of the file name decides the side: 30 % held out
            h = int.from_bytes(f.name.encode()[:8].ljust(8, b"\0"), "little") ^ args.seed
            val = (np.random.default_rng(h % (2**32)).random() < 0.3)
            out.append(Item(str(f), 1, f"lab/{fam.name}/{stem}", f"lab/{fam.name}", "lab", px, bool(val)))
    return out


def _print_counts(pool: list[Item], title: str) -> None:
    c = Counter((it.source, "val" if it.val else "train") for it in pool)
    srcs = sorted({it.source for it in pool})
    print(f"{title}:")
    print(f"  {'source':36s} {'label':13s} {'train':>6s} {'val':>5s}")
    for s in srcs:
        lab = next(it.label for it in pool if it.source == s)
        print(f"  {s:36s} {'ai_generated' if lab else 'authentic':13s} {c[(s, 'train')]:6d} {c[(s, 'val')]:5d}")
    n = Counter((it.label, it.val) for it in pool)
    print(f"  total: authentic {n[(0, False)]} train / {n[(0, True)]} val; "
          f"ai_generated {n[(1, False)]} train / {n[(1, True)]} val")


def _make_ae_fakes(torch, pool: list[Item], args, only: set[int] | None = None) -> list[Item]:
    """Sharp content-matched fakes: every camera photo reconstructed through each autoencoder.

    One :class:`verity.train.sharp_ae.SharpAutoencoder` per up-sampling kind in ``--ae-kinds``
    (2x reduction, 8-channel latent) is trained on the training photos only; a native-resolution
    region of ``--ae-region`` px of every photo (held-out ones too: they stay on the held-out side)
    is reconstructed through it, tile by tile. With ``--cache`` the reconstructions are kept in a
    folder keyed by every setting that affects them.
    """
    import hashlib

    from verity.train.sharp_ae import AESpec, psnr, reconstruct, region, train_autoencoder

    photos_train = [it.pixels for it in pool if it.kind == "camera" and not it.val and min(it.pixels.shape[:2]) >= 64]
    cams = [it for it in pool if it.kind == "camera"]
    kinds = [k.strip() for k in args.ae_kinds.split(",") if k.strip()]
    out = []
    for j, up in enumerate(kinds):
        if only is not None and j not in only:  # (filling the cache in parallel)
            continue
        spec = AESpec(up, args.ae_factor, args.ae_latent, freq_weight=args.ae_freq_weight)
        key = hashlib.sha256(repr((spec, args.ae_steps, args.seed, j, args.ae_region,
                                   [it.key for it in cams], [p.shape for p in photos_train])).encode()).hexdigest()[:16]
        cache = Path(args.cache) / f"ae_{spec.name}_{key}.npz" if args.cache else None
        rng = np.random.default_rng(args.seed + 200 + j)
        regs = [region(it.pixels, args.ae_region, rng) for it in cams]
        if cache is not None and cache.is_file():
            z = np.load(cache)
            recs = [z[f"r{i}"] for i in range(len(cams))]
            print(f"autoencoder ae/{spec.name}: reconstructions from cache {cache}")
        else:
            ae, loss = train_autoencoder(torch, spec, photos_train, args.ae_steps, args.seed + 100 + j)
            recs, ps = [], []
            for it, reg in zip(cams, regs):
                rec = reconstruct(torch, ae, reg, spec.factor)
                recs.append(rec)
                if it.val:
                    ps.append(psnr(rec, reg))
            print(f"autoencoder ae/{spec.name}: {args.ae_steps} steps, final loss {loss:.4f}, "
                  f"held-out reconstruction PSNR median {np.median(ps) if ps else float('nan'):.1f} dB")
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, **{f"r{i}": r for i, r in enumerate(recs)})
        sig = []
        for it, rec, reg in zip(cams, recs, regs):
            if min(rec.shape[:2]) < 64:
                continue
            out.append(Item(f"{it.key}#ae_{spec.name}", 1, it.group, f"ae/{spec.name}", "ae", rec, it.val))
            if args.soft_reals and not it.val:
                soft, sigma = soften_to_match(reg[:rec.shape[0], :rec.shape[1]], rec)
                if sigma > 0:
                    sig.append(sigma)
                    out.append(Item(f"{it.key}#soft_{spec.name}", 0, it.group, "real_softened", "soft", soft, False))
        if args.soft_reals:
            print(f"  softened real twins (training side): {len(sig)}, blur sigma median "
                  f"{np.median(sig) if sig else 0:.2f} px")
    return out


def _hf_energy(px: np.ndarray) -> float:
    import cv2

    g = px.astype(np.float32).mean(2)
    return float(np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3)).mean())


def soften_to_match(real: np.ndarray, fake: np.ndarray, max_sigma: float = 3.0) -> tuple[np.ndarray, float]:
    """Blur ``real`` with the Gaussian whose result has the high-frequency energy (mean absolute
    Laplacian of the luma) of ``fake``; returns the blurred copy and sigma (0 and ``real`` itself
    when ``fake`` is not softer).

    These "softened real twins" are added to the real class so that softness alone cannot tell a
    reconstruction from its photo: only the decoder's trace can.
    """
    import cv2

    target = _hf_energy(fake)
    if _hf_energy(real) <= target:
        return real, 0.0
    lo, hi = 0.0, max_sigma
    for _ in range(12):
        mid = (lo + hi) / 2
        if _hf_energy(cv2.GaussianBlur(real, (0, 0), mid)) > target:
            lo = mid
        else:
            hi = mid
    sigma = (lo + hi) / 2
    return cv2.GaussianBlur(real, (0, 0), sigma), float(sigma)


def _train_autoencoder(torch, photos: list[np.ndarray], up: str, steps: int, seed: int):
    """Train :class:`TinyAutoencoder` on random 64 px crops of ``photos`` for ``steps`` Adam steps (L1)."""
    from verity.models.nets import TinyAutoencoder

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ae = TinyAutoencoder(up=up)
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
    step = 0
    while step < steps:
        batch = []
        for _ in range(12):
            p = photos[int(rng.integers(len(photos)))]
            y, x = int(rng.integers(0, p.shape[0] - 64 + 1)), int(rng.integers(0, p.shape[1] - 64 + 1))
            batch.append(p[y:y + 64, x:x + 64])
        xb = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255
        loss = (ae(xb) - xb).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step == int(0.7 * steps):
            for g in opt.param_groups:
                g["lr"] = 5e-4
    return ae.eval(), float(loss.detach()), step


def _reconstruct(torch, ae, px: np.ndarray, rng: np.random.Generator, side: int = 512) -> np.ndarray:
    """Reconstruct one ``side`` x ``side`` (or smaller) native-resolution region of ``px``."""
    h, w = px.shape[:2]
    hh, ww = min(side, h) // 4 * 4, min(side, w) // 4 * 4
    y, x = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1))
    xb = torch.from_numpy(np.ascontiguousarray(px[y:y + hh, x:x + ww])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = ae(xb)[0].permute(1, 2, 0).numpy()
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def _make_tiny_ae_fakes(torch, pool: list[Item], args) -> list[Item]:
    """Recipe v1: blurry fakes from two tiny 4x autoencoders (kept to reproduce the v1 weights)."""
    photos_train = [it.pixels for it in pool if it.kind == "camera" and not it.val and min(it.pixels.shape[:2]) >= 64]
    cams = [it for it in pool if it.kind == "camera"]
    out = []
    for j, up in enumerate(("nearest", "deconv")):
        ae, loss, steps = _train_autoencoder(torch, photos_train, up, args.ae_steps, args.seed + 100 + j)
        loss = float(loss)
        print(f"autoencoder ae_{up}: {steps} steps, final L1 {loss:.4f}")
        rng = np.random.default_rng(args.seed + 200 + j)
        for it in cams:
            rec = _reconstruct(torch, ae, it.pixels, rng)
            out.append(Item(f"{it.key}#ae_{up}", 1, it.group, f"ae/{up}", "ae", rec, it.val))
    return out


def _bank(items: list[Item], cfg, rng: np.random.Generator, side: int = BANK_SIDE, per: dict | None = None):
    """Augmented crops (N, side, side, 3) uint8, labels (N,), sample weights balancing the classes."""
    from verity.train.augment import augment_crop

    per = per or CROPS_PER_IMAGE
    xs, ys = [], []
    for it in items:
        for _ in range(per[it.kind]):
            xs.append(augment_crop(it.pixels, side, rng, cfg))
            ys.append(it.label)
    y = np.asarray(ys, np.int64)
    w = np.where(y == 1, 0.5 / max(1, (y == 1).sum()), 0.5 / max(1, (y == 0).sum())) * len(y)
    return np.stack(xs), y, w.astype(np.float64)


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------


def _features(torch, fx, crops: np.ndarray, side: int = 224, batch: int = 16, rng=None, threads: int = 1) -> np.ndarray:
    """Multi-level MobileNetV2 features of one random ``side`` sub-crop per bank crop.

    The frozen extractor is exported to a temporary ONNX file and run with onnxruntime (several
    times faster than torch's CPU kernels here).
    """
    import tempfile

    import onnxruntime as ort
    from tqdm import tqdm

    rng = rng or np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.onnx"
        export_onnx(torch, fx, path, output="features")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        out = []
        for i in tqdm(range(0, len(crops), batch), desc="features", file=sys.stderr, leave=False):
            sub = []
            for c in crops[i:i + batch]:
                y, x = int(rng.integers(0, c.shape[0] - side + 1)), int(rng.integers(0, c.shape[1] - side + 1))
                sub.append(c[y:y + side, x:x + side])
            xb = np.ascontiguousarray(np.stack(sub).transpose(0, 3, 1, 2), np.float32) / np.float32(255)
            out.append(sess.run(None, {"image": xb})[0])
    return np.concatenate(out).astype(np.float64)


def _fit_head(feats: np.ndarray, y: np.ndarray, c: float = 0.02):
    """Standardise features and fit an L2 logistic regression with balanced classes."""
    from sklearn.linear_model import LogisticRegression

    mu = feats.mean(0)
    sd = feats.std(0) + 1e-3
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
    clf.fit((feats - mu) / sd, y)
    return mu, sd, clf.coef_[0], float(clf.intercept_[0])


def _semantic_features(torch, backbone: str):
    """The frozen multi-level feature extractor of ``--backbone`` (it has a ``dim``)."""
    from verity.models.mobilenetv2 import MultiLevelFeatures, mobilenet_v2

    if backbone == "mobilenetv2":
        return MultiLevelFeatures(mobilenet_v2(True)).eval()
    from verity.models.efficientnet_lite import ConcatFeatures, EfficientNetLiteFeatures, efficientnet_lite0

    eff = EfficientNetLiteFeatures(efficientnet_lite0(True))
    if backbone == "efficientnet_lite0":
        return eff.eval()
    return ConcatFeatures(MultiLevelFeatures(mobilenet_v2(True)), eff).eval()


def _build_semantic(torch, fx, head):
    """The frozen extractor ``fx`` + the fitted head as one module (for MobileNetV2 alone the layout of
    :class:`verity.models.mobilenetv2.SemanticDetector`)."""
    from verity.models.mobilenetv2 import LinearOnFeatures

    mu, sd, coef, b = head
    m = LinearOnFeatures(fx)
    m.mu.copy_(torch.tensor(mu, dtype=torch.float32))
    m.sigma.copy_(torch.tensor(sd, dtype=torch.float32))
    m.head.weight.data.copy_(torch.tensor(coef, dtype=torch.float32)[None])
    m.head.bias.data.fill_(b)
    return m.eval()


def _train_cnn(torch, net, bank, steps: int, seed: int, side: int = 96, batch: int = 32, lr: float = 2e-3, desc="cnn"):
    """Train a from-scratch network on random ``side`` sub-crops of the bank (weighted BCE, AdamW, cosine)."""
    from tqdm import tqdm

    crops, y, w = bank
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    p = w / w.sum()
    net.train()
    ema = None
    for _ in tqdm(range(steps), desc=desc, file=sys.stderr, leave=False):
        idx = rng.choice(len(y), size=batch, p=p)
        sub = []
        for i in idx:
            c = crops[i]
            yy, xx = int(rng.integers(0, c.shape[0] - side + 1)), int(rng.integers(0, c.shape[1] - side + 1))
            sub.append(c[yy:yy + side, xx:xx + side])
        xb = torch.from_numpy(np.stack(sub)).permute(0, 3, 1, 2).float() / 255
        yb = torch.from_numpy(y[idx]).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lv = float(loss.item())
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
    print(f"{desc}: {steps} steps, training loss (EMA) {ema:.3f}")
    return net.eval()


def export_onnx(torch, net, path: Path, output: str = "logit", *, example=None, input_name: str = "image",
                output_axes: dict | None = None) -> None:
    """Export ``net`` to ONNX opset 17 with dynamic N, H, W of its (N, C, H, W) input.

    By default the input is ``image`` (RGB [0, 1], traced with a seeded random 2 x 3 x 224 x 224
    batch) and the output ``output`` (N,); ``example``, ``input_name`` and ``output_axes`` (the
    output's dynamic axes) describe other networks.
    """
    import warnings

    net.eval()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) if example is None else example
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=[input_name],
                          output_names=[output], dynamic_axes={input_name: {0: "n", 2: "h", 3: "w"},
                                                               output: output_axes or {0: "n"}})


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------


def _equalized(px: np.ndarray, quality: int = 90) -> np.ndarray:
    from verity.train.augment import jpeg_roundtrip

    return jpeg_roundtrip(px, quality)


def _metrics(y: np.ndarray, s: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    out = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    if len(set(y.tolist())) < 2:
        return out
    out["auc"] = float(roc_auc_score(y, s))
    fpr, tpr, _ = roc_curve(y, s)
    out["tpr_at_5fpr"] = float(np.interp(0.05, fpr, tpr))
    out["tpr_at_0.5"] = float((s[y == 1] >= 0.5).mean())
    out["fpr_at_0.5"] = float((s[y == 0] >= 0.5).mean())
    return out


def _evaluate(scorers: dict, items: list[Item], title: str) -> dict:
    """Score held-out items with every scorer; per-scorer metrics, per-source means, perturbed FPR."""
    from tqdm import tqdm

    from verity.train.data import fit_long_side, resize

    eq = [_equalized(it.pixels, 90) for it in items]
    reals = [it for it in items if it.label == 0 and min(it.pixels.shape[:2]) >= 128]
    import cv2

    pert = {"jpeg75": [_equalized(it.pixels, 75) for it in reals],
            "resize0.5": [_equalized(resize(it.pixels, 0.5), 90) for it in reals],
            "blur1": [_equalized(cv2.GaussianBlur(it.pixels, (0, 0), 1.0), 90) for it in reals],
            "web512": [_equalized(fit_long_side(it.pixels, 512), 90) for it in reals]}
    y = np.array([it.label for it in items])
    res = {}
    for name, fn in scorers.items():
        s = np.array([fn(px) for px in tqdm(eq, desc=f"eval {name}", file=sys.stderr, leave=False)])
        m = _metrics(y, s)
        per = defaultdict(list)
        for it, v in zip(items, s):
            per[it.source].append(v)
        m["per_source_mean_score"] = {k: float(np.mean(v)) for k, v in sorted(per.items())}
        m["per_source_flagged_at_0.5"] = {k: float((np.array(v) >= 0.5).mean()) for k, v in sorted(per.items())}
        real_s = s[y == 0]
        m["per_fake_source_vs_all_reals"] = {
            k: _metrics(np.r_[np.zeros(len(real_s)), np.ones(len(v))], np.r_[real_s, np.asarray(v)])
            for k, v in sorted(per.items()) if any(it.source == k and it.label == 1 for it in items)
        }
        for cname, pxs in pert.items():
            sr = np.array([fn(px) for px in pxs])
            m[f"fpr_real_{cname}"] = float((sr >= 0.5).mean()) if len(sr) else None
        res[name] = m
    print(f"\n{title}")
    print(f"  {'model':30s} {'AUC':>6s} {'TPR@5%FPR':>10s} {'TPR@0.5':>8s} {'FPR@0.5':>8s} {'FPR jpeg75':>10s} "
          f"{'FPR resize.5':>12s} {'FPR blur1':>9s} {'FPR 512px':>9s}")
    for name, m in res.items():
        def f(k):
            v = m.get(k)
            return "  n/a" if v is None else f"{v:.3f}"
        print(f"  {name:30s} {f('auc'):>6s} {f('tpr_at_5fpr'):>10s} {f('tpr_at_0.5'):>8s} {f('fpr_at_0.5'):>8s} "
              f"{f('fpr_real_jpeg75'):>10s} {f('fpr_real_resize0.5'):>12s} {f('fpr_real_blur1'):>9s} "
              f"{f('fpr_real_web512'):>9s}")
    names = list(res)
    print(f"  per-source mean score ({', '.join(names)}):")
    for src in sorted({it.source for it in items}):
        n = sum(it.source == src for it in items)
        vals = "  ".join(f"{res[k]['per_source_mean_score'][src]:.2f}" for k in names)
        print(f"    {src:34s} n={n:3d}  {vals}")
    fakes = sorted(res[names[0]]["per_fake_source_vs_all_reals"])
    if len(fakes) > 1:
        print("  per generated source vs all held-out reals, AUC / TPR@5%FPR:")
        for src in fakes:
            vals = "  ".join(f"{res[k]['per_fake_source_vs_all_reals'][src].get('auc', float('nan')):.3f}/"
                             f"{res[k]['per_fake_source_vs_all_reals'][src].get('tpr_at_5fpr', float('nan')):.3f}"
                             for k in names)
            print(f"    {src:34s} {vals}")
    return res


def onnx_file_scorer(path: str | Path, cfg):
    """``pixels -> pooled score`` of an ONNX detector file (input ``image``), scored as analysis does:
    ``cfg``'s native-resolution crops and top-k pooling, onnxruntime on one thread."""
    import onnxruntime as ort

    from verity.ops.npr import score_image

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def logits(batch):
        return sess.run(None, {"image": batch})[0]

    return lambda px: score_image(px, logits, cfg.crop, cfg.max_crops, cfg.top_k)["score"]


def _onnx_scorer(torch, net, cfg, tmpdir: str):
    """Export ``net`` to a temporary ONNX file and return ``pixels -> pooled score`` (as analysis does)."""
    path = Path(tmpdir) / f"m{len(list(Path(tmpdir).iterdir()))}.onnx"
    export_onnx(torch, net, path)
    return onnx_file_scorer(path, cfg)


def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, float(p)))
    return float(np.log(p / (1 - p)))


def _sigmoid(z: float) -> float:
    return float(1 / (1 + np.exp(-z)))


def _write_report(args, report: dict) -> bool:
    if not args.report:
        return False
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=1))
    return True


def _pin(out_dir: Path, names: list[str]) -> dict:
    from verity.models import file_sha256, get_config

    return {n: file_sha256(out_dir / get_config(n).file) for n in names}


def pin_text(text: str, pins: dict[str, str]) -> tuple[str, bool]:
    """Replace the ``sha256="..."`` pin of each named ``ModelConfig`` in module source ``text``.

    Returns the new text and whether every name was found exactly once.
    """
    ok = True
    for name, sha in pins.items():
        pat = re.compile(r'(ModelConfig\(\s*name="' + re.escape(name) + r'",\s*file="[^"]*",\s*sha256=")[0-9a-f]*(")')
        text, n = pat.subn(lambda m: m.group(1) + sha + m.group(2), text)
        ok = ok and n == 1
    return text, ok


def _rewrite_pins(pins: dict) -> bool:
    """Rewrite the pins in verity/models/__init__.py (and in the running process)."""
    import dataclasses

    import verity.models as vm

    src_path = Path(vm.__file__)
    text, ok = pin_text(src_path.read_text(), pins)
    if not ok:
        return False
    src_path.write_text(text)
    for name, sha in pins.items():
        vm._CONFIGS[name] = dataclasses.replace(vm._CONFIGS[name], sha256=sha)
    vm.verify_weights.cache_clear()
    return True


def calibration_split(items: list[Item], frac: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Split training items by group into a fitting part and a calibration part (``frac`` of the
    groups of each label); reconstructions follow the group of their photo."""
    fit, cal = [], []
    for lab in (0, 1):
        groups = sorted({it.group for it in items if it.label == lab})
        rng = np.random.default_rng(seed + 31 * lab)
        n = int(round(frac * len(groups)))
        held = {groups[i] for i in rng.permutation(len(groups))[:n]}
        for it in items:
            if it.label == lab:
                (cal if it.group in held else fit).append(it)
    return fit, cal


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * z + b)`` fitted with balanced classes (a > 0 is enforced)."""
    from sklearn.linear_model import LogisticRegression

    z = np.asarray(logits, np.float64).reshape(-1, 1)
    clf = LogisticRegression(C=100.0, class_weight="balanced", max_iter=1000).fit(z, np.asarray(y))
    a, b = float(clf.coef_[0, 0]), float(clf.intercept_[0])
    if a <= 0:  # the branch does not rank the calibration data: fall back to a pure shift
        a = 1.0
        b = -float(np.median(z))
    return a, b


def _calibration_views(items: list[Item]) -> tuple[list[np.ndarray], np.ndarray]:
    """What a branch is calibrated on: every item re-encoded as JPEG q90, and every real photo also
    re-saved at q75 and halved (those must stay clearly real too)."""
    from verity.train.data import resize

    xs, ys = [], []
    for it in items:
        xs.append(_equalized(it.pixels, 90))
        ys.append(it.label)
        if it.label == 0 and min(it.pixels.shape[:2]) >= 128:
            xs.append(_equalized(it.pixels, 75))
            ys.append(0)
            xs.append(_equalized(resize(it.pixels, 0.5), 90))
            ys.append(0)
    return xs, np.asarray(ys)


def _pooled_logits(torch, net, cfg, pixels: list[np.ndarray], tmpdir: str) -> np.ndarray:
    scorer = _onnx_scorer(torch, net, cfg, tmpdir)
    return np.array([_logit(scorer(px)) for px in pixels])


def _fold_platt_semantic(head, a: float, b: float):
    mu, sd, coef, c = head
    return mu, sd, coef * a, c * a + b


def _fold_platt_linear(torch, fc, a: float, b: float) -> None:
    with torch.no_grad():
        fc.weight.mul_(a)
        fc.bias.mul_(a).add_(b)


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def resolve_recipe(args: argparse.Namespace) -> dict:
    """Fill the settings left unset on the command line from ``args.recipe``; returns the recipe."""
    recipe = dict(RECIPES[getattr(args, "recipe", None) or RECIPE])
    for k in ("ae_steps", "soft_reals", "calibrate"):
        if getattr(args, k, None) is None:
            setattr(args, k, recipe[k])
        recipe[k] = getattr(args, k)
    return recipe


def main(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("verity train detector: torch is not installed (pip install 'verity[train]')", file=sys.stderr)
        return 4
    import cv2

    from verity.models import WEIGHTS_DIR, get_config
    from verity.models.nets import NETS
    from verity.train.augment import AugmentConfig, CROP_ONLY

    t_start = time.perf_counter()
    torch.set_num_threads(max(1, min(2, int(args.threads))))
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = Path(args.data)
    if not (data / "manifest.csv").is_file():
        print(f"verity train detector: {data}/manifest.csv not found", file=sys.stderr)
        return 4
    out_dir = Path(args.out) if args.out else WEIGHTS_DIR
    if args.backbone in ("efficientnet_lite0", "both") and not args.eval_only:
        from verity.models.efficientnet_lite import pretrained_path

        try:  # fail before the long data preparation
            pretrained_path()
        except FileNotFoundError as exc:
            print(f"verity train detector: backbone {args.backbone}: {exc}", file=sys.stderr)
            return 4

    recipe = resolve_recipe(args)
    print(f"recipe {args.recipe}: " + ", ".join(f"{k} {v}" for k, v in recipe.items()))
    pool = _load_pool(args, rng)
    if args.ae_steps > 0:
        pool += (_make_ae_fakes if recipe["fakes"] == "sharp" else _make_tiny_ae_fakes)(torch, pool, args)
    _print_counts(pool, f"images (seed {args.seed}; held-out groups in 'val')")
    train = [it for it in pool if not it.val]
    val = [it for it in pool if it.val]
    if not any(it.label for it in train) or all(it.label for it in train):
        print("verity train detector: need both real and generated training images", file=sys.stderr)
        return 4

    if args.eval_only:
        def file_scorer(name):
            c = get_config(name)
            path = out_dir / c.file
            if not path.is_file():
                raise SystemExit(f"verity train detector: {path} not found")
            return onnx_file_scorer(path, c)

        sc = {n: file_scorer(n) for n in ("learned_semantic", "learned_npr")}
        a, b = sc["learned_semantic"], sc["learned_npr"]
        sc["mean_of_both_logits"] = lambda px: float(_sigmoid((_logit(a(px)) + _logit(b(px))) / 2))
        report = {"seed": args.seed, "results": {"heldout": _evaluate(sc, val, HELDOUT_TITLE)}}
        _write_report(args, report)
        return 0

    cfg = AugmentConfig(sharpen_prob=recipe["sharpen_prob"], fit_prob=recipe["fit_prob"],
                        fit_side=recipe.get("fit_side", AugmentConfig.fit_side))
    bank = _bank(train, cfg, np.random.default_rng(args.seed + 1))
    print(f"training crops: {len(bank[1])} ({int(bank[1].sum())} generated, {int((bank[1] == 0).sum())} real), "
          f"{BANK_SIDE} px, augmented alike")

    # semantic branch: frozen backbone, features, logistic head
    try:
        fx = _semantic_features(torch, args.backbone)
    except (FileNotFoundError, ValueError) as exc:
        print(f"verity train detector: backbone {args.backbone}: {exc}", file=sys.stderr)
        return 4
    sel = np.sort(np.random.default_rng(args.seed + 2).permutation(len(bank[1]))[: args.semantic_crops])
    feats = _features(torch, fx, bank[0][sel], rng=np.random.default_rng(args.seed + 2))
    head = _fit_head(feats, bank[1][sel])
    print(f"semantic head ({args.backbone}): logistic regression on {len(sel)} crops x {feats.shape[1]} features")

    # low-level branch: NPR network from scratch
    torch.manual_seed(args.seed + 3)
    npr = None if args.skip_npr else _train_cnn(torch, NETS["npr"](), bank, args.npr_steps, args.seed + 3, desc="npr")

    calib = {}
    if args.calibrate > 0:
        # Platt scaling of each branch, fitted on training groups the branch did not see: both are
        # refitted without a calibration part of the training groups, that part is scored like an
        # analysis does, and the scale and shift found are folded into the final networks.
        import tempfile

        fit_items, cal_items = calibration_split(train, args.calibrate, args.seed + 7)
        if len({it.label for it in fit_items}) < 2 or len({it.label for it in cal_items}) < 2:
            print("calibration skipped: too few training groups to hold some aside")
            args.calibrate = 0.0
    if args.calibrate > 0:
        in_fit = {id(it) for it in fit_items}
        keep = np.array([id(it) in in_fit for it in train for _ in range(CROPS_PER_IMAGE[it.kind])])
        yk = bank[1][keep]
        wk = np.where(yk == 1, 0.5 / max(1, (yk == 1).sum()), 0.5 / max(1, (yk == 0).sum())) * len(yk)
        head_c = _fit_head(feats[keep[sel]], bank[1][sel][keep[sel]])
        npr_c = None if npr is None else _train_cnn(torch, NETS["npr"](), (bank[0][keep], yk, wk), args.npr_steps,
                                                    args.seed + 3, desc="npr (calibration fit)")
        xs, yc = _calibration_views(cal_items)
        zs = {}
        with tempfile.TemporaryDirectory() as tmpc:
            zs["learned_semantic"] = _pooled_logits(torch, _build_semantic(torch, fx, head_c),
                                                    get_config("learned_semantic"), xs, tmpc)
            if npr_c is not None:
                zs["learned_npr"] = _pooled_logits(torch, npr_c, get_config("learned_npr"), xs, tmpc)
        for name, z in zs.items():
            a, b = fit_platt(z, yc)
            calib[name] = {"a": a, "b": b, "n_real": int((yc == 0).sum()), "n_fake": int((yc == 1).sum())}
            zc = a * z + b
            print(f"calibration of {name} on {len(cal_items)} held-aside training images ({int((yc == 0).sum())} real "
                  f"views, {int((yc == 1).sum())} generated): logit -> {a:.3f} * logit {b:+.3f}; real median score "
                  f"{_sigmoid(float(np.median(z[yc == 0]))):.2f} -> {_sigmoid(float(np.median(zc[yc == 0]))):.2f}, "
                  f"generated median {_sigmoid(float(np.median(z[yc == 1]))):.2f} -> {_sigmoid(float(np.median(zc[yc == 1]))):.2f}")
        head = _fold_platt_semantic(head, calib["learned_semantic"]["a"], calib["learned_semantic"]["b"])
        if npr is not None:
            _fold_platt_linear(torch, npr.fc, calib["learned_npr"]["a"], calib["learned_npr"]["b"])

    sem = _build_semantic(torch, fx, head)
    export_onnx(torch, sem, out_dir / get_config("learned_semantic").file)
    written = ["learned_semantic"]
    if npr is not None:
        export_onnx(torch, npr, out_dir / get_config("learned_npr").file)
        written.append("learned_npr")

    pins = _pin(out_dir, written)
    for n, sha in pins.items():
        print(f"wrote {out_dir / get_config(n).file}  sha256 {sha}")
    if not args.no_pin and out_dir.resolve() == WEIGHTS_DIR.resolve():
        print("pinned in verity/models/__init__.py" if _rewrite_pins(pins) else "could not rewrite the pins")
    print(f"training took {time.perf_counter() - t_start:.0f} s")

    report: dict = {"seed": args.seed, "backbone": args.backbone, "counts": {}, "results": {}, "calibration": calib}
    for it in pool:
        k = f"{it.source}|{'val' if it.val else 'train'}"
        report["counts"][k] = report["counts"].get(k, 0) + 1
    if args.eval or args.baselines or args.logo:
        import tempfile

        cs, cn = get_config("learned_semantic"), get_config("learned_npr")
        tmp = tempfile.TemporaryDirectory()
        scorers = {"learned_semantic": _onnx_scorer(torch, sem, cs, tmp.name)}
        if npr is not None:
            scorers["learned_npr"] = _onnx_scorer(torch, npr, cn, tmp.name)
            s_sem, s_npr = scorers["learned_semantic"], scorers["learned_npr"]
            scorers["mean_of_both_logits"] = lambda px: float(_sigmoid((_logit(s_sem(px)) + _logit(s_npr(px))) / 2))
        if args.baselines:
            b_cnn = _bank(train, AugmentConfig(scale_prob=0.0, blur_prob=0.5, sharpen_prob=0.0, blur_sigma=(0.1, 3.0), noise_prob=0.0,
                                               gray_prob=0.0, jpeg_prob=0.5, jpeg_quality=(30, 100)),
                          np.random.default_rng(args.seed + 5))
            cnn = _train_cnn(torch, NETS["cnndetection"](), b_cnn, args.npr_steps, args.seed + 5, desc="cnndetection_small")
            del b_cnn
            b_np = _bank(train, CROP_ONLY, np.random.default_rng(args.seed + 6))
            npp = _train_cnn(torch, NETS["npr_paper"](), b_np, args.npr_steps, args.seed + 6, desc="npr_paper_small")
            del b_np
            scorers["cnndetection_small"] = _onnx_scorer(torch, cnn, cn, tmp.name)
            scorers["npr_paper_small"] = _onnx_scorer(torch, npp, cn, tmp.name)
        report["results"]["heldout"] = _evaluate(scorers, val, HELDOUT_TITLE)
        _write_report(args, report)
        if args.logo:
            fams = sorted({it.source for it in pool if it.label == 1})
            if args.logo_sources:
                fams = [f for f in fams if f in {x.strip() for x in args.logo_sources.split(",")}]
            report["results"]["logo"] = {}
            for fam in fams:
                tr = [it for it in train if it.source != fam]
                te = [it for it in val if it.label == 0 or it.source == fam]
                if not any(it.label for it in te) or not any(it.label for it in tr):
                    continue
                keep = np.array([it.source != fam for it in train for _ in range(CROPS_PER_IMAGE[it.kind])])
                yk = bank[1][keep]
                wk = np.where(yk == 1, 0.5 / max(1, (yk == 1).sum()), 0.5 / max(1, (yk == 0).sum())) * len(yk)
                fb = (bank[0][keep], yk, wk)
                h2 = _fit_head(feats[keep[sel]], bank[1][sel][keep[sel]])
                sem2 = _build_semantic(torch, fx, h2)
                sc = {"learned_semantic": _onnx_scorer(torch, sem2, cs, tmp.name)}
                if npr is not None:
                    npr2 = _train_cnn(torch, NETS["npr"](), fb, args.npr_steps // 2, args.seed + 3, desc=f"npr without {fam}")
                    sc[f"learned_npr ({args.npr_steps // 2} steps)"] = _onnx_scorer(torch, npr2, cn, tmp.name)
                report["results"]["logo"][fam] = _evaluate(sc, te, f"leave-one-generator-out: trained without {fam}, "
                                                           f"tested on held-out {fam} vs held-out reals")
                _write_report(args, report)
        tmp.cleanup()
    if _write_report(args, report):
        print(f"report written to {args.report}")
    print(f"total time {time.perf_counter() - t_start:.0f} s")
    return 0
