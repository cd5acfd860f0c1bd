"""The Swapping Autoencoder part of ``ganedit demo``: get a model (the shipped checkpoint, a given one, or train
one within a time budget), then write its swap grid, an interpolation strip, a region edit and a texture edit,
and score its swaps against the ground truth of the synthetic world.

Each ``item_*`` function is a report item ``(ctx) -> None`` of ``ganedit.cli.demo`` (imported lazily there: this
module is also found by the CLI's command discovery, so it imports no torch at module level)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

# The checkpoint the project ships (trained with the command in ganedit/assets/README.md).
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "swapae_synth64"
ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_COLUMNS = 8


# ------------------------------------------------------------------------------------------------ the model


def without_discriminators(model: Any) -> Any:
    """An inference copy of a SwappingAutoencoder: encoder and generator only (the discriminators are only for
    training and make up most of the file)."""
    from ganedit.models.swapae import SwappingAutoencoder

    if not hasattr(model, "D"):
        return model
    slim = SwappingAutoencoder(**{**model.config, "with_discriminators": False})
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("D.", "Dpatch."))}
    slim.load_state_dict(state)
    return slim.eval()


def train_model(out: Path, size: int, minutes: float, images: int, seed: int, echo: Any = print, device: str = "cpu") -> Tuple[Any, Dict[str, Any]]:
    """Train the ``swapae`` recipe on ``synthetic:images`` for at most ``minutes`` (the engine's progress bar
    shows the steps), export ``out/model`` and return (model without discriminators, info)."""
    from ganedit.methods import get_method
    from ganedit.train import Trainer
    from ganedit.train.config import resolve

    cfg = resolve(get_method("swapae"), {
        "data": f"synthetic:{images}", "out": str(out), "size": size, "seed": seed, "steps": 100_000,
        "workers": 0, "checkpoint_every": 0, "snapshot_every": 0, "log_every": 25, "tensorboard": False, "device": device,
    })
    if (out / "checkpoints").exists():
        import shutil

        shutil.rmtree(out / "checkpoints")  # a demo run always starts fresh
    echo(f"training the Swapping Autoencoder on {images} synthetic images for {minutes:g} min (run folder {out}); "
         f"the bar's {cfg['steps']} steps are a cap: training stops at the time budget")
    start = time.perf_counter()
    trainer = Trainer(get_method("swapae"), cfg)
    # The engine stops cleanly (finishing the step, writing a checkpoint) when its stop flag is set, as it
    # does on SIGTERM; a timer sets that flag at the end of the budget.
    timer = threading.Timer(max(1.0, minutes * 60.0 - (time.perf_counter() - start)), lambda: trainer.request_stop("time budget"))
    timer.daemon = True
    timer.start()
    try:
        trainer.run()
    finally:
        timer.cancel()
    path = trainer.export()
    info = {"source": "trained by the demo", "path": str(path), "steps": trainer.step, "images_seen": trainer.images_seen,
            "train_seconds": round(time.perf_counter() - start, 1)}
    echo(f"trained {trainer.step} steps in {info['train_seconds']} s; model written to {path}")
    return without_discriminators(trainer.method.export()).eval(), info


def item_model(ctx: Any) -> None:
    """Load the model (--model, else the shipped checkpoint) or train one (--train, or when none is shipped)."""
    import ganedit

    path = ctx.model_path or (SHIPPED_MODEL if (SHIPPED_MODEL / "config.json").is_file() else None)
    if ctx.train or path is None:
        ctx.model, ctx.model_info = train_model(ctx.out / "train", ctx.size, ctx.train_minutes, ctx.train_images, ctx.seed, ctx.echo, ctx.device)
    else:
        model = ganedit.load(path)
        if getattr(model, "model_type", "") != "swapae.SwappingAutoencoder":
            from ganedit.errors import CheckpointError

            raise CheckpointError(path, f"is a {getattr(model, 'model_type', type(model).__name__)}, not a Swapping Autoencoder")
        ctx.model = without_discriminators(model).eval()
        ctx.model_info = {"source": "loaded", "path": str(path), **{k: v for k, v in getattr(model, "checkpoint_meta", {}).items() if k in ("step", "images_seen")}}
    from ganedit.cli._options import resolve_device

    # The pictures and scores are made on the CPU: only the model's own work runs on --device.
    ctx.model = ctx.model.to(resolve_device(ctx.device)).requires_grad_(False)
    ctx.model_info["device"] = str(resolve_device(ctx.device))


# ------------------------------------------------------------------------------------------------ pictures


def item_swap_grid(ctx: Any) -> None:
    """swap_grid.png: columns are held-out pairs; rows A, B, the model's swap, the truth and the two baselines."""
    from ganedit.cli.demo import labelled_rows
    from ganedit.edit.swapae import swap
    from ganedit.metrics.groundtruth import colour_transfer, copy_baseline, heldout_swap_pairs

    p = heldout_swap_pairs(GRID_COLUMNS, ctx.size, ctx.seed)
    model_swap = swap(ctx.model, p.a, p.b, (1.0,), seed=ctx.seed)[:, 0].clamp(-1, 1).cpu()
    rows = [("structure A", p.a), ("texture B", p.b), ("model swap", model_swap), ("truth", p.target),
            ("copy A", copy_baseline(p.a, p.b)), ("colour tr.", colour_transfer(p.a, p.b))]
    labelled_rows(rows, ctx.out / "swap_grid.png")
    ctx.files.append(ctx.out / "swap_grid.png")


def item_interpolation(ctx: Any) -> None:
    """interpolation.png: per row, A, the texture interpolated from A's (alpha 0) to B's (alpha 1), then B."""
    import torch

    from ganedit.cli.demo import labelled_rows
    from ganedit.edit.swapae import swap
    from ganedit.metrics.groundtruth import heldout_swap_pairs

    p = heldout_swap_pairs(4, ctx.size, ctx.seed)
    strips = swap(ctx.model, p.a, p.b, ALPHAS, seed=ctx.seed).clamp(-1, 1).cpu()  # (4, A, 3, H, W)
    rows = [(f"pair {i}", torch.cat([p.a[i : i + 1], strips[i], p.b[i : i + 1]])) for i in range(p.a.shape[0])]
    labelled_rows(rows, ctx.out / "interpolation.png", columns=["A"] + [f"a={a:g}" for a in ALPHAS] + ["B"])
    ctx.files.append(ctx.out / "interpolation.png")


def hair_box(size: int) -> Tuple[int, int, int, int]:
    """The region edit's rectangle (x0, y0, x1, y1): the top 3/8 of the image, where the hair is."""
    return (0, 0, size, size * 3 // 8)


def outline(images: Any, box: Tuple[int, int, int, int]) -> Any:
    """Copies of images with the rectangle (x0, y0, x1, y1) drawn in yellow (for the figure)."""
    import torch

    x = images.clone()
    x0, y0, x1, y1 = box
    yellow = torch.tensor([1.0, 1.0, -1.0]).view(1, 3, 1)
    x[:, :, y0, x0:x1] = yellow
    x[:, :, y1 - 1, x0:x1] = yellow
    x[:, :, y0:y1, x0] = yellow
    x[:, :, y0:y1, x1 - 1] = yellow
    return x


def item_region_edit(ctx: Any) -> None:
    """region_edit.png: the structure code under a rectangle (the hair) copied from a source image into a target
    image, decoded with the target's texture; also the soft blend of the same region."""
    from ganedit.cli.demo import labelled_rows
    from ganedit.edit.swapae import blend_structure, copy_structure_region, rect_mask, swap
    from ganedit.metrics.groundtruth import heldout_swap_pairs

    p = heldout_swap_pairs(GRID_COLUMNS, ctx.size, ctx.seed)
    target, source = p.a, p.b
    box = hair_box(ctx.size)
    rec = swap(ctx.model, target, target, (0.0,), seed=ctx.seed)[:, 0].cpu()
    copied = copy_structure_region(ctx.model, target, source, box, seed=ctx.seed).cpu()
    blended = blend_structure(ctx.model, target, source, rect_mask(ctx.size, ctx.size, box), seed=ctx.seed).cpu()
    rows = [("target", target), ("source+box", outline(source, box)), ("target rec.", rec.clamp(-1, 1)),
            ("region copy", copied.clamp(-1, 1)), ("region blend", blended.clamp(-1, 1))]
    labelled_rows(rows, ctx.out / "region_edit.png")
    ctx.files.append(ctx.out / "region_edit.png")


def item_texture_edit(ctx: Any) -> None:
    """texture_edit.png: the mean difference of texture codes from domain X to domain Y of the synthetic world
    (computed on training images), added to held-out images at several strengths; the last row is the true
    domain-Y rendering. Scores strength 1 against that truth (and copying the input as the baseline)."""
    from ganedit.cli.demo import labelled_rows
    from ganedit.edit.swapae import edit_texture, mean_difference
    from ganedit.metrics.groundtruth import copy_baseline, heldout_translation_pairs, score_translation, training_images

    n_dir = ctx.direction_images
    x_train = training_images(n_dir, ctx.size, ctx.seed, "x")
    y_train = training_images(n_dir, ctx.size, ctx.seed, "y")
    ctx.direction = mean_difference(ctx.model, x_train, y_train).direction
    pairs = heldout_translation_pairs(GRID_COLUMNS, ctx.size, ctx.seed)
    edits = edit_texture(ctx.model, pairs.x, ctx.direction, STRENGTHS, seed=ctx.seed).clamp(-1, 1).cpu()  # (B, S, 3, H, W)
    rows = [("input (X)", pairs.x)] + [(f"strength {s:g}", edits[:, i]) for i, s in enumerate(STRENGTHS)] + [("truth (Y)", pairs.y)]
    labelled_rows(rows, ctx.out / "texture_edit.png")
    ctx.files.append(ctx.out / "texture_edit.png")

    scored = heldout_translation_pairs(ctx.edit_pairs, ctx.size, ctx.seed)
    ctx.scores["texture_edit_x2y"] = score_translation(lambda x: edit_texture(ctx.model, x, ctx.direction, (1.0,), seed=ctx.seed)[:, 0].cpu(), scored)
    ctx.scores["texture_edit_copy_input"] = score_translation(lambda x: copy_baseline(x, x), scored)


# ------------------------------------------------------------------------------------------------ numbers


def segment_fit(images: Any, segmentation: Any, classes: int) -> Any:
    """Per image, the fraction of its pixel variance that a segmentation explains when every class is painted
    with its mean colour (R^2, (N,)). An image laid out like the segmentation scores near 1."""
    import torch

    onehot = torch.nn.functional.one_hot(segmentation, classes).permute(0, 3, 1, 2).float()  # (N, K, H, W)
    count = onehot.sum((2, 3)).clamp_min(1)  # (N, K)
    means = torch.einsum("nchw,nkhw->nck", images, onehot) / count[:, None]
    painted = torch.einsum("nck,nkhw->nchw", means, onehot)
    total = (images - images.mean((2, 3), keepdim=True)).pow(2).sum((1, 2, 3)).clamp_min(1e-12)
    return 1 - (images - painted).pow(2).sum((1, 2, 3)) / total


def structure_leak(swaps: Any, seg_structure: Any, seg_texture: Any, classes: int) -> Dict[str, float]:
    """How the swaps follow the structure image's layout (fit_structure) and the texture image's layout
    (fit_texture, the leak) -- compare with the same numbers of the ground-truth swaps."""
    return {"fit_structure": float(segment_fit(swaps, seg_structure, classes).mean()),
            "fit_texture": float(segment_fit(swaps, seg_texture, classes).mean())}


def item_model_scores(ctx: Any) -> None:
    """Ground-truth swap and reconstruction PSNR/SSIM on the held-out pairs, and the structure-leak score."""
    import torch

    from ganedit.data.synthetic import CLASSES, render, sample_appearance, sample_structure
    from ganedit.edit.swapae import swap
    from ganedit.metrics.groundtruth import heldout_seed, heldout_swap_pairs, score_swap
    from ganedit.metrics.groundtruth import SwapPairs

    m, seed = ctx.model, ctx.seed
    pairs = heldout_swap_pairs(ctx.pairs, ctx.size, seed)
    ctx.scores["swapae_swap"] = score_swap(lambda a, b: swap(m, a, b, (1.0,), seed=seed)[:, 0].cpu(), pairs)
    ctx.scores["swapae_reconstruction"] = score_swap(lambda a, b: swap(m, a, a, (0.0,), seed=seed)[:, 0].cpu(), SwapPairs(pairs.a, pairs.a, pairs.a, pairs.segmentation))  # the swap target has A's layout

    # Leak: A with texture B and A with texture C (C = the next pair's B): both should keep A's segmentation
    # and follow neither B's nor C's.
    n = min(ctx.pairs, 64)
    if n >= 2:
        hs = heldout_seed(seed)
        st, ap = sample_structure(2 * n, hs), sample_appearance(2 * n, hs)
        ia, ib = torch.arange(0, 2 * n, 2), torch.arange(1, 2 * n, 2)
        ic = ib.roll(1)
        ra, rb, rc = render(st[ia], ap[ia], ctx.size), render(st[ib], ap[ib], ctx.size), render(st[ic], ap[ic], ctx.size)
        swaps = swap(m, torch.cat([ra.image, ra.image]), torch.cat([rb.image, rc.image]), (1.0,), seed=seed)[:, 0].clamp(-1, 1).cpu()
        truth = torch.cat([render(st[ia], ap[ib], ctx.size).image, render(st[ia], ap[ic], ctx.size).image])
        seg_s, seg_t = torch.cat([ra.segmentation, ra.segmentation]), torch.cat([rb.segmentation, rc.segmentation])
        k = len(CLASSES)
        ctx.leak = {"swapae": structure_leak(swaps, seg_s, seg_t, k), "ground_truth": structure_leak(truth, seg_s, seg_t, k), "n": 2 * n}


def leak_note(leak: Optional[Dict[str, Any]]) -> str:
    if not leak:
        return ""
    m, t = leak["swapae"], leak["ground_truth"]
    return (f"structure leak ({leak['n']} swaps of A with textures B and C; R^2 of the swap explained by a segmentation):\n"
            f"  by A's segmentation (want high):              model {m['fit_structure']:.3f}   ground truth {t['fit_structure']:.3f}\n"
            f"  by the texture image's segmentation (= leak): model {m['fit_texture']:.3f}   ground truth {t['fit_texture']:.3f}")
