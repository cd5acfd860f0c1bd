"""`ganedit demo`: the main job on the built-in data.

For now it renders the synthetic world and reports the ground-truth swap benchmark's baselines. Each report
item is one function ``(ctx) -> None`` in ``REPORT``; a method's demo (e.g. training the Swapping Autoencoder
and scoring its swaps) is added as another item that reads and extends ``ctx.scores``."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import click

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


# --------------------------------------------------------------------------------------------- figure helpers


def colour_segmentation(seg: "Any") -> "Any":
    """[N,H,W] class ids -> [N,3,H,W] in [-1, 1] with SEG_PALETTE."""
    import torch

    palette = torch.tensor(SEG_PALETTE, dtype=torch.float32) / 127.5 - 1.0
    return palette[seg].permute(0, 3, 1, 2).contiguous()


def labelled_rows(rows: Sequence[Tuple[str, "Any"]], path: Path, padding: int = 2, label_width: int = 0) -> None:
    """Write a grid with one row per (label, [N,3,H,W] images) and the label in a left margin."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ganedit.data.io import make_grid, to_uint8_hwc

    grids = [to_uint8_hwc(make_grid(images, nrow=images.shape[0], padding=padding)) for _, images in rows]
    width = max(g.shape[1] for g in grids)
    label_width = label_width or 8 + 6 * max(len(label) for label, _ in rows)
    canvas = Image.new("RGB", (label_width + width, sum(g.shape[0] for g in grids)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = 0
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
    """Ground-truth PSNR/SSIM of the copy-A and Lab colour-transfer swaps on held-out pairs."""
    from ganedit.metrics.groundtruth import heldout_swap_pairs, swap_baselines

    ctx.scores.update(swap_baselines(heldout_swap_pairs(ctx.pairs, ctx.size, ctx.seed)))


REPORT: List[Tuple[str, Callable[[DemoContext], None]]] = [
    ("gallery", gallery),
    ("ground-truth swap grid", swap_grid),
    ("baseline swap scores", baseline_scores),
]


def run_demo(ctx: DemoContext, report: Sequence[Tuple[str, Callable[[DemoContext], None]]] = REPORT) -> Dict[str, Any]:
    from tqdm import tqdm

    ctx.out.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}
    with tqdm(report, unit="step", desc="demo", dynamic_ncols=True) as bar:
        for name, step in bar:
            bar.set_postfix_str(name)
            start = time.perf_counter()
            step(ctx)
            timings[name] = round(time.perf_counter() - start, 2)
    summary = {
        "task": "swap: render(structure A, appearance B) on held-out pairs of the synthetic world",
        "size": ctx.size,
        "pairs": ctx.pairs,
        "seed": ctx.seed,
        "scores": ctx.scores,
        "seconds": timings,
    }
    path = ctx.out / "scores.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    ctx.files.append(path)
    return summary


def format_scores(scores: Dict[str, Dict[str, float]]) -> str:
    lines = [f"{'method':20s} {'PSNR (dB)':>10s} {'SSIM':>8s}"]
    lines += [f"{name:20s} {s['psnr']:10.2f} {s['ssim']:8.4f}" for name, s in scores.items()]
    return "\n".join(lines)


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"), show_default=True, help="Output folder.")
@click.option("--size", type=click.IntRange(32, 1024), default=64, show_default=True, help="Image size (px).")
@click.option("--n", "n", type=click.IntRange(8), default=32, show_default=True, help="Gallery images.")
@click.option("--pairs", type=click.IntRange(1), default=200, show_default=True, help="Held-out swap pairs to score.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="Training seed (held-out pairs use 2**31 + seed).")
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=None, help="Also write the README figures here (e.g. docs/).")
def demo(out: Path, size: int, n: int, pairs: int, seed: int, figures: Optional[Path]) -> None:
    """Run the demo on the built-in synthetic world (no downloads, about half a minute on a laptop core).

    Writes OUT/gallery.png, OUT/gallery_labelled.png (samples, domain Y, frontal, segmentation, sketch),
    OUT/swap_ground_truth.png (rows: A, B, ground-truth swap, copy-A and colour-transfer baselines) and
    OUT/scores.json, and prints the baselines' ground-truth PSNR/SSIM: the bars the methods must beat.

    \b
    Example:
      ganedit demo --out out/demo --size 64
    """
    ctx = DemoContext(out=out, size=size, n=n, pairs=pairs, seed=seed, figures=figures)
    summary = run_demo(ctx)
    click.echo(f"\nGround-truth swap on {pairs} held-out pairs at {size} px:")
    click.echo(format_scores(summary["scores"]))
    click.echo("\nwrote:")
    for f in ctx.files:
        click.echo(f"  {f}")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
