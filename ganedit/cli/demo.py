"""`ganedit demo`: the main job on the built-in data.

Renders the synthetic world, scores the ground-truth swap baselines, then runs the Swapping Autoencoder (the
shipped checkpoint, ``--model``, or one trained within ``--train-minutes``): swap grid, interpolation strip,
region edit, texture edit and its scores (ganedit/cli/demo_swapae.py). Each report item is one function
``(ctx) -> None`` in ``REPORT`` that writes files and extends ``ctx.scores``."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import click

from ganedit.cli._options import device_option, model_option, out_option, size_option

# Segmentation palette (RGB 0-255) for the classes of ganedit.data.synthetic.CLASSES.
SEG_PALETTE = ((40, 40, 48), (230, 180, 140), (120, 70, 30), (60, 140, 230), (220, 40, 80), (90, 180, 90), (250, 230, 60))


@dataclasses.dataclass
class DemoContext:
    out: Path
    size: int
    n: int  # gallery images
    pairs: int  # held-out swap pairs scored
    seed: int = 0
    figures: Optional[Path] = None
    scores: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    files: List[Path] = dataclasses.field(default_factory=list)
    # Swapping Autoencoder (ganedit/cli/demo_swapae.py)
    model_path: Optional[Path] = None  # None: the shipped checkpoint
    train: bool = False  # train one even when a checkpoint is shipped
    train_minutes: float = 4.0
    train_images: int = 2000
    direction_images: int = 128  # per domain, for the X -> Y mean-difference direction
    edit_pairs: int = 64  # held-out images scored for the texture edit
    device: str = "cpu"  # where the model runs: auto | cpu | cuda
    echo: Callable[[str], None] = print
    model: Any = None
    model_info: Dict[str, Any] = dataclasses.field(default_factory=dict)
    leak: Dict[str, float] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------- figure helpers


def colour_segmentation(seg: "Any") -> "Any":
    """[N,H,W] class ids -> [N,3,H,W] in [-1, 1] with SEG_PALETTE."""
    import torch

    palette = torch.tensor(SEG_PALETTE, dtype=torch.float32) / 127.5 - 1.0
    return palette[seg].permute(0, 3, 1, 2).contiguous()


def labelled_rows(rows: Sequence[Tuple[str, "Any"]], path: Path, padding: int = 2, label_width: int = 0,
                  columns: Sequence[str] = ()) -> None:
    """Write a grid with one row per (label, [N,3,H,W] images) and the label in a left margin; ``columns``, if
    given, labels the columns in a top margin (e.g. the alpha of each interpolation step)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ganedit.data.io import make_grid, to_uint8_hwc

    grids = [to_uint8_hwc(make_grid(images, nrow=images.shape[0], padding=padding)) for _, images in rows]
    width = max(g.shape[1] for g in grids)
    label_width = label_width or 8 + 6 * max(len(label) for label, _ in rows)
    top = 14 if columns else 0
    canvas = Image.new("RGB", (label_width + width, top + sum(g.shape[0] for g in grids)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if columns:
        cell = rows[0][1].shape[-1] + padding
        for i, text in enumerate(columns):
            draw.text((label_width + padding + i * cell, 2), text, fill=(0, 0, 0))
    y = top
    for (label, _), g in zip(rows, grids):
        canvas.paste(Image.fromarray(np.ascontiguousarray(g)), (label_width, y))
        draw.text((4, y + g.shape[0] // 2 - 5), label, fill=(0, 0, 0))
        y += g.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# ----------------------------------------------------------------------------------------------- report items


def gallery(ctx: DemoContext) -> None:
    """A grid of samples (8 per row) plus, for the first row, its domain-Y, frontal, segmentation and sketch."""
    from ganedit.data.io import write_grid
    from ganedit.data.synthetic import frontalize, render, sample_appearance, sample_structure, to_domain_y

    st, ap = sample_structure(ctx.n, ctx.seed), sample_appearance(ctx.n, ctx.seed)
    r = render(st, ap, ctx.size)
    write_grid(r.image, ctx.out / "gallery.png", nrow=8)
    k = min(8, ctx.n)
    y = render(st[:k], to_domain_y(ap[:k]), ctx.size).image
    front = render(frontalize(st[:k]), ap[:k], ctx.size).image
    rows = [("samples", r.image[i : i + k]) for i in range(0, min(ctx.n, 3 * k), k) if r.image[i : i + k].shape[0] == k]
    rows += [
        ("domain Y", y),
        ("frontal", front),
        ("segment.", colour_segmentation(r.segmentation[:k])),
        ("sketch", r.sketch[:k].expand(-1, 3, -1, -1)),
    ]
    labelled_rows(rows, ctx.out / "gallery_labelled.png")
    ctx.files += [ctx.out / "gallery.png", ctx.out / "gallery_labelled.png"]
    if ctx.figures is not None:
        labelled_rows(rows, ctx.figures / "synthetic_samples.png")
        ctx.files.append(ctx.figures / "synthetic_samples.png")


def swap_grid(ctx: DemoContext) -> None:
    """Columns are held-out pairs; rows: A, B, the ground-truth swap, and the two baselines' answers."""
    from ganedit.metrics.groundtruth import colour_transfer, copy_baseline, heldout_swap_pairs

    p = heldout_swap_pairs(8, ctx.size, ctx.seed)
    rows = [
        ("A", p.a),
        ("B", p.b),
        ("truth", p.target),
        ("copy A", copy_baseline(p.a, p.b)),
        ("colour tr.", colour_transfer(p.a, p.b)),
    ]
    labelled_rows(rows, ctx.out / "swap_ground_truth.png")
    ctx.files.append(ctx.out / "swap_ground_truth.png")
    if ctx.figures is not None:
        labelled_rows(rows, ctx.figures / "synthetic_swap_gt.png")
        ctx.files.append(ctx.figures / "synthetic_swap_gt.png")


def baseline_scores(ctx: DemoContext) -> None:
    """Ground-truth scores of the copy-A, copy-B and Lab colour-transfer swaps on held-out pairs."""
    from ganedit.metrics.groundtruth import heldout_swap_pairs, swap_baselines

    ctx.scores.update(swap_baselines(heldout_swap_pairs(ctx.pairs, ctx.size, ctx.seed)))


def _swapae(name: str) -> Callable[[DemoContext], None]:
    """A report item of ganedit/cli/demo_swapae.py, imported when it runs (it needs torch)."""

    def item(ctx: DemoContext) -> None:
        from ganedit.cli import demo_swapae

        getattr(demo_swapae, name)(ctx)

    item.__name__ = name
    return item


WORLD_REPORT: List[Tuple[str, Callable[[DemoContext], None]]] = [
    ("gallery", gallery),
    ("ground-truth swap grid", swap_grid),
    ("baseline swap scores", baseline_scores),
]
REPORT: List[Tuple[str, Callable[[DemoContext], None]]] = WORLD_REPORT + [
    ("Swapping Autoencoder model", _swapae("item_model")),
    ("model swap grid", _swapae("item_swap_grid")),
    ("texture interpolation", _swapae("item_interpolation")),
    ("region edit", _swapae("item_region_edit")),
    ("texture edit X -> Y", _swapae("item_texture_edit")),
    ("model swap scores", _swapae("item_model_scores")),
]


def run_demo(ctx: DemoContext, report: Sequence[Tuple[str, Callable[[DemoContext], None]]] = REPORT) -> Dict[str, Any]:
    ctx.out.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}
    # One line per item rather than an outer progress bar: training draws its own bar in between.
    for i, (name, step) in enumerate(report, 1):
        ctx.echo(f"[demo {i}/{len(report)}] {name} ...")
        start = time.perf_counter()
        step(ctx)
        timings[name] = round(time.perf_counter() - start, 2)
        ctx.echo(f"[demo {i}/{len(report)}] {name}: done in {timings[name]:.1f} s")
    summary = {
        "task": "swap: render(structure A, appearance B) on held-out pairs of the synthetic world",
        "size": ctx.size,
        "pairs": ctx.pairs,
        "seed": ctx.seed,
        "scores": ctx.scores,
        "structure_leak": ctx.leak,
        "model": ctx.model_info,
        "seconds": timings,
    }
    path = ctx.out / "scores.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    ctx.files.append(path)
    return summary


REGION_COLUMNS = ("face", "hair", "background", "clothes")


def format_scores(scores: Dict[str, Dict[str, float]]) -> str:
    """The score table: PSNR, SSIM, sharpness (output / truth gradient energy, 1 is right, a blur is far below)
    and the PSNR inside each region of the truth's segmentation (issue 17: figures a blur cannot pass)."""
    head = f"{'method':24s} {'PSNR (dB)':>10s} {'SSIM':>8s} {'sharpness':>10s}" + "".join(f" {r:>10s}" for r in REGION_COLUMNS)
    lines = [head]
    for name, s in scores.items():
        regions = "".join(f" {s.get('psnr_' + r, float('nan')):10.2f}" for r in REGION_COLUMNS)
        lines.append(f"{name:24s} {s['psnr']:10.2f} {s['ssim']:8.4f} {s.get('sharpness', float('nan')):10.3f}{regions}")
    return "\n".join(lines)


@click.command("demo")
@out_option("Output folder.", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"), show_default=True)
@model_option("A Swapping Autoencoder (native folder or official .pth). Default: swapae-synth64, shipped in ganedit/assets/swapae_synth64.",
              required=False, default=None)
@click.option("--train", is_flag=True, help="Train the Swapping Autoencoder here (within --train-minutes) instead of loading one.")
@click.option("--train-minutes", type=click.FloatRange(0.05), default=4.0, show_default=True, help="Time budget for --train (or when no model is shipped).")
@click.option("--train-images", type=click.IntRange(16), default=2000, show_default=True, help="Synthetic training images for --train.")
@click.option("--direction-images", type=click.IntRange(2), default=128, show_default=True, help="Training images per domain for the X -> Y texture direction.")
@size_option("Image size (px). Default: the model's size (64 for the shipped model).", type=click.IntRange(32, 1024), default=None)
@click.option("--world-only", is_flag=True, help="Only the synthetic world and its baselines (gallery, ground-truth grid, scores); no model.")
@click.option("--n", "n", type=click.IntRange(8), default=32, show_default=True, help="Gallery images.")
@click.option("--pairs", type=click.IntRange(1), default=200, show_default=True, help="Held-out swap pairs to score.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="Training seed (held-out pairs use 2**31 + seed).")
@device_option()
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=None, help="Also write the README figures here (e.g. docs/).")
def demo(out: Path, model_path: Optional[Path], train: bool, train_minutes: float, train_images: int, direction_images: int, size: Optional[int],
         world_only: bool, n: int, pairs: int, seed: int, figures: Optional[Path], device: str) -> None:
    """Run the demo on the built-in synthetic world: the Swapping Autoencoder against the ground truth (no downloads;
    about 1-2 minutes with the shipped model, plus --train-minutes with --train).

    Writes to OUT: gallery.png, gallery_labelled.png (samples, domain Y, frontal, segmentation, sketch),
    swap_ground_truth.png (A, B, truth, copy-A and colour-transfer baselines), swap_grid.png (A, B, the model's
    swap, truth, baselines), interpolation.png (texture A -> B at alphas 0..1), region_edit.png (the hair
    rectangle's structure code copied / blended from another image), texture_edit.png (the domain X -> Y
    mean-difference texture direction at several strengths, and the truth) and scores.json; prints the table.

    \b
    Examples:
      ganedit demo                                   # the shipped model -> out/demo
      ganedit demo --train --train-minutes 5         # train one first (progress bar), then the same report
      ganedit demo --model runs/swapae/model -o out/mine
      ganedit demo --device cuda                      # the model on the GPU (figures and scores stay on the CPU)
    """
    from ganedit.cli._options import resolve_device

    resolve_device(device)  # a missing GPU is said before any work, not half-way through the report
    model_path = Path(model_path) if model_path is not None else None
    size = (size or 64) if (world_only or train) else resolve_size(size, model_path)
    ctx = DemoContext(out=out, size=size, n=n, pairs=pairs, seed=seed, figures=figures, model_path=model_path, train=train,
                      train_minutes=train_minutes, train_images=train_images, direction_images=direction_images,
                      edit_pairs=min(pairs, 64), device=device, echo=click.echo)
    summary = run_demo(ctx, WORLD_REPORT if world_only else REPORT)
    from ganedit.cli.demo_swapae import leak_note

    info = summary["model"] or {}
    if not world_only:
        click.echo(f"\nSwapping Autoencoder: {info.get('source', '?')} {info.get('path', '')} ({info.get('steps', info.get('step', '?'))} training steps; runs on {info.get('device', 'cpu')})")
    click.echo(f"Ground truth on {pairs} held-out pairs at {size} px (swap = structure of A with the appearance of B):")
    scores = summary["scores"]
    order = ["swapae_swap", "copy", "copy_b", "colour_transfer", "colours_only", "swapae_reconstruction", "texture_edit_x2y", "texture_edit_copy_input"]
    click.echo(format_scores({k: scores[k] for k in order + sorted(set(scores) - set(order)) if k in scores}))
    if "swapae_swap" in scores:
        best = max(scores[k]["psnr"] for k in ("copy", "copy_b", "colour_transfer"))
        click.echo(f"model swap vs the best baseline (copy A, copy B, colour transfer): {scores['swapae_swap']['psnr'] - best:+.2f} dB PSNR; "
                   f"sharpness {scores['swapae_swap']['sharpness']:.2f} (1 = as sharp as the truth)")
    if "colours_only" in scores:
        click.echo(f"colours_only is a reference, not a method: B's colours on A's patterns and light, what a swap scores "
                   f"when only colour moves ({scores['colours_only']['psnr']:.2f} dB)")
    note = leak_note(summary["structure_leak"])
    if note:
        click.echo(note)
    click.echo("\nwrote:")
    for f in ctx.files:
        click.echo(f"  {f}")


def resolve_size(size: Optional[int], model_path: Optional[Path], default: int = 64) -> int:
    """The demo's image size: the model's own unless --size says otherwise, and then they must agree (checked
    before anything runs, so a mismatch never fails half-way through the report)."""
    from ganedit.cli.demo_swapae import SHIPPED_MODEL
    from ganedit.errors import ConfigError

    path = model_path if model_path is not None else (SHIPPED_MODEL if (SHIPPED_MODEL / "config.json").is_file() else None)
    model_size = None
    if path is not None and Path(path).is_dir() and (Path(path) / "config.json").is_file():
        from ganedit.formats.native import read_config

        model_size = read_config(path).get("config", {}).get("image_size")
    if size is None:
        return int(model_size or default)
    if model_size is not None and size != model_size:
        raise ConfigError(f"the model {path} works on {model_size} px images, not --size {size}: drop --size, "
                          f"pass --size {model_size}, use --train, or --world-only for the world alone")
    return size


def register(cli: click.Group) -> None:
    cli.add_command(demo)
