"""Where a StyleGAN2 training step's time goes on the CPU, and what bf16 autocast does to it.

The step of ``ganedit train stylegan2`` is split into its phases, each timed on its own with the recipe's own
losses: the D step (G forward without grad, D on reals and fakes, backward), the G step (G and D forward,
backward into G), lazy R1 (every ``r1_every`` D steps: D forward with input gradients, double backward) and lazy
path length (every ``pl_every`` G steps, on batch / ``pl_batch_shrink``). A step's mean time weights the lazy
phases by how often they run. FLOPs come from torch's FlopCounterMode on one call of each phase; GFLOP/s are
divided by the fp32 peak measured in the same run (benchmarks.common), per pair of (peak, timing).

Optimiser updates are left out (a few MFLOP of elementwise work). Each precision is measured in the same run, so
the bf16 ÷ fp32 ratios compare like with like.

    OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.bench_sg2_step --repeats 5
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
from typing import Callable, Dict, List

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import fp32_peak_gflops, machine_line, time_repeats, write_section
from ganedit.losses.stylegan2 import d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty
from ganedit.methods.base import set_requires_grad
from ganedit.models.stylegan2 import Discriminator, Generator

# The shipped synthetic-world generator's architecture (ganedit/assets/README.md has its training command).
ARCH = dict(size=64, style_dim=128, n_mlp=4, channel_base=2048, channel_max=64)
BATCH, R1_EVERY, PL_EVERY, PL_SHRINK = 16, 16, 4, 2


def _phases(G: Generator, D: Discriminator, real: torch.Tensor, dtype: torch.dtype | None) -> Dict[str, Callable[[], None]]:
    """One closure per phase; each runs forward and backward as the recipe does, under autocast when dtype is set."""
    def cast():
        return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    n = real.shape[0]

    def wplus(m: int) -> torch.Tensor:
        return G.mapping(torch.randn(m, ARCH["style_dim"]))[:, None].repeat(1, G.n_latent, 1)

    # As in the recipe, the network that is not being trained has requires_grad off, so no gradients are
    # accumulated into it (its activations still take part in the backward pass where they must).
    def d_step() -> None:
        set_requires_grad(G, False)
        with cast():
            fake = G.synthesis(wplus(n), noise="random")
            loss = d_logistic_loss(D(real), D(fake))
        loss.backward()
        set_requires_grad(G, True)

    def g_step() -> None:
        set_requires_grad(D, False)
        with cast():
            loss = g_nonsaturating_loss(D(G.synthesis(wplus(n), noise="random")))
        loss.backward()
        set_requires_grad(D, True)

    def r1() -> None:
        x = real.detach().requires_grad_(True)
        with cast():
            logits = D(x)
        r1_penalty(logits, x).backward()

    def path_length() -> None:
        w = wplus(max(1, n // PL_SHRINK)).detach().requires_grad_(True)
        with cast():
            images = G.synthesis(w, noise="random")
        penalty, _, _ = path_length_penalty(images, w, torch.zeros(()))
        penalty.backward()

    return {"D step": d_step, "G step": g_step, "R1": r1, "path length": path_length}


WEIGHT = {"D step": 1.0, "G step": 1.0, "R1": 1.0 / R1_EVERY, "path length": 1.0 / PL_EVERY}


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose hooks fail inside autograd.grad (R1, path length);
    only the global total is needed here."""
    parents = {"Global"}

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _flops(fn: Callable[[], None]) -> float:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return float(counter.get_total_flops())


def measure(repeats: int) -> Dict[str, Dict[str, Dict[str, float]]]:
    torch.manual_seed(0)
    G, D = Generator(**ARCH), Discriminator(ARCH["size"], channel_base=ARCH["channel_base"], channel_max=ARCH["channel_max"])
    real = torch.randn(BATCH, 3, ARCH["size"], ARCH["size"])
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        phases = _phases(G, D, real, dtype)
        rows: Dict[str, Dict[str, float]] = {}
        for name, fn in phases.items():
            flops = _flops(fn)
            pairs: List[float] = []
            times: List[float] = []
            for _ in range(repeats):
                peak = fp32_peak_gflops(repeats=2)["peak_gflops"]
                t = time_repeats(fn, repeats=1, warmup=1)["min"]
                times.append(t)
                pairs.append(flops / t / 1e9 / peak)
            rows[name] = {"flops": flops, "min": min(times), "median": statistics.median(times), "ratio_median": statistics.median(pairs), "ratio_best": max(pairs), "peak": peak}
            print(f"{label:5s} {name:12s} {min(times) * 1e3:8.1f} ms (median {statistics.median(times) * 1e3:8.1f})  {flops / 1e9:6.2f} GFLOP  ÷ peak {statistics.median(pairs):.2f}", flush=True)
        results[label] = rows
    return results


def report(results: Dict[str, Dict[str, Dict[str, float]]], command: str) -> str:
    lines = [
        "## StyleGAN2 training step: time split and bf16 on the CPU (64 px)",
        "",
        f"Command: `{command}`. Machine: {machine_line()}.",
        f"Architecture of the shipped synthetic-world generator ({ARCH}), batch {BATCH}; R1 every {R1_EVERY} D steps, "
        f"path length every {PL_EVERY} G steps on batch / {PL_SHRINK}; optimiser updates left out. Each phase is timed "
        "after its own fp32 peak measurement; ÷ peak is per (peak, timing) pair, median shown.",
        "",
        "| precision | phase | ms (min / median) | GFLOP | share of a step | ÷ fp32 peak (median, best) |",
        "|---|---|---|---|---|---|",
    ]
    for label, rows in results.items():
        step = sum(WEIGHT[k] * r["median"] for k, r in rows.items())
        for name, r in rows.items():
            share = WEIGHT[name] * r["median"] / step
            lines.append(f"| {label} | {name} | {r['min'] * 1e3:.1f} / {r['median'] * 1e3:.1f} | {r['flops'] / 1e9:.2f} | {share:.0%} | {r['ratio_median']:.2f}, {r['ratio_best']:.2f} |")
        flops = sum(WEIGHT[k] * r["flops"] for k, r in rows.items())
        ratio = flops / step / 1e9 / statistics.median(r["peak"] for r in rows.values())
        lines.append(f"| {label} | **whole step** (weighted) | {step * 1e3:.1f} (median) | {flops / 1e9:.2f} | 100% | {ratio:.2f} |")
    fp, bf = results["fp32"], results["bf16"]
    speed = ", ".join(f"{k} {bf[k]['median'] / fp[k]['median']:.1f}x" for k in fp)
    lines += ["", f"bf16 autocast time ÷ fp32 time, per phase (median): {speed}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    results = measure(args.repeats)
    text = report(results, f"python -m benchmarks.bench_sg2_step --repeats {args.repeats}")
    print(text)
    if not args.no_write:
        write_section("stylegan2-train-step", text)


if __name__ == "__main__":
    main()
