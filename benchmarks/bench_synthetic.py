"""Synthetic world: rendering speed on one core (64 and 256 px), PNG writing speed of `ganedit data synth`, and
the ground-truth swap scores of the baselines (the bars every swap method must beat).

Run: ``python -m benchmarks.bench_synthetic`` (``--quick`` for a smoke run that does not touch BENCHMARKS.md).
Speeds are wall-clock min/median over repeats with torch.set_num_threads(1); because this machine is shared,
the images per CPU-second of this process (time.process_time) are printed beside them: that figure is what one
idle core would give."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Dict, List

import torch

from benchmarks.common import machine_line, write_section

COMMAND = "python -m benchmarks.bench_synthetic"


def _timed(fn, repeats: int) -> Dict[str, float]:
    fn()  # warm-up
    wall: List[float] = []
    cpu: List[float] = []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"min": min(wall), "median": statistics.median(wall), "cpu_min": min(cpu)}


def render_speed(size: int, n: int, repeats: int) -> Dict[str, float]:
    from ganedit.data.synthetic import render, sample_appearance, sample_structure

    st, ap = sample_structure(n, 0), sample_appearance(n, 0)
    t = _timed(lambda: render(st, ap, size), repeats)
    return {"size": size, "n": n, "best": n / t["min"], "median": n / t["median"], "per_cpu_s": n / t["cpu_min"]}


def sampling_speed(n: int, repeats: int) -> float:
    from ganedit.data.synthetic import sample_appearance, sample_structure

    t = _timed(lambda: (sample_structure(n, 0), sample_appearance(n, 0)), repeats)
    return n / t["min"]


def write_speed(n: int, size: int, repeats: int) -> Dict[str, float]:
    """Images per second of `data synth --layout images` (render + PNG, default worker pool)."""
    from ganedit.data.synthetic.export import write_dataset

    times = []
    for _ in range(repeats):
        out = tempfile.mkdtemp(prefix="ganedit-synth-bench-")
        try:
            start = time.perf_counter()
            write_dataset(out, n, size, n_test=1, layouts=("images",))
            times.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return {"n": n + 1, "best": (n + 1) / min(times), "median": (n + 1) / statistics.median(times)}


def baseline_table(n_pairs: int, size: int, n_train: int) -> Dict[str, Dict[str, float]]:
    from ganedit.metrics.groundtruth import heldout_swap_pairs, swap_baselines, training_images

    return swap_baselines(heldout_swap_pairs(n_pairs, size), train=training_images(n_train, size))


# Partial swaps: the true swap with some appearance factors left as A's. Scored against the truth, each row says
# how much of the swap score those factors carry, i.e. what a model loses if its structure code keeps them.
PARTIAL_SWAPS = {
    "A's light (angle, strength)": ("light_angle", "light_strength"),
    "A's background pattern geometry (frequency, angle, phase)": ("bg_freq", "bg_angle", "bg_phase"),
    "A's background pattern, kind and geometry": ("bg_pattern", "bg_freq", "bg_angle", "bg_phase"),
    "A's clothes pattern (kind, frequency)": ("clothes_pattern", "clothes_freq"),
    "A's patterns and light: only the colours are B's": None,  # NON_COLOUR_APPEARANCE
}


def partial_swap_table(n_pairs: int, size: int) -> Dict[str, Dict[str, float]]:
    from ganedit.metrics.groundtruth import NON_COLOUR_APPEARANCE, heldout_swap_pairs, partial_swap, score_outputs

    pairs = heldout_swap_pairs(n_pairs, size)
    return {name: score_outputs(partial_swap(n_pairs, size, keep_from_a=keep or NON_COLOUR_APPEARANCE), pairs.target, pairs.segmentation)
            for name, keep in PARTIAL_SWAPS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, print only")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    torch.set_num_threads(1)
    quick = args.quick
    reps = 2 if quick else args.repeats

    r64 = render_speed(64, 256 if quick else 2048, reps)
    r256 = render_speed(256, 16 if quick else 128, reps)
    sample_rate = sampling_speed(2048, reps)
    write = write_speed(200 if quick else 2000, 64, 1 if quick else 3)
    n_pairs, n_train = (50, 200) if quick else (500, 2000)
    scores = baseline_table(n_pairs, 64, n_train)
    partial = partial_swap_table(n_pairs, 64)

    lines = [
        "## Synthetic world",
        "",
        f"Command: `{COMMAND}` (machine: {machine_line()}). Rendering runs with `torch.set_num_threads(1)`;",
        "wall-clock images/s are the best and the median of the repeats; \"per CPU-second\" divides by this",
        "process's CPU time instead, which is what one idle core gives when the machine is shared.",
        f"1-minute load average at the start of this run: {load_before:.1f} on {os.cpu_count()} cores.",
        "",
        "| render | images | best img/s | median img/s | img per CPU-second |",
        "|---|---|---|---|---|",
    ]
    for r in (r64, r256):
        lines.append(f"| {r['size']} px, 1 thread | {r['n']} | {r['best']:.0f} | {r['median']:.0f} | {r['per_cpu_s']:.0f} |")
    lines += [
        "",
        f"Factor sampling: {sample_rate:,.0f} images/s. `ganedit data synth --layout images` at 64 px (render + PNG,",
        f"compress level 1, one writer process per core): {write['best']:.0f} images/s best, {write['median']:.0f} median",
        f"({write['n']} images per run).",
        "",
        f"### Ground-truth swap baselines ({n_pairs} held-out pairs, 64 px)",
        "",
        "Target: `render(structure_A, appearance_B)` on held-out pairs (`heldout_swap_pairs(500, 64)`, seed 2**31).",
        "`ganedit data synth --baselines` prints them. Nearest neighbour: the training image (first",
        f"{n_train} of seed 0) closest to A in pixel L2. copy_b (B itself) is issue 17's bar: the true swap differs",
        "from B only in structure. colours_only is a reference, not a method: the true swap with A's pattern kinds,",
        "frequencies, angles and light (`partial_swap`), B's colours.",
        "",
        "| baseline | PSNR (dB) | SSIM |",
        "|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['psnr']:.2f} ± {s['psnr_std']:.2f} | {s['ssim']:.4f} ± {s['ssim_std']:.4f} |")
    lines += [
        "",
        f"What the non-colour appearance factors carry: the true swap with some of them left as A's "
        f"(`partial_swap(keep_from_a=...)`), scored against the truth on the same {n_pairs} pairs. A model whose",
        "structure code keeps a factor from A loses about this much even when everything else is exact.",
        "",
        "| the truth, but with | PSNR (dB) | face | hair | background | clothes |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in partial.items():
        lines.append(f"| {name} | {s['psnr']:.2f} | " + " | ".join(f"{s['psnr_' + r]:.2f}" for r in ("face", "hair", "background", "clothes")) + " |")
    lines.append("")
    lines.append("Each figure is the mean of per-image PSNRs, an identical image or region counting 100 dB: a factor that "
                 "many pairs share (the clothes pattern kind) scores high on average though it costs a lot where it differs.")
    text = "\n".join(lines)
    print(text)
    if not quick:
        write_section("synthetic", text)


if __name__ == "__main__":
    main()
