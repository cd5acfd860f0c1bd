"""`ganedit data synth`: write the built-in synthetic world as a dataset, and/or print the swap baselines."""
from __future__ import annotations

from typing import Optional, Tuple

import click

from ganedit.cli._options import HiddenArgument, out_option, quiet_option, size_option

LAYOUT_CHOICES = ("all", "images", "aligned", "unaligned", "conditions")


@click.command("synth")
@click.argument("out_positional", cls=HiddenArgument, required=False, type=click.Path(file_okay=False, path_type=str))
@out_option("Output folder.", type=click.Path(file_okay=False, path_type=str), default=None)
@click.option("--n", "n", type=click.IntRange(1), default=10000, show_default=True, help="Training images.")
@click.option("--n-test", type=click.IntRange(1), default=None, help="Held-out images [default: n/10, at least 1].")
@size_option("Resolution (px).", type=click.IntRange(32, 1024), default=64, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="Training seed; held-out data uses 2**31 + seed.")
@click.option(
    "--layout",
    "layouts",
    type=click.Choice(LAYOUT_CHOICES),
    multiple=True,
    default=("all",),
    show_default=True,
    help="What to write (repeatable): plain images, aligned A|B pairs, unaligned trainA/trainB, condition maps.",
)
@click.option("--lowres-factor", type=click.IntRange(1), default=4, show_default=True, help="Downsampling of conditions/lowres.")
@click.option("--workers", type=click.IntRange(0), default=None, help="PNG-writing worker processes (0: none, write in this process) [default: one per core].")
@click.option("--baselines", is_flag=True, help="Print the ground-truth swap scores of the copy and colour-transfer baselines.")
@click.option("--baseline-pairs", type=click.IntRange(1), default=500, show_default=True, help="Held-out pairs for --baselines.")
@quiet_option("No progress bars.")
def synth(
    out_positional: Optional[str],
    out: Optional[str],
    n: int,
    n_test: Optional[int],
    size: int,
    seed: int,
    layouts: Tuple[str, ...],
    lowres_factor: int,
    workers: Optional[int],
    baselines: bool,
    baseline_pairs: int,
    quiet: bool,
) -> None:
    """Write the synthetic world (face-like images with known factors) to OUT.

    \b
    OUT/images/, images_test/        plain PNGs + dataset.json (label: glasses 0/1)
    OUT/conditions{,_test}/{segmentation,sketch,lowres,masked}/
    OUT/aligned/{train,test}/        A|B pairs (A: domain X, B: domain Y, same structure)
    OUT/unaligned/{trainA,trainB,testA,testB}/   unpaired domains (different structures)
    OUT/factors.json                 every image's factors, attribute vectors and conventions

    \b
    Examples:
      ganedit data synth --n 10000 --size 64 -o data/synth64
      ganedit data synth --n 2000 --layout aligned --layout unaligned -o data/translate
      ganedit data synth --baselines
    """
    from ganedit.errors import ConfigError

    if out and out_positional and out != out_positional:
        raise ConfigError(f"two output folders given ({out_positional} and -o {out}); use -o/--out only")
    out = out or out_positional
    if out is None and not baselines:
        raise ConfigError("data synth: give an output folder with -o/--out (or --baselines to only print the baseline scores)")
    if out is not None:
        _write(out, n, n_test, size, seed, layouts, lowres_factor, workers, quiet)
    if baselines:
        print_baselines(baseline_pairs, size, seed, quiet)


def _write(out: str, n: int, n_test: Optional[int], size: int, seed: int, layouts: Tuple[str, ...], lowres_factor: int,
           workers: Optional[int], quiet: bool = False) -> None:
    from tqdm import tqdm

    from ganedit.data.synthetic.export import LAYOUTS, write_dataset

    chosen = LAYOUTS if "all" in layouts else layouts
    total = n + (n_test if n_test is not None else max(1, n // 10))
    with tqdm(total=total, unit="img", desc=f"synth {size}px", dynamic_ncols=True, disable=quiet) as bar:
        counts = write_dataset(
            out, n, size, seed=seed, n_test=n_test, layouts=chosen, lowres_factor=lowres_factor, workers=workers, progress=bar.update
        )
    click.echo(f"wrote {sum(counts.values())} PNG files to {out}:")
    for folder, count in counts.items():
        click.echo(f"  {folder + '/':36s} {count}")
    click.echo(f"  {'factors.json':36s} factors, attributes and conventions")


BASELINE_CHUNK = 50  # pairs scored per progress-bar step


def print_baselines(n_pairs: int, size: int, seed: int, quiet: bool = False) -> None:
    from tqdm import tqdm

    from ganedit.metrics.groundtruth import SwapPairs, heldout_swap_pairs, swap_baselines

    click.echo(f"ground-truth swap on {n_pairs} held-out pairs at {size} px (seed {seed}): render(structure A, appearance B)")
    pairs = heldout_swap_pairs(n_pairs, size, seed)
    # Scored in chunks so the bar moves; each score is a mean over images, so the chunk means weighted by their
    # sizes give exactly the mean over all pairs.
    sums: dict = {}
    with tqdm(total=n_pairs, unit="pair", desc="baselines", dynamic_ncols=True, disable=quiet) as bar:
        for i in range(0, n_pairs, BASELINE_CHUNK):
            chunk = slice(i, i + BASELINE_CHUNK)
            part = SwapPairs(a=pairs.a[chunk], b=pairs.b[chunk], target=pairs.target[chunk], colours_only=pairs.colours_only[chunk])
            k = part.a.shape[0]
            for name, s in swap_baselines(part).items():
                acc = sums.setdefault(name, {"psnr": 0.0, "ssim": 0.0})
                acc["psnr"] += s["psnr"] * k
                acc["ssim"] += s["ssim"] * k
            bar.update(k)
    scores = {name: {key: value / n_pairs for key, value in acc.items()} for name, acc in sums.items()}
    click.echo(f"  {'baseline':18s} {'PSNR (dB)':>10s} {'SSIM':>8s}")
    for name, s in scores.items():
        click.echo(f"  {name:18s} {s['psnr']:10.2f} {s['ssim']:8.4f}")
    click.echo("  (colours_only is a reference, not a method: B's colours on A's patterns and light)")


def register(cli: click.Group) -> None:
    from ganedit.cli.data import data

    data.add_command(synth)
    if "data" not in cli.commands:
        cli.add_command(data)
