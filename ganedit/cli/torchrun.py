"""`ganedit torchrun`: torchrun for `ganedit train`, with an exit status that tells whether the stop was clean.

Plain ``torchrun ... -m ganedit train`` works too. But when torchrun itself is sent SIGTERM (a cluster scheduler's
pre-emption) its agent forwards the signal, the ranks checkpoint, write ``model/`` and exit 0, and then the agent
still prints a SignalException traceback and exits 1: a scheduler cannot tell a clean stop from a crash. This
command runs the same agent in-process, and when it is signalled it asks rank 0 whether the stop finished
(``STOP_RECORD_ENV``): exit 0 with one line if it did, the signal's status (128 + signal) if it did not.
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path
from typing import List, Sequence, Tuple

import click

_HELP = """\
Usage: ganedit torchrun [TORCHRUN OPTIONS] train METHOD [TRAIN OPTIONS]

  Run `ganedit train` in N processes with torchrun's agent (the same options as
  torchrun: --nproc_per_node, --nnodes, --standalone, --rdzv-*, ...).

  SIGTERM or Ctrl-C: every rank finishes its step, rank 0 writes a checkpoint
  and model/, and the command exits 0 with one line (plain torchrun exits 1
  with a traceback after the same clean stop).

Examples:
  ganedit torchrun --standalone --nproc_per_node=2 train tinygan --data faces/ --batch 32 --device cpu
  ganedit torchrun --nproc_per_node=8 train stylegan2 --data faces.zip --batch 64 --out runs/sg2
  ganedit torchrun --nproc_per_node=8 train stylegan2 --data faces.zip --out runs/sg2 --resume auto
"""


def split_arguments(args: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(torchrun's options, the ganedit command) split at the first ``train``."""
    from ganedit.errors import ConfigError

    if "train" not in args:
        raise ConfigError("ganedit torchrun: name the command to run after torchrun's options, e.g. "
                          "`ganedit torchrun --nproc_per_node=2 train tinygan --data DIR`")
    at = list(args).index("train")
    return list(args[:at]), list(args[at:])


def run_distributed(launcher: Sequence[str], command: Sequence[str]) -> int:
    """Run ``command`` (a ganedit command line) under torchrun's agent; the process exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from ganedit.train.loop import STOP_RECORD_ENV

    with tempfile.TemporaryDirectory(prefix="ganedit-torchrun-") as tmp:
        record = Path(tmp) / "stopped.json"
        os.environ[STOP_RECORD_ENV] = str(record)  # the ranks inherit the agent's environment
        try:
            run(parse_args([*launcher, "--module", "ganedit", *command]))
        except SignalException as exc:
            name = signal.Signals(exc.sigval).name
            if record.exists():
                stop = json.loads(record.read_text())
                click.echo(f"ganedit torchrun: stopped by {name} at step {stop['step']}; every rank checkpointed, "
                           f"model/ written in {stop['out']}; continue with --resume auto", err=True)
                return 0
            click.echo(f"ganedit torchrun: stopped by {name} before the ranks finished a checkpoint", err=True)
            return 128 + int(exc.sigval)
        except ChildFailedError as exc:
            failures = ", ".join(f"rank {rank}: exit {f.exitcode}" for rank, f in sorted(exc.failures.items()))
            click.echo(f"ganedit torchrun: a training process failed ({failures}); its error is printed above", err=True)
            return 1
        finally:
            os.environ.pop(STOP_RECORD_ENV, None)
    return 0


@click.command("torchrun", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
               add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def torchrun_command(args: Tuple[str, ...]) -> None:
    """Run `ganedit train` in several processes (torchrun's options, then `train ...`); exit 0 on a clean stop."""
    if not args or args[0] in ("-h", "--help"):
        click.echo(_HELP)
        return
    launcher, command = split_arguments(args)
    raise SystemExit(run_distributed(launcher, command))


def register(cli: click.Group) -> None:
    cli.add_command(torchrun_command)
