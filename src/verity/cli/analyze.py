"""``verity analyze PATH... [--json] [--html REPORT.html] [--heatmaps DIR]``"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return v


def seconds_or_zero(text: str) -> float:
    """argparse type: seconds >= 0 (0 = no limit)."""
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a positive number of seconds, got {text}")
    return v


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """``--max-mb --max-mp --max-frames --detector-timeout``; defaults from the environment."""
    p.add_argument("--max-mb", type=positive_number, default=None, metavar="MB",
                   help="largest file accepted, MB (default 100, or $VERITY_MAX_MB)")
    p.add_argument("--max-mp", type=positive_number, default=None, metavar="MP",
                   help="largest image accepted, megapixels (default 100, or $VERITY_MAX_MP)")
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="most frames in an animated/multi-page file (default 10000, or $VERITY_MAX_FRAMES)")
    p.add_argument("--detector-timeout", type=seconds_or_zero, default=None, metavar="SECONDS",
                   help="time one detector may spend on one image before it is stopped and abstains "
                   "(default 60, or $VERITY_DETECTOR_TIMEOUT; 0 = no limit)")


def limits_from_args(args: argparse.Namespace):
    """The :class:`~verity.core.io.Limits` the flags ask for; unset flags fall back to the environment."""
    from verity.core.io import Limits

    kw = {}
    if getattr(args, "max_mb", None) is not None:
        kw["max_bytes"] = max(1, int(args.max_mb * 1024 * 1024))
    if getattr(args, "max_mp", None) is not None:
        kw["max_pixels"] = max(1, int(args.max_mp * 1e6))
    if getattr(args, "max_frames", None) is not None:
        kw["max_frames"] = int(args.max_frames)
    return Limits(**kw)


def timeout_from_args(args: argparse.Namespace):
    """Per-detector time limit: the flag (0 = none), else the environment / built-in default."""
    from verity.pipeline import default_detector_timeout

    t = getattr(args, "detector_timeout", None)
    if t is None:
        return default_detector_timeout()
    return t or None


def write_line(text: str) -> None:
    """Write one line to stdout in a single ``write(2)`` call, so that a kill (even SIGKILL) between
    two results never leaves half a line behind, and every line written is on disk (in the page
    cache) before the next file is analysed."""
    data = (text + "\n").encode("utf-8")
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured/replaced stdout (tests, embedding)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    sys.stdout.flush()  # anything printed before goes first
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file by writing a temporary file beside it and renaming it over: a reader (or a
    crash) sees the old file or the whole new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse images and videos: verdict, probabilities, evidence, heatmaps, suspicious segments",
        description="Analyse one or more images or videos (files or folders). Prints a verdict per file: "
        "authentic, ai_generated, edited, face_manipulated or inconclusive. Videos (MP4, MOV, MKV/WebM, AVI, "
        "MPEG-TS...) are sampled at --fps frames per second; faces are tracked across frames and the most "
        "suspicious segments are listed with their start and end times.",
        epilog="Exit codes: 0 all analysed, 2 usage error, 3 one or more inputs could not be read "
        "(the others are still analysed and reported). With --json each result is written as one "
        "line as soon as it is ready, so a killed run keeps every line it wrote.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, or folders")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (JSON Lines)")
    p.add_argument("--html", metavar="REPORT.html", help="write a self-contained HTML report")
    p.add_argument("--heatmaps", metavar="DIR", help="write each heatmap as a PNG overlay into DIR")
    p.add_argument("--detectors", metavar="A,B", help="run only these detectors on images (see `verity detectors`; videos: --frame-detectors)")
    add_limit_arguments(p)
    p.add_argument("--trust-anchors", metavar="PEM", help="root certificates (PEM) that make a C2PA signer Trusted "
                   "(default $VERITY_C2PA_TRUST_ANCHORS)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    v = p.add_argument_group("videos")
    v.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video (default 2)")
    v.add_argument("--max-seconds", type=float, default=600.0,
                   help="analyse at most this many seconds from the start of each video (default 600)")
    v.add_argument("--frame-detectors", metavar="A,B",
                   help="image detectors run on every sampled frame (default noise_inconsistency,learned_npr,upsampling)")
    p.set_defaults(func=run)


def _human(v, out) -> None:
    from verity.core.display import format_class_probability, format_probability

    ranked = sorted(v.probabilities.items(), key=lambda kv: -kv[1])
    if v.decided_by == "provenance":
        fused = v.fused_probabilities or v.probabilities
        alone = ", ".join(f"{c} {format_probability(p)}" for c, p in sorted(fused.items(), key=lambda kv: -kv[1]))
        out.write(f"{v.path}: {v.verdict.upper()}  (certainty: provenance, signed Content Credentials; "
                  f"detectors alone: {alone})\n")
    else:
        # the top class with its 90 % interval from the calibration data, the others plainly
        probs = ", ".join(format_class_probability(c, p, v.intervals.get(c) if i == 0 else None)
                          for i, (c, p) in enumerate(ranked))
        out.write(f"{v.path}: {v.verdict.upper()}  ({probs})\n")
    out.write(f"  {v.explanation}\n")
    if v.family_sentence():
        out.write(f"  {v.family_sentence()}\n")
    for w in v.warnings:
        out.write(f"  note: {w}\n")
    strong = {"decisive": 0, "outweighed": 1}  # what moved the verdict first, then by how far the score leans
    shown = sorted(
        (f for f in v.findings if f.score is not None),
        key=lambda f: (strong.get((v.roles.get(f.detector) or {}).get("role"), 2), -abs(f.score - 0.5)),
    )
    for f in shown:
        role = (v.roles.get(f.detector) or {}).get("role")
        if role is None:  # a verdict made without roles: by score
            mark = "!" if f.score >= 0.65 else "-" if f.score > 0.35 else "+"
        elif role in ("decisive", "outweighed"):  # moved a class logit by at least 1: strong either way
            contrib = (v.roles[f.detector].get("contribution") or {}).values()
            mark = "!" if max(contrib, default=0.0) > 0 else "+"
        else:
            mark = "-"
        first = f.evidence[0] if f.evidence else ""
        tail = "" if role != "outweighed" else (
            " (not enough for a verdict)" if v.verdict == "inconclusive" else " (outweighed by the other evidence)")
        out.write(f"  {mark} [{f.kind}] {f.detector} {f.score:.2f}{tail}: {first}\n")
        for e in f.evidence[1:3]:
            out.write(f"      {e}\n")
    if v.video is not None:
        vi = v.video
        out.write(f"  video: {vi.get('container')} {vi.get('codec')} {vi.get('width')}x{vi.get('height')}, "
                  f"{vi.get('duration', 0):.1f} s at {vi.get('fps', 0):.3g} fps; {vi.get('frames_sampled')} frames sampled "
                  f"at {vi.get('sample_fps'):g}/s\n")
        for seg in v.segments:
            out.write(f"  segment {seg.start:.1f}-{seg.end:.1f} s  {seg.label} {seg.score:.2f}: {seg.reason}\n")
        for t in v.tracks:
            ms = "n/a" if t.score is None else f"{t.score:.2f}"
            out.write(f"  face track {t.id} {t.start:.1f}-{t.end:.1f} s ({len(t.times)} frames): manipulation {ms}\n")
    else:
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


def _video_analyzer(args: argparse.Namespace):
    from verity.video.analyze import FRAME_DETECTORS, VideoAnalyzer, VideoOptions

    frame = FRAME_DETECTORS
    if args.frame_detectors:
        frame = tuple(d.strip() for d in args.frame_detectors.split(",") if d.strip())
    return VideoAnalyzer(VideoOptions(fps=args.fps, max_seconds=args.max_seconds, frame_detectors=frame))


def _analyze_video(analyzer, path: str, limits, bar: bool):
    if not bar:
        return analyzer.analyze(path, limits=limits)
    from tqdm import tqdm

    with tqdm(desc=Path(path).name[:30], unit="frame", file=sys.stderr, leave=False) as pb:
        def progress(done: int, total: int) -> None:
            if total and pb.total != total:
                pb.total = total
            pb.update(done - pb.n)

        return analyzer.analyze(path, limits=limits, progress=progress)


def run(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_OK, EXIT_USAGE
    from verity.core.errors import InputError
    from verity.core.io import load_sample, scan_image_paths
    from verity.pipeline import Pipeline

    paths, problems = scan_image_paths(args.paths, videos=True)
    for where, why in problems:
        sys.stderr.write(f"verity: {where}: {why}\n")
    if not paths:
        if problems:
            return EXIT_INPUT
        sys.stderr.write("verity analyze: no image or video files found in the given folders\n")
        return EXIT_USAGE
    if args.trust_anchors:
        import os

        if not Path(args.trust_anchors).is_file():
            sys.stderr.write(f"verity analyze: --trust-anchors {args.trust_anchors}: no such file\n")
            return EXIT_USAGE
        os.environ["VERITY_C2PA_TRUST_ANCHORS"] = str(Path(args.trust_anchors).resolve())
    if not args.fps > 0 or args.fps > 60:
        sys.stderr.write("verity analyze: --fps must be in (0, 60]\n")
        return EXIT_USAGE
    if not args.max_seconds > 0:
        sys.stderr.write("verity analyze: --max-seconds must be positive\n")
        return EXIT_USAGE
    from verity.video.decode import is_video

    video_analyzer = None
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    limits = limits_from_args(args)
    try:
        pipe = Pipeline(detectors, detector_timeout=timeout_from_args(args))
    except KeyError as e:
        sys.stderr.write(f"verity analyze: {e.args[0]}\n")
        return EXIT_USAGE
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

    def unreadable(path: str, e: InputError) -> None:
        """One line on stderr, an error record in the JSON Lines and the report."""
        sys.stderr.write(f"verity: {path}: {e}\n")
        if args.json:
            from verity import SCHEMA_VERSION

            write_line(json.dumps({"schema_version": SCHEMA_VERSION, "path": path, "verdict": None,
                                   "error": {"code": e.code, "message": str(e)}}))
        if args.html:
            report_items.append(render_item(ReportItem(path=path, error=str(e)), len(report_items)))

    for path in it:
        if is_video(path):
            try:
                if video_analyzer is None:
                    video_analyzer = _video_analyzer(args)
                res = _analyze_video(video_analyzer, path, limits, not args.quiet and sys.stderr.isatty())
            except KeyError as e:
                sys.stderr.write(f"verity analyze: {e.args[0]}\n")
                return EXIT_USAGE
            except InputError as e:
                failed += 1
                unreadable(path, e)
                continue
            if args.json:
                write_line(json.dumps(res.verdict.to_dict()))
            else:
                _human(res.verdict, sys.stdout)
            if args.html:
                report_items.append(render_item(ReportItem(path=path, verdict=res.verdict, video=res), len(report_items)))
            continue
        try:
            sample = load_sample(path, limits=limits)
        except InputError as e:
            failed += 1
            unreadable(path, e)
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
            write_line(json.dumps(v.to_dict(heat_paths)))
        else:
            _human(v, sys.stdout)
        if args.html:  # rendered now so that no decoded image is kept
            report_items.append(render_item(ReportItem(path=path, verdict=v, sample=sample), len(report_items)))
    if args.html:
        from verity.report.html import render_html

        write_text_atomic(Path(args.html), render_html(report_items))
        if not args.json:
            sys.stderr.write(f"verity: report written to {args.html}\n")
    return EXIT_INPUT if failed else EXIT_OK
