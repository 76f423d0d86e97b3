"""Copy-move detector: false alarms on real photos at full and web sizes, and detection of clones.

Real side: the shared data's camera photos (``real_camera`` + ``real_processed``) and the FRL studio
portraits (plain backgrounds, long straight edges), each decoded, re-encoded as a metadata-free JPEG
q90, and also reduced to a long side of 1024 and 512 px (area interpolation) before that. Forgery
side: ``verity.lab.edits.make_copy_move`` clones (64-96 px, JPEG q95) on scikit-image photos and a
synthetic texture, seeds 0-5 and 20-25 (as in docs/benchmarks/classical.md).

``--no-along-shift`` turns off the edge test along the displacement (``verity.ops.copymove.along_shift``)
to reproduce the figures from before it; ``--no-pattern-tests`` turns off the lattice, island and
flat-noise tests (``lattice_ratio``, ``separate_islands``, ``flat_noise_agreement``, issue 13).

Example::

    .venv/bin/python benchmarks/copymove_sizes.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data folder")
    ap.add_argument("--no-along-shift", action="store_true", help="disable the edge test along the displacement")
    ap.add_argument("--no-pattern-tests", action="store_true",
                    help="disable the lattice, island and flat-noise tests (the detector before issue 13)")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    import verity.ops.copymove as cm
    from verity.core.io import decode, load_sample
    from verity.core.registry import create_detector
    from verity.lab import edits
    from verity.train.data import encode, fit_long_side

    if args.no_along_shift:
        cm.along_shift = lambda M, box, steps=(3, 6, 8): ()
    if args.no_pattern_tests:
        cm.lattice_ratio = lambda *a, **k: 0.0
        cm.separate_islands = lambda *a, **k: False
        cm.flat_noise_agreement = lambda *a, **k: (0.0, 0.0)
    det = create_detector("copy_move")
    root = Path(args.data)
    sets = {
        "camera photos": sorted(glob.glob(str(root / "real_camera/camera_samples/*")))
        + sorted(glob.glob(str(root / "real_processed/camera_samples/*"))),
        "FRL studio portraits": sorted(glob.glob(str(root / "faces/frl_london/*"))),
    }
    if not any(sets.values()):
        print(f"copymove_sizes: no photos under {root}", file=sys.stderr)
        return 2
    print("| real set | n | long side | flagged (score > 0.5) |")
    print("|---|---:|---|---:|")
    for title, files in sets.items():
        pixels = [load_sample(f).pixels for f in files]
        for side in (None, 1024, 512):
            hits = 0
            for px in pixels:
                q = px if side is None else fit_long_side(px, side)
                f = det.run(load_sample(encode(q, "jpeg", 90), name="x.jpg"))
                hits += bool(f.score is not None and f.score > 0.5)
            print(f"| {title} | {len(pixels)} | {side or 'native'} | {hits} ({hits / len(pixels):.1%}) |")

    from skimage import data as skd

    photos = {n: getattr(skd, n)() for n in ("astronaut", "coffee", "chelsea", "camera", "rocket")}
    found, n = 0, 0
    for name in list(photos) + ["texture"]:
        for seed in list(range(0, 6)) + list(range(20, 26)):
            rng = np.random.default_rng(seed)
            img = edits.textured_image(rng) if name == "texture" else photos[name]
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            fake = edits.make_copy_move(img, rng, size=int(rng.integers(64, 97)))
            r = det.run(decode(fake.data))
            found += bool(r.score is not None and r.score >= 0.8)
            n += 1
    print(f"\nclones found (score >= 0.8): {found}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
