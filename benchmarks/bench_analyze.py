"""Median seconds per image of the default ``verity analyze`` pipeline on 1 MP and 12 MP JPEGs, per
detector and in total, and the ratio to a plain Pillow decode of the same file. One core.

Usage::

    .venv/bin/python benchmarks/bench_analyze.py [--repeats 5] [--sizes 1,12] [--markdown]

Targets (issue 2, classical detectors): <= 0.3 s per 1 MP image, <= 2 s per 12 MP image.
"""

from __future__ import annotations

import os

# one core, set before numpy/OpenCV/onnxruntime load their thread pools
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def make_jpeg(megapixels: float, seed: int = 0) -> bytes:
    """A camera-like JPEG of about ``megapixels`` MP (4:3), built by tiling scikit-image photos."""
    import cv2
    import numpy as np

    from verity.lab.edits import camera_exif, encode_jpeg, textured_image

    rng = np.random.default_rng(seed)
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = int(round(w * 3 / 4))
    try:
        import skimage.data as d

        base = d.astronaut()
    except Exception:
        base = textured_image(rng, (512, 512))
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img.astype(np.float32) + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    return encode_jpeg(img, 92, exif=camera_exif())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="1,12", help="megapixels, comma-separated")
    ap.add_argument("--detectors", default=None, help="comma-separated subset (default: the default pipeline)")
    args = ap.parse_args()

    import cv2
    from PIL import Image

    cv2.setNumThreads(1)
    from verity.core.io import load_sample
    from verity.pipeline import Pipeline

    pipe = Pipeline(args.detectors.split(",") if args.detectors else None)
    print(f"# bench_analyze  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  "
          f"python {platform.python_version()}  detectors: {', '.join(d.name for d in pipe.detectors)}")
    for mp in (float(s) for s in args.sizes.split(",")):
        data = make_jpeg(mp)
        decode_t, total_t, total_cpu = [], [], []
        per_det: dict[str, list[float]] = {}
        pipe.analyze(load_sample(data, name="warmup"))  # warm caches / model sessions
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
            decode_t.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            s = load_sample(data, name=f"{mp}MP")
            v = pipe.analyze(s)
            total_t.append(time.perf_counter() - t0)
            total_cpu.append(time.process_time() - c0)
            for k, t in v.timings.items():
                if k != "total":
                    per_det.setdefault(k, []).append(t)
        med = statistics.median(total_t)
        dec = statistics.median(decode_t)
        print(f"\n## {mp:g} MP ({s.width}x{s.height}, {len(data) / 1e6:.2f} MB), median of {args.repeats}")
        print(f"| step | median s |\n|---|---:|\n| Pillow decode | {dec:.4f} |")
        for k, ts in sorted(per_det.items(), key=lambda kv: -statistics.median(kv[1])):
            print(f"| {k} | {statistics.median(ts):.4f} |")
        print(f"| **analyze total (load + all detectors + fusion), wall** | **{med:.4f}** |")
        print(f"| **analyze total, CPU time of the process (all threads)** | **{statistics.median(total_cpu):.4f}** |")
        print(f"\nratio analyze / Pillow decode: {med / dec:.1f}x")


if __name__ == "__main__":
    main()
