"""Run logs, written by rank 0 only: ``metrics.jsonl`` (one JSON record per line: scalars every
``log_every`` steps, and events such as skipped non-finite steps, checkpoints, resumes), TensorBoard
scalars and images under ``tb/`` (tensorboard imported lazily, optional), PNG snapshot grids under
``snapshots/``, and a tqdm progress bar with it/s, img/s and ETA (off with ``--quiet``)."""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch


log = logging.getLogger(__name__)


def _number(value: Any) -> float:
    return float(value.detach().float().mean().item()) if isinstance(value, torch.Tensor) else float(value)


class RunLogger:
    def __init__(self, out: Path, *, enabled: bool, quiet: bool, tensorboard: bool, total_steps: int, start_step: int, global_batch: int) -> None:
        self.out = out
        self.enabled = enabled
        self.quiet = quiet
        self.global_batch = global_batch
        self._pending: List[Dict[str, Any]] = []  # raw step outputs since the last log (tensors until then)
        self._jsonl = None
        self._tb = None
        self._bar = None
        self._t_last = time.perf_counter()
        self._steps_since = 0
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(out / "metrics.jsonl", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(out / "tb"), purge_step=start_step)
            except ImportError as exc:
                self.info(f"tensorboard logging is off ({exc}); metrics.jsonl is still written")
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="it", dynamic_ncols=True, file=sys.stderr, mininterval=0.5)

    @staticmethod
    def truncate_after(out: Path, step: int) -> None:
        """On resume, drop JSONL records that a killed run wrote past the checkpoint being resumed."""
        path = out / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= step:
                    kept.append(line)
            except (ValueError, AttributeError):
                continue
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)

    # -- text ------------------------------------------------------------------------------------------------
    # Text goes through logging (ganedit.log): the CLI shows it around the progress bar, -q hides info lines.
    def info(self, message: str) -> None:
        if self.enabled and not self.quiet:
            log.info(message)

    def warn(self, message: str) -> None:
        if self.enabled:
            log.warning(message)

    def _write(self, record: Dict[str, Any]) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")

    def event(self, step: int, kind: str, **fields: Any) -> None:
        self._write({"step": step, "event": kind, "time": time.time(), **fields})

    # -- per step ----------------------------------------------------------------------------------------------
    def step_done(self, step_outputs: Dict[str, Any]) -> None:
        """Called every step on rank 0: keep the outputs (no host sync) and advance the bar."""
        if not self.enabled:
            return
        # Detached so that a recipe returning a live loss does not keep its graph alive until the next log.
        self._pending.append({k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in step_outputs.items()})
        self._steps_since += 1
        if self._bar is not None:
            self._bar.update(1)

    def flush_scalars(self, step: int, images_seen: int, extra: Dict[str, float]) -> Dict[str, float]:
        """Average the pending step outputs and write them (JSONL + TensorBoard); ``step`` = steps done."""
        if not self.enabled:
            return {}
        now = time.perf_counter()
        dt = max(now - self._t_last, 1e-9)
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        for outputs in self._pending:
            for key, value in outputs.items():
                v = _number(value)
                if math.isfinite(v):
                    sums[key] = sums.get(key, 0.0) + v
                    counts[key] = counts.get(key, 0) + 1
        scalars = {k: sums[k] / counts[k] for k in sums}
        scalars.update(extra)
        scalars["speed/it_per_s"] = self._steps_since / dt
        scalars["speed/img_per_s"] = self._steps_since * self.global_batch / dt
        self._pending.clear()
        self._steps_since = 0
        self._t_last = now
        self._write({"step": step, "kimg": images_seen / 1000.0, "time": time.time(), **scalars})
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._bar is not None:
            shown = {k.split("/")[-1]: f"{v:.3g}" for k, v in scalars.items() if k.startswith("loss")}
            shown["img/s"] = f"{scalars['speed/img_per_s']:.1f}"
            self._bar.set_postfix(shown, refresh=False)
        return scalars

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        """Scalars outside the step averages (validation losses): one JSONL record and TensorBoard, as they are."""
        if not self.enabled:
            return
        self._write({"step": step, "time": time.time(), **values})
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)
        self.info(f"step {step}: " + ", ".join(f"{key} {value:.4g}" for key, value in values.items()))

    def image(self, step: int, grid: torch.Tensor) -> None:
        """A [3, H, W] grid in [-1, 1] to TensorBoard."""
        if self._tb is not None:
            self._tb.add_image("snapshot", ((grid.float().clamp(-1, 1) + 1) / 2).cpu(), step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
