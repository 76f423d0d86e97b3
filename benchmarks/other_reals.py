"""Real photos from other sources and at web sizes: how often the learned detectors and the fused
verdict call them generated.

Two sets of real images the detectors never trained on:

* **package photos**: the natural photographs bundled with scikit-image and matplotlib (astronaut,
  cat, coffee, coins, bricks, grass, gravel, motorcycles, rocket, Hubble deep field, moon, retina,
  Grace Hopper...; drawings and synthetic test charts left out), from other cameras than the
  shared data's;
* **web-size reals** (with ``--data``): the held-out real camera photos of the learned detectors'
  split (the trainer's seed-0 groups), at full size and with the long side reduced to 1024, 768,
  512 and 384 px (area interpolation), the way images are often published.

Every image is re-encoded as a metadata-free JPEG q90 (equalised). Printed: per variant, the share
of images each learned branch scores >= 0.5, the median score, and with ``--fused`` the verdicts of
the full default pipeline.

Example::

    .venv/bin/python benchmarks/other_reals.py --data ../shared/data --fused
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

#: scikit-image / matplotlib files that are camera photographs (not drawings, charts or renderings).
PACKAGE_PHOTOS = {
    "skimage": ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
                "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
                "retina.jpg", "rocket.jpg"],
    "matplotlib": ["grace_hopper.jpg"],
}
SIDES = (None, 1024, 768, 512, 384)


def package_photos() -> dict[str, Path]:
    """Name -> path of the bundled photographs that are installed."""
    out = {}
    for pkg, names in PACKAGE_PHOTOS.items():
        try:
            mod = __import__(pkg)
        except ImportError:
            continue
        root = Path(mod.__file__).parent
        base = root / "data" if pkg == "skimage" else root / "mpl-data" / "sample_data"
        out.update({f"{pkg}/{n}": base / n for n in names if (base / n).is_file()})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="shared data folder (with manifest.csv): adds the web-size held-out reals")
    ap.add_argument("--fused", action="store_true", help="also run the default pipeline and count its verdicts")
    ap.add_argument("--weights", help="folder holding learned_semantic.onnx / learned_npr.onnx to score instead of the "
                                      "shipped files (not pinned; the fused verdict always uses the shipped ones)")
    args = ap.parse_args(argv)

    import numpy as np

    from verity.core.io import load_sample
    from verity.models import WEIGHTS_DIR, get_config
    from verity.pipeline import analyze
    from verity.train.data import encode, fit_long_side, load_pixels
    from verity.train.detector import onnx_file_scorer

    wdir = Path(args.weights) if args.weights else WEIGHTS_DIR
    nets = {}
    for n in ("learned_semantic", "learned_npr"):
        c = get_config(n)
        if not (wdir / c.file).is_file():
            print(f"other_reals: {wdir / c.file} not found", file=sys.stderr)
            return 2
        nets[n] = onnx_file_scorer(wdir / c.file, c)

    def scores(px):
        return {n: score(px) for n, score in nets.items()}

    sets: dict[str, list[tuple[str, "np.ndarray"]]] = {"package photos": []}
    for name, path in package_photos().items():
        sets["package photos"].append((name, load_pixels(str(path))))
    if args.data:
        from verity.train.detector import select_records

        chosen, val = select_records(args.data, 0)
        sets["held-out camera photos"] = [(r.path, load_pixels(r.path)) for r in chosen
                                          if r.path in val and r.source.startswith("real_")]
    for title, items in sets.items():
        if not items:
            print(f"{title}: none installed")
            continue
        print(f"\n{title} (n={len(items)}), equalised JPEG q90")
        print("| long side | semantic >= 0.5 | semantic median | NPR >= 0.5 | NPR median |"
              + (" fused verdicts |" if args.fused else ""))
        print("|---|---:|---:|---:|---:|" + ("---|" if args.fused else ""))
        per_image = {}
        for side in SIDES:
            rows, verdicts = [], Counter()
            for name, px in items:
                data = encode(fit_long_side(px, side) if side else px, "jpeg", 90)
                q = load_sample(data, name="x.jpg").pixels
                row = scores(q)
                rows.append(row)
                per_image.setdefault(name, []).append(row["learned_semantic"])
                if args.fused:
                    verdicts[analyze(load_sample(data, name="x.jpg")).verdict] += 1
            sem = np.array([r["learned_semantic"] for r in rows])
            npr = np.array([r["learned_npr"] for r in rows])
            line = (f"| {side or 'native'} | {np.mean(sem >= 0.5):.2f} | {np.median(sem):.2f} | {np.mean(npr >= 0.5):.2f} "
                    f"| {np.median(npr):.2f} |")
            if args.fused:
                line += " " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) + " |"
            print(line)
        if title == "package photos":
            print("semantic score per photo (" + ", ".join(str(s or "native") for s in SIDES) + "):")
            for name, v in per_image.items():
                print(f"  {name:32s} " + " ".join(f"{x:.2f}" for x in v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
