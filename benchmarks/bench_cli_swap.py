"""`ganedit swap --pairs` against one `ganedit swap` process per pair: wall time for N pairs of 64 px images with
the shipped model (swapae-synth64), both measured in one run, each repeated; prints and writes its BENCHMARKS.md
section. Most of the per-pair cost is process start-up (Python, torch, the model), which --pairs pays once."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, machine_line, write_section

SIZE = 64


def _images(root: Path, n: int) -> None:
    from ganedit.data.io import write_image
    from ganedit.metrics.groundtruth import heldout_swap_pairs

    pairs = heldout_swap_pairs(n, SIZE, seed=7)
    for i in range(n):
        write_image(pairs.a[i], root / "A" / f"{i:04d}.png")
        write_image(pairs.b[i], root / "B" / f"{i:04d}.png")


def _run(args: list, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "ganedit", *args], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(machine_line(), flush=True)
    separate, batched = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _images(root, args.pairs)
        for r in range(args.repeats):
            start = time.perf_counter()
            for i in range(args.pairs):
                _run(["swap", "--model", "swapae-synth64", "--structure", str(root / "A" / f"{i:04d}.png"),
                      "--texture", str(root / "B" / f"{i:04d}.png"), "-o", str(root / "one" / f"{i:04d}.png")], env)
            separate.append(time.perf_counter() - start)
            start = time.perf_counter()
            _run(["swap", "--model", "swapae-synth64", "--pairs", str(root / "A"), str(root / "B"), "-o", str(root / "many"), "-q"], env)
            batched.append(time.perf_counter() - start)
            print(f"repeat {r}: {args.pairs} processes {separate[-1]:.1f} s, one --pairs process {batched[-1]:.1f} s", flush=True)
    ratio = [s / b for s, b in zip(separate, batched)]
    print(f"speed-up of --pairs: min {min(ratio):.1f}x, median {statistics.median(ratio):.1f}x")
    if args.no_write:
        return
    cmd = "python -m benchmarks.bench_cli_swap" + (f" --pairs {args.pairs}" if args.pairs != 16 else "") + (f" --repeats {args.repeats}" if args.repeats != 2 else "")
    lines = [
        "## `swap --pairs` against one process per pair (64 px, shipped model)",
        "",
        f"Command: `{cmd}`. Machine: {machine_line()}; OMP_NUM_THREADS={env['OMP_NUM_THREADS']}; torch {torch.__version__}.",
        f"{args.pairs} held-out synthetic pairs; both ways in each of {args.repeats} repeats (wall time, shared cores).",
        "",
        "| way | seconds min / median | per pair (median) |",
        "| --- | --- | --- |",
        f"| {args.pairs} x `ganedit swap --structure A --texture B` | {min(separate):.1f} / {statistics.median(separate):.1f} | {statistics.median(separate) / args.pairs:.2f} s |",
        f"| 1 x `ganedit swap --pairs A_DIR B_DIR` | {min(batched):.1f} / {statistics.median(batched):.1f} | {statistics.median(batched) / args.pairs:.2f} s |",
        "",
        f"Speed-up of --pairs (ratio per repeat): min {min(ratio):.1f}x, median {statistics.median(ratio):.1f}x.",
    ]
    write_section("cli_swap", "\n".join(lines))


if __name__ == "__main__":
    main()
