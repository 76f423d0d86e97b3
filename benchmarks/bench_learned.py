"""Median seconds per image added by the learned AI-image detectors (``learned_semantic``,
``learned_npr``) on a 1 MP and a 12 MP JPEG, one core, sessions warm.

Usage::

    .venv/bin/python benchmarks/bench_learned.py [--repeats 7] [--sizes 1,12]

Target (issue 3): both learned branches together add at most 0.25 s per 1 MP image on one core.
Reports the median wall-clock time and the median CPU time of the process (``time.process_time``;
on a shared, busy machine the CPU time is the better estimate of what one free core would take,
since all work runs on the calling thread). The NPR branch scores crops at native resolution, the
semantic branch after resampling the image to a 512 px short side, so the network cost is bounded by
``max_crops`` whatever the size; what grows with the image is the resampling and the luma / texture
map used to rank the crop candidates.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def make_jpeg(megapixels: float, seed: int = 0) -> bytes:
    """A 4:3 JPEG of about ``megapixels`` MP made from a scikit-image photo plus mild noise."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = int(round(w * 3 / 4))
    import skimage.data as d

    img = cv2.resize(d.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img.astype(np.float32) + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="1,12", help="megapixels, comma-separated")
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from verity.core.io import load_sample
    from verity.core.registry import create_detector
    from verity.models import verify_weights

    names = ["learned_semantic", "learned_npr"]
    missing = [n for n in names if verify_weights(n)]
    if missing:
        print(f"weights missing for {', '.join(missing)}: run verity train detector first")
        return 4
    dets = {n: create_detector(n) for n in names}
    print(f"# bench_learned  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
          f"python {platform.python_version()}  {platform.machine()}  one core, repeats {args.repeats}")
    print(f"{'size':>10s} {'clock':>5s} " + " ".join(f"{n:>18s}" for n in names) + f" {'both':>10s}")
    for mp in [float(s) for s in args.sizes.split(",") if s.strip()]:
        sample = load_sample(make_jpeg(mp), name=f"{mp:g}MP.jpg")
        for d in dets.values():  # warm: session creation and first-run allocations are excluded
            d.run(sample)
        for clock, fn in (("wall", time.perf_counter), ("cpu", time.process_time)):
            times = {n: [] for n in names}
            for _ in range(args.repeats):
                for n, d in dets.items():
                    sample.__dict__.pop("gray", None)  # the luma cache would otherwise be shared across runs
                    t = fn()
                    d.run(sample)
                    times[n].append(fn() - t)
            med = {n: statistics.median(v) for n, v in times.items()}
            tot = statistics.median([sum(times[n][i] for n in names) for i in range(args.repeats)])
            print(f"{sample.width:>5d}x{sample.height:<4d} {clock:>5s} " + " ".join(f"{med[n]:18.3f}" for n in names)
                  + f" {tot:10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
