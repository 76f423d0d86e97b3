"""copy_move: camera photos as stored flagged (score > 0.5), and clones found (score >= 0.8).

The clones are those of ``benchmarks/copymove_sizes.py`` (``make_copy_move``, 64-96 px, JPEG q95, five
scikit-image photos and a synthetic texture, seeds 0-5 and 20-25). Usage::

    .venv/bin/python benchmarks/copymove_stored.py clones
    .venv/bin/python benchmarks/copymove_stored.py real ../shared/data
"""
import glob, sys, numpy as np, cv2
cv2.setNumThreads(1)
from verity.core.io import decode, load_sample
from verity.core.registry import create_detector
from verity.lab import edits
import verity.detectors
det = create_detector("copy_move")
part = sys.argv[1]
if part == "clones":
    from skimage import data as skd
    photos = {n: getattr(skd, n)() for n in ("astronaut", "coffee", "chelsea", "camera", "rocket")}
    found = n = 0
    for name in list(photos) + ["texture"]:
        for seed in list(range(0, 6)) + list(range(20, 26)):
            rng = np.random.default_rng(seed)
            img = edits.textured_image(rng) if name == "texture" else photos[name]
            if img.ndim == 2: img = np.repeat(img[..., None], 3, axis=2)
            fake = edits.make_copy_move(img, rng, size=int(rng.integers(64, 97)))
            r = det.run(decode(fake.data)); ok = r.score is not None and r.score >= 0.8
            found += ok; n += 1
            if not ok: print("missed", name, seed, r.score, flush=True)
    print(f"clones found (score >= 0.8): {found}/{n}", flush=True)
else:
    root = sys.argv[2]
    files = sorted(glob.glob(root + "/real_camera/camera_samples/*")) + sorted(glob.glob(root + "/real_processed/camera_samples/*"))
    hits = 0
    for f in files:
        r = det.run(load_sample(f)); 
        if r.score > 0.5: hits += 1; print("flagged", f, r.score, flush=True)
    print(f"camera photos as stored flagged (score > 0.5): {hits}/{len(files)}", flush=True)
