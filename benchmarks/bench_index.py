"""Benchmark of the similarity index: robustness of "finds the original first", indexing throughput,
and search latency at 100k stored vectors.

Usage::

    .venv/bin/python benchmarks/bench_index.py --data ../shared/data --n 300 --synthetic 100000 \
        --keep-synthetic /tmp/index/synth100k --out /tmp/bench_index.json

Parts
-----
1. Robustness (real images): ``--n`` images drawn (seeded) from every folder of the shared data are
   indexed without faces; each is then queried as a JPEG-75 re-encode, a 0.5 resize (PNG) and a
   slight crop (a random 90 % x 90 % window, JPEG 90). A query succeeds when the first result of
   :func:`verity.index.search.search` is the original.
2. Throughput: images per second of ``image_record`` + ``IndexStore.add`` with and without faces.
3. Latency at scale (synthetic vectors): ``--synthetic`` random records (unit 1280-d embeddings,
   random PDQ bits) are written (or reused from ``--keep-synthetic DIR``), then PDQ, embedding and
   combined searches are timed twice on the same data and queries: *before* (PDQ by a Milvus
   inner-product search, embedding index with the COSINE metric, as indexes were built up to
   2026-11-23) and *after* (PDQ by the in-memory packed-bit table, embedding index with the IP metric
   on the unit vectors).

The shared data are read, never copied; the indexes live in a temporary folder that is deleted
(except ``--keep-synthetic``).
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


def _set_embedding_metric(path: Path, metric: str) -> float:
    """Re-declare the FLAT index of ``verity_images.embedding`` with another metric (seconds taken).

    The stored vectors are unit-length, so COSINE and IP rank them identically; only the cost differs.
    """
    from verity.index.store import IMAGES, IndexStore

    with IndexStore(path, pdq_scan="milvus") as st:
        c = st.client
        t = time.perf_counter()
        if st._metric.get(IMAGES) != metric:
            c.release_collection(IMAGES)
            c.drop_index(IMAGES, "embedding")
            ip = c.prepare_index_params()
            ip.add_index(field_name="embedding", index_type="FLAT", metric_type=metric)
            c.create_index(IMAGES, ip)
            c.load_collection(IMAGES)
        return time.perf_counter() - t


def _build_synthetic(n: int, path: Path, seed: int) -> dict:
    import hashlib

    from verity.index.store import ImageRecord, IndexStore

    rng = np.random.default_rng(seed)
    store = IndexStore(path, create=True, checkpoint_every=20000)
    t0 = time.perf_counter()
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
            print(f"synthetic: {start + len(emb)}/{n} written, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.checkpoint()
    flush_s = time.perf_counter() - t0
    count = store.count()
    store.close()
    return {"write_seconds": round(write_s, 1), "records_per_s": round(count / write_s, 1),
            "final_checkpoint_seconds": round(flush_s, 1)}


def _time_searches(path: Path, queries: list, pdq_scan: str) -> tuple[dict, list]:
    from verity.index.features import QueryFeatures
    from verity.index.search import search
    from verity.index.store import IMAGES, IndexStore

    t = time.perf_counter()
    store = IndexStore(path, read_only=True, pdq_scan=pdq_scan)
    open_s = time.perf_counter() - t
    lat_pdq, lat_emb, lat_all, results = [], [], [], []
    try:
        t = time.perf_counter()
        store.search_pdq(queries[0][1], 10)  # the first search loads the PDQ table (when used)
        first_s = time.perf_counter() - t
        for e, b in queries:
            t = time.perf_counter()
            p = store.search_pdq(b, 10)
            lat_pdq.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.search_embedding(e, 10)
            lat_emb.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = search(store, QueryFeatures("0" * 64, e, b, 100, 1, 1), k=10, faces=False)
            lat_all.append(time.perf_counter() - t)
            results.append(([d for _, d in p], [(m.sha256, m.pdq_distance, round(m.similarity or 0, 4)) for m in r.matches]))
        out = {
            "how": {"pdq": "in-memory table" if store._pdq is not None else "Milvus IP search",
                    "embedding_metric": store._metric.get(IMAGES)},
            "open_seconds": round(open_s, 2), "first_pdq_search_seconds": round(first_s, 2),
            "pdq_search_ms": {"p50": round(_pct(lat_pdq, 50), 1), "p99": round(_pct(lat_pdq, 99), 1)},
            "embedding_search_ms": {"p50": round(_pct(lat_emb, 50), 1), "p99": round(_pct(lat_emb, 99), 1)},
            "combined_search_ms": {"p50": round(_pct(lat_all, 50), 1), "p99": round(_pct(lat_all, 99), 1)},
        }
    finally:
        store.close()
    return out, results


def synthetic(n: int, queries: int, work: Path, seed: int, keep: str | None = None) -> dict:
    """Latency at ``n`` stored records, before (Milvus PDQ search, COSINE embedding index) and after
    (in-memory PDQ table, IP embedding index), same data and same queries in one run."""
    from verity.index.store import PDQ_TABLE, IndexStore

    path = Path(keep) if keep else work / "synthetic"
    out: dict = {}
    have = 0
    if (path / "milvus.db").is_dir():
        with IndexStore(path, read_only=True, pdq_scan="milvus") as st:
            have = st.count()
    if have == n:
        out["build"] = f"reused the {n} records already in {path}"
    else:
        if have:
            shutil.rmtree(path)
        out["build"] = _build_synthetic(n, path, seed)
    rng = np.random.default_rng(seed + 12345)
    qs = []
    for _ in range(queries):
        e = rng.standard_normal(1280).astype(np.float32)
        qs.append((e / np.linalg.norm(e), rng.integers(0, 2, 256).astype(np.uint8)))
    out["records"], out["queries"] = n, queries
    out["switch_to_cosine_seconds"] = round(_set_embedding_metric(path, "COSINE"), 2)
    out["before"], res_before = _time_searches(path, qs, "milvus")
    print(json.dumps(out["before"]), file=sys.stderr)
    out["switch_to_ip_seconds"] = round(_set_embedding_metric(path, "IP"), 2)
    had_table = (path / PDQ_TABLE).is_file()
    t = time.perf_counter()
    with IndexStore(path) as st:  # a writer builds the PDQ table file when it is missing or stale
        kept = st._pdq is not None
    out["pdq_table"] = {"existed": had_table, "open_writer_seconds": round(time.perf_counter() - t, 1), "loaded": kept,
                        "file_mb": round((path / PDQ_TABLE).stat().st_size / 1e6, 1) if (path / PDQ_TABLE).is_file() else None}
    out["after"], res_after = _time_searches(path, qs, "auto")
    print(json.dumps(out["after"]), file=sys.stderr)
    same_pdq = sum(a[0] == b[0] for a, b in zip(res_before, res_after))
    same_ranked = sum([(m[0], m[1]) for m in a[1]] == [(m[0], m[1]) for m in b[1]] for a, b in zip(res_before, res_after))
    out["same_pdq_distances"] = f"{same_pdq}/{len(qs)}"
    out["same_ranked_matches"] = f"{same_ranked}/{len(qs)}"
    # correctness at scale: stored vectors find themselves (after)
    import hashlib

    rng = np.random.default_rng(seed)
    first = rng.standard_normal((min(1000, n), 1280)).astype(np.float32)  # the first batch, as written
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    bits = rng.integers(0, 2, (len(first), 256)).astype(np.uint8)
    with IndexStore(path, read_only=True) as st:
        sha = hashlib.sha256(b"s0").hexdigest()
        out["self_retrieval_record_0"] = st.search_pdq(bits[0], 1) == [(sha, 0)] and \
            st.search_embedding(first[0], 1)[0][0] == sha
    out["disk_mb"] = round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)
    return out


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
    ap.add_argument("--keep-synthetic", metavar="DIR", default=None,
                    help="build the synthetic index in DIR and keep it; a later run with the same --synthetic reuses it")
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
            out["synthetic"] = synthetic(args.synthetic, args.queries, work, args.seed, args.keep_synthetic)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
