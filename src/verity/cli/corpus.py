"""``verity corpus build|add|stats``: the public training corpus, built from git snapshots by recipe.

See :mod:`verity.train.corpus` and docs/corpus.md. Images never go into the repository: the recipe
lists them, ``build`` copies them out of local snapshots into a folder of your choice.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build the public training corpus from a recipe and git snapshots",
                       description="Build or extend the training corpus (docs/corpus.md).")
    csub = p.add_subparsers(dest="corpus_cmd", metavar="WHAT", parser_class=type(p))

    b = csub.add_parser("build", help="copy the recipe's images out of local snapshots, verify hashes, write manifest.csv",
                        description="Copy every image of the recipe out of its repository snapshot, check its "
                        "SHA-256 and write DIR/manifest.csv. Exit 4 when snapshots are missing (the message "
                        "lists the fetches needed), 3 when some rows failed (missing blob, hash mismatch).")
    b.add_argument("--recipe", default="corpus/recipe.csv", help="recipe CSV (default corpus/recipe.csv)")
    b.add_argument("--out", required=True, help="output folder (outside the repository)")
    b.add_argument("--snapshots", action="append", default=[], metavar="DIR",
                   help="folder holding snapshots (repeatable; also $VERITY_SNAPSHOTS; default /work/.mirror)")
    b.add_argument("--skip-missing", action="store_true", help="build what the present snapshots allow")
    b.add_argument("--drop", metavar="FILE", help="SHA-256 values to leave out (default corpus/dropped.csv next to the recipe, if present)")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    a = csub.add_parser("add", help="append rows for a snapshot's image files to a recipe",
                        description="List the image files of REPO under the given folders (filtered by size) and "
                        "append recipe rows with their commit and SHA-256.")
    a.add_argument("repo", help="owner/name")
    a.add_argument("under", nargs="*", help="folders inside the repository (default: all)")
    a.add_argument("--recipe", default="corpus/recipe.csv")
    a.add_argument("--label", required=True, choices=("authentic", "ai_generated"))
    a.add_argument("--family", required=True, help="generator family, or 'real'")
    a.add_argument("--licence", required=True)
    a.add_argument("--group", default="", help="group key; may use {dir} {stem} {repo} (default REPO:FOLDER)")
    a.add_argument("--source", default="")
    a.add_argument("--note", default="")
    a.add_argument("--commit", default="HEAD")
    a.add_argument("--include", help="regular expression the path must match")
    a.add_argument("--exclude", help="regular expression of paths to leave out")
    a.add_argument("--min-bytes", type=int, default=10_000)
    a.add_argument("--min-side", type=int, default=256)
    a.add_argument("--max-side", type=int, default=6000)
    a.add_argument("--limit", type=int)
    a.add_argument("--grid", help="split each file into the tiles of a sample grid: auto (separator lines) or ROWSxCOLS")
    a.add_argument("--snapshots", action="append", default=[], metavar="DIR")
    a.add_argument("--dry-run", action="store_true", help="print what would be added")
    a.set_defaults(func=_add)

    d = csub.add_parser("drop", help="remove images flagged by leakcheck.py from the recipe; record them in the drop list",
                        description="Read the output of `leakcheck.py images DIR`, remove every flagged image from "
                        "the recipe and append it to the drop list (default corpus/dropped.csv next to the recipe).")
    d.add_argument("report", help="file holding leakcheck.py's output ('-' for stdin)")
    d.add_argument("--corpus", required=True, help="the built corpus folder the report is about")
    d.add_argument("--recipe", default="corpus/recipe.csv")
    d.add_argument("--drop", help="drop list CSV (default dropped.csv next to the recipe)")
    d.add_argument("--reason", default="leakcheck")
    d.set_defaults(func=_drop)

    u = csub.add_parser("audit", help="can file properties alone tell the classes apart? (raw, equalised, texture-balanced)",
                        description="Cross-validated ROC AUC of classifiers that see only file properties (width, "
                        "height, aspect, format, file size, EXIF, JPEG quality) on a dataset as stored, after the "
                        "training-time equalisation (verity.train.equalize) and after texture balancing.")
    u.add_argument("--data", required=True, help="dataset folder or manifest (a built corpus, ../shared/data)")
    u.add_argument("--n", type=int, default=150, help="images per class (default 150)")
    u.add_argument("--crops", type=int, default=3, help="equalised crops per image (default 3)")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--json", action="store_true")
    u.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    u.set_defaults(func=_audit)

    s = csub.add_parser("stats", help="counts per family and real source of a recipe")
    s.add_argument("--recipe", default="corpus/recipe.csv")
    s.set_defaults(func=_stats)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _build(args) -> int:
    from pathlib import Path

    from verity.train.corpus import build

    drop = args.drop
    if drop is None:
        cand = Path(args.recipe).with_name("dropped.csv")
        drop = str(cand) if cand.is_file() else None
    res = build(args.recipe, args.out, snapshots=args.snapshots, skip_missing=args.skip_missing,
                drop=drop, progress=not args.quiet)
    n = res.written + res.kept
    print(f"{n} images in {Path(args.out)} ({res.written} written, {res.kept} already there, "
          f"{res.dropped} dropped by the drop list, {res.removed} stale files removed, {len(res.failed)} failed); manifest {res.manifest}")
    if res.missing_repos:
        print(f"skipped {len(res.missing_repos)} repositories without a snapshot: "
              + " ".join(f"github:{r}" for r in res.missing_repos), file=sys.stderr)
    for e, why in res.failed[:20]:
        print(f"failed: {e.repo}:{e.path} (recipe line {e.line}): {why}", file=sys.stderr)
    if len(res.failed) > 20:
        print(f"... and {len(res.failed) - 20} more", file=sys.stderr)
    return 3 if res.failed else 0


def _add(args) -> int:
    from pathlib import Path

    from verity.train.corpus import CorpusError, entries_from_snapshot, read_recipe, write_recipe

    if (args.label == "authentic") != (args.family == "real"):
        raise CorpusError("--family must be 'real' exactly when --label is authentic")
    new, skipped = entries_from_snapshot(
        args.repo, args.under, args.label, args.family, args.licence, group=args.group,
        source=args.source, note=args.note, commit=args.commit, snapshots=args.snapshots,
        min_bytes=args.min_bytes, min_side=args.min_side, max_side=args.max_side,
        include=args.include, exclude=args.exclude, limit=args.limit, grid=args.grid,
    )
    rp = Path(args.recipe)
    old = read_recipe(rp) if rp.is_file() else []
    have = {(e.repo.lower(), e.path, e.crop) for e in old}
    have_sha = {e.sha256 for e in old if not e.crop}
    fresh, dup = [], 0
    for e in new:
        if (e.repo.lower(), e.path, e.crop) in have or (not e.crop and e.sha256 in have_sha):
            dup += 1
            continue
        if not e.crop:
            have_sha.add(e.sha256)
        fresh.append(e)
    if args.dry_run:
        for e in fresh:
            print(f"{e.label} {e.family} {e.path} {e.crop} {e.group}")
    else:
        rp.parent.mkdir(parents=True, exist_ok=True)
        write_recipe(rp, old + fresh)
    print(f"{args.repo}: {len(fresh)} rows {'would be ' if args.dry_run else ''}added, {dup} already listed "
          f"(same path or same bytes), {len(skipped)} files skipped")
    return 0


def _drop(args) -> int:
    from pathlib import Path

    from verity.train.corpus import drop_flagged

    text = sys.stdin.read() if args.report == "-" else Path(args.report).read_text(encoding="utf-8")
    drop = args.drop or str(Path(args.recipe).with_name("dropped.csv"))
    out = drop_flagged(args.recipe, args.corpus, text, drop, reason=args.reason)
    for e in out:
        print(f"dropped {e.repo}:{e.path} ({e.label}/{e.family})")
    print(f"{len(out)} images removed from {args.recipe}; drop list {drop}")
    return 0


def _audit(args) -> int:
    import json

    from verity.train.data import read_dataset
    from verity.train.equalize import audit

    res = audit(read_dataset(args.data), n_per_class=args.n, seed=args.seed, crops_per_image=args.crops,
                progress=not args.quiet)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print("files                       n   generated  GBM AUC  logreg AUC")
    for k, title in (("raw", "as stored"), ("equalized", "equalised crops"), ("balanced", "equalised + texture-balanced")):
        r = res[k]
        print(f"{title:<28}{int(r['n']):>4} {int(r['n_pos']):>8}    {r['gbm']:.3f}    {r['logreg']:.3f}")
    return 0


def _stats(args) -> int:
    from verity.train.corpus import read_recipe, summarize

    es = read_recipe(args.recipe)
    s = summarize(es)
    print(f"{len(es)} rows: {sum(s['families'].values())} generated in {len(s['families'])} families, "
          f"{sum(s['real_sources'].values())} real from {len(s['real_sources'])} sources")
    for k, v in s["families"].items():
        print(f"  family {k}: {v}")
    for k, v in s["real_sources"].items():
        print(f"  real {k}: {v}")
    return 0
