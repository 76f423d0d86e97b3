"""The scan driver and the local engines.

:func:`run_scan` opens the output (resuming it if asked), hands the paths not yet done to an engine,
appends each row to the output the moment it arrives, shows progress and returns a
:class:`ScanReport`. Engines are generators of rows in completion order:

- ``workers == 1``: in this process, one :class:`~verity.scan.rows.Scanner`;
- ``workers >= 2``: a process pool (spawned processes, one ``Scanner`` built per worker by the pool's
  initializer, one intra-op thread each). A worker that dies (a decoder crash, the OOM killer) breaks
  the pool; it is restarted, the files that were in flight are retried one at a time, and a file that
  kills a worker twice is recorded with ``error_code`` ``worker_crashed``;
- ``engine == "ray"``: :mod:`verity.scan.ray_engine`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from verity.core.errors import VerityError
from verity.scan.rows import ScanConfig, Scanner, error_row, limit_threads, limit_threads_env

ENGINES = ("local", "ray")


class ScanError(VerityError):
    """The scan could not run (workers could not start, Ray missing...)."""

    code = "scan_failed"
    exit_code = 1


# ------------------------------------------------------------------------------------ local engines


def iter_inline(paths: list[str], config: ScanConfig) -> Iterator[dict[str, Any]]:
    """One worker: this process."""
    scanner = Scanner(config)
    for p in paths:
        yield scanner(p)


_SCANNER: Scanner | None = None
_INIT_ERROR: str | None = None


def _watch_parent(ppid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != ppid:  # the driver is gone (killed): do not linger
            os._exit(1)


def _init_worker(config: ScanConfig, ppid: int) -> None:
    global _SCANNER, _INIT_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops the pool
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()
    try:
        _SCANNER = Scanner(config)
    except BaseException as e:  # noqa: BLE001 - reported by the driver, never a respawn loop
        _INIT_ERROR = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def _work(path: str) -> dict[str, Any]:
    if _SCANNER is None:
        return {"__init_error__": _INIT_ERROR or "the worker did not start"}
    return _SCANNER(path)


def iter_pool(
    paths: list[str],
    config: ScanConfig,
    workers: int,
    *,
    work: Callable[[str], dict[str, Any]] = _work,
    initializer: Callable[..., None] = _init_worker,
) -> Iterator[dict[str, Any]]:
    """``workers`` spawned processes; rows in completion order (``work``/``initializer``: for tests)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    limit_threads_env(config.threads)  # inherited by the spawned workers before they import numpy
    ctx = mp.get_context("spawn")
    pending = deque(paths)
    suspects: deque[str] = deque()  # in flight when a worker died: retried one at a time
    crashes: Counter[str] = Counter()
    window = 2 * workers
    while pending or suspects:
        ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=(config, os.getpid()))
        inflight: dict[Any, str] = {}
        broken = False
        try:
            while (pending or suspects or inflight) and not broken:
                if suspects:
                    if not inflight:
                        p = suspects.popleft()
                        inflight[ex.submit(work, p)] = p
                else:
                    while pending and len(inflight) < window:
                        p = pending.popleft()
                        inflight[ex.submit(work, p)] = p
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    p = inflight.pop(fut)
                    try:
                        row = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        crashes[p] += 1
                        if crashes[p] >= 2:
                            yield error_row(p, "worker_crashed", "the analysis process died on this file")
                        else:
                            suspects.append(p)
                        continue
                    if "__init_error__" in row:
                        raise ScanError(f"a scan worker could not start: {row['__init_error__']}")
                    yield row
            if broken:  # every other in-flight future fails the same way; retry them one by one
                for fut, p in inflight.items():
                    crashes[p] += 1
                    if crashes[p] >= 2:
                        yield error_row(p, "worker_crashed", "the analysis process died on this file")
                    else:
                        suspects.append(p)
                inflight.clear()
        finally:
            _stop_pool(ex)


def _stop_pool(ex) -> None:
    procs = list(getattr(ex, "_processes", {}).values() or [])
    ex.shutdown(wait=False, cancel_futures=True)
    for pr in procs:  # do not wait for files still being analysed
        try:
            if pr.is_alive():
                pr.terminate()
        except Exception:
            pass
    for pr in procs:
        try:
            pr.join(5)
        except Exception:
            pass


# ---------------------------------------------------------------------------------------- progress


class Progress:
    """A tqdm bar on a terminal; elsewhere (logs, CI) a plain line every ``every`` seconds."""

    def __init__(self, total: int, done_before: int = 0, enabled: bool = True, stream=None, every: float = 30.0):
        self.stream = stream or sys.stderr
        self.total, self.before, self.n, self.errors = total, done_before, 0, 0
        self.t0 = self.last = time.monotonic()
        self.every = every
        self.enabled = enabled and total > 0
        self.bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            desc = "scanning" + (f" ({done_before} done before)" if done_before else "")
            self.bar = tqdm(total=total, desc=desc, unit="img", file=self.stream, dynamic_ncols=True, smoothing=0.1)

    def update(self, row: dict[str, Any]) -> None:
        self.n += 1
        if row.get("status") != "ok":
            self.errors += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if row.get("status") != "ok":
                self.bar.set_postfix(errors=self.errors, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.n == self.total:
            self.last = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        el = time.monotonic() - self.t0
        rate = self.n / el if el > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta_s = _hms(eta) if eta == eta else "?"
        err = f", {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        return f"scan: {self.n}/{self.total} ({pct:.0f}%), {rate:.2f} img/s, elapsed {_hms(el)}, ETA {eta_s}{err}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(s: float) -> str:
    s = int(round(max(s, 0.0)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


# ------------------------------------------------------------------------------------------ driver


@dataclass
class ScanReport:
    """What a scan did, and a summary of every row in its output."""

    out: str
    engine: str
    workers: int
    inputs: int
    skipped: int  # already in the output (--resume)
    scanned: int  # rows written by this run
    seconds: float  # wall time of this run's analysis
    interrupted: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    @property
    def verdict_counts(self) -> dict[str, int]:
        c = Counter(r["verdict"] if r.get("status") == "ok" else "error" for r in self.rows)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") != "ok"]

    def slowest(self, n: int = 5) -> list[dict[str, Any]]:
        ok = [r for r in self.rows if r.get("seconds") is not None]
        return sorted(ok, key=lambda r: -r["seconds"])[:n]

    def summary(self, n_slowest: int = 5, n_errors: int = 10) -> str:
        """The end-of-scan summary printed by ``verity scan``."""
        how = f"{self.workers} worker{'s' if self.workers != 1 else ''}, {self.engine}"
        head = (f"scan {'interrupted' if self.interrupted else 'done'}: {self.scanned} file"
                f"{'s' if self.scanned != 1 else ''} analysed in {self.seconds:.1f} s ({self.rate:.2f} img/s, {how})")
        if self.skipped:
            head += f", {self.skipped} already in the output"
        lines = [head, f"{self.out}: {len(self.rows)} rows"]
        if self.rows:
            lines.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in self.verdict_counts.items()))
        slow = [r for r in self.slowest(n_slowest) if r.get("status") == "ok"]
        if slow:
            lines.append("  slowest:")
            lines += [f"    {r['seconds']:7.2f} s  {r['path']}" for r in slow]
        errs = self.errors
        if errs:
            by_code = Counter(r.get("error_code") or "error" for r in errs)
            lines.append(f"  errors ({len(errs)}: " + ", ".join(f"{k} {v}" for k, v in by_code.most_common()) + "):")
            lines += [f"    {r['path']}: {r.get('error_code')}: {r.get('error')}" for r in errs[:n_errors]]
            if len(errs) > n_errors:
                lines.append(f"    ... and {len(errs) - n_errors} more (status == \"error\" in the output)")
        if self.interrupted:
            lines.append("  run the same command with --resume to continue")
        return "\n".join(lines)


def run_scan(
    paths: list[str],
    out: str | os.PathLike,
    *,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    config: ScanConfig | None = None,
    progress: bool = True,
    batch_size: int = 4,
    progress_stream=None,
    progress_every: float = 30.0,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> ScanReport:
    """Scan ``paths`` into ``out``; see the module docstring.

    Raises
    ------
    OutputError
        The output exists (without ``resume``/``overwrite``), has a bad suffix or is locked.
    ScanError
        Workers could not start, or Ray is missing/unreachable.
    KeyboardInterrupt
        Never: Ctrl-C stops the scan, keeps what was done and returns with ``interrupted`` set.

    ``on_row`` is called with each row once it is on disk (the benchmark timestamps them).
    """
    from verity.scan.output import ScanOutput

    if engine not in ENGINES:
        raise ScanError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    config = config or ScanConfig()
    workers = max(1, int(workers))
    output = ScanOutput(out, resume=resume, overwrite=overwrite)
    try:
        done = output.completed_paths()
        todo = [p for p in paths if p not in done]
        skipped = len(paths) - len(todo)
        bar = Progress(len(todo), skipped, enabled=progress, stream=progress_stream, every=progress_every)
        if engine == "ray":
            from verity.scan.ray_engine import iter_ray

            rows = iter_ray(todo, config, workers, address=ray_address, batch_size=batch_size)
        elif workers == 1:
            limit_threads(config.threads)
            rows = iter_inline(todo, config)
        else:
            rows = iter_pool(todo, config, workers)
        t0 = time.perf_counter()
        interrupted = False
        try:
            for row in rows if todo else ():
                output.append(row)
                bar.update(row)
                if on_row is not None:
                    on_row(row)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                try:
                    close()  # stops the pool / Ray
                except KeyboardInterrupt:
                    interrupted = True
            bar.close()
        seconds = time.perf_counter() - t0
        scanned = bar.n
    finally:
        output.close()
    return ScanReport(out=str(out), engine=engine, workers=workers, inputs=len(paths), skipped=skipped,
                      scanned=scanned, seconds=seconds, interrupted=interrupted, rows=output.rows())
