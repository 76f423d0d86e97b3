"""``verity index add|search|remove|stats``: the similarity index of known images (needs ``[index]``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LABEL_CHOICES = ("real", "fake", "known_fake", "unlabelled")
FAKE_CLASS_CHOICES = ("ai_generated", "edited", "face_manipulated")


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index-dir", metavar="DIR", default=None,
                        help="index directory (default $VERITY_DATA_DIR/index or ~/.local/share/verity/index)")
    common.add_argument("--milvus-uri", metavar="URI", default=None,
                        help="use a Milvus server instead of the embedded database, e.g. http://host:19530 "
                             "(default $VERITY_MILVUS_URI)")
    p = sub.add_parser(
        "index", help="index known images and look new ones up (near duplicates, similar images, faces)",
        description="A searchable store of reference images: near duplicates by PDQ hash, similar images by "
                    "ImageNet embedding, faces by FaceNet embedding.",
        epilog="Exit codes: 0 ok, 1 nothing removed or internal error, 2 usage error, 3 some inputs unreadable, "
               "4 missing optional dependency or no index.")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION", parser_class=type(p))

    a = isub.add_parser("add", parents=[common], help="add images (idempotent by content hash)",
                        description="Add images or folders to the index. Files already indexed (same SHA-256) are skipped.")
    a.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    a.add_argument("--label", choices=LABEL_CHOICES, default="unlabelled", help="what the images are (default unlabelled)")
    a.add_argument("--fake-class", choices=FAKE_CLASS_CHOICES, default="",
                   help="for fake/known_fake images: the class a match should speak for (default edited)")
    a.add_argument("--source", default="", help="free text: where the images come from")
    a.add_argument("--no-faces", action="store_true", help="do not detect and index faces")
    a.add_argument("--batch", type=int, default=16, help="images per durable write (default 16)")
    a.add_argument("--json", action="store_true", help="print one JSON line per image as it is acknowledged")
    a.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    a.set_defaults(func=run_add)

    s = isub.add_parser("search", parents=[common], help="look an image up",
                        description="Near duplicates (PDQ distance) first, then similar images, then matching faces.")
    s.add_argument("image", metavar="IMG")
    s.add_argument("--k", type=int, default=5, help="neighbours of each kind (default 5)")
    s.add_argument("--near-duplicate", type=int, default=31, metavar="D",
                   help="largest PDQ Hamming distance called a near duplicate (default 31)")
    s.add_argument("--no-faces", action="store_true", help="do not search faces")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_search)

    r = isub.add_parser("remove", parents=[common], help="remove an image by SHA-256 or path",
                        description="Remove an image (and its faces) given its SHA-256, or a path: the file's content "
                                    "hash and any record stored with that path.")
    r.add_argument("target", metavar="SHA|PATH")
    r.set_defaults(func=run_remove)

    st = isub.add_parser("stats", parents=[common], help="counts by label and source")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=run_stats)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _open(args: argparse.Namespace, create: bool = False, read_only: bool = False):
    from verity.index.store import IndexStore

    return IndexStore(args.index_dir, uri=args.milvus_uri, create=create, read_only=read_only)


def run_add(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_OK, EXIT_USAGE
    from verity.core.errors import InputError
    from verity.core.io import load_sample, scan_image_paths
    from verity.index.features import image_record

    paths, problems = scan_image_paths(args.paths)
    for where, why in problems:
        sys.stderr.write(f"verity index add: {where}: {why}\n")
    if not paths:
        if problems:
            return EXIT_INPUT
        sys.stderr.write("verity index add: no image files found\n")
        return EXIT_USAGE
    if args.batch < 1:
        sys.stderr.write("verity index add: --batch must be at least 1\n")
        return EXIT_USAGE
    fake_class = args.fake_class or ("edited" if args.label in ("fake", "known_fake") else "")
    store = _open(args, create=True)
    added = skipped = 0
    failed = len(problems)
    pending: list = []
    pending_paths: dict[str, str] = {}

    def commit() -> None:
        nonlocal added
        if not pending:
            return
        for sha in store.add(pending):
            added += 1
            if args.json:
                print(json.dumps({"status": "added", "sha256": sha, "path": pending_paths[sha]}), flush=True)
        pending.clear()
        pending_paths.clear()

    try:
        it = paths
        if not args.quiet:
            from tqdm import tqdm

            it = tqdm(paths, desc="indexing", unit="img", file=sys.stderr, disable=len(paths) < 2)
        for path in it:
            try:
                sample = load_sample(path)
            except InputError as e:
                failed += 1
                sys.stderr.write(f"verity index add: {path}: {e}\n")
                continue
            sha = sample.sha256
            if sha in pending_paths or store.contains([sha]):
                skipped += 1
                if args.json:
                    print(json.dumps({"status": "already_indexed", "sha256": sha, "path": path}), flush=True)
                continue
            rec = image_record(sample, label=args.label, source=args.source, fake_class=fake_class,
                               faces=not args.no_faces)
            rec.path = str(Path(path).resolve())
            pending.append(rec)
            pending_paths[sha] = path
            if len(pending) >= args.batch:
                commit()
        commit()
    finally:
        store.close()
    if not args.json:
        sys.stderr.write(f"verity index add: {added} added, {skipped} already indexed, {failed} unreadable "
                         f"({store.index_dir if store.local else store.uri})\n")
    return EXIT_INPUT if failed else EXIT_OK


def run_search(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_OK
    from verity.core.errors import InputError
    from verity.core.io import load_sample
    from verity.index.features import compute_features
    from verity.cli.main import EXIT_USAGE
    from verity.index.search import search

    if args.k < 1 or not 0 <= args.near_duplicate <= 256:
        sys.stderr.write("verity index search: --k must be at least 1 and --near-duplicate 0..256\n")
        return EXIT_USAGE
    try:
        sample = load_sample(args.image)
    except InputError as e:
        sys.stderr.write(f"verity index search: {args.image}: {e}\n")
        return EXIT_INPUT
    store = _open(args, read_only=True)
    try:
        q = compute_features(sample, faces=not args.no_faces)
        res = search(store, q, k=max(1, args.k), near_duplicate=args.near_duplicate, faces=not args.no_faces)
    finally:
        store.close()
    if args.json:
        d = res.to_dict(full_paths=True)  # the local user's own paths
        d["path"] = args.image
        print(json.dumps(d))
        return EXIT_OK
    out = sys.stdout
    out.write(f"{args.image} (sha256 {res.sha256[:12]}..., PDQ quality {res.pdq_quality})\n")
    if not res.matches:
        out.write("  the index is empty\n")
    for m in res.matches:
        what = {"exact": "EXACT COPY", "near_duplicate": "near duplicate", "similar": "similar"}[m.kind]
        bits = []
        if m.pdq_distance is not None:
            bits.append(f"PDQ distance {m.pdq_distance}")
        if m.similarity is not None:
            bits.append(f"similarity {m.similarity:.3f}")
        lab = m.record.get("label", "")
        if m.record.get("fake_class"):
            lab += f" ({m.record['fake_class']})"
        out.write(f"  {what:<15} {m.sha256[:12]}  [{lab}] {', '.join(bits)}  {m.record.get('path') or ''}"
                  f"{'  source: ' + m.record['source'] if m.record.get('source') else ''}\n")
    if res.n_query_faces:
        out.write(f"  {res.n_query_faces} face(s) in the query\n")
        for f in res.faces:
            verdict = "same person" if f.same_person else "different"
            out.write(f"  face {f.query_face + 1}: {verdict:<11} similarity {f.similarity:.3f}  face {f.face_index + 1} of "
                      f"{f.image_sha[:12]}  [{f.record.get('label', '')}] {f.record.get('path') or ''}\n")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    import hashlib
    import re

    from verity.cli.main import EXIT_ERROR, EXIT_OK

    target = args.target.strip()
    shas: list[str] = []
    if re.fullmatch(r"[0-9a-fA-F]{64}", target):
        shas.append(target.lower())
    else:
        p = Path(target)
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            shas.append(h.hexdigest())
    store = _open(args)
    try:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", target):
            shas += store.find_by_path(target)
            shas += store.find_by_path(str(Path(target).resolve())) if Path(target).exists() else []
        removed = [s for s in dict.fromkeys(shas) if store.remove(s)]
    finally:
        store.close()
    for s in removed:
        print(f"removed {s}")
    if not removed:
        sys.stderr.write(f"verity index remove: {target} is not in the index\n")
        return EXIT_ERROR
    return EXIT_OK


def run_stats(args: argparse.Namespace) -> int:
    store = _open(args, read_only=True)
    try:
        st = store.stats()
    finally:
        store.close()
    if args.json:
        print(json.dumps(st))
        return 0
    print(f"index at {st['location']}: {st['images']} image{'' if st['images'] == 1 else 's'}, "
          f"{st['faces']} face{'' if st['faces'] == 1 else 's'}")
    for k, v in sorted(st["by_label"].items()):
        print(f"  label {k:<11} {v}")
    for k, v in sorted(st["by_source"].items(), key=lambda kv: -kv[1])[:20]:
        print(f"  source {k[:40]:<40} {v}")
    return 0
