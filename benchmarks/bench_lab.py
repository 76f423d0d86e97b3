"""Training and sampling speed of the lab's generators at 64 px on CPU.

    .venv/bin/python benchmarks/bench_lab.py [--threads 1] [--steps 10] [--families autoencoder,gan,diffusion]

Each family is built with its default configuration (batch stated in the output), trained on random
batches (speed does not depend on content) for ``--warmup`` + ``--steps`` steps, and the median
seconds per step is reported (wall clock and CPU time of this process: on a machine shared with
other jobs the CPU time is the better measure of the work, since wall clock includes waiting for a
core), with sampling time per image (diffusion: DDIM with the run's default steps). Prints a
Markdown table and one JSON line per family.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--families", default="autoencoder,gan,diffusion")
    ap.add_argument("--sample-n", type=int, default=16)
    a = ap.parse_args()

    import torch

    from verity.lab.models import create_family

    torch.set_num_threads(a.threads)
    rows = []
    for name in a.families.split(","):
        torch.manual_seed(0)
        fam = create_family(name, size=a.size)
        b = fam.cfg["batch"]
        g = torch.Generator().manual_seed(0)
        x = torch.rand(b, 3, a.size, a.size, generator=g) * 2 - 1
        times, cpu = [], []
        for i in range(a.warmup + a.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            fam.train_step(x, g)
            fam.step += 1
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        med_cpu = statistics.median(cpu)
        fam.eval()
        t0 = time.perf_counter()
        fam.sample(a.sample_n, torch.Generator().manual_seed(1))
        per_img = (time.perf_counter() - t0) / a.sample_n
        row = {"family": name, "batch": b, "size": a.size, "params": sum(fam.n_params().values()),
               "s_per_step": round(med, 4), "steps_per_s": round(1 / med, 3),
               "cpu_s_per_step": round(med_cpu, 4),
               "images_per_s": round(b / med, 1), "sample_s_per_image": round(per_img, 4),
               "threads": a.threads, "steps_timed": a.steps}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} thread(s)\n")
    print("| family | batch | params | s/step (median, wall) | CPU s/step | steps/s (wall) | train img/s | "
          "sample s/img |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['batch']} | {r['params'] / 1e6:.2f} M | {r['s_per_step']:.3f} | "
              f"{r['cpu_s_per_step']:.3f} | {r['steps_per_s']:.2f} | {r['images_per_s']:.0f} | "
              f"{r['sample_s_per_image']:.3f} |")


if __name__ == "__main__":
    main()
