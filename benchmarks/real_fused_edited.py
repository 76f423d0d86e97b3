"""Fused verdict on every real camera photo of the shared data (``real_camera`` + ``real_processed``, as
stored): the edited probability and the copy_move score, one JSON line per photo, then a summary.

Issue 13's target: no real camera photo is called edited above 0.9. Set ``VERITY_DATA_DIR`` to an
empty folder so that no local similarity index takes part. Example::

    VERITY_DATA_DIR=$(mktemp -d) .venv/bin/python benchmarks/real_fused_edited.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import glob
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data folder")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    from verity.core.io import load_sample
    from verity.pipeline import Pipeline

    files = sorted(glob.glob(f"{args.data}/real_camera/camera_samples/*")) + \
        sorted(glob.glob(f"{args.data}/real_processed/camera_samples/*"))
    if not files:
        print(f"real_fused_edited: no photos under {args.data}", file=sys.stderr)
        return 2
    pipe = Pipeline(None)
    rows = []
    for f in files:
        v = pipe.analyze(load_sample(f))
        cm = next((x.score for x in v.findings if x.detector == "copy_move"), None)
        rows.append({"file": f[len(args.data):], "verdict": v.verdict, "edited": v.probabilities["edited"], "copy_move": cm})
        print(json.dumps(rows[-1]), flush=True)
    top = max(rows, key=lambda r: r["edited"])
    print(f"{len(rows)} photos; edited > 0.9: {sum(r['edited'] > 0.9 for r in rows)}; verdict edited: "
          f"{sum(r['verdict'] == 'edited' for r in rows)}; copy_move > 0.5: "
          f"{sum((r['copy_move'] or 0) > 0.5 for r in rows)}; highest edited {top['edited']:.3f} ({top['file']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
