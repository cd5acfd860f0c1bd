"""Options shared by the commands, so that one concept has one spelling everywhere: ``-o/--out`` for every
output, ``--batch`` for images per forward pass, ``-s/--size``, ``-q/--quiet``, ``--workers`` (0 always means
"no worker processes"), ``--device auto|cpu|cuda`` and ``--model`` (a path or a shipped model's name).

Old spellings (``--output``, ``--batch-size``, ``--json``) still parse as hidden aliases; --help shows only
the new ones. tests/test_cli_options.py walks every command and checks these rules.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional

import click

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto: CUDA when available, else the CPU; cuda fails with a clear error when there is no GPU."
WORKERS_HELP = "Data-loading worker processes (0: none, load in this process)."
MODEL_HELP_SUFFIX = " Or the name of a shipped model (`ganedit models`)."

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class AliasedOption(click.Option):
    """An option with extra names that parse but are not shown in --help (kept for old command lines)."""

    def __init__(self, *args: Any, hidden_aliases: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx: click.Context) -> Any:
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


class HiddenArgument(click.Argument):
    """A positional argument kept for old command lines and left out of the usage line."""

    def get_usage_pieces(self, ctx: click.Context) -> List[str]:
        return []


def one_output(out: "str | None", positional: "str | None", usage: str) -> str:
    """The output given as -o/--out or (the older form) as a positional argument."""
    from ganedit.errors import ConfigError

    if out and positional and out != positional:
        raise ConfigError(f"two outputs given ({positional} and -o {out}); use -o/--out only: {usage}")
    if not (out or positional):
        raise ConfigError(f"give the output with -o/--out: {usage}")
    return str(out or positional)


def out_option(help: str, *, aliases: Iterable[str] = (), **kwargs: Any) -> Decorator:
    """``-o/--out``: where the command writes. ``aliases`` are old spellings that still parse."""
    aliases = tuple(aliases)
    return click.option("-o", "--out", *aliases, "out", cls=AliasedOption, hidden_aliases=aliases, help=help, **kwargs)


def batch_option(default: int, help: str = "Images per forward pass.", *, aliases: Iterable[str] = ()) -> Decorator:
    aliases = tuple(aliases)
    return click.option("--batch", *aliases, "batch", cls=AliasedOption, hidden_aliases=aliases, type=click.IntRange(1),
                        default=default, show_default=True, help=help)


def workers_option(default: Optional[int] = 0, help: str = WORKERS_HELP) -> Decorator:
    return click.option("--workers", type=click.IntRange(0), default=default, show_default=default is not None, help=help)


def size_option(help: str, **kwargs: Any) -> Decorator:
    return click.option("-s", "--size", "size", help=help, **kwargs)


def quiet_option(help: str = "No progress bar or info lines.", **kwargs: Any) -> Decorator:
    return click.option("-q", "--quiet", "quiet", is_flag=True, help=help, **kwargs)


def device_option(**kwargs: Any) -> Decorator:
    kwargs.setdefault("default", "auto")
    kwargs.setdefault("show_default", kwargs["default"] is not None)
    return click.option("--device", type=click.Choice(DEVICE_CHOICES), help=DEVICE_HELP, **kwargs)


def yes_option() -> Decorator:
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


def resolve_device(name: str) -> "Any":
    """'auto' | 'cpu' | 'cuda' -> torch.device; a ConfigError when CUDA is asked for but not there."""
    import torch

    from ganedit.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"--device cuda: CUDA is not available ({why}); use --device cpu or --device auto")
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"--device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)


class ModelRef(click.ParamType):
    """A model: an existing file or folder, or the name of a shipped model."""

    name = "PATH|NAME"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        import os

        from ganedit.formats.named import resolve_model_ref, shipped_models

        if not isinstance(value, str) or os.path.exists(value):
            return value
        resolved = resolve_model_ref(value)
        if resolved is not value:
            return str(resolved)
        names = ", ".join(shipped_models()) or "none"
        self.fail(f"{value!r} is neither a file or folder nor a shipped model (shipped: {names})", param, ctx)


MODEL_REF = ModelRef()


def model_option(help: str, *, required: bool = True, **kwargs: Any) -> Decorator:
    return click.option("--model", "model_path", type=MODEL_REF, required=required, help=help + MODEL_HELP_SUFFIX, **kwargs)


def interactive() -> bool:
    """Whether someone can answer a question (stdin is a terminal)."""
    import sys

    return bool(sys.stdin and sys.stdin.isatty())


def confirm_large(count: int, what: str, yes: bool, limit: int = 2000) -> None:
    """Ask before a job of more than ``limit`` items (a ConfigError when nobody can answer: pass --yes)."""
    from ganedit.errors import ConfigError

    if count <= limit or yes:
        return
    question = f"{what}: {count:,} outputs (more than {limit:,})."
    if not interactive():
        raise ConfigError(f"{question} Pass --yes to run it anyway")
    if not click.confirm(f"{question} Continue?", default=False, err=True):
        raise click.exceptions.Abort()
