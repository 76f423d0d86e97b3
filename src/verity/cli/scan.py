"""``verity scan DIR_OR_MANIFEST... --out results.parquet|.jsonl [--workers N] [--resume] [--engine local|ray]``"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="batch-scan folders or manifests into a results table (JSON Lines or Parquet)",
        description="Analyse every image of folders (recursively) or manifests (CSV with a 'path' column, "
        "JSON Lines with a \"path\" key, or a text file of paths) into one row per file. Every finished row is "
        "on disk before the next starts, so a killed scan loses nothing: run it again with --resume. "
        "Unreadable files become rows with status \"error\". See docs/scan.md.",
        epilog="Exit codes: 0 every file analysed, 2 usage error, 3 some files could not be analysed (rows with "
        "status \"error\"), 4 missing optional dependency (pyarrow for .parquet, ray for --engine ray), "
        "130 interrupted (what was done is kept).",
    )
    p.add_argument("sources", nargs="+", metavar="DIR_OR_MANIFEST", help="folders, manifests (.csv/.jsonl/.txt) or image files")
    p.add_argument("--out", "-o", required=True, metavar="RESULTS", help="output: .jsonl (or .ndjson) or .parquet")
    p.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                   help="parallel workers, one model load and one thread each (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="keep the rows already in RESULTS and scan only the rest")
    g.add_argument("--overwrite", action="store_true", help="delete RESULTS first")
    p.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="local processes (default) or Ray Data (a private local Ray, or --ray-address)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="join an existing Ray cluster: auto, HOST:6379 or ray://HOST:10001 (implies --engine ray)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="files per Ray batch (default 4)")
    p.add_argument("--detectors", metavar="A,B", help="run only these detectors (see `verity detectors`)")
    p.add_argument("--no-index", action="store_true", help="leave out the index_match detector (the similarity index)")
    p.add_argument("--max-mb", type=float, default=100.0, help="largest file accepted, MB (default 100)")
    p.add_argument("--max-mp", type=float, default=100.0, help="largest image accepted, megapixels (default 100)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    def usage(msg: str) -> int:
        sys.stderr.write(f"verity scan: {msg}\n")
        return EXIT_USAGE

    if args.workers < 1:
        return usage("--workers must be at least 1")
    if args.batch_size < 1:
        return usage("--batch-size must be at least 1")
    if args.max_mb <= 0 or args.max_mp <= 0:
        return usage("--max-mb and --max-mp must be positive")
    engine = args.engine or ("ray" if args.ray_address else "local")
    if engine == "local" and args.ray_address:
        return usage("--ray-address needs --engine ray")
    # one intra-op thread per worker, set before numpy/OpenCV/onnxruntime create their pools
    from verity.scan.rows import limit_threads_env

    limit_threads_env(1)
    from verity.scan.engine import run_scan
    from verity.scan.inputs import collect_inputs
    from verity.scan.output import output_format
    from verity.scan.rows import ScanConfig, scanner_names

    output_format(args.out)  # a bad suffix is a usage error before anything is listed
    paths = collect_inputs(args.sources)
    if not paths:
        return usage("no image files found in the given folders or manifests")
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    try:
        names = scanner_names(detectors)
    except KeyError as e:
        return usage(e.args[0])
    if args.no_index and "index_match" in names:
        names.remove("index_match")
        detectors = names
    elif "index_match" in names and (args.workers > 1 or engine == "ray") and _embedded_index():
        return usage(
            "the similarity index is embedded Milvus Lite, which one process at a time can open, so parallel "
            "workers would each see it or not by chance; serve it from a Milvus server (VERITY_MILVUS_URI, "
            "docs/scan.md), scan with --workers 1, or leave the index out with --no-index"
        )
    config = ScanConfig(
        detectors=tuple(detectors) if detectors else None,
        max_bytes=int(args.max_mb * 1024 * 1024),
        max_pixels=int(args.max_mp * 1e6),
    )
    report = run_scan(
        paths, args.out, workers=args.workers, engine=engine, ray_address=args.ray_address,
        resume=args.resume, overwrite=args.overwrite, config=config, progress=not args.quiet,
        batch_size=args.batch_size,
    )
    if not args.quiet:
        sys.stdout.write(report.summary() + "\n")
        sys.stdout.flush()
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_INPUT if report.errors else EXIT_OK


def _embedded_index() -> bool:
    """True when the index_match detector would open an embedded Milvus Lite index."""
    from verity.index import default_uri, index_exists

    return not default_uri() and index_exists()
