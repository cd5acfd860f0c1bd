"""Swapping Autoencoder speed: the official 256 px church architecture (random weights), CPU, fp32, batch 4.

Reports encode / decode / swap images per second and the achieved GFLOP/s (FLOPs counted by
torch.utils.flop_counter.FlopCounterMode on the same calls) divided by the machine's fp32 peak measured in the same
run (benchmarks.common.fp32_peak_gflops), one peak measurement right before each timed call so that the drifting
load of a shared CPU cancels in each ratio. Inputs are channels_last and every call runs under torch.inference_mode.

    python -m benchmarks.bench_swapae [--threads N] [--repeats R] [--batch B] [--no-write]
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable, Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import fp32_peak_gflops, machine_line, time_repeats, write_section


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the shared CPU gives no gain from a second)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ganedit.models.swapae import SwappingAutoencoder

    torch.manual_seed(0)
    model = SwappingAutoencoder.official("church256", with_discriminators=False).eval()
    b = args.batch
    x_a = torch.rand(b, 3, 256, 256).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
    x_b = torch.rand(b, 3, 256, 256).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)

    # The CPU is shared and its speed drifts within a run, so every timed call is paired with a peak measurement
    # taken just before it; the ratio is computed per pair and summarised by the median (and best) pair.
    results: Dict[str, Dict[str, float]] = {}
    peaks = []
    with torch.inference_mode():
        sp, gl = model.encode(x_a)
        calls = {
            "encode": lambda: model.encode(x_a),
            "decode": lambda: model.decode(sp, gl),
            "swap": lambda: model.swap(x_a, x_b),
        }
        for name, fn in calls.items():
            flops = count_flops(fn)
            fn()  # warm-up
            times, ratios = [], []
            for _ in range(args.repeats):
                peak = fp32_peak_gflops(repeats=1)["peak_gflops"]
                t = time_repeats(fn, repeats=1, warmup=0)["min"]
                peaks.append(peak)
                times.append(t)
                ratios.append(flops / t / 1e9 / peak)
            results[name] = {"flops": flops, "min": min(times), "median": statistics.median(times),
                             "ratio_median": statistics.median(ratios), "ratio_best": max(ratios)}

    rows = []
    for name, r in results.items():
        gflops = r["flops"] / r["min"] / 1e9
        rows.append(
            f"| {name} | {b / r['min']:.2f} | {b / r['median']:.2f} | {r['flops'] / 1e9 / b:.1f} | {gflops:.1f} | {r['ratio_median']:.2f} | {r['ratio_best']:.2f} |"
        )
        print(f"{name:7s} {b / r['min']:6.2f} img/s (median {b / r['median']:.2f})  {gflops:6.1f} GFLOP/s  "
              f"÷ peak: median {r['ratio_median']:.2f}, best {r['ratio_best']:.2f}")
    md = "\n".join(
        [
            "## Swapping Autoencoder (official church 256 px architecture, CPU fp32)",
            "",
            f"Command: `python -m benchmarks.bench_swapae --threads {args.threads} --repeats {args.repeats} --batch {b}`",
            f"Machine: {machine_line()}",
            f"Batch {b}, random weights, channels_last inputs, torch.inference_mode; {args.repeats} timed calls after 1 warm-up "
            "(img/s from the fastest and the median call; swap encodes both image sets in one batch, then decodes). "
            "GFLOP/s = FLOPs counted by FlopCounterMode / fastest call. Each timed call follows its own fp32 peak measurement "
            "(benchmarks.common.fp32_peak_gflops: the better of a 2048^3 matmul and a 3x3 conv, 256->256 ch, 32x32, batch 8, "
            "channels_last); ÷ peak is computed per (peak, call) pair, median and best pair shown.",
            f"Peak measurements in this run: min {min(peaks):.1f}, median {statistics.median(peaks):.1f}, max {max(peaks):.1f} GFLOP/s "
            "(a spread means the shared CPU was contended; the paired ratios are the comparable figures).",
            "",
            "| call | img/s (fastest) | img/s (median) | GFLOP/img | GFLOP/s (fastest) | ÷ peak (median pair) | ÷ peak (best pair) |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    if not args.no_write:
        write_section("swapae", md)
    print(md)


if __name__ == "__main__":
    main()
