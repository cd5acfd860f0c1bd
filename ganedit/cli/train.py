"""`ganedit train`: run a method's training recipe through the shared engine (ganedit.train)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import click

from ganedit.cli._options import WORKERS_HELP, out_option, quiet_option

_EPILOG = """\b
Examples:
  ganedit train tinygan --data synthetic:2000 --steps 500 -o runs/tiny
  ganedit train tinygan --data faces/ --batch 32 --set r1_gamma=5 --precision bf16
  ganedit train tinygan --data faces/ --out runs/tiny --resume auto      # continue after a stop or crash
  ganedit train pix2pix --data x2y/aligned --minutes 30                    # wall-clock budget; lr decay fitted to it
  ganedit torchrun --nproc_per_node=2 train tinygan --data faces/ --batch 32   # 2 processes x 16
  ganedit train tinygan --data faces/ --dry-run                           # print the configuration
  ganedit train --list                                                    # the available methods

--batch is the GLOBAL batch: under torchrun each of the N processes takes batch / N samples.
Every recipe option (see --dry-run) can be set with --set key=value (JSON values: 0.5, true, [0, 0.99]).
"""


class TrainCommand(click.Command):
    """`ganedit train METHOD --help` also lists METHOD's recipe: every key with its default value."""

    def parse_args(self, ctx: click.Context, args: list) -> list:
        # --help is eager: it prints before METHOD is parsed, so look for the method name in the raw arguments.
        ctx.meta["train_method"] = args[0] if args and not args[0].startswith("-") else None
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        name = ctx.meta.get("train_method")
        if name:
            recipe_defaults(name, formatter)


def recipe_defaults(name: str, formatter: click.HelpFormatter) -> None:
    """Write METHOD's description and configuration (recipe defaults over the engine's) into the help."""
    import json

    from ganedit.errors import GaneditError
    from ganedit.methods import get_method
    from ganedit.train.config import defaults_for

    try:
        method = get_method(name)
    except GaneditError as exc:
        formatter.write_paragraph()
        formatter.write_text(f"({exc})")
        return
    cfg = defaults_for(method)
    own = set(method.defaults)
    rows = [(key, json.dumps(cfg[key])) for key in sorted(own - {"method"})]
    engine = [(key, json.dumps(cfg[key])) for key in sorted(set(cfg) - own - {"method"})]
    with formatter.section(f"{method.name} recipe defaults (change with --set key=value or the options above)"):
        formatter.write_text(method.description)
        formatter.write_dl(rows)
    with formatter.section("Engine defaults (the recipe above wins where both set a key)"):
        formatter.write_dl(engine)


def register(cli: click.Group) -> None:
    @cli.command("train", cls=TrainCommand, epilog=_EPILOG, context_settings={"max_content_width": 100})
    @click.argument("method", required=False)
    @click.option("--data", help="Training data: a folder, a zip, or a spec the method understands (synthetic:N).")
    @out_option("Run folder (checkpoints, logs, snapshots, model/). Default runs/METHOD.")
    @click.option("--steps", type=int, help="Total training steps (a resumed run stops at the same total).")
    @click.option("--minutes", type=float, help="Wall-clock training budget: stop (checkpoint + model/) when spent; step-tied lr decay is fitted to it.")
    @click.option("--batch", type=int, help="GLOBAL batch per step, split evenly over torchrun processes.")
    @click.option("--lr", type=float, help="Base learning rate (the recipe's 'lr').")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set any configuration key; repeatable.")
    @click.option("--resume", metavar="PATH|auto", help="Continue from a checkpoint file or run folder; 'auto' = newest valid one in --out (or start fresh).")
    @click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="fp32 (default), or bf16/fp16 autocast on CUDA (bf16 also on CPU).")
    @click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default auto: CUDA when available.")
    @click.option("--checkpoint-every", type=int, help="Steps between training checkpoints (0: only at the end/stop).")
    @click.option("--keep", type=int, help="Number of training checkpoints to keep (newest).")
    @click.option("--snapshot-every", type=int, help="Steps between PNG snapshot grids of fixed inputs (0: none).")
    @click.option("--log-every", type=int, help="Steps between logged scalars (metrics.jsonl, TensorBoard).")
    @click.option("--val-data", help="Held-out data like --data: the recipe's losses on it every --val-every steps (val/... in the logs), and the best model in model_best/ (--set keep_best=false: not kept).")
    @click.option("--val-every", type=click.IntRange(0), help="Steps between validations, one more at the end (0: none; needs --val-data; --set val_n=N items, default 256).")
    @click.option("--workers", type=click.IntRange(0), help=WORKERS_HELP.replace(").", ") per rank."))
    @click.option("--seed", type=int, help="Seed of weights, data order and noise.")
    @click.option("--skip-bad", is_flag=True, default=None, help="Skip unreadable images (each replaced by the next readable one) and report how many, instead of stopping at the first.")
    @quiet_option("No progress bar or info lines (for CI).", default=None)
    @click.option("--dry-run", is_flag=True, help="Print the resolved configuration as JSON and exit.")
    @click.option("--list", "list_methods", is_flag=True, help="List the available methods and exit.")
    def train_command(method: Optional[str], sets: Tuple[str, ...], resume: Optional[str], dry_run: bool, list_methods: bool, **options: Any) -> None:
        """Train METHOD (e.g. tinygan) on --data. Writes checkpoints, logs and the final model to --out."""
        from ganedit.errors import ConfigError
        from ganedit.methods import available_methods

        if list_methods:
            for name, cls in sorted(available_methods().items()):
                click.echo(f"{name:12s} {cls.description}")
            return
        if not method:
            raise ConfigError("name a method, e.g. `ganedit train tinygan --data DIR` (`ganedit train --list` shows them)")
        from ganedit.train.config import parse_sets
        from ganedit.train.loop import train

        overrides: Dict[str, Any] = {}
        overrides.update(parse_sets(sets))
        for key, value in options.items():  # typed options win over --set; only the ones given count
            if value is not None:
                overrides[key] = value
        trainer = train(method, overrides, resume=resume, dry_run=dry_run)
        if trainer is not None and trainer.stopped_by and trainer.main:
            done = "model/ written" if trainer.stopped_by.startswith("time budget") else "resume with --resume auto"
            click.echo(f"stopped by {trainer.stopped_by} at step {trainer.step}; {done}", err=True)
