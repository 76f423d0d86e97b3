"""Calibrate the MTCNN detection threshold (``verity.face.detect.FACE_MIN_SCORE``) on data.

Positives: the real face photos under ``DATA/faces/*`` (a sample of each folder): an image counts as
found at threshold t when one of its detections scores >= t. Negatives: scikit-image's bundled
photos without faces (cat, coffee, rocket, horse, bricks, text...): every detection on them is a
false box. And every ``DATA/real_camera`` photo (``--all-real``): each of its detections was judged by
looking at a crop of it (``--crops``); ``--labels`` lists those that are not a face (false boxes) or
ambiguous (left out), every other one is a face.

Every detection whose O-Net probability reaches 0.7 (the cascade's own last-stage threshold) is
recorded once, so any threshold above that is evaluated without re-running the detector.

    python benchmarks/face_threshold.py --data ../shared/data --all-real --labels benchmarks/face_threshold_labels.txt \
        --per-folder 60 --out /tmp/face_threshold.json [--crops DIR] [--from /tmp/face_threshold.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

#: scikit-image photos without a face (astronaut, camera, coins and the GIF show faces or heads).
SKIMAGE_FACELESS = ("brick", "cell", "chelsea", "clock", "coffee", "colorwheel", "grass", "gravel", "horse",
                    "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina",
                    "rocket", "text")
THRESHOLDS = (0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)


def raw_detections(img: np.ndarray, max_side: int = 1024) -> list[tuple[float, list[float]]]:
    """(score, box) of every detection with O-Net probability >= 0.7, the way ``detect_faces`` searches."""
    from verity.face.detect import detect_faces

    return [(float(d.score), [float(v) for v in d.box]) for d in detect_faces(img, max_side=max_side, min_score=0.7,
                                                                               max_faces=100)]


def load(path: str) -> np.ndarray:
    from verity.core.io import load_sample

    return np.ascontiguousarray(load_sample(path).display_pixels())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", help="text file: real_camera detections that are not faces (see the file's header)")
    ap.add_argument("--from", dest="from_json", help="reuse the detections recorded in this earlier --out")
    ap.add_argument("--per-folder", type=int, default=60, help="face photos drawn from each faces/ folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--all-real", action="store_true", help="also record detections on every real_camera photo "
                    "(to decide which are face-free)")
    ap.add_argument("--crops", help="write a crop of every detection on a negative / real_camera photo here")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = Path(a.data)
    rng = random.Random(a.seed)
    pos: list[str] = []
    for d in sorted((data / "faces").iterdir()):
        files = sorted(str(p) for p in d.iterdir() if p.is_file())
        pos += rng.sample(files, min(a.per_folder, len(files)))
    neg: list[tuple[str, str]] = []
    import skimage.data

    for name in SKIMAGE_FACELESS:
        neg.append((f"skimage:{name}", name))
    labels: dict[tuple[str, int], str] = {}
    if a.labels:
        for ln in Path(a.labels).read_text().splitlines():
            parts = ln.split("#")[0].split()
            if len(parts) == 3:
                labels[(parts[0], int(parts[1]))] = parts[2]
    reals = sorted(str(p.relative_to(data)) for p in (data / "real_camera").rglob("*") if p.is_file()) if a.all_real \
        else []
    t0 = time.perf_counter()
    rec: dict[str, dict] = {"positives": {}, "negatives": {}, "real_camera": {}}
    if a.from_json:
        rec = json.loads(Path(a.from_json).read_text())["detections"]
        pos, neg, reals = [], [], []
    for i, p in enumerate(pos):
        try:
            rec["positives"][os.path.relpath(p, data)] = raw_detections(load(p))
        except Exception as e:  # noqa: BLE001
            print(f"skipped {p}: {e}", file=sys.stderr)
        if i % 50 == 0:
            print(f"positives {i}/{len(pos)} {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for key, name in neg:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        rec["negatives"][key] = raw_detections(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
    for r in reals:
        try:
            img = load(str(data / r))
        except Exception as e:  # noqa: BLE001
            print(f"skipped {r}: {e}", file=sys.stderr)
            continue
        dets = raw_detections(img)
        rec["real_camera"][r] = dets
        if a.crops and dets:
            from PIL import Image

            Path(a.crops).mkdir(parents=True, exist_ok=True)
            for k, (s, b) in enumerate(dets):
                x0, y0, x1, y1 = (int(round(v)) for v in b)
                pad = int(0.5 * max(x1 - x0, y1 - y0))
                crop = img[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
                if crop.size:
                    Image.fromarray(crop).convert("RGB").resize((128, 128)).save(
                        Path(a.crops) / f"{Path(r).stem}_{k}_{s:.4f}.jpg")
    secs = time.perf_counter() - t0
    neg_sets = dict(rec["negatives"])
    table = []
    for t in THRESHOLDS:
        found = sum(any(s >= t for s, _ in d) for d in rec["positives"].values())
        false = sum(sum(s >= t for s, _ in d) for d in neg_sets.values())
        row = {"threshold": t, "face_recall": round(found / max(1, len(rec["positives"])), 4),
               "found": found, "positives": len(rec["positives"]),
               "skimage_false_boxes": false, "skimage_images": len(neg_sets)}
        if rec["real_camera"]:
            lab = [(labels.get((k, i), "face"), s) for k, d in rec["real_camera"].items() for i, (s, _) in enumerate(d)]
            faces_all = sum(1 for x, _ in lab if x == "face")
            row.update({
                "real_camera_images": len(rec["real_camera"]),
                "real_camera_face_boxes": sum(1 for x, s in lab if x == "face" and s >= t),
                "real_camera_face_boxes_at_0.7": faces_all,
                "real_camera_false_boxes": sum(1 for x, s in lab if x == "not_face" and s >= t),
                "real_camera_images_with_a_false_box": sum(
                    any(labels.get((k, i)) == "not_face" and s >= t for i, (s, _) in enumerate(d))
                    for k, d in rec["real_camera"].items()),
                "real_camera_ambiguous_boxes": sum(1 for x, s in lab if x == "ambiguous" and s >= t),
            })
            row["false_boxes_per_image"] = round(
                (row["real_camera_false_boxes"] + false) / (len(rec["real_camera"]) + len(neg_sets)), 4)
        table.append(row)
    per_folder: dict[str, dict] = {}
    for t in THRESHOLDS:
        for k, d in rec["positives"].items():
            f = k.split("/")[1]
            per_folder.setdefault(f, {}).setdefault(t, [0, 0])
            per_folder[f][t][0] += any(s >= t for s, _ in d)
            per_folder[f][t][1] += 1
    false_scores = sorted(((s, f"{k}#{i}") for k, d in rec["real_camera"].items() for i, (s, _) in enumerate(d)
                           if labels.get((k, i)) == "not_face"), reverse=True)
    false_scores += sorted(((s, k) for k, d in neg_sets.items() for s, _ in d), reverse=True)
    doc = {"command": " ".join(sys.argv), "seconds": round(secs, 1), "table": table,
           "recall_per_folder": {f: {str(t): f"{v[0]}/{v[1]}" for t, v in d.items()} for f, d in per_folder.items()},
           "false_box_scores": sorted(false_scores, reverse=True)[:40],
           "detections": rec}
    Path(a.out).write_text(json.dumps(doc, indent=1))
    for r in table:
        print(r)
    print(json.dumps(doc["recall_per_folder"], indent=0))
    print("highest false-box scores:", doc["false_box_scores"][:15])
    return 0


if __name__ == "__main__":
    sys.exit(main())
