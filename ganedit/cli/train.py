"""`ganedit train`: run a method's training recipe through the shared engine (ganedit.train)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import click

_EPILOG = """\b
Examples:
  ganedit train tinygan --data synthetic:2000 --steps 500 --out runs/tiny
  ganedit train tinygan --data faces/ --batch 32 --set r1_gamma=5 --precision bf16
  ganedit train tinygan --data faces/ --out runs/tiny --resume auto      # continue after a stop or crash
  torchrun --nproc_per_node=2 -m ganedit train tinygan --data faces/ --batch 32   # 2 processes x 16
  ganedit train tinygan --data faces/ --dry-run                           # print the configuration
  ganedit train --list                                                    # the available methods

--batch is the GLOBAL batch: under torchrun each of the N processes takes batch / N samples.
Every recipe option (see --dry-run) can be set with --set key=value (JSON values: 0.5, true, [0, 0.99]).
"""


def register(cli: click.Group) -> None:
    @cli.command("train", epilog=_EPILOG, context_settings={"max_content_width": 100})
    @click.argument("method", required=False)
    @click.option("--data", help="Training data: a folder, a zip, or a spec the method understands (synthetic:N).")
    @click.option("--out", help="Run folder (checkpoints, logs, snapshots, model/). Default runs/METHOD.")
    @click.option("--steps", type=int, help="Total training steps (a resumed run stops at the same total).")
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
    @click.option("--workers", type=int, help="Data-loading worker processes per rank.")
    @click.option("--seed", type=int, help="Seed of weights, data order and noise.")
    @click.option("--skip-bad", is_flag=True, default=None, help="Skip unreadable images (each replaced by the next readable one) and report how many, instead of stopping at the first.")
    @click.option("--quiet", is_flag=True, default=None, help="No progress bar or info lines (for CI).")
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
            click.echo(f"stopped by {trainer.stopped_by} at step {trainer.step}; resume with --resume auto", err=True)
