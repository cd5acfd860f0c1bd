"""`ganedit data ...`: dataset tools. This module defines the `data` group with `prepare` and `info`;
other modules add subcommands to it (e.g. `synth` via ``cli.commands["data"].add_command``)."""
from __future__ import annotations

import click

from ganedit.cli._options import HiddenArgument, one_output, out_option, size_option


@click.group()
def data() -> None:
    """Dataset tools: make, convert and inspect image datasets.

    \b
    Layouts: a folder of images (recursive), a zip in the NVlabs layout (images + optional dataset.json
    with {"labels": [[name, label], ...]}), aligned A|B pairs, paired folders A/ and B/, and unaligned
    domains trainA/ and trainB/.

    \b
    Example:
      ganedit data prepare photos/ -o faces-256.zip --size 256
      ganedit data info faces-256.zip
    """


@data.command("prepare")
@click.argument("src", type=click.Path(exists=True, path_type=str))
@click.argument("dest", cls=HiddenArgument, required=False, type=click.Path(dir_okay=False, path_type=str))
@out_option("The zip file to write.", type=click.Path(dir_okay=False, path_type=str), default=None)
@size_option("Output resolution N (N x N pixels).", type=click.IntRange(1), required=True)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (and count them) instead of stopping at the first.")
@click.option(
    "--filter",
    "resize_filter",
    type=click.Choice(["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"]),
    default="bicubic",
    show_default=True,
    help="Resize filter.",
)
@click.option("--allow-upscale", is_flag=True, help="Accept images smaller than --size (upscaled) instead of failing.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Largest image (width*height) to accept [default: 8192*8192].")
@click.option(
    "--png-level",
    type=click.IntRange(0, 9),
    default=0,
    show_default=True,
    help="PNG compression: 0 reads fastest in training (NVlabs default), 9 is smallest.",
)
def prepare(
    src: str, dest: "str | None", out: "str | None", size: int, skip_bad: bool, resize_filter: str, allow_upscale: bool, max_pixels: "int | None", png_level: int
) -> None:
    """Turn a folder (or zip) of images into a zip at one resolution.

    Every image is centre-cropped to a square and resized to SIZE x SIZE, written as PNG in the NVlabs layout
    (00000/img00000000.png, ...) with dataset.json carrying the source's labels. The zip is written to a
    temporary file and renamed when complete.

    \b
    Example:
      ganedit data prepare ~/photos -o faces-256.zip --size 256 --skip-bad
    """
    from ganedit.data.io import DEFAULT_MAX_PIXELS

    dest = one_output(out, dest, "data prepare SRC -o DEST.zip")
    from ganedit.data.prepare import prepare_zip

    result = prepare_zip(
        src,
        dest,
        size,
        skip_bad=skip_bad,
        resize_filter=resize_filter,
        allow_upscale=allow_upscale,
        max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
        png_level=png_level,
    )
    click.echo(f"wrote {result.written} images of {size}x{size} to {result.dest}" + (" with labels" if result.labels else ""))
    if result.bad_files:
        click.echo(f"skipped {len(result.bad_files)} bad file(s):")
        for path, problem in sorted(result.bad_files.items()):
            click.echo(f"  {path}: {problem}")


@data.command("info")
@click.argument("path", type=click.Path(exists=True, path_type=str))
@click.option("--quick", is_flag=True, help="Read headers only (fast; truncated pixel data is not detected).")
@click.option("--max-bad", type=click.IntRange(0), default=20, show_default=True, help="How many bad files to list per part.")
def info(path: str, quick: bool, max_bad: int) -> None:
    """Print what a dataset holds: image count, sizes (min / max / most common), pixel modes, labels, and
    the bad files with their problems. Works on folders, zips, paired (A/ B/) and unaligned (trainA/ trainB/)
    layouts. Exit status 1 when bad files were found.

    \b
    Example:
      ganedit data info datasets/horse2zebra
    """
    from ganedit.data.prepare import dataset_info

    result = dataset_info(path, decode=not quick)
    click.echo(result.format(max_bad=max_bad))
    if result.bad_count:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(data)
