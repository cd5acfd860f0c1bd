"""`ganedit sample` (a grid of random images) and `ganedit mix` (a style-mixing grid) for StyleGAN2 models."""
from __future__ import annotations

import re
from typing import List, Tuple

import click

from ganedit.cli._options import MODEL_REF, device_option, out_option
from ganedit.errors import ConfigError

# w+ row i drives resolution 4 * 2**(i // 2) (two rows per resolution, as in the StyleGAN papers)
RANGES = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 30)}


def parse_seeds(text: str) -> List[int]:
    """'1,2,5-7' -> [1, 2, 5, 6, 7]."""
    seeds: List[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ConfigError(f"seed range {part!r} runs backwards")
            seeds.extend(range(a, b + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ConfigError(f"cannot read seed {part!r} in {text!r} (use e.g. 1,2,10-12)")
    return seeds


def layer_range(text: str, n_latent: int) -> Tuple[int, int]:
    """coarse|middle|fine or 'A-B' (inclusive w+ rows) -> [start, stop)."""
    if text in RANGES:
        lo, hi = RANGES[text]
        rows = [i for i in range(n_latent) if lo <= 4 * 2 ** (i // 2) <= hi]
        if not rows:
            raise ConfigError(f"this generator ({n_latent} w+ rows) has no {text} layers; give rows as A-B (0..{n_latent - 1})")
        return rows[0], rows[-1] + 1
    m = re.fullmatch(r"(\d+)-(\d+)", text)
    if not m or not (int(m.group(1)) <= int(m.group(2)) < n_latent):
        raise ConfigError(f"--range must be coarse, middle, fine or A-B with 0 <= A <= B < {n_latent}, got {text!r}")
    return int(m.group(1)), int(m.group(2)) + 1


def load_stylegan2(path: str, device: str = "cpu"):
    """Load any checkpoint and return a StyleGAN2 wrapper (a bare Generator gets a seeded mean latent), in eval
    mode on ``device`` (auto | cpu | cuda)."""
    import ganedit
    from ganedit.cli._options import resolve_device
    from ganedit.models.stylegan2 import Generator, StyleGAN2

    model = ganedit.load(path)
    if not isinstance(model, (Generator, StyleGAN2)):
        # e.g. an encoder model whose decoder is a StyleGAN2 generator
        model = getattr(model, "stylegan2", None) or getattr(model, "decoder", None) or model
    if isinstance(model, Generator):
        wrapper = StyleGAN2(generator=model.config, has_latent_avg=False)
        wrapper.g_ema.load_state_dict(model.state_dict())
        wrapper.latent_avg.copy_(model.mean_latent(4096, seed=0).reshape(-1))
        model = wrapper
    if not isinstance(model, StyleGAN2):
        raise ConfigError(f"{path}: holds a {type(model).__name__}, which has no StyleGAN2 generator to sample from")
    return model.to(resolve_device(device)).eval()


def register(cli: click.Group) -> None:
    @cli.command("sample")
    @click.argument("checkpoint", type=MODEL_REF)
    @click.option("--n", "n", default=16, show_default=True, help="Number of images.")
    @click.option("--truncation", default=1.0, show_default=True, help="psi: 1 = no truncation, 0 = the average image.")
    @click.option("--seed", default=0, show_default=True, help="Seed of the latent codes.")
    @click.option("--nrow", default=None, type=int, help="Images per row (default: about sqrt(n)).")
    @click.option("--noise", type=click.Choice(["const", "random"]), default="const", show_default=True,
                  help="const: the generator's stored noise maps (reproducible); random: fresh noise per image.")
    @out_option("Output image.", aliases=("--output",), default="samples.png", show_default=True, type=click.Path())
    @device_option()
    def sample_cmd(checkpoint: str, n: int, truncation: float, seed: int, nrow, noise: str, out: str, device: str) -> None:
        """Write a grid of N random images from a StyleGAN2 CHECKPOINT (rosinality .pt, native folder or shipped name).

        \b
        Example:
          ganedit sample stylegan2-ffhq-config-f.pt --n 16 --truncation 0.7 --seed 1 -o grid.png
        """
        import math

        import torch

        from ganedit.data.io import write_grid

        if n < 1:
            raise ConfigError("--n must be at least 1")
        model = load_stylegan2(checkpoint, device)
        with torch.inference_mode():
            images = model.sample(n, truncation=truncation, seed=seed, noise=noise).cpu()
        write_grid(images, out, nrow=nrow or math.ceil(math.sqrt(n)))
        click.echo(f"wrote {out} ({n} images, {model.size}px, truncation {truncation}, seed {seed})")

    @cli.command("mix")
    @click.argument("checkpoint", type=MODEL_REF)
    @click.option("--rows", default="1-4", show_default=True, help="Seeds of the row images (they give everything outside --range).")
    @click.option("--cols", default="10-13", show_default=True, help="Seeds of the column images (they give the --range layers).")
    @click.option("--range", "layers", default="coarse", show_default=True,
                  help="Which w+ rows come from the column image: coarse (4-8 px), middle (16-32 px), fine (64 px+) or A-B.")
    @click.option("--truncation", default=1.0, show_default=True, help="psi applied to every code.")
    @out_option("Output image.", aliases=("--output",), default="mix.png", show_default=True, type=click.Path())
    @device_option()
    def mix_cmd(checkpoint: str, rows: str, cols: str, layers: str, truncation: float, out: str, device: str) -> None:
        """Style-mixing grid: cell (r, c) is row seed r with the --range layers taken from column seed c.
        The first row shows the column images, the first column the row images.

        \b
        Example:
          ganedit mix stylegan2-ffhq-config-f.pt --rows 1-4 --cols 10,20,30 --range middle -o mix.png
        """
        import torch

        from ganedit.data.io import write_grid

        model = load_stylegan2(checkpoint, device)
        row_seeds, col_seeds = parse_seeds(rows), parse_seeds(cols)
        start, stop = layer_range(layers, model.n_latent)
        with torch.inference_mode():
            def wplus(seeds: List[int]) -> torch.Tensor:
                z = torch.cat([model.seed_z(s) for s in seeds])
                return model.mapping(z, truncation).unsqueeze(1).repeat(1, model.n_latent, 1)

            w_rows, w_cols = wplus(row_seeds), wplus(col_seeds)
            mixed = w_rows.unsqueeze(1).repeat(1, len(col_seeds), 1, 1)  # [R, C, n_latent, dim]
            mixed[:, :, start:stop] = w_cols[None, :, start:stop]
            row_images = model.synthesis(w_rows)
            col_images = model.synthesis(w_cols)
            cells = model.synthesis(mixed.reshape(-1, model.n_latent, model.style_dim))
            blank = torch.ones_like(col_images[:1])
            grid = [blank, col_images]
            for r in range(len(row_seeds)):
                grid += [row_images[r:r + 1], cells[r * len(col_seeds):(r + 1) * len(col_seeds)]]
        write_grid(torch.cat(grid).cpu(), out, nrow=len(col_seeds) + 1)
        click.echo(f"wrote {out} ({len(row_seeds)}x{len(col_seeds)} mixes, w+ rows {start}-{stop - 1} from the columns)")
