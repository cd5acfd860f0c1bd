"""`ganedit attributes train / predict`: the synthetic world's attribute regressor (ganedit.models.attributes)."""
from __future__ import annotations

from typing import Optional, Tuple

import click


@click.group("attributes")
def attributes() -> None:
    """The attribute regressor: reads every factor of the synthetic world back from an image."""


@attributes.command("train")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Native model folder to write.")
@click.option("--steps", type=click.IntRange(1), default=10_000, show_default=True, help="Step cap.")
@click.option("--minutes", type=click.FloatRange(0.01), default=None, help="Time budget (the learning rate decays over it).")
@click.option("--cpu-minutes", type=click.FloatRange(0.01), default=None, help="CPU-time budget of this process (for a shared core).")
@click.option("--batch", type=click.IntRange(2), default=None, help="Images per step [default: the recipe's 32].")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="Adam learning rate [default: 2e-3].")
@click.option("--channels", default=None, help="Five comma-separated widths at 64/32/16/8/4 px [default: 8,16,32,64,128].")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="World seed (held-out images use 2**31 + seed).")
@click.option("--init", type=click.Path(exists=True, file_okay=False), default=None, help="Continue from this regressor (a fresh learning-rate cycle).")
@click.option("--detail", is_flag=True, help="Add the face-detail branch (two stages; see ganedit/models/attributes.py).")
@click.option("--detail-channels", default=None, help="Four comma-separated branch widths [default: 16,32,48,64].")
@click.option("--detail-crop", type=click.IntRange(16), default=None, help="Face window side in px, a multiple of 8 [default: 32].")
@click.option("--freeze-global", is_flag=True, help="Train only the detail branch (with --init: the first stage stays as it is).")
@click.option("--eval-images", type=click.IntRange(0), default=2000, show_default=True, help="Held-out images scored after training (0: none).")
def train_cmd(out: str, steps: int, minutes: Optional[float], cpu_minutes: Optional[float], batch: Optional[int], lr: Optional[float],
              channels: Optional[str], seed: int, init: Optional[str], detail: bool, detail_channels: Optional[str],
              detail_crop: Optional[int], freeze_global: bool, eval_images: int) -> None:
    """Train the regressor on freshly rendered world images and save it to OUT.

    \b
    Example:
      ganedit attributes train -o runs/attributes --minutes 15
      ganedit attributes train -o runs/two_stage --init runs/attributes --detail --freeze-global --minutes 30
    """
    from ganedit.errors import ConfigError
    from ganedit.methods.attributes import train_regressor

    overrides = {}
    if batch is not None:
        overrides["batch"] = batch
    if lr is not None:
        overrides["lr"] = lr
    if channels is not None:
        overrides["channels"] = _int_list(channels, 5, "--channels")
    settings = {}
    if detail_channels is not None:
        settings["channels"] = _int_list(detail_channels, 4, "--detail-channels")
    if detail_crop is not None:
        settings["crop"] = detail_crop
    if settings and not detail:
        raise ConfigError("--detail-channels and --detail-crop need --detail")
    if detail:
        overrides["detail"] = settings
    if freeze_global:
        overrides["freeze_global"] = True
    model, info = train_regressor(out, steps=steps, minutes=minutes, cpu_minutes=cpu_minutes, seed=seed, echo=click.echo, init=init, **overrides)
    click.echo(f"trained {info['steps_done']} steps ({info['images_seen']} images) in {info['seconds']:.0f} s "
               f"({info['cpu_seconds']:.0f} s of CPU) -> {out}")
    if eval_images:
        _print_scores(model, eval_images, seed)


def _int_list(text: str, count: int, option: str) -> list:
    from ganedit.errors import ConfigError

    try:
        values = [int(c) for c in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} must be {count} comma-separated integers, got {text!r}") from None
    if len(values) != count or min(values) < 1:
        raise ConfigError(f"{option} must be {count} positive integers, got {text!r}")
    return values


def _print_scores(model, n: int, seed: int) -> None:
    from ganedit.metrics.attributes import format_scores, regressor_scores

    click.echo(format_scores(regressor_scores(model, n, seed)))


@attributes.command("eval")
@click.argument("model", required=False)
@click.option("--n", "n", type=click.IntRange(1), default=2000, show_default=True, help="Held-out world images.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
def eval_cmd(model: Optional[str], n: int, seed: int) -> None:
    """Score a regressor (default: the shipped one) on held-out world images: R^2 / MAE, circular error, accuracy."""
    from ganedit.models.attributes import load_regressor

    _print_scores(load_regressor(model), n, seed)


def register(cli: click.Group) -> None:
    cli.add_command(attributes)


__all__: Tuple[str, ...] = ("attributes", "register")
