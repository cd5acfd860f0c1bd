"""`ganedit project` (optimisation inversion into W / W+) and `ganedit pti` (pivotal tuning) for StyleGAN2.

Both write a latents file (``ganedit.edit.latents``) and the reconstructions; the work is done by
``ganedit.edit.projection`` and ``ganedit.edit.pti``. The helpers here (reading image arguments, loading an
encoder for ``--init``) are shared with `ganedit edit`.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import click

from ganedit.cli._options import device_option, resolve_device
from ganedit.errors import ConfigError, DataError

SPACE_HELP = "w: one code per image (edits behave best); w+: one code per generator layer (reconstructs better)."
LPIPS_HELP = ("LPIPS weights: a combined file or a folder with vgg.pth + vgg16-*.pth (alex.pth + alexnet-*.pth for "
              "pti). Default: $GANEDIT_CACHE. Without them a weight-free loss is used (a warning says so).")


# ------------------------------------------------------------------------------------------------- helpers


def image_files(inputs: Sequence[str]) -> List[Path]:
    """Image files named by ``inputs`` (files, or folders whose images are taken in name order)."""
    from ganedit.data.io import is_image_name

    files: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f.name))
            if not found:
                raise DataError(f"{p}: folder holds no images")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError("no input images given")
    return files


def unique_names(files: Sequence[Path]) -> List[str]:
    """File stems, with a numeric suffix where two inputs share a stem (outputs must not overwrite each other)."""
    names: List[str] = []
    for f in files:
        name, k = f.stem, 1
        while name in names:
            k += 1
            name = f"{f.stem}_{k}"
        names.append(name)
    return names


def read_images(files: Sequence[Path], size: int):
    """[N, 3, size, size] in [-1, 1] (centre crop, resize; smaller images are upscaled)."""
    import torch

    from ganedit.data.io import read_image

    return torch.cat([read_image(f, size, allow_upscale=True) for f in files])


def load_generator(path: str, device: str = "cpu"):
    """A StyleGAN2 (``g_ema`` + ``latent_avg``) from any checkpoint ganedit reads or a shipped model's name
    (``stylegan2-synth64``), in eval mode."""
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2

    return load_stylegan2(resolve_model(path)).to(resolve_device(device))


def encoder_codes(path: str, G: Any, images: Any) -> Any:
    """w+ codes of ``images`` from the encoder checkpoint at ``path`` (any ganedit model with ``encode``)."""
    import torch

    import ganedit
    from ganedit.errors import GaneditError

    try:
        encoder = ganedit.load(path)
    except GaneditError as exc:
        raise ConfigError(f"{path}: not a loadable encoder ({exc})") from None
    encode = getattr(encoder, "encode", None)
    if not callable(encode):
        raise ConfigError(f"{path}: holds a {type(encoder).__name__}, which is not an encoder (it has no encode())")
    if getattr(encoder, "task", "encode") != "encode":
        raise ConfigError(f"{path}: this encoder reads {encoder.task} inputs, not photos; inversion needs an 'encode' one")
    decoder = getattr(encoder, "generator", None)
    if decoder is not None:
        from ganedit.edit.latents import check_fits, generator_fingerprint

        # codes of an encoder trained for another decoder are meaningless in G (refused), or off (warned)
        check_fits(generator_fingerprint(decoder), G, path)
    encoder = encoder.to(next(G.parameters()).device).eval()
    with torch.no_grad():
        codes = encode(images.to(next(G.parameters()).device))
    codes = codes[0] if isinstance(codes, (tuple, list)) else codes
    if not isinstance(codes, torch.Tensor) or codes.shape[-1] != G.style_dim or codes.dim() not in (2, 3) \
            or (codes.dim() == 3 and codes.shape[1] != G.n_latent):
        shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise ConfigError(f"{path}: the encoder's codes {shape} do not fit this generator "
                          f"([N, {G.n_latent}, {G.style_dim}] expected)")
    return codes.float().cpu()


def progress_bar(total: int, label: str) -> Tuple[Callable[[int, int, dict], None], Callable[[], None]]:
    """(callback for project/pivotal_tuning, close) drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(step: int, steps: int, stats: dict) -> None:
        bar.n = step
        bar.set_postfix(loss=f"{stats.get('loss', float('nan')):.4f}", refresh=False)
        bar.refresh()

    return update, bar.close


def write_outputs(out: Path, names: Sequence[str], targets: Any, reconstructions: Any) -> None:
    """OUT/reconstructions/<name>.png and OUT/compare.png (top row: inputs, bottom row: reconstructions)."""
    import torch

    from ganedit.data.io import write_grid, write_image

    folder = out / "reconstructions"
    folder.mkdir(parents=True, exist_ok=True)
    targets, reconstructions = targets.cpu(), reconstructions.cpu()
    for name, image in zip(names, reconstructions):
        write_image(image, folder / f"{name}.png")
    n = len(names)
    write_grid(torch.cat([targets[:16], reconstructions[:16]]), out / "compare.png", nrow=min(n, 16))


def psnr(a: Any, b: Any) -> List[float]:
    """Per-image PSNR (dB) of images in [-1, 1] (peak-to-peak 2)."""
    import torch

    mse = (a.cpu().clamp(-1, 1) - b.cpu().clamp(-1, 1)).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return [float(v) for v in 10 * torch.log10(4.0 / mse)]


# ------------------------------------------------------------------------------------------------ commands


def register(cli: click.Group) -> None:
    @cli.command("project")
    @click.argument("images", nargs=-1, required=True, type=click.Path())
    @click.option("--model", "model_path", required=True, help="StyleGAN2 checkpoint or a shipped model's name.")
    @click.option("-o", "--out", "output", required=True, type=click.Path(), help="Output folder.")
    @click.option("--space", type=click.Choice(["w", "w+"]), default="w+", show_default=True, help=SPACE_HELP)
    @click.option("--steps", default=1000, show_default=True, help="Optimisation steps.")
    @click.option("--noise/--no-noise", default=True, show_default=True, help="Also optimise the noise maps.")
    @click.option("--noise-init", type=click.Choice(["random", "const"]), default="random", show_default=True,
                  help="Where optimised noise maps start: random (the reference projectors) or const (the generator's "
                       "stored maps, as its samples use).")
    @click.option("--init", "init", default="mean", show_default=True,
                  help="mean: start from the average latent; or an ENCODER checkpoint (pSp/e4e) whose codes are refined.")
    @click.option("--lr", default=0.1, show_default=True, help="Peak learning rate.")
    @click.option("--mse", default=0.0, show_default=True, help="Weight of an extra pixel MSE term.")
    @click.option("--lpips-weights", type=click.Path(exists=True), default=None, help=LPIPS_HELP)
    @click.option("--batch", "batch_size", type=click.IntRange(1), default=4, show_default=True,
                  help="Images optimised together (independently).")
    @click.option("--seed", default=0, show_default=True)
    @device_option()
    def project_cmd(images: Tuple[str, ...], model_path: str, output: str, space: str, steps: int, noise: bool,
                    noise_init: str, init: str, lr: float, mse: float, lpips_weights: Optional[str], batch_size: int, seed: int,
                    device: str) -> None:
        """Invert IMAGES (files or folders) into the StyleGAN2 --model by optimisation; writes OUT/latents.safetensors,
        OUT/reconstructions/<name>.png and OUT/compare.png.

        \b
        Example:
          ganedit project --model stylegan2-synth64 faces/ -o out/proj --space w+ --steps 1000
        """
        from ganedit.edit.latents import save_latents
        from ganedit.edit.projection import project_batches

        G = load_generator(model_path, device)
        files = image_files(images)
        names = unique_names(files)
        targets = read_images(files, G.size)
        start = None if init == "mean" else encoder_codes(init, G, targets)
        update, close = progress_bar(len(files), "project")
        began = time.perf_counter()
        try:
            result = project_batches(G, targets, batch_size=max(1, batch_size), progress=update, space=space, steps=steps,
                                     noise=noise, noise_init=noise_init, init=start, lr=lr, mse=mse, lpips=lpips_weights, seed=seed)
        finally:
            close()
        seconds = time.perf_counter() - began
        out = Path(output)
        meta = {**result.meta(G), "init": init, "noise_init": noise_init if noise else None, "images": [str(f) for f in files]}
        save_latents(out / "latents.safetensors", result.wplus, names, meta, noise=result.noise)
        write_outputs(out, names, targets, result.images)
        for name, value in zip(names, psnr(result.images, targets)):
            click.echo(f"{name}: PSNR {value:.2f} dB")
        click.echo(f"wrote {out / 'latents.safetensors'} ({len(names)} codes in {space}, loss {result.loss_name}, "
                   f"{steps} steps, {seconds / len(names):.1f} s per image) and reconstructions")

    @cli.command("pti")
    @click.argument("images", nargs=-1, required=True, type=click.Path())
    @click.option("--model", "model_path", required=True, help="StyleGAN2 checkpoint or a shipped model's name.")
    @click.option("-o", "--out", "output", required=True, type=click.Path(), help="Output folder.")
    @click.option("--pivot-steps", default=450, show_default=True, help="Steps of the W projection giving the pivot.")
    @click.option("--pivot-lr", default=5e-3, show_default=True, help="Learning rate of the pivot projection (PTI's).")
    @click.option("--steps", default=350, show_default=True, help="Most tuning steps (stops early on the loss).")
    @click.option("--lr", default=3e-4, show_default=True, help="Tuning learning rate.")
    @click.option("--stop-loss", default=None, type=float, help="Stop when the perceptual loss is below this "
                  "(default 0.06 with LPIPS, 1e-3 with the weight-free loss; 0 never stops early).")
    @click.option("--locality/--no-locality", default=False, show_default=True,
                  help="Keep the tuned generator unchanged away from the pivot (PTI's locality regulariser).")
    @click.option("--rank", default=None, type=int, help="Store each weight difference as a rank-R factorisation "
                  "(smaller, approximate) instead of the full fp16 difference.")
    @click.option("--lpips-weights", type=click.Path(exists=True), default=None, help=LPIPS_HELP)
    @click.option("--seed", default=0, show_default=True)
    @device_option()
    def pti_cmd(images: Tuple[str, ...], model_path: str, output: str, pivot_steps: int, pivot_lr: float, steps: int,
                lr: float, stop_loss: Optional[float], locality: bool, rank: Optional[int], lpips_weights: Optional[str],
                seed: int, device: str) -> None:
        """Pivotal tuning of the StyleGAN2 --model on each of IMAGES: writes OUT/pti/<name>.safetensors (the pivot
        and the fp16 weight difference), OUT/latents.safetensors (the pivots) and the reconstructions.

        \b
        Example:
          ganedit pti --model stylegan2-synth64 face.png -o out/pti --locality
          ganedit edit out/pti/pti/face.safetensors --model stylegan2-synth64 --direction smile.safetensors -o s.png
        """
        import torch

        from ganedit.edit.latents import generator_fingerprint, save_latents
        from ganedit.edit.pti import pivotal_tuning, save_pti

        if rank is not None and rank < 1:
            raise ConfigError("--rank must be at least 1")
        G = load_generator(model_path, device)
        files = image_files(images)
        names = unique_names(files)
        targets = read_images(files, G.size)
        out = Path(output)
        pivots, recons, sizes, paths, seconds = [], [], [], [], []
        for name, target in zip(names, targets):
            update, close = progress_bar(steps, f"pti {name}")
            began = time.perf_counter()
            try:
                result = pivotal_tuning(G, target[None], name, pivot_steps=pivot_steps, pivot_lr=pivot_lr, steps=steps,
                                        lr=lr, lpips=lpips_weights, stop_loss=stop_loss, locality=locality, seed=seed,
                                        progress=update)
            finally:
                close()
            seconds.append(time.perf_counter() - began)
            path = save_pti(out / "pti" / f"{name}.safetensors", result, rank=rank)
            with torch.no_grad():
                pivot = result.pivot.to(next(G.parameters()).device)
                recons.append(result.generator(G).synthesis(pivot, noise="const").cpu())
            pivots.append(result.pivot)
            sizes.append(path.stat().st_size)
            paths.append(str(path))
            click.echo(f"{name}: {result.steps} tuning steps, loss {result.pivot_loss:.4f} -> {result.final_loss:.4f}, "
                       f"{path.stat().st_size / 1024:.0f} KiB, {seconds[-1]:.1f} s")
        recon = torch.cat(recons)
        meta = {"space": "w", "source": "pti", "generator": generator_fingerprint(G), "pti_files": paths,
                "images": [str(f) for f in files]}
        save_latents(out / "latents.safetensors", torch.cat(pivots), names, meta)
        write_outputs(out, names, targets, recon)
        for name, value in zip(names, psnr(recon, targets)):
            click.echo(f"{name}: PSNR {value:.2f} dB")
        click.echo(f"wrote {len(names)} PTI files to {out / 'pti'} (mean {sum(sizes) / len(sizes) / 1024:.0f} KiB, "
                   f"{sum(seconds) / len(seconds):.1f} s per image), the pivots and reconstructions")
