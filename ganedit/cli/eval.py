"""`ganedit eval`: score a folder of images against another (PSNR, SSIM, MS-SSIM, LPIPS, SWD, FID, KID)."""
from __future__ import annotations

import json
import os
from typing import Optional

import click

from ganedit.cli._options import batch_option, device_option, out_option, quiet_option, resolve_device, size_option


@click.command("eval")
@click.argument("dir_a", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.argument("dir_b", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--metrics", "-m", default="psnr,ssim,swd", show_default=True,
              help="Comma-separated: psnr, ssim, ms-ssim, lpips (full-reference, files paired by relative path), "
                   "swd, fid, kid (distribution, the folders as sets), or 'all'.")
@out_option("Also write the figures (and per-image values) to this JSON file.", aliases=("--json",),
            type=click.Path(dir_okay=False, path_type=str), default=None)
@size_option("Centre-crop and resize every image to SIZE x SIZE first (needed when sizes differ).", type=click.IntRange(16), default=None)
@batch_option(16, "Images per forward pass.", aliases=("--batch-size",))
@device_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of SWD's random patches and directions and KID's subsets.")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True)
@click.option("--lpips-weights", type=click.Path(exists=True, path_type=str), default=None,
              help="Folder with alex.pth + alexnet-owt-*.pth (or vgg.pth + vgg16-*.pth), or one combined "
                   "state-dict file [default: search $GANEDIT_CACHE, ~/.cache/ganedit].")
@click.option("--inception-weights", type=click.Path(exists=True, path_type=str), default=None,
              help="pt_inception-2015-12-05-*.pth (pytorch-fid) for FID/KID [default: search $GANEDIT_CACHE].")
@click.option("--ms-ssim-scales", type=click.IntRange(1, 5), default=None,
              help="MS-SSIM scales [default: 5, or as many as the image size allows].")
@click.option("--kid-subsets", type=click.IntRange(1), default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(2), default=1000, show_default=True)
@quiet_option("No progress bar.")
def eval_command(dir_a: str, dir_b: str, metrics: str, out: Optional[str], size: Optional[int], batch: int,
                 device: str, seed: int, lpips_net: str, lpips_weights: Optional[str], inception_weights: Optional[str],
                 ms_ssim_scales: Optional[int], kid_subsets: int, kid_subset_size: int, quiet: bool) -> None:
    """Score the images of DIR_B against those of DIR_A and print a table.

    Full-reference metrics pair a/x.png with b/x.png (same relative path, any extension) and report the mean
    over pairs; every file needs its partner. Distribution metrics compare the two folders as sets. LPIPS, FID
    and KID read pretrained weights from local files only (see --lpips-weights, --inception-weights); nothing is
    downloaded. SWD is reported x1e3 as in the PGGAN paper.

    \b
    Example:
      ganedit eval ground_truth/ outputs/ --metrics psnr,ssim,ms-ssim,swd -o scores.json
      ganedit eval real/ fake/ -m fid,kid --inception-weights pt_inception-2015-12-05-6726825d.pth --size 256
    """
    from ganedit.metrics.evaluate import EvalOptions, evaluate_folders, format_table, parse_metrics

    names = parse_metrics(metrics)
    options = EvalOptions(size=size, batch_size=batch, device=str(resolve_device(device)), seed=seed, lpips_net=lpips_net,
                          lpips_weights=lpips_weights, inception_weights=inception_weights,
                          ms_ssim_scales=ms_ssim_scales, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(unit="img", desc="eval", leave=False, disable=None)

    def progress(n: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(n)

    try:
        result = evaluate_folders(dir_a, dir_b, names, options, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo(format_table(result))
    if out:
        tmp = f"{out}.tmp-{os.getpid()}"
        with open(tmp, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, out)
        click.echo(f"wrote {out}")


def register(cli: click.Group) -> None:
    cli.add_command(eval_command)
