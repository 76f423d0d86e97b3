"""Throughput of ``verity scan``: images per second with 1 local worker, 2 local workers and Ray local.

Each configuration scans the same images into a fresh JSON Lines file through
:func:`verity.scan.engine.run_scan` (the code behind ``verity scan``: rows fsynced one by one) and
records two rates:

- **end to end**: images / wall time of the whole scan, worker start-up and model loads included
  (Ray start-up is outside: ``ray.init`` is done once before the Ray repeats, as a cluster would be up);
- **steady**: images after the first one per worker (for Ray: the first batch per actor) / time from
  that row to the last, i.e. with the models loaded.

Repeats are interleaved (1, 2, ray, 1, 2, ray, ...) so that load from other processes hits every
configuration alike; the tables give medians and the median of the per-repeat ratios. **CPU s per image** (driver plus
pool workers, whole scan including start-up; not measurable for Ray actors) does not depend on what
else runs on the cores: when 2 workers spend about as much CPU per image as 1, two free cores give
them about twice the throughput. **Median CPU s of a row** is the CPU time a worker spent on one
file (``timings.cpu`` of the row, start-up excluded), for every engine including Ray. The load
average is printed before and after each run: other processes on the cores make the figures
pessimistic, for the parallel runs more than for the single worker.

Usage::

    python benchmarks/bench_scan.py [--n 48] [--repeats 3] [--data ../shared/data] [--configs 1,2,ray]

Without ``--data`` the images are synthetic (camera-like JPEGs, splices and SD-like PNGs, 640x480).
With ``--data DIR`` (a folder with ``manifest.csv``) ``--n`` files spread over the manifest are
re-encoded as metadata-free JPEG q90, long side at most 1024 px, into a temporary folder.

Target (issue 14): 2 workers reach at least 1.7x the images per second of 1 worker, on 2 cores.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VERITY_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def synthetic(folder: Path, n: int) -> None:
    import numpy as np

    from verity.lab.edits import camera_exif, encode_jpeg, make_splice, sd_png, textured_image

    rng = np.random.default_rng(0)
    for i in range(n):
        a = textured_image(rng, (480, 640))
        if i % 3 == 0:
            (folder / f"photo_{i:03d}.jpg").write_bytes(encode_jpeg(a, 90, exif=camera_exif()))
        elif i % 3 == 1:
            (folder / f"splice_{i:03d}.jpg").write_bytes(make_splice(a, textured_image(rng, (480, 640)), rng).data)
        else:
            (folder / f"gen_{i:03d}.png").write_bytes(sd_png(a))


def from_data(folder: Path, data: Path, n: int) -> None:
    from PIL import Image

    with open(data / "manifest.csv", newline="") as fh:
        rows = [r["path"] for r in csv.DictReader(fh)]
    step = max(1, len(rows) // n)
    for i, rel in enumerate(rows[::step][:n]):
        with Image.open(data / rel) as im:
            im = im.convert("RGB")
            im.thumbnail((1024, 1024))
            im.save(folder / f"img_{i:03d}.jpg", quality=90)  # no EXIF, no text chunks


def load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def one_run(paths, out: Path, workers: int, engine: str, config, batch_size: int = 4) -> dict:
    from verity.scan.engine import run_scan

    import resource

    stamps: list[float] = []
    c0 = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime \
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    t0 = time.perf_counter()
    rep = run_scan(paths, out, workers=workers, engine=engine, overwrite=True, config=config, progress=False,
                   batch_size=batch_size, on_row=lambda r: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() + ch.ru_utime + ch.ru_stime - c0  # driver + reaped pool workers (not Ray actors)
    errors = len(rep.errors)
    w = workers * (batch_size if engine == "ray" else 1)  # Ray hands rows back a batch at a time
    steady = (len(stamps) - w) / (stamps[-1] - stamps[w - 1]) if len(stamps) > w and stamps[-1] > stamps[w - 1] else float("nan")
    cpus = sorted(r["timings"]["cpu"] for r in rep.rows if r.get("status") == "ok" and "cpu" in (r.get("timings") or {}))
    row_cpu = statistics.median(cpus) if cpus else float("nan")
    return {"n": len(stamps), "wall": wall, "e2e": len(stamps) / wall, "steady": steady, "errors": errors,
            "row_cpu": row_cpu,
            "cpu_per_img": cpu / max(len(stamps), 1) if engine == "local" else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="images (default 48)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, help="a folder with manifest.csv (default: synthetic images)")
    ap.add_argument("--configs", default="1,2,ray", help="comma-separated: a worker count for local, ray = Ray local with 2 workers")
    ap.add_argument("--detectors", default=None, help="comma-separated subset (default: the default pipeline)")
    args = ap.parse_args()

    from verity.scan.rows import ScanConfig

    config = ScanConfig(detectors=tuple(args.detectors.split(",")) if args.detectors else None)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_scan_") as td:
        td = Path(td)
        (td / "imgs").mkdir()
        (from_data(td / "imgs", args.data, args.n) if args.data else synthetic(td / "imgs", args.n))
        paths = sorted(str(p) for p in (td / "imgs").iterdir())
        if "ray" in configs:
            from verity.scan.ray_engine import start_ray

            t0 = time.perf_counter()
            ray, _ = start_ray(2)
            ray_start = time.perf_counter() - t0
        print(f"# bench_scan  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.machine()}  "
              f"{os.cpu_count()} CPUs  python {platform.python_version()}  {len(paths)} images "
              f"({'re-encoded from ' + str(args.data) if args.data else 'synthetic 640x480'})", flush=True)
        if "ray" in configs:
            print(f"# ray.init (local, 2 CPUs): {ray_start:.1f} s", flush=True)
        res: dict[str, list[dict]] = {c: [] for c in configs}
        for rep in range(args.repeats):
            for c in configs:
                workers, engine = (2, "ray") if c == "ray" else (int(c), "local")
                before = load()
                r = one_run(paths, td / f"out_{c}.jsonl", workers, engine, config)
                r["load"] = f"{before} -> {load()}"
                res[c].append(r)
                print(f"repeat {rep + 1} {c:>4}: {r['e2e']:.3f} img/s end to end ({r['wall']:.1f} s), "
                      f"{r['steady']:.3f} img/s steady, {r['cpu_per_img']:.2f} CPU s/img, median row CPU {r['row_cpu']:.3f} s, "
                      f"load {r['load']}", flush=True)
        if "ray" in configs:
            ray.shutdown()
    print()
    print("| configuration | img/s end to end (median) | img/s steady (median) | x 1 worker, end to end | x 1 worker, steady "
          "| CPU s per image, whole scan | median CPU s of a row |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = res.get("1")
    for c in configs:
        e2e = statistics.median(r["e2e"] for r in res[c])
        st = statistics.median(r["steady"] for r in res[c])
        if base and c != "1":
            re2e = statistics.median(a["e2e"] / b["e2e"] for a, b in zip(res[c], base))
            rst = statistics.median(a["steady"] / b["steady"] for a, b in zip(res[c], base))
            ratio = f"{re2e:.2f}", f"{rst:.2f}"
        else:
            ratio = ("1.00", "1.00") if c == "1" else ("", "")
        name = "Ray local, 2 actors" if c == "ray" else f"local, {c} worker{'s' if c != '1' else ''}"
        cpu = statistics.median(r["cpu_per_img"] for r in res[c])
        cpu_s = "n/a (actors)" if cpu != cpu else f"{cpu:.2f}"
        rc = statistics.median(r["row_cpu"] for r in res[c])
        print(f"| {name} | {e2e:.3f} | {st:.3f} | {ratio[0]} | {ratio[1]} | {cpu_s} | {rc:.3f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
