"""Median seconds per image of the zero-shot coding-surprise statistics (``verity.ops.zed``) on a 1 MP
and a 12 MP JPEG, one core, onnxruntime session warm.

Usage::

    .venv/bin/python benchmarks/bench_zed.py --model /tmp/zed/learned_zed.onnx [--repeats 7] [--sizes 1,12]

Target (issue 3, zero-shot branch): at most 0.1 s of CPU per 1 MP image. Reports the median
wall-clock time and the median CPU time of the process (``time.process_time``; on a busy shared
machine the CPU time is the better estimate of one free core). The cost is bounded by the crops
(``--crop`` px, ``--max-crops`` per level, 3 levels); what grows with the image is the luma, its 2x
and 4x reductions and the texture ranking of the crop candidates.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learned import make_jpeg  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="ONNX file written by verity train zed")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="1,12", help="megapixels, comma-separated")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--max-crops", type=int, default=4)
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from verity.core.io import load_sample
    from verity.ops.zed import image_stats
    from verity.train.zed import onnx_predictor

    model = Path(args.model)
    if not model.is_file():
        print(f"{model} not found: run verity train zed first")
        return 4
    predict = onnx_predictor(model)
    print(f"# bench_zed  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  python {platform.python_version()}  "
          f"{platform.machine()}  one core, repeats {args.repeats}, crops {args.max_crops} x {args.crop} px x 3 levels")
    print(f"{'size':>14s} {'wall s':>8s} {'cpu s':>8s}")
    for mp in [float(s) for s in args.sizes.split(",") if s.strip()]:
        sample = load_sample(make_jpeg(mp), name=f"{mp:g}MP.jpg")
        image_stats(sample.pixels, predict, args.crop, args.max_crops)  # warm
        wall, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            image_stats(sample.pixels, predict, args.crop, args.max_crops)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        h, w = sample.pixels.shape[:2]
        print(f"{f'{w}x{h}':>14s} {statistics.median(wall):8.3f} {statistics.median(cpu):8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
