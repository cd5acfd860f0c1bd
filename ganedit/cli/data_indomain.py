"""`ganedit data indomain`: a held-out in-domain set of a StyleGAN2 generator (images with known latents and
their degradations), the ground truth of every inversion benchmark (ganedit.edit.indomain)."""
from __future__ import annotations

from pathlib import Path

import click

from ganedit.cli._options import device_option

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def resolve_model(name: str) -> str:
    """A path as given, or a shipped asset by name (``stylegan2-synth64`` -> ganedit/assets/stylegan2_synth64)."""
    if Path(name).exists():
        return name
    shipped = ASSETS / name.replace("-", "_")
    return str(shipped) if shipped.is_dir() else name


@click.command("indomain")
@click.option("--model", "model", required=True, help="StyleGAN2 checkpoint (native folder, official .pt) or a shipped name.")
@click.option("--n", "n", type=click.IntRange(1), default=1000, show_default=True, help="Images.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="Image i of seed s is the same in any set.")
@click.option("--mixing", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Style-mixing probability (W+ codes from two w).")
@click.option("--truncation", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="Truncation psi towards the mean latent.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Images decoded at once.")
@device_option()
def indomain(model: str, n: int, out: str, seed: int, mixing: float, truncation: float, batch: int, device: str) -> None:
    """Sample codes from a generator at fixed seeds and write images, latents and degraded inputs to OUT.

    \b
    OUT/images/  sketch/  lowres4/  lowres8/  masked/  masks/   one PNG each per image
    OUT/latents.safetensors   w+ of every image (the latents file format)
    OUT/codes.safetensors     z, w, mixed, crossover
    OUT/indomain.json         options, generator fingerprint, mask kind per image

    \b
    Example:
      ganedit data indomain --model stylegan2-synth64 --n 1000 -o data/indomain --seed 0 --mixing 0.5
    """
    from tqdm import tqdm

    from ganedit.cli.sample import load_stylegan2
    from ganedit.edit.indomain import write_indomain

    path = resolve_model(model)
    G = load_stylegan2(path, device)  # codes are drawn on the CPU: the same set on any device
    with tqdm(total=n, unit="img", desc="indomain", dynamic_ncols=True) as bar:
        record = write_indomain(G, out, n, seed=seed, mixing=mixing, truncation=truncation, batch_size=batch,
                                source=path, progress=bar.update)
    click.echo(f"wrote {n} images ({record['mixed']} style-mixed) at {record['size']} px with latents and "
               f"degradations to {out}")


def register(cli: click.Group) -> None:
    from ganedit.cli.data import data

    data.add_command(indomain)
    if "data" not in cli.commands:
        cli.add_command(data)
