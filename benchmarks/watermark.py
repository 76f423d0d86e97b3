"""Robustness, fidelity, false alarms and speed of verity's invisible watermark, against the
methods of the ``invisible-watermark`` package (RivaGAN, DWT-DCT-SVD, DWT-DCT).

    python benchmarks/watermark.py --photos ../shared/data/real_camera/camera_samples --n 8
    python benchmarks/watermark.py --null ../shared/data            # false alarms on unmarked images
    python benchmarks/watermark.py --speed                           # 1 MP embed/detect on one core

Photos: scikit-image's bundled colour photos plus the first ``--n`` photos (sorted by name) of
``--photos``, each resized so that its long side is 512 and 1024 px. Every method gets a random
payload per image (verity 64 bits, RivaGAN 32 bits, the DWT methods 64 bits) and is scored by bit
accuracy of the decoded payload after each attack; "marked" counts verity detections with
p < 1e-6 and a good CRC. The baselines need PyWavelets (and torch for RivaGAN); missing ones are
skipped with a note. Results: docs/benchmarks.md and docs/watermark.md.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from verity.provenance import watermark as W  # noqa: E402


# ---------------------------------------------------------------------------------------- attacks


def jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.array(Image.open(buf).convert("RGB"))


def resize(a: np.ndarray, f: float) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.resize(a, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def resize_to(a: np.ndarray, shape) -> np.ndarray:
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def crop(a: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Keep ``keep`` of each side (10 % crop: keep 0.9 x 0.9), at a random position."""
    h, w = a.shape[:2]
    nh, nw = int(h * keep), int(w * keep)
    y, x = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    return a[y : y + nh, x : x + nw]


def brightness(a: np.ndarray, f: float) -> np.ndarray:
    return np.clip(np.rint(a.astype(np.float32) * f), 0, 255).astype(np.uint8)


ATTACKS = {
    "none": lambda a, r: a,
    "jpeg90": lambda a, r: jpeg(a, 90),
    "jpeg75": lambda a, r: jpeg(a, 75),
    "jpeg50": lambda a, r: jpeg(a, 50),
    "resize0.5+back": lambda a, r: resize_to(resize(a, 0.5), a.shape),
    "resize0.5": lambda a, r: resize(a, 0.5),
    "crop10": lambda a, r: crop(a, 0.9, r),
    "bright+20": lambda a, r: brightness(a, 1.2),
    "bright-20": lambda a, r: brightness(a, 0.8),
}


#: harder than the targets, for the limits section (``--extra``)
EXTRA = {
    "jpeg30": lambda a, r: jpeg(a, 30),
    "resize0.35": lambda a, r: resize(a, 0.35),
    "crop25": lambda a, r: crop(a, 0.75, r),
    "crop-width20": lambda a, r: a[:, int(a.shape[1] * 0.1) : int(a.shape[1] * 0.9)],
    "resize0.5+crop10+jpeg75": lambda a, r: jpeg(crop(resize(a, 0.5), 0.9, r), 75),
    "rotate1deg": lambda a, r: cv2.warpAffine(a, cv2.getRotationMatrix2D((a.shape[1] / 2, a.shape[0] / 2), 1.0, 1.0),
                                               (a.shape[1], a.shape[0]), borderMode=cv2.BORDER_REFLECT),
    "blur1.5": lambda a, r: cv2.GaussianBlur(a, (0, 0), 1.5),
    "noise8": lambda a, r: np.clip(a + r.normal(0, 8, a.shape), 0, 255).astype(np.uint8),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


# ---------------------------------------------------------------------------------------- methods


class Verity:
    name, bits = "verity", 64

    def embed(self, rgb, bits):
        return W.embed(rgb, np.packbits(bits).tobytes()).image

    def decode(self, rgb):
        d = W.detect(rgb)
        return d.bits, d.marked


class Imwm:
    def __init__(self, method, nbits):
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.method, self.bits, self.name = method, nbits, {"rivaGan": "RivaGAN", "dwtDctSvd": "DWT-DCT-SVD",
                                                          "dwtDct": "DWT-DCT"}[method]  # fmt: skip
        self.E, self.D = WatermarkEncoder, WatermarkDecoder
        if method == "rivaGan":
            WatermarkEncoder.loadModel()

    def embed(self, rgb, bits):
        e = self.E()
        e.set_watermark("bits", [int(b) for b in bits])
        return np.ascontiguousarray(e.encode(np.ascontiguousarray(rgb[..., ::-1]), self.method)[..., ::-1])

    def decode(self, rgb):
        if rgb.shape[0] * rgb.shape[1] < 256 * 256:
            return np.zeros(self.bits, np.uint8), None
        d = self.D("bits", self.bits)
        return np.asarray(d.decode(np.ascontiguousarray(rgb[..., ::-1]), self.method), np.uint8), None


def methods(names):
    out = []
    for n in names:
        try:
            out.append(Verity() if n == "verity" else Imwm(n, 32 if n == "rivaGan" else 64))
        except Exception as e:  # noqa: BLE001 - missing optional package
            print(f"# skipping {n}: {type(e).__name__}: {e}", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------------------- runs


def load_photos(photo_dir: str | None, n: int):
    import skimage.data as sd

    imgs = {k: getattr(sd, k)() for k in ("astronaut", "coffee", "chelsea", "rocket")}
    if photo_dir:
        files = sorted(f for f in glob.glob(os.path.join(photo_dir, "*")) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        for f in files[:n]:
            from PIL import ImageOps

            imgs[Path(f).name] = np.array(ImageOps.exif_transpose(Image.open(f)).convert("RGB"))
    return imgs


def fit(a, side):
    h, w = a.shape[:2]
    s = side / max(h, w)
    return cv2.resize(a, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def robustness(args):
    if args.extra:
        ATTACKS.clear()
        ATTACKS.update(EXTRA)
    imgs = load_photos(args.photos, args.n)
    ms = methods(args.methods)
    rows = []
    for side in args.sizes:
        for mi, m in enumerate(ms):
            for ii, (name, img0) in enumerate(imgs.items()):
                img = fit(img0, side)
                rng = np.random.default_rng(1000 * side + ii)
                bits = rng.integers(0, 2, m.bits).astype(np.uint8)
                marked = m.embed(img, bits)
                row = {"size": side, "method": m.name, "image": name, "psnr": psnr(img, marked)}
                for an, att in ATTACKS.items():
                    got, ok = m.decode(att(marked, np.random.default_rng(ii)))
                    row[an] = float(np.mean(np.asarray(got, np.uint8)[: m.bits] == bits))
                    if ok is not None:
                        row[an + ":marked"] = bool(ok)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| size | method | PSNR dB | " + " | ".join(ATTACKS) + " |")
    print("|---|---|---:|" + "---:|" * len(ATTACKS))
    for side in args.sizes:
        for m in ms:
            rs = [r for r in rows if r["size"] == side and r["method"] == m.name]
            if not rs:
                continue
            cells = [f"{statistics.median(r[a] for r in rs):.2f} ({min(r[a] for r in rs):.2f})" for a in ATTACKS]
            print(f"| {side} | {m.name} | {statistics.median(r['psnr'] for r in rs):.1f} ({min(r['psnr'] for r in rs):.1f}) | " + " | ".join(cells) + " |")
    vr = [r for r in rows if r["method"] == "verity"]
    if vr:
        for a in ATTACKS:
            k = sum(r[a + ":marked"] for r in vr)
            print(f"verity {a}: detected (p<1e-6, CRC ok) in {k}/{len(vr)}")
    print(f"\n{len(imgs)} photos per size; cells: median bit accuracy (minimum in brackets)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def null(args):
    from verity.core.io import load_sample

    files = sorted(f for f in glob.glob(os.path.join(args.null, "**", "*"), recursive=True)
                   if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")))  # fmt: skip
    lps, klps, fp, kfp, n = [], [], [], [], 0
    by_dir: dict[str, list[float]] = {}
    for f in files:
        try:
            s = load_sample(f)
        except Exception:  # noqa: BLE001
            continue
        if min(s.pixels.shape[:2]) < 64:
            continue
        n += 1
        d = W.detect(s.display_pixels())
        k = W.detect_known(s.pixels)
        lps.append(d.log10_p)
        klps.append(k.log10_p)
        by_dir.setdefault(str(Path(f).parent.relative_to(args.null)), []).append(d.log10_p)
        if d.status != "unmarked":
            fp.append((f, d.status, d.log10_p))
        if k.name:
            kfp.append((f, k.name, k.log10_p))
    lps_a = np.array(lps)
    print(f"{n} images under {args.null}")
    for folder, v in sorted(by_dir.items()):
        print(f"  {folder}: {len(v)} images, smallest verity sync p = 10^{min(v):.2f}")
    for t in (1e-1, 1e-2, 1e-3, 1e-4, 1e-6):
        print(f"  verity: share with sync p < {t:g}: {(lps_a < np.log10(t)).mean():.4f} (expected at most {t:g})")
    print(f"  verity reported marked/damaged: {len(fp)}/{n} {fp[:5]}")
    print(f"  known SD marks: fired on {len(kfp)}/{n}; smallest p = 10^{min(klps):.2f} {kfp[:5]}")


def speed(args):
    cv2.setNumThreads(1)
    import skimage.data as sd

    img = cv2.resize(sd.coffee(), (1155, 866), interpolation=cv2.INTER_CUBIC)  # 1.0 MP
    msg = bytes.fromhex("0123456789abcdef")
    te, td, ce, cd = [], [], [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        m = W.embed(img, msg).image
        te.append(time.perf_counter() - t0)
        ce.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        d = W.detect(m)
        td.append(time.perf_counter() - t0)
        cd.append(time.process_time() - c0)
        assert d.marked
    c0 = time.process_time()
    W.detect_known(img)
    tk = time.process_time() - c0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1 MP ({img.shape[1]}x{img.shape[0]}), one thread (OpenCV and FFT), {args.repeat} runs, load average {load:.1f}:\n"
          f"  CPU time: embed median {statistics.median(ce):.3f} s, detect median {statistics.median(cd):.3f} s, "
          f"known-mark check {tk:.3f} s\n"
          f"  wall time: embed median {statistics.median(te):.3f} s, detect median {statistics.median(td):.3f} s")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", help="folder of natural photos (e.g. ../shared/data/real_camera/camera_samples)")
    p.add_argument("--n", type=int, default=8, help="photos taken from --photos (default 8)")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--methods", nargs="+", default=["verity", "rivaGan", "dwtDctSvd", "dwtDct"])
    p.add_argument("--extra", action="store_true", help="harder attacks beyond the targets instead")
    p.add_argument("--json", help="write the per-image rows here")
    p.add_argument("--null", metavar="DIR", help="instead: false alarms on every image under DIR")
    p.add_argument("--speed", action="store_true", help="instead: 1 MP embed/detect timing")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    if args.null:
        null(args)
    elif args.speed:
        speed(args)
    else:
        robustness(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
