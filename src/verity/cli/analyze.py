"""``verity analyze PATH... [--json] [--html REPORT.html] [--heatmaps DIR]``"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse images: verdict, probabilities, evidence, heatmaps",
        description="Analyse one or more images (files or folders). Prints a verdict per image: "
        "authentic, ai_generated, edited, face_manipulated or inconclusive.",
        epilog="Exit codes: 0 all analysed, 2 usage error, 3 one or more inputs could not be read "
        "(the others are still analysed and reported).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (JSON Lines)")
    p.add_argument("--html", metavar="REPORT.html", help="write a self-contained HTML report")
    p.add_argument("--heatmaps", metavar="DIR", help="write each heatmap as a PNG overlay into DIR")
    p.add_argument("--detectors", metavar="A,B", help="run only these detectors (see `verity detectors`)")
    p.add_argument("--max-mb", type=float, default=100.0, help="largest file accepted, MB (default 100)")
    p.add_argument("--max-mp", type=float, default=100.0, help="largest image accepted, megapixels (default 100)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _human(v, out) -> None:
    probs = ", ".join(f"{c} {100 * p:.0f}%" for c, p in sorted(v.probabilities.items(), key=lambda kv: -kv[1]))
    out.write(f"{v.path}: {v.verdict.upper()}  ({probs})\n")
    out.write(f"  {v.explanation}\n")
    shown = sorted(
        (f for f in v.findings if f.score is not None), key=lambda f: -abs(f.score - 0.5)
    )
    for f in shown:
        mark = "!" if f.score >= 0.65 else "-" if f.score > 0.35 else "+"
        first = f.evidence[0] if f.evidence else ""
        out.write(f"  {mark} [{f.kind}] {f.detector} {f.score:.2f}: {first}\n")
        for e in f.evidence[1:3]:
            out.write(f"      {e}\n")
    for n, face in enumerate(v.faces):
        ms = "n/a" if face.manipulation_score is None else f"{face.manipulation_score:.2f}"
        out.write(f"  face {n + 1} at {[round(c) for c in face.box]}: manipulation {ms}\n")
    for e in v.errors:
        out.write(f"  ? {e}\n")


def _safe_stem(path: str, used: set[str]) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "image"
    base, n = stem, 1
    while stem in used:
        n += 1
        stem = f"{base}_{n}"
    used.add(stem)
    return stem


def run(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_OK, EXIT_USAGE
    from verity.core.errors import InputError
    from verity.core.io import Limits, load_sample, scan_image_paths
    from verity.pipeline import Pipeline

    import math

    for flag, v in (("--max-mb", args.max_mb), ("--max-mp", args.max_mp)):
        if not (math.isfinite(v) and v > 0):
            sys.stderr.write(f"verity analyze: {flag} must be a positive number, got {v:g}\n")
            return EXIT_USAGE
    paths, problems = scan_image_paths(args.paths)
    for where, why in problems:
        sys.stderr.write(f"verity: {where}: {why}\n")
    if not paths:
        if problems:
            return EXIT_INPUT
        sys.stderr.write("verity analyze: no image files found in the given folders\n")
        return EXIT_USAGE
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    try:
        pipe = Pipeline(detectors)
    except KeyError as e:
        sys.stderr.write(f"verity analyze: {e.args[0]}\n")
        return EXIT_USAGE
    limits = Limits(max_bytes=int(args.max_mb * 1024 * 1024), max_pixels=int(args.max_mp * 1e6))
    heat_dir = Path(args.heatmaps) if args.heatmaps else None
    if heat_dir:
        heat_dir.mkdir(parents=True, exist_ok=True)
    report_items = []
    failed = len(problems)
    used: set[str] = set()
    show_bar = not args.quiet and len(paths) > 1 and sys.stderr.isatty()
    it = paths
    if show_bar:
        from tqdm import tqdm

        it = tqdm(paths, desc="analysing", unit="img", file=sys.stderr)
    from verity.report.html import ReportItem, render_item

    for path in it:
        try:
            sample = load_sample(path, limits=limits)
        except InputError as e:
            failed += 1
            sys.stderr.write(f"verity: {path}: {e}\n")
            if args.json:
                from verity import SCHEMA_VERSION

                print(json.dumps({"schema_version": SCHEMA_VERSION, "path": path, "verdict": None,
                                  "error": {"code": e.code, "message": str(e)}}), flush=True)
            if args.html:
                report_items.append(render_item(ReportItem(path=path, error=str(e)), len(report_items)))
            continue
        v = pipe.analyze(sample)
        heat_paths: dict[str, str] = {}
        if heat_dir:
            from verity.report.render import heatmap_png

            stem = _safe_stem(path, used)
            for f in v.findings:
                if f.heatmap is not None:
                    out = heat_dir / f"{stem}.{f.detector}.png"
                    out.write_bytes(heatmap_png(f.heatmap, (sample.height, sample.width), sample.orientation, 10**6))
                    heat_paths[f.detector] = str(out)
        if args.json:
            print(json.dumps(v.to_dict(heat_paths)), flush=True)
        else:
            _human(v, sys.stdout)
        if args.html:  # rendered now so that no decoded image is kept
            report_items.append(render_item(ReportItem(path=path, verdict=v, sample=sample), len(report_items)))
    if args.html:
        from verity.report.html import render_html

        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(render_html(report_items), encoding="utf-8")
        if not args.json:
            sys.stderr.write(f"verity: report written to {args.html}\n")
    return EXIT_INPUT if failed else EXIT_OK
