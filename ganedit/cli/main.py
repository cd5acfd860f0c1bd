"""Entry point of the `ganedit` command: discovers the subcommand modules of ganedit.cli."""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys


def default_openmp_wait(env: "os._Environ[str] | dict") -> None:
    """How idle OpenMP threads wait, unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT): spin for 100000
    iterations, then sleep. Measured on a 2-core CPU (benchmarks/bench_wait_policy.py, BENCHMARKS.md): the
    fastest small-model training step both on an idle machine (1.8x faster than passive waiting) and beside a busy
    neighbour (2.5x faster than passive), with the neighbour at full speed; libgomp's default (spin 300000) was 3x slower
    beside the busy neighbour and slowed it to 0.83 of its speed. Must run before torch (and its OpenMP runtime) loads."""
    if "GOMP_SPINCOUNT" not in env and "OMP_WAIT_POLICY" not in env:
        env["GOMP_SPINCOUNT"] = "100000"


default_openmp_wait(os.environ)

import click

import ganedit
from ganedit.allocator import retain_freed_memory
from ganedit.errors import GaneditError, PeerLost

# large activations (1024 px StyleGAN2 layers) reuse freed memory instead of page-faulting in fresh pages
# (ganedit/allocator.py, BENCHMARKS.md `psp`); users who configure malloc themselves keep their setting
retain_freed_memory()


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
        if isinstance(exc, PeerLost):
            # The process group is broken: gloo's transport threads can abort the interpreter's teardown
            # ("terminate called without an active exception", SIGABRT) after the message is out. The checkpoints
            # are written; leave without running destructors so the exit status stays 2.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
