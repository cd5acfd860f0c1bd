"""Entry point of the `ganedit` command: discovers the subcommand modules of ganedit.cli."""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

# Must be set before torch (and its OpenMP runtime) loads: spinning OpenMP threads slow everything else
# on a busy CPU by several times. The user's own setting wins, GOMP_SPINCOUNT included: on a machine of your
# own, GOMP_SPINCOUNT=100000 trains small models ~1.8x faster (benchmarks/bench_wait_policy.py).
if "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

import ganedit
from ganedit.errors import GaneditError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(ganedit.__version__, prog_name="ganedit")
@click.option("-v", "--verbose", count=True, help="Also show debug messages.")
@click.option("-q", "--quiet", count=True, help="Hide info messages (-qq: warnings too); results and errors still show.")
def cli(verbose: int, quiet: int) -> None:
    """ganedit: edit real images with GANs (Swapping Autoencoder, pix2pix, CycleGAN, StyleGAN2).

    Every subcommand has --help with an example. Start with `ganedit demo`.
    """
    from ganedit.log import configure

    configure(verbose - quiet)


def _register_subcommands() -> None:
    import ganedit.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ganedit.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(cli)


_register_subcommands()


def main(argv: "list[str] | None" = None) -> None:
    """Run the CLI; user errors become one clear line on stderr and exit status 2."""
    try:
        code = cli.main(args=argv, prog_name="ganedit", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GaneditError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
