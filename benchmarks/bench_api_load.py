"""Bounded load test of the HTTP API on loopback.

Starts ``verity serve`` on 127.0.0.1 (a free port, a temporary data folder), then runs N concurrent
clients for T seconds per scenario and prints latency percentiles, throughput and errors:

* ``read``    -- GET an analysis, the history page and a (cached) heatmap PNG, in turn;
* ``analyze`` -- POST a 512x512 JPEG (generated splices, several seeds) and wait for the analysis;
* ``health``  -- GET /healthz (the floor: HTTP + event loop only);
* ``mixed``   -- half the clients analyse, half poll /healthz: the event loop must stay responsive.

Loopback only, bounded: at most 64 clients and 120 s per scenario. Example::

    .venv/bin/python benchmarks/bench_api_load.py --clients 20 --duration 30
    .venv/bin/python benchmarks/bench_api_load.py --scenarios analyze --clients 4 --duration 30 --json out/api.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, by design
MAX_CLIENTS = 64
MAX_DURATION = 120.0


def _images(n: int = 6) -> list[bytes]:
    """Distinct 512x512 JPEG splices (scikit-image photos when available, else generated texture)."""
    import numpy as np

    from verity.lab.edits import make_splice, textured_image

    try:
        import skimage.data

        photos = [skimage.data.astronaut(), skimage.data.coffee()[:400, :512], skimage.data.chelsea()]
        photos = [np.ascontiguousarray(p[..., :3]) for p in photos]
    except Exception:  # noqa: BLE001 - scikit-image is a dev dependency only
        photos = [textured_image(np.random.default_rng(s), (512, 512)) for s in range(3)]
    out = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        host, donor = photos[i % len(photos)], photos[(i + 1) % len(photos)]
        out.append(make_splice(host, donor, rng, q_host=92, q_donor=60).data)
    return out


class Server:
    """``verity serve`` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: str, workers: int | None, detectors: str | None):
        cmd = [sys.executable, "-m", "verity", "serve", "--host", HOST, "--port", "0", "--data-dir", data_dir,
               "--log-level", "warning"]
        if workers:
            cmd += ["--workers", str(workers)]
        if detectors:
            cmd += ["--detectors", detectors]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "VERITY_API_TOKEN": ""}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = None
        deadline = time.time() + 120
        seen = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"verity serving on (http://127\.0\.0\.1:\d+)/", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            raise SystemExit("bench_api_load: server did not start:\n" + "".join(seen))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


async def _run(url: str, scenario: str, clients: int, duration: float, images: list[bytes], seed: dict) -> list[dict]:
    """Run one scenario; ``mixed`` splits the clients between ``analyze`` and ``health`` and reports
    each kind separately (does the event loop stay responsive while analyses run?)."""
    import httpx

    kinds = [scenario] * clients
    if scenario == "mixed":
        n_an = max(1, clients // 2)
        kinds = ["analyze"] * n_an + ["health"] * (clients - n_an)
    lat: dict[str, list[float]] = {k: [] for k in set(kinds)}
    errors: dict[str, dict[str, int]] = {k: {} for k in set(kinds)}
    stop_at = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits, trust_env=False) as client:

        async def one(kind: str, i: int, k: int) -> None:
            if kind == "health":
                req = client.get("/healthz")
            elif kind == "read":
                target = (seed["self"], "/v1/analyses?limit=20", seed["heatmap"] or seed["image"])[k % 3]
                req = client.get(target)
            else:
                data = images[(i + k) % len(images)]
                req = client.post("/v1/analyses", files={"file": (f"bench{i}.jpg", data, "image/jpeg")})
            t0 = time.perf_counter()
            try:
                r = await req
                key = None if r.status_code < 400 else f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                key = type(e).__name__
            dt = time.perf_counter() - t0
            if key is None:
                lat[kind].append(dt)
            else:
                errors[kind][key] = errors[kind].get(key, 0) + 1

        async def worker(kind: str, i: int) -> None:
            k = 0
            while time.perf_counter() < stop_at:
                await one(kind, i, k)
                k += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(kind, i) for i, kind in enumerate(kinds)))
        wall = time.perf_counter() - t0
    out = []
    for kind in dict.fromkeys(kinds):
        v = lat[kind]
        n_err = sum(errors[kind].values())
        out.append({
            "scenario": scenario if scenario != "mixed" else f"mixed: {kind}",
            "clients": kinds.count(kind),
            "duration_s": round(wall, 2),
            "requests": len(v) + n_err,
            "ok": len(v),
            "errors": errors[kind],
            "throughput_rps": round(len(v) / wall, 2),
            "p50_ms": round(1000 * _pct(v, 50), 1),
            "p90_ms": round(1000 * _pct(v, 90), 1),
            "p99_ms": round(1000 * _pct(v, 99), 1),
            "max_ms": round(1000 * max(v), 1) if v else None,
            "mean_ms": round(1000 * statistics.fmean(v), 1) if v else None,
        })
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20, help=f"concurrent clients (max {MAX_CLIENTS}; default 20)")
    p.add_argument("--duration", type=float, default=30.0, help=f"seconds per scenario (max {MAX_DURATION:.0f}; default 30)")
    p.add_argument("--scenarios", default="health,read,analyze,mixed",
                   help="comma list of health, read, analyze, mixed (default: all four)")
    p.add_argument("--analyze-clients", type=int, default=None,
                   help="clients for the analyze scenario (default: --clients)")
    p.add_argument("--workers", type=int, default=None, help="server analysis workers (default: the server's)")
    p.add_argument("--detectors", default=None, help="server --detectors (default: every default detector)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be 1..{MAX_CLIENTS}")
    if not 1 <= args.duration <= MAX_DURATION:
        p.error(f"--duration must be 1..{MAX_DURATION:.0f} s")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in ("health", "read", "analyze", "mixed")]
    if bad:
        p.error(f"unknown scenario(s): {', '.join(bad)}")

    import httpx

    images = _images()
    results = []
    with tempfile.TemporaryDirectory(prefix="verity-bench-") as tmp:
        srv = Server(tmp, args.workers, args.detectors)
        try:
            with httpx.Client(base_url=srv.url, timeout=600, trust_env=False) as c:
                health = c.get("/healthz").json()
                first = c.post("/v1/analyses", files={"file": ("seed.jpg", images[0], "image/jpeg")})
                first.raise_for_status()
                doc = first.json()
                maps = doc["urls"]["heatmaps"]
                seed = {"self": doc["urls"]["self"], "image": doc["urls"]["image"],
                        "heatmap": next(iter(maps.values()), None)}
                if seed["heatmap"]:
                    c.get(seed["heatmap"]).raise_for_status()  # warm the render cache
            sys.stderr.write(f"server {srv.url}: {len(health['detectors'])} detectors, "
                             f"single analysis {doc['timings'].get('total', float('nan')):.2f} s\n")
            for sc in scenarios:
                n = (args.analyze_clients or args.clients) if sc == "analyze" else args.clients
                sys.stderr.write(f"running {sc}: {n} clients for {args.duration:.0f} s...\n")
                results.extend(asyncio.run(_run(srv.url, sc, n, args.duration, images, seed)))
        finally:
            srv.stop()

    meta = {"date": date.today().isoformat(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "detectors": health["detectors"], "command": "benchmarks/bench_api_load.py " + " ".join(argv or sys.argv[1:])}
    print("| scenario | clients | requests ok | errors | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        print(f"| {r['scenario']} | {r['clients']} | {r['ok']} | {errs} | {r['throughput_rps']} | {r['p50_ms']} | "
              f"{r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
