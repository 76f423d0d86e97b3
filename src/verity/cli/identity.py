"""``verity identity IMG --ref REF... [--json]``: is each face in IMG the same person as in the references?"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identity", help="same person or not: compare the faces of an image with reference photos",
        description="Detect the faces of IMG and of each reference image, embed them with FaceNet and compare "
                    "them by cosine similarity against a threshold measured on real photos (see docs/faces.md "
                    "for its false accept and false reject rates).",
        epilog="Exit codes: 0 compared (also when no face is found; the output says so), 2 usage error, "
               "3 an input could not be read, 4 the [faces] extra is missing.")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--ref", nargs="+", required=True, metavar="REF", help="reference images of the person")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity needed to call two faces the same person (default: the measured one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_MISSING, EXIT_OK
    from verity.core.errors import InputError
    from verity.core.io import load_sample
    from verity.face.identity import MEASURED, SAME_PERSON_THRESHOLD, compare

    threshold = SAME_PERSON_THRESHOLD if args.threshold is None else float(args.threshold)
    try:
        from verity.face.facenet import FaceModelMissing
        from verity.face.pipeline import find_faces
    except ImportError as e:  # pragma: no cover - numpy/cv2 are core deps
        sys.stderr.write(f"verity identity: {e}\n")
        return EXIT_MISSING

    def faces_of(path: str):
        s = load_sample(path)
        return find_faces(s.display_pixels(), embed=True)

    try:
        try:
            query = faces_of(args.image)
        except InputError as e:
            sys.stderr.write(f"verity identity: {args.image}: {e}\n")
            return EXIT_INPUT
        refs = []
        for r in args.ref:
            try:
                refs.append((r, faces_of(r)))
            except InputError as e:
                sys.stderr.write(f"verity identity: {r}: {e}\n")
                return EXIT_INPUT
    except FaceModelMissing as e:
        sys.stderr.write(f"verity identity: {e}\n")
        return EXIT_MISSING

    results = []
    for i, f in enumerate(query):
        per_ref = []
        for path, rfaces in refs:
            if not rfaces:
                per_ref.append({"ref": path, "ref_faces": 0, "similarity": None, "same_person": None, "ref_face": None})
                continue
            comps = [compare(f.embedding, rf.embedding, threshold) for rf in rfaces]
            j = max(range(len(comps)), key=lambda k: comps[k].similarity)
            per_ref.append({"ref": path, "ref_faces": len(rfaces), "ref_face": j, "similarity": round(comps[j].similarity, 4),
                            "same_person": comps[j].same_person,
                            "ref_box": [round(float(v), 1) for v in rfaces[j].detection.box]})
        results.append({"face": i, "box": [round(float(v), 1) for v in f.detection.box],
                        "detection_score": round(f.detection.score, 4), "refs": per_ref})
    doc = {"image": args.image, "faces": results, "threshold": threshold,
           "measured_at_default_threshold": MEASURED, "refs_without_face": [p for p, rf in refs if not rf]}
    if args.json:
        print(json.dumps(doc))
        return EXIT_OK
    out = sys.stdout
    if not query:
        out.write(f"{args.image}: no face found\n")
        return EXIT_OK
    out.write(f"{args.image}: {len(query)} face(s); same person when similarity >= {threshold:.2f}\n")
    for r in results:
        x0, y0, x1, y1 = r["box"]
        out.write(f"  face {r['face'] + 1} at x={x0:.0f}..{x1:.0f}, y={y0:.0f}..{y1:.0f}:\n")
        for pr in r["refs"]:
            if pr["similarity"] is None:
                out.write(f"    {pr['ref']}: no face found in the reference\n")
            else:
                word = "SAME PERSON" if pr["same_person"] else "different person"
                out.write(f"    {pr['ref']}: {word} (similarity {pr['similarity']:.3f})\n")
    return EXIT_OK
