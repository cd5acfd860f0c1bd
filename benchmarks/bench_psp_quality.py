"""pSp quality against ground truth (issue 13 §5): an encoder into the W+ of its frozen StyleGAN2 decoder, scored
where the true answer is known.

* In-domain (tasks whose input derives from any image: encode, super_resolution, inpaint, sketch): images G(w+)
  of the encoder's own decoder at a held-out seed (``ganedit.edit.indomain``, stored noise), so the exact answer
  exists. PSNR / SSIM of the output against G(w+), and the latent error |w_hat - w| / |w_mean - w| (1 = no
  better than the mean latent). The input is derived from G(w+) as in training (super_resolution: downsampled
  by ``--factors`` in turn, reported per factor; inpaint: a box; sketch: ``edge_sketch``).
* Out of domain (every task): held-out synthetic-world images and the world's own conditions (segmentation
  maps, turned faces for frontalize; the image-derived tasks derive theirs from the world image), against the
  world's ground truth.
* Baselines on the same images: the mean-latent image; the best of ``--nn`` sampled latents (nearest neighbour
  in pixel space, the issue's 10,000); the task's copy-input baseline (super_resolution: bicubic upsampling of
  the low-res image; inpaint: the masked image; sketch: the sketch itself; frontalize: the turned face;
  segmentation: each class painted its mean colour over 500 training-world images); inpainting is scored as
  `ganedit psp` writes it (the input's pixels outside the hole, ``keep_known_pixels``), the decoder image alone
  beside it; super-resolution also with ``back_project`` (`ganedit psp --back-projection`), the output corrected
  so that its box downsampling matches the low-res input; and, for encode,
  optimisation inversion (``ganedit.edit.projection`` in W+ with its weight-free loss, ``--project-steps``) on
  the first ``--project-n`` images, with its time per image against the encoder's (a ratio, one run).
* ReStyle encoders: PSNR after each refinement step, in-domain and on the world.
* Bars (issue 13 §5): in-domain inversion beats the nearest neighbour by >= 3 dB; every task beats its
  copy-input baseline by >= 3 dB; each ReStyle step adds PSNR up to step 3; the goal against projection:
  within 1.5 dB at >= 100x less time.

    python -m benchmarks.bench_psp_quality --encoder runs/psp_encode/model [--n 64] [--write] [--grid docs/results/psp]

Each task writes its own section (``psp-quality`` for encode, ``psp-quality-TASK`` otherwise, ``-restyle`` added
for a ReStyle encoder) and grids named after it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.bench_projection import latent_error, psnr  # noqa: E402
from benchmarks.common import machine_line, write_section  # noqa: E402

NN_BAR_DB = 3.0
TASK_BAR_DB = 3.0
NN_SAMPLES = [10000]  # the nearest-neighbour baseline's sample count, for the table labels (set by --nn)
HELDOUT_SEED = 2**31 - 7  # never a training seed of `ganedit data indomain` (default 0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from ganedit.metrics.image import ssim as ssim_fn

    return ssim_fn(a.clamp(-1, 1), b.clamp(-1, 1))


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def nearest_neighbours(G, target_sets: List[torch.Tensor], samples: int, seed: int, batch: int = 64) -> List[torch.Tensor]:
    """For each target of each set, the closest (pixel MSE) of ``samples`` images of randomly sampled latents
    (one pass over the samples serves every set)."""
    g = torch.Generator().manual_seed(seed)
    best = [torch.full((len(t),), float("inf")) for t in target_sets]
    best_img = [torch.zeros_like(t) for t in target_sets]
    with torch.no_grad():
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            z = torch.randn(n, G.g_ema.style_dim, generator=g)
            imgs = G.synthesis(G.mapping(z), noise="const").clamp(-1, 1)
            for targets, b, bi in zip(target_sets, best, best_img):
                dmin, idx = torch.cdist(targets.flatten(1), imgs.flatten(1)).min(1)
                better = dmin < b
                b[better] = dmin[better]
                bi[better] = imgs[idx[better]]
    return best_img


def scores(out: torch.Tensor, target: torch.Tensor) -> Dict[str, float]:
    return {"psnr": float(psnr(out, target).mean()), "ssim": float(ssim(out, target).mean())}


def row(name: str, s: Dict[str, float], extra: str = "") -> str:
    return f"| {name} | {s['psnr']:.2f} | {s['ssim']:.3f} | {extra} |"


def training_line(model) -> str:
    """How the encoder was trained, from the training record its export carries (empty for foreign files)."""
    meta = getattr(model, "checkpoint_meta", {}) or {}
    cfg = meta.get("train_config") or {}
    if not cfg:
        return ""
    keys = ("task", "encoder_type", "num_layers", "depths", "optim", "lr", "batch")
    spec = ", ".join(f"{k} {cfg[k]}" for k in keys if k in cfg)
    seen = meta.get("images_seen")
    return (f" (trained {meta.get('step', '?')} steps" + (f", {seen / 1000:.1f} kimg" if seen else "")
            + f" on `{cfg.get('data', '?')}`: {spec})")


def encode_decode(model, x: torch.Tensor) -> torch.Tensor:
    return batched(lambda b: model.decode(model.encode(b)).clamp(-1, 1), x)


def copy_input_baseline(task: str, inputs: torch.Tensor, truth: torch.Tensor, factors: List[int]) -> Optional[torch.Tensor]:
    """The task's copy-input baseline (see the module docstring); None for encode."""
    import torch.nn.functional as F

    from ganedit.data.degrade import downsample

    size = truth.shape[-1]
    if task == "super_resolution":
        out = torch.empty_like(truth)
        for k in range(len(truth)):
            f = factors[k % len(factors)]
            out[k:k + 1] = F.interpolate(downsample(truth[k:k + 1], f), size=(size, size), mode="bicubic", align_corners=False)
        return out.clamp(-1, 1)
    if task in ("inpaint", "frontalize"):
        return inputs[:, :3].clamp(-1, 1)
    if task == "sketch":
        return inputs.expand(-1, 3, -1, -1).clamp(-1, 1)
    if task == "segmentation":
        from ganedit.methods.psp import PSPMethod

        train = PSPMethod._synthetic("synthetic:500", size, "segmentation", 0, [1])
        onehot, images = train.inputs, train.targets  # [N, K, H, W], [N, 3, H, W]
        mean = (images.unsqueeze(1) * onehot.unsqueeze(2)).sum((0, 3, 4)) / onehot.sum((0, 2, 3)).clamp(min=1).unsqueeze(1)
        return torch.einsum("nkhw,kc->nchw", inputs, mean).clamp(-1, 1)
    return None


def world_pairs(task: str, n: int, size: int, seed: int, factors: List[int]):
    """(encoder inputs, ground truth) of n held-out synthetic-world images for the task."""
    from ganedit.methods.psp import IMAGE_ONLY_TASKS, PSPMethod, task_condition
    from ganedit.metrics.groundtruth import training_images

    if task in IMAGE_ONLY_TASKS:
        world = training_images(n, size, seed, "x")
        return task_condition(world, task, factors, seed), world
    pairs = PSPMethod._synthetic(f"synthetic:{n}", size, task, seed, factors)
    return pairs.inputs, pairs.targets


def written_output(task: str, inputs: torch.Tensor, out: torch.Tensor, truth: torch.Tensor,
                   factors: List[int]) -> Optional[torch.Tensor]:
    """What `ganedit psp` writes where it differs from the decoder image: inpainting keeps the input's pixels
    outside the hole; super-resolution with --back-projection agrees with its low-res input. None otherwise."""
    if task == "inpaint":
        from ganedit.models.psp import keep_known_pixels

        return keep_known_pixels(inputs, out).clamp(-1, 1)
    if task == "super_resolution":
        from ganedit.data.degrade import downsample
        from ganedit.models.psp import back_project

        return torch.cat([back_project(out[k:k + 1], downsample(truth[k:k + 1], factors[k % len(factors)]))
                          for k in range(len(out))]).clamp(-1, 1)
    return None


WRITTEN_LABEL = {"inpaint": "known kept", "super_resolution": "back-projected"}  # grid rows of written_output


def task_table(label: str, task: str, inputs: torch.Tensor, truth: torch.Tensor, out: torch.Tensor,
               written: Optional[torch.Tensor], nn_img: torch.Tensor, mean_img: torch.Tensor, factors: List[int],
               extra: str = "", nn_note: str = "") -> tuple:
    """Rows (model, baselines; super_resolution per factor) and the bar lines of one image set; ``written`` is
    :func:`written_output` of ``out``."""
    base = copy_input_baseline(task, inputs, truth, factors)
    base_name = {"super_resolution": "bicubic upsampling", "inpaint": "masked input", "sketch": "copy input (the sketch)",
                 "frontalize": "copy input (the turned face)", "segmentation": "class-mean colours"}.get(task, "")
    groups = [("", torch.arange(len(truth)))]
    if task == "super_resolution":
        groups = [(f" {f}x", torch.arange(k, len(truth), len(factors))) for k, f in enumerate(factors)]
    rows, bars = [], []
    projected = written if task == "super_resolution" else None  # scored beside the raw output
    if task == "inpaint":  # scored instead of the raw output, which gets its own row
        rows.append(row(f"{label}, decoder image alone", scores(out, truth), extra))
        out, label, extra = written, f"{label}, known pixels kept", ""
    for suffix, idx in groups:
        s_model = scores(out[idx], truth[idx])
        rows.append(row(f"{label}{suffix}", s_model, extra))
        if projected is not None:
            s_bp = scores(projected[idx], truth[idx])
            rows.append(row(f"{label} + back-projection{suffix}", s_bp, ""))
        if base is not None:
            s_base = scores(base[idx], truth[idx])
            rows.append(row(f"{base_name}{suffix}", s_base, ""))
            gain = s_model["psnr"] - s_base["psnr"]
            bars.append(f"**Bar ({task}{suffix} beats {base_name} by >= {TASK_BAR_DB:g} dB): {gain:+.2f} dB, "
                        f"{'met' if gain >= TASK_BAR_DB else 'not met'}.**")
            if projected is not None:
                g_bp = s_bp["psnr"] - s_base["psnr"]
                bars.append(f"**Bar ({task}{suffix} + back-projection beats {base_name} by >= {TASK_BAR_DB:g} dB): "
                            f"{g_bp:+.2f} dB, {'met' if g_bp >= TASK_BAR_DB else 'not met'}.**")
    rows += [row(f"best of {len(nn_img) and NN_SAMPLES[0]} sampled latents (pixel NN of the truth)", scores(nn_img, truth), nn_note),
             row("mean-latent image", scores(mean_img, truth), "")]
    return rows, bars, base


def restyle_line(model, inputs: torch.Tensor, truth: torch.Tensor, iters: int = 5) -> str:
    with torch.no_grad():
        steps = [torch.cat(parts) for parts in zip(*[[img for _, img in model.restyle_steps(inputs[i:i + 16], iters)]
                                                       for i in range(0, len(inputs), 16)])]
    per = [float(psnr(img.clamp(-1, 1), truth).mean()) for img in steps]
    gains = [b - a for a, b in zip(per, per[1:])]
    ok = all(g > 0 for g in gains[:2])
    return (f"ReStyle PSNR after steps 1..{len(per)}: {' / '.join(f'{p:.2f}' for p in per)} dB (gains "
            f"{' / '.join(f'{g:+.2f}' for g in gains)}); **bar (each step adds PSNR up to step 3): {'met' if ok else 'not met'}.**")


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True, help="pSp / e4e model (native folder or official .pt)")
    ap.add_argument("--n", type=int, default=64, help="in-domain (and world) images")
    ap.add_argument("--mixing", type=float, default=0.5, help="style-mixing probability of the in-domain codes")
    ap.add_argument("--nn", type=int, default=10000, help="sampled latents of the nearest-neighbour baseline")
    ap.add_argument("--project-n", type=int, default=8, help="images inverted by optimisation (0: skip; encode only)")
    ap.add_argument("--project-steps", type=int, default=500)
    ap.add_argument("--factors", type=lambda t: [int(f) for f in t.split(",")], default=[4, 8],
                    help="super_resolution: downsampling factors, taken in turn")
    ap.add_argument("--grid", type=Path, default=None, help="write labelled grids here")
    ap.add_argument("--write", action="store_true", help="write this task's BENCHMARKS.md section")
    args = ap.parse_args(argv)
    NN_SAMPLES[0] = args.nn

    from ganedit.cli.invert import load_encoder
    from ganedit.edit.indomain import decode, sample_codes
    from ganedit.edit.projection import project
    from ganedit.methods.psp import IMAGE_ONLY_TASKS, task_condition
    from ganedit.models.stylegan2 import StyleGAN2

    torch.manual_seed(0)
    model = load_encoder(args.encoder)
    task, restyle = model.task, bool(getattr(model, "restyle", False))
    name = task + ("-restyle" if restyle else "")
    # the decoder as a StyleGAN2 wrapper (mapping with truncation, synthesis with stored noise), mean = latent_avg
    G = StyleGAN2(generator=model.decoder.config, has_latent_avg=False)
    G.g_ema.load_state_dict(model.decoder.state_dict())
    with torch.no_grad():
        G.latent_avg.copy_(model.latent_avg.reshape(-1, G.g_ema.style_dim).mean(0))
    G.eval()
    size = G.g_ema.size
    lines: List[str] = []
    bars: List[str] = []
    t_start = time.perf_counter()
    label = "ReStyle" if restyle else "pSp"
    nn_label = "NN of 10k" if args.nn == 10000 else f"NN of {args.nn}"

    indomain = task in IMAGE_ONLY_TASKS
    truth = inputs = recon = wplus = None
    if indomain:
        codes = sample_codes(G, args.n, HELDOUT_SEED, mixing=args.mixing)
        truth = decode(G, codes["wplus"]).clamp(-1, 1)
        inputs = task_condition(truth, task, args.factors, HELDOUT_SEED)
    w_inputs, world = world_pairs(task, args.n, size, HELDOUT_SEED, args.factors)
    mean_w = G.latent_avg.reshape(1, -1)
    mean_img = batched(lambda w: G.synthesis(w, noise="const"), mean_w.expand(args.n, -1)).clamp(-1, 1)
    t0 = time.perf_counter()
    nn_all = nearest_neighbours(G, ([truth] if indomain else []) + [world], args.nn, seed=1)
    nn_seconds = time.perf_counter() - t0
    w_nn = nn_all[-1]

    # ---------------------------------------------------------------------------------------- in-domain
    if indomain:
        t0 = time.perf_counter()
        wplus = batched(model.encode, inputs)
        enc_seconds = (time.perf_counter() - t0) / args.n
        recon = batched(lambda w: model.decode(w).clamp(-1, 1), wplus)
        lat = float(latent_error(wplus, codes["w"], mean_w[0]).mean())
        written = written_output(task, inputs, recon, truth, args.factors)
        rows, task_bars, base = task_table(label, task, inputs, truth, recon, written, nn_all[0], mean_img, args.factors,
                                           f"latent error {lat:.3f} (1 = the mean latent); {enc_seconds * 1e3:.1f} ms/image encode",
                                           f"{nn_seconds:.0f} s for the search")
        lines += [f"### In-domain: {args.n} images G(w+) of the encoder's own decoder (seed {HELDOUT_SEED}, style mixing "
                  f"{args.mixing}), task `{task}`", "", "| method | PSNR (dB) | SSIM | note |", "| --- | --- | --- | --- |"]
        lines += rows
        if restyle:
            lines += ["", restyle_line(model, inputs, truth)]
        if task == "encode":
            s_model, s_nn = scores(recon, truth), scores(nn_all[0], truth)
            gain = s_model["psnr"] - s_nn["psnr"]
            bars.append(f"**Bar (in-domain inversion beats the nearest neighbour by >= {NN_BAR_DB:g} dB): {gain:+.2f} dB, "
                        f"{'met' if gain >= NN_BAR_DB else 'not met'}.**")
        bars += [b.replace("**Bar (", "**Bar (in-domain ") for b in task_bars]
        if args.project_n > 0 and task == "encode":
            k = min(args.project_n, args.n)
            t0 = time.perf_counter()
            result = project(G, truth[:k], space="w+", steps=args.project_steps, seed=0, lpips=False)
            proj_seconds = (time.perf_counter() - t0) / k
            proj_img = result.images.detach().clamp(-1, 1)
            s_proj, s_model_k = scores(proj_img, truth[:k]), scores(recon[:k], truth[:k])
            lines += ["", f"Against optimisation inversion (W+, {args.project_steps} steps, weight-free loss) on the first {k} images:",
                      "", "| method | PSNR (dB) | SSIM | s / image |", "| --- | --- | --- | --- |",
                      f"| {label} | {s_model_k['psnr']:.2f} | {s_model_k['ssim']:.3f} | {enc_seconds:.4f} |",
                      f"| projection | {s_proj['psnr']:.2f} | {s_proj['ssim']:.3f} | {proj_seconds:.2f} |", "",
                      f"{label} - projection: {s_model_k['psnr'] - s_proj['psnr']:+.2f} dB at {proj_seconds / enc_seconds:.0f}x less time "
                      f"(goal: within 1.5 dB at >= 100x)."]
        if args.grid is not None:
            from ganedit.cli.demo import labelled_rows

            args.grid.mkdir(parents=True, exist_ok=True)
            k = min(8, args.n)
            grid_rows = [("input", inputs[:k, :3].expand(-1, 3, -1, -1).clamp(-1, 1)), ("truth G(w+)", truth[:k]),
                         (label, recon[:k])]
            if written is not None:
                grid_rows.append((WRITTEN_LABEL[task], written[:k]))
            if base is not None:
                grid_rows.append(("baseline", base[:k]))
            grid_rows += [(nn_label, nn_all[0][:k]), ("mean latent", mean_img[:k])]
            labelled_rows(grid_rows, args.grid / f"{name}_indomain.png")

    # ------------------------------------------------------------------------------------ out of domain
    w_out = encode_decode(model, w_inputs)
    w_written = written_output(task, w_inputs, w_out, world, args.factors)
    rows, task_bars, w_base = task_table(label, task, w_inputs, world, w_out, w_written, w_nn, mean_img, args.factors)
    lines += ["", f"### Out of domain: {args.n} held-out synthetic-world images (seed {HELDOUT_SEED}), task `{task}`", "",
              "| method | PSNR (dB) | SSIM | note |", "| --- | --- | --- | --- |"] + rows
    if restyle:
        lines += ["", restyle_line(model, w_inputs, world)]
    bars += [b.replace("**Bar (", "**Bar (world ") for b in task_bars]
    if args.grid is not None:
        from ganedit.cli.demo import labelled_rows

        args.grid.mkdir(parents=True, exist_ok=True)
        k = min(8, args.n)
        shown = w_inputs
        if task == "segmentation":
            shown = (w_inputs.argmax(1, keepdim=True).float() / max(1, w_inputs.shape[1] - 1) * 2 - 1)
        grid_rows = [("input", shown[:k, :3].expand(-1, 3, -1, -1).clamp(-1, 1)), ("world truth", world[:k]), (label, w_out[:k])]
        if w_written is not None:
            grid_rows.append((WRITTEN_LABEL[task], w_written[:k]))
        if w_base is not None:
            grid_rows.append(("baseline", w_base[:k]))
        grid_rows.append((nn_label, w_nn[:k]))
        labelled_rows(grid_rows, args.grid / f"{name}_world.png")
        lines += ["", "Grids: " + ", ".join(f"`{args.grid}/{name}_{part}.png`" for part in (["indomain"] if indomain else []) + ["world"])
                  + " (rows: input, truth, output, the copy-input baseline where the task has one, nearest neighbour"
                  + (", mean latent" if indomain else "") + ")."]

    head = [f"Command: `python -m benchmarks.bench_psp_quality {' '.join(argv if argv is not None else sys.argv[1:])}`. "
            f"Encoder `{args.encoder}`{training_line(model)}; decoder {size} px; {time.perf_counter() - t_start:.0f} s in all. "
            f"{machine_line()}", ""]
    title = "## pSp against ground truth (issue 13 §5)" + ("" if name == "encode" else f": task `{task}`" + (" (ReStyle)" if restyle else ""))
    text = title + "\n\n" + "\n".join(head + lines + [""] + bars) + "\n"
    print(text)
    if args.write:
        write_section("psp-quality" if name == "encode" else f"psp-quality-{name}", text)


if __name__ == "__main__":
    main()
