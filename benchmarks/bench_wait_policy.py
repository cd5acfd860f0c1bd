"""How OpenMP threads should wait between ops: OMP_WAIT_POLICY / GOMP_SPINCOUNT for CPU training, measured.

Small-model CPU training (the swapae CPU recipe: 64 px, 8-64 channels) runs thousands of short ops per step, and
between two ops the OpenMP worker threads wait. Passive waiting puts them to sleep at once, so each op pays a
wake-up; spinning keeps them hot but takes a core from any other process that wants it. This script times the
swapae recipe's D+G step (and one big 3x3 conv for comparison) in a child process per setting, with all cores as
threads, on an idle machine and beside a one-thread busy process (whose own throughput it also reports).

    python -m benchmarks.bench_wait_policy                 # prints and writes the BENCHMARKS.md section
    python -m benchmarks.bench_wait_policy --no-write --steps 10
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETTINGS: Dict[str, Dict[str, str]] = {  # label -> environment (the CLI and ./run default to the first)
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=100000": {"GOMP_SPINCOUNT": "100000"},
    "libgomp default (spin 300000)": {},
}
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

CHILD = r"""
import json, statistics, sys, time, torch
from ganedit.models.swapae import SwappingAutoencoder
from ganedit.models.swapae import losses as L
from ganedit.models.swapae.recolor import PARAMS, recolor
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
m = SwappingAutoencoder.small(64, width=16, texture_channels=128)
x = torch.rand(8, 3, 64, 64) * 2 - 1
w = L.LossWeights(10, 0.1, 0.1, 10, 1, 30)
def step():
    d = L.discriminator_losses(m, x, w); L.total(d).backward()
    g, _ = L.generator_losses(m, x, w, recolored=recolor(x[:4], torch.rand(4, PARAMS), 3.0)); L.total(g).backward()
a = torch.randn(8, 256, 32, 32).contiguous(memory_format=torch.channels_last)
k = torch.randn(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
def conv():
    with torch.no_grad():
        torch.nn.functional.conv2d(a, k, padding=1)
out = {}
for name, fn in (("swapae_step", step), ("conv3x3", conv)):
    for _ in range(2):
        fn()
    ts = []
    for _ in range(steps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    out[name] = {"min": min(ts), "median": statistics.median(ts)}
print(json.dumps(out))
"""

BUSY = r"""
import sys, time, torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
n, end = 0, time.perf_counter() + float(sys.argv[1])
while time.perf_counter() < end:
    torch.mm(a, a); n += 1
print(n)
"""


def child_env(extra: Dict[str, str], threads: int) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    env.update(extra)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(extra: Dict[str, str], threads: int, steps: int) -> Dict[str, float]:
    res = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], env=child_env(extra, threads),
                         capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {f"{k}_{s}": v[s] for k, v in out.items() for s in ("min", "median")}


def measure_busy_rate(extra: Dict[str, str], threads: int, steps: int, seconds: float) -> Dict[str, float]:
    """Our child timed while a one-thread matmul loop runs for ``seconds`` around it; the loop's rate is returned
    too (the window must outlast the child)."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)], env=child_env({}, 1), stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    row = run_child(extra, threads, steps)
    row["busy_per_s"] = int(busy.communicate()[0].strip()) / seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=20, help="timed calls per workload")
    parser.add_argument("--busy-seconds", type=float, default=60.0, help="length of each busy-neighbour window")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    probe = subprocess.run([sys.executable, "-c", BUSY, "5"], env=child_env({}, 1), capture_output=True, text=True, check=True)
    alone = int(probe.stdout) / 5.0
    rows: List[str] = []
    for label, extra in SETTINGS.items():
        idle = run_child(extra, args.threads, args.steps)
        busy = measure_busy_rate(extra, args.threads, args.steps, args.busy_seconds)
        line = (f"| {label} | {idle['swapae_step_min']:.3f} / {idle['swapae_step_median']:.3f} | {idle['conv3x3_min'] * 1e3:.1f} | "
                f"{busy['swapae_step_min']:.3f} / {busy['swapae_step_median']:.3f} | {busy['busy_per_s'] / alone:.2f} |")
        print(line, flush=True)
        rows.append(line)
    from benchmarks.common import machine_line, write_section

    text = "\n".join([
        "## OpenMP waiting: OMP_WAIT_POLICY / GOMP_SPINCOUNT (CPU)",
        "",
        f"Command: `python -m benchmarks.bench_wait_policy --steps {args.steps} --busy-seconds {args.busy_seconds:g}`. "
        f"{machine_line()}; each setting in a fresh process with {args.threads} threads. Workloads: the swapae CPU recipe's "
        "D+G step (64 px, width 16, batch 8+8, colour swap on) and one dense 3x3 conv (batch 8, 256->256, 32x32). "
        "\"Busy\": a one-thread matmul loop runs beside it; its last column is that loop's speed relative to running alone.",
        "",
        "| setting | swapae step s, idle (min / median) | conv ms, idle (min) | swapae step s, busy neighbour | neighbour's speed |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(text)
    if not args.no_write:
        write_section("omp-wait-policy", text)


if __name__ == "__main__":
    main()
