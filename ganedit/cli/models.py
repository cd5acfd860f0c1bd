"""`ganedit models`: the models shipped with ganedit, usable by name wherever a model is taken."""
from __future__ import annotations

import click


@click.command("models")
def models_command() -> None:
    """List the shipped models: name, model type, image size, file size, what it was trained on.

    A name works wherever a model path does (`--model swapae-synth64`, `ganedit.load("swapae-synth64")`);
    a file or folder of the same name in the current directory wins.

    \b
    Example:
      ganedit models
      ganedit swap --model swapae-synth64 --structure a.png --texture b.png -o swap.png
    """
    from ganedit.formats.named import shipped_models

    found = shipped_models()
    if not found:
        click.echo("no shipped models in this installation")
        return
    click.echo(f"{'name':20s} {'model':30s} {'px':>5s} {'size':>8s}  trained on")
    for m in found.values():
        px = str(m.image_size) if m.image_size else "-"
        click.echo(f"{m.name:20s} {m.method:30s} {px:>5s} {m.size_bytes / 1e6:6.1f}MB  {m.trained_on}")


def register(cli: click.Group) -> None:
    cli.add_command(models_command)
