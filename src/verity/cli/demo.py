"""``verity demo``: make a few demo images in code (an untouched photo, a splice, a copy-move, an
inpainted fill, a Stable-Diffusion-tagged PNG) and analyse them into an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate demo forgeries and analyse them into an HTML report",
        description="Write demo images (made in code from photos that ship with scikit-image, or synthetic "
        "textures when it is absent) to OUT/images and analyse them into OUT/report.html.",
    )
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _photos(rng):
    try:
        import skimage.data as d

        return d.astronaut(), d.coffee(), d.chelsea()
    except Exception:  # scikit-image not installed: synthetic photo-like images
        from verity.lab.edits import textured_image

        return tuple(textured_image(rng, (480, 640)) for _ in range(3))


def make_demo_images(out: Path, seed: int = 0) -> list[Path]:
    """Write the demo images into ``out`` and return their paths."""
    import numpy as np

    from verity.lab import edits

    rng = np.random.default_rng(seed)
    a, b, c = _photos(rng)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "01_camera_photo.jpg": edits.encode_jpeg(c, 92, exif=edits.camera_exif("NIKON CORPORATION", "NIKON D750")),
        "02_splice.jpg": edits.make_splice(a, b, rng, q_host=92, q_donor=60, exif=edits.camera_exif()).data,
        "03_copy_move.jpg": edits.make_copy_move(b, rng, size=72, quality=95).data,
        "04_inpainted.jpg": edits.make_inpaint_fill(c, rng, quality=90).data,
        "05_stable_diffusion.png": edits.sd_png(a[::2, ::2].repeat(2, 0).repeat(2, 1)),
    }
    paths = []
    for name, data in files.items():
        p = out / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def run(args: argparse.Namespace) -> int:
    from verity.cli.analyze import run as analyze_run

    out = Path(args.out)
    paths = make_demo_images(out / "images", args.seed)
    sys.stderr.write(f"verity demo: wrote {len(paths)} demo images to {out / 'images'}\n")
    ns = argparse.Namespace(
        paths=[str(p) for p in paths], json=False, html=str(out / "report.html"), heatmaps=str(out / "heatmaps"),
        detectors=None, max_mb=None, max_mp=None, quiet=True,
    )
    rc = analyze_run(ns)
    sys.stderr.write(f"verity demo: open {(out / 'report.html').resolve()} in a browser\n")
    return rc
