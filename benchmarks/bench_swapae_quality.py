"""Swapping Autoencoder quality against the synthetic world's ground truth (issue §5), in one command.

Trains the ``swapae`` recipe (its CPU defaults) on the synthetic world for ``--train-minutes`` -- or loads
``--model`` / the shipped checkpoint -- then runs the demo's report on ``--pairs`` held-out pairs: ground-truth
swap PSNR/SSIM against the copy-A and Lab colour-transfer baselines, reconstruction PSNR/SSIM, the structure leak
(swaps of A with textures B and C measured against A's and the texture image's segmentations), the texture edit.
Copies the swap grid and its ground-truth grid to docs/results/swapae/ and writes the BENCHMARKS.md section.

    OMP_NUM_THREADS=2 python -m benchmarks.bench_swapae_quality --train-minutes 30 --threads 2 --out runs/swapae_quality  # train, score
    python -m benchmarks.bench_swapae_quality                                                # the shipped model
    python -m benchmarks.bench_swapae_quality --run runs/swapae_long                          # a run's model + its curve

``--run FOLDER`` scores a run trained with ``ganedit train swapae -o FOLDER`` (its exported model) and every training
checkpoint it kept on ``--curve-pairs`` pairs: the quality-against-time curve (swap PSNR, its margin over copy B,
sharpness, reconstruction PSNR against the minutes of training).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_section  # noqa: E402

BAR_DB = 2.0  # issue 5 §5: beat copy A and colour transfer by at least this much
COPY_B_BAR_DB = 1.0  # issue 17: beat copying B (the true swap differs from B only in structure)
SHARPNESS_RANGE = (0.7, 1.3)  # issue 17: output / truth gradient energy of the swaps
RECON_BAR_DB = 25.0  # issue 17: reconstruction PSNR


def report_lines(summary: Dict[str, Any], command: str, threads: int) -> str:
    s, leak, info = summary["scores"], summary["structure_leak"], summary["model"]
    best = max(s["copy"]["psnr"], s["colour_transfer"]["psnr"])
    margin = s["swapae_swap"]["psnr"] - best
    over_b = s["swapae_swap"]["psnr"] - s["copy_b"]["psnr"] if "copy_b" in s else float("nan")
    sharp = s["swapae_swap"].get("sharpness", float("nan"))
    sharp_ok = SHARPNESS_RANGE[0] <= sharp <= SHARPNESS_RANGE[1]
    recon = s.get("swapae_reconstruction", {}).get("psnr", float("nan"))
    trained = (f"trained here for {info['train_seconds'] / 60:.1f} min ({info['steps']} steps, {threads} thread(s))"
               if "train_seconds" in info else f"loaded from `{Path(info.get('path', '?')).relative_to(REPO) if str(info.get('path', '')).startswith(str(REPO)) else info.get('path')}` ({info.get('step', '?')} steps)")
    rows = [("model swap", "swapae_swap"), ("copy A (baseline)", "copy"), ("copy B (baseline)", "copy_b"),
            ("Lab colour transfer (baseline)", "colour_transfer"),
            ("B's colours on A's patterns and light (reference: only colour moves)", "colours_only"),
            ("model reconstruction (vs A)", "swapae_reconstruction"), ("texture edit X->Y, strength 1 (vs true domain-Y image)", "texture_edit_x2y"),
            ("copy input (texture-edit baseline)", "texture_edit_copy_input")]
    m, t = leak["swapae"], leak["ground_truth"]
    lines = [
        "## Swapping Autoencoder quality against the synthetic world's ground truth (64 px, CPU)",
        "",
        f"Command: `{command}`. Model: {trained}. {summary['pairs']} held-out pairs (`heldout_swap_pairs`), "
        f"swap = render(structure A, appearance B). {machine_line()}",
        "",
        "| | PSNR (dB) | SSIM | sharpness | face | hair | background | clothes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {s[key]['psnr']:.2f} | {s[key]['ssim']:.4f} | {s[key].get('sharpness', float('nan')):.3f} | "
              + " | ".join(f"{s[key].get('psnr_' + r, float('nan')):.2f}" for r in ("face", "hair", "background", "clothes")) + " |"
              for label, key in rows if key in s]
    lines += ["", "sharpness: the output's gradient energy over the truth's (1 is right; a blur scores far below 1, speckle "
              "far above). face / hair / background / clothes: PSNR (dB) inside that region of the truth's segmentation. "
              "The reference row renders A's structure with B's colours but A's pattern kinds, frequencies, angles and "
              "light (`partial_swap`): a model whose structure code keeps those scores about this even with exact colours."]
    lines += [
        "",
        f"Swap minus the better of copy A and colour transfer: **{margin:+.2f} dB** (issue 5 bar: +{BAR_DB:.0f} dB): "
        f"**{'met' if margin >= BAR_DB else 'NOT met'}**.",
        "",
        "Issue 17 goals (bars a blur cannot pass):",
        "",
        f"- swap minus copy B: **{over_b:+.2f} dB** (goal >= +{COPY_B_BAR_DB:g} dB: **{'met' if over_b >= COPY_B_BAR_DB else 'NOT met'}**); "
        f"sharpness **{sharp:.2f}** (goal {SHARPNESS_RANGE[0]}-{SHARPNESS_RANGE[1]}: **{'met' if sharp_ok else 'NOT met'}**)",
        f"- reconstruction: **{recon:.2f} dB** (goal >= {RECON_BAR_DB:g} dB: **{'met' if recon >= RECON_BAR_DB else 'NOT met'}**)",
        "",
        f"Structure leak ({leak['n']} swaps: A with texture B and A with texture C; R^2 of the swap explained by painting "
        "each segmentation class its mean colour):",
        "",
        "| R^2 of the swap by | model | ground truth |",
        "|---|---|---|",
        f"| A's segmentation (structure kept: want high) | {m['fit_structure']:.3f} | {t['fit_structure']:.3f} |",
        f"| the texture image's segmentation (leak: want as low as the truth) | {m['fit_texture']:.3f} | {t['fit_texture']:.3f} |",
        "",
        "Grids: `docs/results/swapae/swap_grid.png` (A, B, model swap, truth, baselines) beside "
        "`docs/results/swapae/swap_ground_truth.png`; also the interpolation strip, region edit and texture edit there.",
    ]
    return "\n".join(lines)


def checkpoint_curve(run: Path, pairs: int) -> List[Dict[str, float]]:
    """Swap / copy-B / sharpness / reconstruction scores of every checkpoint a run kept, with its training minutes."""
    import ganedit
    from benchmarks.common import checkpoint_step, run_checkpoints, run_clock
    from ganedit.cli.demo_swapae import without_discriminators
    from ganedit.edit.swapae import swap
    from ganedit.metrics.groundtruth import SwapPairs, copy_b_baseline, heldout_swap_pairs, score_swap

    held = heldout_swap_pairs(pairs, 64)
    own = SwapPairs(held.a, held.a, held.a, held.segmentation)
    copy_b = score_swap(copy_b_baseline, held)["psnr"]
    clock, points = run_clock(run), []
    for path in run_checkpoints(run):
        m = without_discriminators(ganedit.load(path)).eval()
        step = checkpoint_step(path)
        sw = score_swap(lambda a, b: swap(m, a, b, (1.0,), seed=0)[:, 0], held)
        rec = score_swap(lambda a, b: swap(m, a, a, (0.0,), seed=0)[:, 0], own)
        points.append({"step": step, "minutes": round(clock(step), 1), "swap": sw["psnr"], "over_copy_b": sw["psnr"] - copy_b,
                       "sharpness": sw["sharpness"], "reconstruction": rec["psnr"]})
        print(f"  curve: step {step} ({points[-1]['minutes']} min): swap {sw['psnr']:.2f} dB ({sw['psnr'] - copy_b:+.2f} over copy B), "
              f"sharpness {sw['sharpness']:.3f}, reconstruction {rec['psnr']:.2f} dB", flush=True)
    return points


def curve_lines(points: List[Dict[str, float]], pairs: int) -> List[str]:
    if not points:
        return []
    lines = ["", f"Quality against training time (every checkpoint the run kept, {pairs} held-out pairs):", "",
             "| minutes | step | swap PSNR (dB) | swap minus copy B | sharpness | reconstruction PSNR (dB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {p['minutes']} | {p['step']} | {p['swap']:.2f} | {p['over_copy_b']:+.2f} | {p['sharpness']:.3f} | {p['reconstruction']:.2f} |"
              for p in points]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-minutes", type=float, default=0.0, help="train a model first for this long (0: load one)")
    parser.add_argument("--train-images", type=int, default=4000, help="synthetic training images")
    parser.add_argument("--model", type=Path, default=None, help="model to score (default: the shipped one)")
    parser.add_argument("--run", type=Path, default=None, help="a training run folder: score its model and its checkpoints' curve")
    parser.add_argument("--curve-pairs", type=int, default=200, help="held-out pairs per checkpoint of the --run curve")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "swapae_quality", help="report (and run) folder")
    parser.add_argument("--pairs", type=int, default=500, help="held-out pairs scored")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--ship", action="store_true", help="write the scored model (without discriminators) to ganedit/assets/swapae_synth64")
    parser.add_argument("--no-write", action="store_true", help="print only: leave BENCHMARKS.md and docs/ alone")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ganedit.cli.demo import REPORT, DemoContext, format_scores, run_demo

    if args.run is not None:
        args.model = args.run / "model"
    ctx = DemoContext(out=args.out, size=64, n=32, pairs=args.pairs, model_path=args.model, train=args.train_minutes > 0,
                      train_minutes=args.train_minutes, train_images=args.train_images, edit_pairs=64)
    summary = run_demo(ctx, REPORT)
    print(format_scores(summary["scores"]))
    command = "python -m benchmarks.bench_swapae_quality" + (f" --train-minutes {args.train_minutes:g} --train-images {args.train_images}" if ctx.train else "")
    if args.threads != 1:
        command = f"OMP_NUM_THREADS={args.threads} {command} --threads {args.threads}"
    if args.run is not None:
        command += f" --run {args.run}" + (f" --curve-pairs {args.curve_pairs}" if args.curve_pairs != 200 else "")
    elif args.model is not None:
        command += f" --model {args.model}"
    text = report_lines(summary, command, args.threads)
    if args.run is not None:
        text += "\n" + "\n".join(curve_lines(checkpoint_curve(args.run, args.curve_pairs), args.curve_pairs))
    print(text)
    if args.ship:
        import ganedit
        from ganedit.cli.demo_swapae import SHIPPED_MODEL
        from ganedit.formats.native import save_model

        source = ganedit.load(summary["model"]["path"])  # keeps the run's meta: steps, images seen, training config
        meta = {**getattr(source, "checkpoint_meta", {}), **{k: summary["model"][k] for k in ("train_seconds",) if k in summary["model"]}}
        save_model(ctx.model, SHIPPED_MODEL, meta=meta)
        print(f"shipped the model to {SHIPPED_MODEL}")
    if not args.no_write:
        results = REPO / "docs" / "results" / "swapae"
        results.mkdir(parents=True, exist_ok=True)
        for name in ("swap_grid.png", "swap_ground_truth.png", "interpolation.png", "region_edit.png", "texture_edit.png", "scores.json"):
            shutil.copyfile(args.out / name, results / name)
        write_section("swapae-quality", text)


if __name__ == "__main__":
    main()
