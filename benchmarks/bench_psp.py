"""pSp speed (issue 13 §6): the official ffhq_encode architecture (IR-SE50 GradualStyleEncoder, 256 px input,
18 styles) alone and followed by the 1024 px decoder, CPU fp32, as a fraction of the machine's fp32 peak measured
in the same run (DESIGN.md §7). Each repeat measures the peak and then the model, and the ratio is taken per pair,
so a busy machine lowers both. FLOPs come from torch.utils.flop_counter on one forward. Random weights (the
speed does not depend on them).

    python -m benchmarks.bench_psp [--repeats 3] [--batches 1 4] [--decoder-batches 1] [--no-write]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import fp32_peak_gflops, machine_line, write_section


def measure(fn, repeats: int) -> dict:
    with FlopCounterMode(display=False) as counter:
        fn()
    flops = counter.get_total_flops()
    fn()  # warm-up
    times, ratios, peaks = [], [], []
    for _ in range(repeats):
        peak = fp32_peak_gflops(repeats=2)["peak_gflops"]
        start = time.perf_counter()
        fn()
        t = time.perf_counter() - start
        times.append(t)
        peaks.append(peak)
        ratios.append(flops / t / 1e9 / peak)
    return {"gflop": flops / 1e9, "min_s": min(times), "median_s": statistics.median(times), "peak": max(peaks),
            "ratio_best": max(ratios), "ratio_median": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--decoder-batches", type=int, nargs="*", default=[1])
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from ganedit.models.psp import PSP

    torch.manual_seed(0)
    # frozen parameters: the flop counter's module tracker fails on the decoder's constant input otherwise
    model = PSP({"type": "GradualStyleEncoder"}, {"size": 1024}).eval().requires_grad_(False)
    rows = []
    with torch.no_grad():
        for what, batches in (("encoder", args.batches), ("encoder + 1024 decoder", args.decoder_batches)):
            for b in batches:
                x = torch.randn(b, 3, 256, 256)
                fn = (lambda x=x: model.encoder(x)) if what == "encoder" else (lambda x=x: model.decode(model.encode(x)))
                r = measure(fn, args.repeats)
                rows.append((what, b, r))
                print(f"{what:24s} batch {b}: {r['gflop']:.1f} GFLOP, {r['min_s']:.2f} s (median {r['median_s']:.2f}), "
                      f"peak {r['peak']:.0f} GFLOP/s, ÷ peak median {r['ratio_median']:.2f} best {r['ratio_best']:.2f}", flush=True)
    lines = [
        "## pSp speed (CPU fp32, official ffhq_encode architecture at 256 px)",
        "",
        f"`python -m benchmarks.bench_psp --repeats {args.repeats}` on {machine_line()}. Ratio = achieved GFLOP/s ÷ the "
        "fp32 peak measured just before each repeat (bar: encoder ≥ 0.6, official code 0.49; encoder + 1024 decoder ≥ 0.5).",
        "",
        "| model | batch | GFLOP | s (min, median) | peak GFLOP/s | ÷ peak (median, best) |",
        "|---|---|---|---|---|---|",
    ]
    for what, b, r in rows:
        lines.append(f"| {what} | {b} | {r['gflop']:.1f} | {r['min_s']:.2f}, {r['median_s']:.2f} | {r['peak']:.0f} | "
                     f"{r['ratio_median']:.2f}, {r['ratio_best']:.2f} |")
    peaks = [r["peak"] for _, _, r in rows]
    lines += ["", f"In-run fp32 peak ranged {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s (a quiet core reaches about 200): on a shared, "
              "busy machine the seconds are not the figure, the per-repeat ratios are."]
    if not args.no_write:
        write_section("psp", "\n".join(lines))


if __name__ == "__main__":
    main()
