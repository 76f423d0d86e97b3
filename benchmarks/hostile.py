"""Hostile-file benchmark: time and peak memory of ``verity analyze FILE --json`` on every file of the
generated hostile corpus (``tests/hardening/corpus.py``), and whether each outcome is right.

Default mode runs one fresh process per file (``python -m verity.cli.main analyze FILE --json``) and
reads its peak resident memory from ``wait4``'s rusage, so each figure includes interpreter start-up
and model loading (the ``baseline`` row is a plain 320x240 JPEG, for comparison). Time limits are
checked against CPU seconds (user + system) by default, because the wall time of a shared machine
measures the other jobs; both are reported.
``--in-process`` runs every file through ``verity.cli.main.main`` in one process (start-up paid once;
the memory column is then the process's peak so far): that is what the CI test uses, being ~10x
cheaper.

    python benchmarks/hostile.py                       # per-file processes, table on stdout
    python benchmarks/hostile.py --in-process --max-seconds 15 --max-rss-mb 3072 --json out.json

Exit status 1 when any file has a wrong outcome or exceeds ``--max-seconds`` / ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.hardening.corpus
if str(ROOT / "src") not in sys.path:
    sys.path.insert(1, str(ROOT / "src"))

from tests.hardening.corpus import EITHER, OK, REFUSE, Case, build_corpus, picture  # noqa: E402

VERDICTS = ("authentic", "ai_generated", "edited", "face_manipulated", "inconclusive")


def judge(case: Case, rc: int | None, out: str, err: str) -> list[str]:
    """What is wrong with one outcome (empty list: correct)."""
    bad: list[str] = []
    if rc is None:
        return ["did not finish (killed at the time limit)"]
    want = {OK: (0,), REFUSE: (3,), EITHER: (0, 3)}[case.expect]
    if rc not in want:
        bad.append(f"exit {rc}, expected {' or '.join(map(str, want))}")
    if "Traceback" in err:
        bad.append("traceback on stderr")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if len(lines) != 1:
        bad.append(f"{len(lines)} stdout lines, expected 1")
        return bad
    try:
        d = json.loads(lines[0])
    except json.JSONDecodeError as e:
        return bad + [f"stdout is not JSON ({e})"]
    err_lines = [ln for ln in err.splitlines() if ln.strip()]
    if rc == 3:
        if len(err_lines) != 1:
            bad.append(f"{len(err_lines)} stderr lines, expected 1")
        code = (d.get("error") or {}).get("code")
        if not code:
            bad.append("refused without an error code in the JSON")
        elif case.code and code != case.code:
            bad.append(f"error code {code!r}, expected {case.code!r}")
    elif rc == 0:
        if d.get("verdict") not in VERDICTS:
            bad.append(f"verdict {d.get('verdict')!r}")
        if err_lines:
            bad.append(f"stderr not empty: {err_lines[0][:120]}")
        if case.check:
            try:
                case.check(d)
            except AssertionError as e:
                bad.append(f"check failed: {e}")
    return bad


def _outcome(rc: int | None, out: str) -> str:
    if rc is None:
        return "timeout"
    try:
        d = json.loads(out.splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        return f"exit {rc}"
    if d.get("error"):
        return f"refused: {d['error']['code']}"
    return f"{d.get('verdict')}"


def run_subprocess(path: Path, extra: list[str], timeout: float) -> tuple[int | None, str, str, float, float, float]:
    """(exit code or None on timeout, stdout, stderr, wall s, CPU s, peak RSS MB) of one CLI process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "verity.cli.main", "analyze", str(path), "--json", *extra],
                             stdout=fo, stderr=fe, env=env)
        rc: int | None = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                _, _, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        p.returncode = rc if rc is not None else -9  # reaped by wait4; keep Popen from waiting again
        fo.seek(0)
        fe.seek(0)
        cpu = ru.ru_utime + ru.ru_stime
        return (rc, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), wall, cpu,
                ru.ru_maxrss / 1024)


class _Hang(BaseException):
    pass


def run_in_process(path: Path, extra: list[str], timeout: float) -> tuple[int | None, str, str, float, float, float]:
    """The same through ``verity.cli.main.main`` in this process (peak RSS is the process's so far)."""
    from verity.cli.main import main
    from verity.core.io import _NativeStderr

    def alarm(signum, frame):  # noqa: ARG001
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    out, err = io.StringIO(), io.StringIO()
    rc: int | None
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    native = _NativeStderr(enabled=True)  # what native code writes to fd 2 counts as stderr too
    try:
        with native, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = int(main(["analyze", str(path), "--json", *extra]) or 0)
            except SystemExit as e:
                rc = int(e.code or 0)
            except _Hang:
                rc = None
            except Exception:  # noqa: BLE001 - an escaped exception is a finding: show it like Python would
                import traceback

                traceback.print_exc()
                rc = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    wall = time.perf_counter() - t0
    if native.first_line:
        err.write(native.first_line + "\n")
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return rc, out.getvalue(), err.getvalue(), wall, cpu, r1.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="write the corpus here (default: a temporary folder)")
    ap.add_argument("--detectors", help="pass --detectors to verity analyze (default: the default pipeline)")
    ap.add_argument("--in-process", action="store_true", help="one process for all files (CI mode)")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--max-seconds", type=float, default=5.0, help="time limit per file to report against (5)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="which time --max-seconds applies to (default cpu: user+system seconds of the "
                    "process, which a shared, overloaded machine does not inflate; wall is also reported)")
    ap.add_argument("--max-rss-mb", type=float, default=2048.0, help="memory limit per file (2048 MB)")
    ap.add_argument("--json", help="write the per-file results here")
    args = ap.parse_args(argv)

    tmp = None
    folder = Path(args.corpus) if args.corpus else Path(tmp := tempfile.mkdtemp(prefix="verity-hostile-"))
    t0 = time.perf_counter()
    cases = build_corpus(folder)
    gen_s = time.perf_counter() - t0
    from PIL import Image

    base = Case("baseline_normal_jpeg", b"", OK, "a plain 320x240 JPEG (start-up cost)", ext=".jpg")
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, format="JPEG", quality=90)
    base.data = buf.getvalue()
    (folder / base.filename).write_bytes(base.data)
    cases = [base] + cases
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.name in keep]
    extra = ["--detectors", args.detectors] if args.detectors else []
    runner = run_in_process if args.in_process else run_subprocess
    hard_timeout = max(60.0, 4 * args.max_seconds)
    if args.in_process:  # warm up (model loading) so that the first case is not charged for it
        runner(folder / base.filename, extra, hard_timeout)

    rows, failures = [], 0
    for c in cases:
        rc, out, err, wall, cpu, rss = runner(folder / c.filename, extra, hard_timeout)
        problems = judge(c, rc, out, err)
        spent = cpu if args.clock == "cpu" else wall
        if spent > args.max_seconds:
            problems.append(f"took {spent:.1f} s {args.clock} (limit {args.max_seconds:g})")
        if rss > args.max_rss_mb:
            problems.append(f"peak memory {rss:.0f} MB (limit {args.max_rss_mb:g})")
        failures += bool(problems)
        first_err = next((ln for ln in err.splitlines() if ln.strip()), "")
        rows.append({"name": c.name, "expect": c.expect, "bytes": len(c.data), "exit": rc,
                     "outcome": _outcome(rc, out), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "peak_rss_mb": round(rss, 1),
                     "stderr": first_err[:300], "problems": problems, "why": c.why})
        print(f"{c.name:32s} {rows[-1]['outcome']:28s} {wall:7.2f} s {cpu:7.2f} s CPU {rss:8.0f} MB"
              + (f"  !! {'; '.join(problems)}" if problems else ""), file=sys.stderr, flush=True)

    walls = [r["wall_s"] for r in rows]
    cpus = [r["cpu_s"] for r in rows]
    rsss = [r["peak_rss_mb"] for r in rows]
    summary = {"files": len(rows), "failures": failures, "generation_s": round(gen_s, 2),
               "wall_median_s": round(statistics.median(walls), 3), "wall_max_s": max(walls),
               "cpu_median_s": round(statistics.median(cpus), 3), "cpu_max_s": max(cpus),
               "slowest_cpu": rows[cpus.index(max(cpus))]["name"], "peak_rss_max_mb": max(rsss),
               "slowest": rows[walls.index(max(walls))]["name"], "clock": args.clock,
               "load_average": os.getloadavg()[0],
               "mode": "in-process" if args.in_process else "one process per file",
               "limits": {"seconds": args.max_seconds, "rss_mb": args.max_rss_mb}}
    print("| file | expected | outcome | size, bytes | wall s | CPU s | peak RSS MB |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        flag = " **FAIL: " + "; ".join(r["problems"]) + "**" if r["problems"] else ""
        print(f"| {r['name']} | {r['expect']} | {r['outcome']}{flag} | {r['bytes']:,} | {r['wall_s']:.2f} | "
              f"{r['cpu_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    print(f"\n{json.dumps(summary)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
