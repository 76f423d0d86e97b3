"""Benchmark of the similarity index: robustness of "finds the original first", indexing throughput,
and search latency at 100k stored vectors.

Usage::

    .venv/bin/python benchmarks/bench_index.py --data ../shared/data --n 300 --synthetic 100000 \
        --out /tmp/bench_index.json

Parts
-----
1. Robustness (real images): ``--n`` images drawn (seeded) from every folder of the shared data are
   indexed without faces; each is then queried as a JPEG-75 re-encode, a 0.5 resize (PNG) and a
   slight crop (a random 90 % x 90 % window, JPEG 90). A query succeeds when the first result of
   :func:`verity.index.search.search` is the original.
2. Throughput: images per second of ``image_record`` + ``IndexStore.add`` with and without faces.
3. Latency at scale (synthetic vectors): ``--synthetic`` random records (unit 1280-d embeddings,
   random PDQ bits) are written, then PDQ, embedding and combined searches are timed.

The shared data are read, never copied; the indexes live in a temporary folder that is deleted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if xs else float("nan")


def _encode(img: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def pick_images(data: Path, n: int, seed: int) -> list[Path]:
    rows = list(csv.DictReader((data / "manifest.csv").open(newline="")))
    rng = np.random.default_rng(seed)
    by_src: dict[str, list[str]] = {}
    for r in rows:
        by_src.setdefault(f"{r['class']}/{r['source']}", []).append(r["path"])
    for v in by_src.values():
        rng.shuffle(v)
    out: list[str] = []
    while len(out) < n and any(by_src.values()):  # round robin over folders
        for k in sorted(by_src):
            if by_src[k] and len(out) < n:
                out.append(by_src[k].pop())
    return [data / p for p in out]


def robustness(data: Path, n: int, seed: int, work: Path) -> dict:
    import cv2

    from verity.core.errors import InputError
    from verity.core.io import load_sample
    from verity.index.features import compute_features, image_record
    from verity.index.search import search
    from verity.index.store import IndexStore

    paths = pick_images(data, n, seed)
    store = IndexStore(work / "robust", create=True)
    originals: list[tuple[str, np.ndarray]] = []
    t0 = time.perf_counter()
    batch = []
    for p in paths:
        try:
            s = load_sample(p)
        except InputError:
            continue
        batch.append(image_record(s, label="real", source=p.parent.name, faces=False))
        originals.append((s.sha256, np.ascontiguousarray(s.display_pixels())))
        if len(batch) == 16:
            store.add(batch)
            batch = []
    store.add(batch)
    index_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    variants = {"jpeg75": [], "resize0.5": [], "crop90": []}
    failures: dict[str, list] = {k: [] for k in variants}
    lat: list[float] = []
    for sha, px in originals:
        h, w = px.shape[:2]
        ch, cw = int(round(h * 0.9)), int(round(w * 0.9))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        qs = {
            "jpeg75": _encode(px, "JPEG", quality=75),
            "resize0.5": _encode(cv2.resize(px, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA), "PNG"),
            "crop90": _encode(px[y0:y0 + ch, x0:x0 + cw], "JPEG", quality=90),
        }
        for k, data_bytes in qs.items():
            t = time.perf_counter()
            q = compute_features(load_sample(data_bytes), faces=False)
            res = search(store, q, k=5, faces=False)
            lat.append(time.perf_counter() - t)
            ok = bool(res.matches) and res.matches[0].sha256 == sha
            variants[k].append(ok)
            if not ok:
                first = res.matches[0] if res.matches else None
                failures[k].append({"original": sha[:12], "got": first.sha256[:12] if first else None,
                                    "kind": first.kind if first else None,
                                    "pdq": first.pdq_distance if first else None})
    store.close()
    return {
        "images": len(originals),
        "index_seconds": round(index_s, 1),
        "index_images_per_s_no_faces": round(len(originals) / index_s, 2),
        "first_is_original": {k: round(float(np.mean(v)), 4) for k, v in variants.items()},
        "first_is_original_all": round(float(np.mean(sum(variants.values(), []))), 4),
        "query_ms_p50": round(_pct(lat, 50), 1), "query_ms_p99": round(_pct(lat, 99), 1),
        "failures": {k: v[:10] for k, v in failures.items()},
        "n_failures": {k: len(v) for k, v in failures.items()},
    }


def face_throughput(data: Path, n: int, seed: int, work: Path) -> dict:
    from verity.core.io import load_sample
    from verity.index.features import image_record
    from verity.index.store import IndexStore

    faces = [p for p in pick_images(data, 2000, seed) if "faces/" in str(p)][:n]
    store = IndexStore(work / "faces", create=True)
    t0 = time.perf_counter()
    n_faces = 0
    for p in faces:
        r = image_record(load_sample(p), label="real", faces=True)
        n_faces += len(r.faces)
        store.add([r])
    dt = time.perf_counter() - t0
    store.close()
    return {"images": len(faces), "faces": n_faces, "seconds": round(dt, 1), "images_per_s_with_faces": round(len(faces) / dt, 2)}


def synthetic(n: int, queries: int, work: Path, seed: int) -> dict:
    import hashlib

    from verity.index.features import QueryFeatures
    from verity.index.search import search
    from verity.index.store import ImageRecord, IndexStore

    rng = np.random.default_rng(seed)
    store = IndexStore(work / "synthetic", create=True, checkpoint_every=20000)
    t0 = time.perf_counter()
    kept = []
    batch_size = 1000
    for start in range(0, n, batch_size):
        emb = rng.standard_normal((min(batch_size, n - start), 1280)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        bits = rng.integers(0, 2, (len(emb), 256)).astype(np.uint8)
        recs = [ImageRecord(sha256=hashlib.sha256(f"s{start + i}".encode()).hexdigest(), embedding=emb[i], pdq=bits[i],
                            pdq_quality=100, label="unlabelled", source="synthetic", path=f"/synthetic/{start + i}")
                for i in range(len(emb))]
        store.add(recs)
        if start % 20000 == 0:
            kept.append(recs[0])
            print(f"synthetic: {start + len(emb)}/{n} written, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.checkpoint()
    flush_s = time.perf_counter() - t0
    lat_pdq, lat_emb, lat_all = [], [], []
    for i in range(queries):
        e = rng.standard_normal(1280).astype(np.float32)
        e /= np.linalg.norm(e)
        b = rng.integers(0, 2, 256).astype(np.uint8)
        t = time.perf_counter()
        store.search_pdq(b, 10)
        lat_pdq.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.search_embedding(e, 10)
        lat_emb.append(time.perf_counter() - t)
        t = time.perf_counter()
        search(store, QueryFeatures("0" * 64, e, b, 100, 1, 1), k=10, faces=False)
        lat_all.append(time.perf_counter() - t)
    # correctness at scale: stored vectors find themselves
    found = sum(store.search_pdq(r.pdq, 1)[0][0] == r.sha256 and store.search_embedding(r.embedding, 1)[0][0] == r.sha256
                for r in kept)
    count = store.count()
    store.close()
    size = sum(f.stat().st_size for f in (work / "synthetic").rglob("*") if f.is_file())
    return {
        "records": count, "write_seconds": round(write_s, 1), "records_per_s": round(count / write_s, 1),
        "final_checkpoint_seconds": round(flush_s, 1), "disk_mb": round(size / 1e6, 1), "queries": queries,
        "pdq_search_ms": {"p50": round(_pct(lat_pdq, 50), 1), "p99": round(_pct(lat_pdq, 99), 1)},
        "embedding_search_ms": {"p50": round(_pct(lat_emb, 50), 1), "p99": round(_pct(lat_emb, 99), 1)},
        "combined_search_ms": {"p50": round(_pct(lat_all, 50), 1), "p99": round(_pct(lat_all, 99), 1)},
        "self_retrieval": f"{found}/{len(kept)}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="shared data folder (robustness and face throughput)")
    ap.add_argument("--n", type=int, default=300, help="real images for the robustness part (default 300)")
    ap.add_argument("--faces", type=int, default=40, help="face photos for the throughput with faces (default 40)")
    ap.add_argument("--synthetic", type=int, default=100_000, help="synthetic records (default 100000; 0 skips)")
    ap.add_argument("--queries", type=int, default=200, help="timed searches at scale (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    ap.add_argument("--workdir", default=None, help="where the temporary indexes go (default a temp folder)")
    args = ap.parse_args(argv)
    os.environ.setdefault("VERITY_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="verity-bench-", dir=args.workdir))
    out: dict = {"date": time.strftime("%Y-%m-%d"), "machine": "2-core CPU sandbox (shared)",
                 "command": " ".join(["benchmarks/bench_index.py"] + (argv if argv is not None else sys.argv[1:]))}
    try:
        if args.data:
            out["robustness"] = robustness(Path(args.data), args.n, args.seed, work)
            print(json.dumps(out["robustness"], indent=2), file=sys.stderr)
            if args.faces:
                out["faces"] = face_throughput(Path(args.data), args.faces, args.seed, work)
                print(json.dumps(out["faces"], indent=2), file=sys.stderr)
        if args.synthetic:
            out["synthetic"] = synthetic(args.synthetic, args.queries, work, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
