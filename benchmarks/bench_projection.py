"""Projection and PTI on one StyleGAN2 generator: in-domain ground truth, world images, speed, storage.

* In-domain: the images of ``ganedit data indomain --seed S --mixing p`` (``ganedit.edit.indomain``: G(w+) with
  w+ known, const noise; with mixing, some take their fine rows from a second w). For W and W+ and each step
  count: reconstruction PSNR / SSIM and the latent error: mean over w+ rows of |w_hat - w| divided by the mean
  over rows of |w_mean - w| (1 = no better than the mean latent). Held-out synthetic-world images (out of
  domain, ``--world-steps``): PSNR / SSIM.
* Speed: ganedit's projector against a plain rosinality-style projector written below, on the same generator,
  loss and image, interleaved in one run; seconds per image-step, min and median, and the ratio. On the CPU every
  time is the process's CPU time (``--clock cpu``, the default there): on a core shared with other jobs, wall
  time measures the neighbours as much as the code.
* PTI: reconstruction of the tuned generator against its pivot (projection alone), steps, time per image, and
  the file per image (fp16 difference, rank-4 difference) against the whole generator in fp32.
* PTI edits (with ``--direction``): does a direction still do what it should on the tuned generator? The
  attribute regressor reads the pivot edited by +-1 sigma, decoded by the base and by the tuned generator:
  change of the intended factor and RMS leakage into the others, per sigma, in units of each factor's spread
  (the measure of ``bench_directions``).

    python -m benchmarks.bench_projection stylegan2-synth64 [--steps 100,500,1000] [--n 6] [--write]
    python -m benchmarks.bench_projection --random 32 --steps 20,50 --n 2 --pti-steps 20   # a quick check
    ... --direction stylegan2-synth64/interfacegan_yaw,d.safetensors [--regressor PATH]   # PTI edit check
                                                                              # (random: a random direction)

The figures depend on the generator: the section names it (path, size, weights hash) and the loss used. MODEL is a
path or a shipped name (stylegan2-synth64). The run prints its wall and CPU time.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

from benchmarks.common import machine_line, write_section
from ganedit.edit.latents import generator_fingerprint
from ganedit.edit.projection import perceptual_loss, project, w_statistics
from ganedit.edit.pti import load_pti, pivotal_tuning, save_pti


# ------------------------------------------------------------------------------- plain reference projector


def plain_projector(g, images, loss_fn, steps: int, w_plus: bool, lr: float = 0.1, seed: int = 0) -> torch.Tensor:
    """The rosinality projector written plainly (its loop, its whole-batch noise statistics), for timing."""
    torch.manual_seed(seed)
    device = images.device
    with torch.no_grad():
        w = g.style(torch.randn(10000, g.style_dim, device=device))
        mean = w.mean(0)
        std = ((w - mean).pow(2).sum() / 10000) ** 0.5
    noises = [torch.randn(images.shape[0], 1, m.shape[-2], m.shape[-1], device=device).requires_grad_(True)
              for m in g.make_noise(1)]
    latent = mean.detach().clone().unsqueeze(0).repeat(images.shape[0], 1)
    if w_plus:
        latent = latent.unsqueeze(1).repeat(1, g.n_latent, 1)
    latent.requires_grad_(True)
    opt = torch.optim.Adam([latent] + noises, lr=lr)
    for i in range(steps):
        t = i / steps
        ramp = min(1.0, (1 - t) / 0.25)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05)
        opt.param_groups[0]["lr"] = lr * ramp
        strength = std * 0.05 * max(0.0, 1 - t / 0.75) ** 2
        latent_n = latent + torch.randn_like(latent) * strength
        image, _ = g([latent_n], input_is_latent=True, noise=noises)
        reg = 0.0
        for noise in noises:
            v = noise
            while True:
                reg = reg + (v * torch.roll(v, 1, dims=3)).mean().pow(2) + (v * torch.roll(v, 1, dims=2)).mean().pow(2)
                if v.shape[2] <= 8:
                    break
                v = v.reshape(-1, 1, v.shape[2] // 2, 2, v.shape[3] // 2, 2).mean([3, 5])
        loss = loss_fn(image, images).sum() + 1e5 * reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for noise in noises:
                noise.sub_(noise.mean()).div_(noise.std())
    return latent.detach()


# ------------------------------------------------------------------------------------------------ helpers


def synced(result: torch.Tensor) -> torch.Tensor:
    """Wait for the GPU's queued work (timings must include it); a no-op on the CPU."""
    if result.is_cuda:
        torch.cuda.synchronize()
    return result


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return 10 * torch.log10(4.0 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from ganedit.metrics.image import ssim as ssim_metric

    return ssim_metric(a.clamp(-1, 1).cpu(), b.clamp(-1, 1).cpu())


def load_generator(args):
    if args.random:
        from ganedit.models.stylegan2 import StyleGAN2

        torch.manual_seed(0)
        G = StyleGAN2({"size": args.random, "style_dim": 64, "n_mlp": 4, "channel_base": 1024, "channel_max": 64})
        with torch.no_grad():
            G.latent_avg.copy_(G.g_ema.mean_latent(4096, seed=0).reshape(-1))
        return G.eval(), "a random-weight generator (style_dim 64, channels <= 64, seed 0)"
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2

    return load_stylegan2(resolve_model(args.model)), f"`{args.model}`"


def clock_fn(name: str):
    """The clock of every timing: process CPU time ("cpu") or wall time ("wall", needed on a GPU)."""
    return time.process_time if name == "cpu" else time.perf_counter


def timed(fn, clock) -> float:
    began = clock()
    synced_result = fn()
    if isinstance(synced_result, torch.Tensor):
        synced(synced_result)
    return clock() - began


def latent_error(wplus: torch.Tensor, truth: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Per image: mean over rows of |row - true row| divided by the mean over rows of |mean - true row|.
    ``truth`` is [N, dim] (one w) or [N, n_latent, dim] (w+, e.g. style-mixed)."""
    if truth.dim() == 2:
        truth = truth[:, None].expand_as(wplus)
    return (wplus - truth).norm(dim=2).mean(1) / (mean[None, None] - truth).norm(dim=2).mean(1)


def pti_edit_rows(args, G, tuned) -> List[str]:
    """Markdown lines: each direction's intended change and leakage per sigma, base vs tuned generator."""
    lines: List[str] = []
    for spec in args.direction.split(","):
        lines += pti_edit_rows_one(args, G, tuned, spec)
    return lines


def pti_edit_rows_one(args, G, tuned, direction: str) -> List[str]:
    from benchmarks.bench_directions import measure, readable_factors, score
    from ganedit.edit import directions as D
    from ganedit.metrics.attributes import edit_readings, nan_std
    from ganedit.models.attributes import AttributeRegressor, load_regressor

    smoke = args.regressor is None and (args.random or direction == "random")
    if smoke:  # a smoke run: nothing trained
        torch.manual_seed(0)
        regressor = AttributeRegressor(channels=(4, 4, 8, 8, 8), feature_dim=16).eval()
    else:
        regressor = load_regressor(args.regressor)
    read = lambda images: edit_readings(images.cpu(), regressor)  # noqa: E731
    if direction == "random":
        d = torch.nn.functional.normalize(torch.randn(G.style_dim, generator=torch.Generator().manual_seed(7)), dim=0)
        name, attribute = "random", args.attribute or "smile"
    else:
        loaded = D.load_direction(D.resolve_direction(direction), G)  # a path or a shipped MODEL/NAME
        i = loaded.index(args.component)
        d, name = loaded.vectors[i], loaded.names[i]
        attribute = args.attribute or loaded.meta.get("attribute") or name
    d = d.to(args.device)
    samples = D.sample_w(G, 256, seed=11).to(args.device)
    step = float((samples @ d).std())  # 1 sigma of sampled w along d
    spread = {k: nan_std(v) for k, v in read(D.render_w(G, samples[:64])).items() if nan_std(v) > 1e-6}
    # leakage counts only the factors the regressor reads (as in bench_directions)
    unread = [] if smoke else [k for k, (_, v) in readable_factors(regressor, args.check_n, 0.5).items() if v < 0.5]
    spread = {k: v for k, v in spread.items() if k not in unread}
    if attribute not in spread:
        return ["", f"PTI edit check for {name!r} skipped: the regressor does not read {attribute!r} "
                f"({'unreadable' if attribute in unread else 'no spread'})."]
    lines = ["", f"PTI edits: direction {name!r} (intended factor {attribute}), +-1 sigma at each pivot; change and "
             f"RMS leakage into the {len(spread) - 1} other factors the regressor reads, per sigma in units of each "
             "factor's spread, decoded by the base and by the tuned generator.",
             "", "| image | base change | base leakage | tuned change | tuned leakage |", "|---|---|---|---|---|"]
    for result in tuned:
        w = result.pivot[:, 0].to(args.device)
        base = score(measure(G, read, w, d, step, 8), spread, attribute)
        after = score(measure(result.generator(G), read, w, d, step, 8), spread, attribute)
        row = f"| {result.name} | {base[0]:+.3f} | {base[1]:.3f} | {after[0]:+.3f} | {after[1]:.3f} |"
        print(row, flush=True)
        lines.append(row)
    return lines


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="StyleGAN2 checkpoint (native folder or rosinality .pt)")
    parser.add_argument("--random", type=int, default=0, help="use a random-weight generator of this size instead")
    parser.add_argument("--steps", default="100,500,1000", help="projection step counts")
    parser.add_argument("--n", type=int, default=6, help="in-domain images")
    parser.add_argument("--n-world", type=int, default=None, help="held-out world images (default: --n)")
    parser.add_argument("--world-steps", type=int, default=None, help="projection steps for the world images "
                        "(default: the largest of --steps)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the in-domain set (ganedit data indomain --seed)")
    parser.add_argument("--mixing", type=float, default=0.0, help="style-mixing probability of the in-domain set")
    parser.add_argument("--check-n", type=int, default=500, help="held-out world images deciding which factors "
                        "the regressor reads (PTI edit check)")
    parser.add_argument("--spaces", default="w,w+")
    parser.add_argument("--noise-modes", default="random",
                        help="optimised noise maps starting from random (reference) or from the stored maps (const)")
    parser.add_argument("--timing-steps", type=int, default=100, help="steps per timed projection")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pti-n", type=int, default=1, help="images tuned by PTI, from each set (in-domain, world)")
    parser.add_argument("--pivot-steps", type=int, default=450)
    parser.add_argument("--pivot-lr", type=float, default=5e-3)
    parser.add_argument("--pti-steps", type=int, default=350)
    parser.add_argument("--lpips-weights", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="process CPU time or wall time for every timing (default: cpu on the CPU, else wall)")
    parser.add_argument("--direction", default=None, help="direction files, comma-separated (or 'random') for the "
                        "PTI edit check")
    parser.add_argument("--component", default="0", help="vector of the direction file (index or name)")
    parser.add_argument("--attribute", default=None, help="intended factor (default: the direction file's attribute)")
    parser.add_argument("--regressor", default=None, help="attribute regressor (default: the shipped one; "
                        "with --random or --direction random a random-weight one)")
    parser.add_argument("--note", default="", help="a sentence printed under the section's title (what the run is for)")
    parser.add_argument("--write", action="store_true", help="write the bench:projection section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.model and not args.random:
        parser.error("give a MODEL path or --random SIZE")
    torch.set_num_threads(args.threads)
    wall0, cpu0 = time.time(), time.process_time()
    clock_name = args.clock or ("cpu" if args.device == "cpu" else "wall")
    clock = clock_fn(clock_name)
    G, label = load_generator(args)
    G = G.to(args.device)
    g = G.g_ema
    loss_fn, loss_name = perceptual_loss(args.lpips_weights, "vgg", args.device)
    fp = generator_fingerprint(G)
    steps_list = [int(s) for s in args.steps.split(",")]
    spaces = args.spaces.split(",")

    n_world = args.n if args.n_world is None else args.n_world
    world_steps = args.world_steps or max(steps_list)
    from ganedit.edit.indomain import decode, sample_codes

    with torch.no_grad():
        codes = sample_codes(G, args.n, seed=args.seed, mixing=args.mixing)
        w_true = codes["wplus"].to(args.device)
        # as `ganedit data indomain` writes them (clamped), before the 8-bit rounding of its PNGs
        targets = decode(G, codes["wplus"]).clamp(-1, 1).to(args.device)
        mean, _ = w_statistics(g, 10000, 0)
        from ganedit.data.synthetic import heldout_seed, render, sample_appearance, sample_structure

        # the world renders at 32 px and more: smaller generators get it average-pooled down
        world = render(sample_structure(n_world, heldout_seed(0)), sample_appearance(n_world, heldout_seed(0)),
                       max(32, g.size)).image
        world = (F.adaptive_avg_pool2d(world, g.size) if world.shape[-1] != g.size else world).to(args.device)
        mean_image = g.synthesis(mean[None], "const")
    baseline_psnr = float(psnr(mean_image.expand_as(targets), targets).mean())

    project(G, targets[:1], steps=1, loss_fn=loss_fn)  # first-use costs (the optimiser's imports) out of the table
    rows: List[str] = []
    world_rows: List[str] = []
    for space in spaces:
        for mode in args.noise_modes.split(","):
            for steps in steps_list:
                began = clock()
                result = project(G, targets, space=space, steps=steps, noise=True, noise_init=mode, loss_fn=loss_fn)
                seconds = (clock() - began) / args.n
                err = latent_error(result.wplus, w_true, mean)
                row = (f"| {space} | {mode} | {steps} | {float(psnr(result.images, targets).mean()):.2f} | "
                       f"{float(ssim(result.images, targets).mean()):.3f} | {float(err.mean()):.3f} | "
                       f"{float(err.min()):.3f} / {float(err.max()):.3f} | {seconds:.2f} |")
                print(row, flush=True)
                rows.append(row)
            began = clock()
            world_result = project(G, world, space=space, steps=world_steps, noise=True, noise_init=mode, loss_fn=loss_fn)
            seconds = (clock() - began) / n_world
            row = (f"| {space} | {mode} | {world_steps} | {float(psnr(world_result.images, world).mean()):.2f} | "
                   f"{float(ssim(world_result.images, world).mean()):.3f} | {seconds:.2f} |")
            print(row, flush=True)
            world_rows.append(row)

    # speed: ours against the plain projector, one image, interleaved
    one = targets[:1]
    timings: Dict[str, Dict[str, list]] = {s: {"ours": [], "plain": []} for s in spaces}
    for _ in range(args.repeats):
        for space in spaces:
            timings[space]["ours"].append(timed(lambda: project(G, one, space=space, steps=args.timing_steps,
                                                                loss_fn=loss_fn).wplus, clock))
            timings[space]["plain"].append(timed(lambda: plain_projector(g, one, loss_fn, args.timing_steps, space == "w+"),
                                                 clock))
    speed_rows = []
    for space in spaces:
        ours = sorted(timings[space]["ours"])
        plain = sorted(timings[space]["plain"])
        med = lambda xs: xs[len(xs) // 2]  # noqa: E731
        row = (f"| {space} | {1e3 * ours[0] / args.timing_steps:.1f} / {1e3 * med(ours) / args.timing_steps:.1f} | "
               f"{1e3 * plain[0] / args.timing_steps:.1f} / {1e3 * med(plain) / args.timing_steps:.1f} | "
               f"{ours[0] / plain[0]:.2f} / {med(ours) / med(plain):.2f} |")
        print(row, flush=True)
        speed_rows.append(row)

    # PTI: the first --pti-n in-domain images and the first --pti-n world images
    pti_rows = []
    tuned = []
    whole = sum(p.numel() * 4 for p in g.state_dict().values())
    pti_sets = [("in-domain", targets), ("world", world)]
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, images in pti_sets:
            for i in range(min(args.pti_n, images.shape[0])):
                target = images[i:i + 1]
                began = clock()
                result = pivotal_tuning(G, target, f"{set_name} {i}", pivot_steps=args.pivot_steps, pivot_lr=args.pivot_lr,
                                        steps=args.pti_steps, lpips=args.lpips_weights)
                seconds = clock() - began
                full = save_pti(Path(tmp) / "full.safetensors", result).stat().st_size
                low_path = save_pti(Path(tmp) / "low.safetensors", result, rank=4)
                low = low_path.stat().st_size
                with torch.no_grad():
                    pivot_image = g.synthesis(result.pivot, "const")
                    tuned_image = result.generator(G).synthesis(result.pivot, "const")
                    low_image = load_pti(low_path).generator(G).synthesis(result.pivot, "const")
                row = (f"| {set_name} {i} | {float(psnr(pivot_image, target)):.2f} / {float(ssim(pivot_image, target)):.3f} | "
                       f"{float(psnr(tuned_image, target)):.2f} / {float(ssim(tuned_image, target)):.3f} | "
                       f"{float(psnr(low_image, target)):.2f} | {result.steps} | {seconds:.1f} | {full / 1024:.0f} | "
                       f"{low / 1024:.0f} | {whole / 1024:.0f} |")
                print(row, flush=True)
                pti_rows.append(row)
                tuned.append(result)

    edit_rows = pti_edit_rows(args, G, tuned) if args.direction else []
    wall, cpu = time.time() - wall0, time.process_time() - cpu0

    command = "python -m benchmarks.bench_projection " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    text = "\n".join([
        "### Projection and PTI (ganedit.edit.projection, ganedit.edit.pti)",
        "",
        *([args.note, ""] if args.note else []),
        f"Generator: {label} ({fp['size']} px, n_latent {fp['n_latent']}, weights hash {fp['hash']}). "
        f"Loss: {loss_name}. {args.n} in-domain images (those of `ganedit data indomain --seed {args.seed} --mixing "
        f"{args.mixing:g}`: G(w+) with w+ known, const noise; {int(codes['mixed'].sum())} style-mixed) and {n_world} "
        f"held-out world images. Machine: {machine_line()}; device {args.device}. "
        f"Whole run: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU. Times in the tables: "
        f"{'process CPU time (the core was shared with other jobs)' if clock_name == 'cpu' else 'wall time'}.",
        f"Command: `{command}`",
        "",
        f"Latent error = mean over w+ rows of |w_hat - w| / mean over rows of |w_mean - w| (1 = the mean latent). "
        f"The mean latent's image scores {baseline_psnr:.2f} dB on the in-domain set.",
        "",
        "Noise maps are optimised in every row; they start from N(0, 1) (random, as the reference projectors) or "
        "from the generator's stored maps (const, which the in-domain images were made with).",
        "",
        "| space | noise start | steps | in-domain PSNR (dB) | SSIM | latent error (mean) | min / max | s / image |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Held-out world images (out of domain):",
        "",
        "| space | noise start | steps | world PSNR (dB) | SSIM | s / image |",
        "|---|---|---|---|---|---|",
        *world_rows,
        "",
        f"Speed per image-step, {args.timing_steps}-step runs on one image, {args.repeats} interleaved repeats "
        "(min / median), against the plain rosinality-style projector in this script:",
        "",
        "| space | ganedit ms | plain ms | ratio ganedit / plain |",
        "|---|---|---|---|",
        *speed_rows,
        "",
        f"PTI (pivot: W projection, {args.pivot_steps} steps, lr {args.pivot_lr}; tuning at most {args.pti_steps} steps): "
        "reconstruction of the pivot with the base generator (projection alone) and with the tuned one (fp16 "
        "difference file, and the rank-4 file); file per image; time per image includes the pivot's projection.",
        "",
        "| image | pivot PSNR / SSIM | PTI PSNR / SSIM | PTI rank-4 PSNR | tuning steps | s / image | fp16 diff KiB | rank-4 KiB | whole G fp32 KiB |",
        "|---|---|---|---|---|---|---|---|---|",
        *pti_rows,
        *edit_rows,
    ])
    print(text)
    if args.write:
        write_section("projection", text)


if __name__ == "__main__":
    main()
