"""Learning-rate schedules as a factor of each parameter group's base learning rate, a pure function of the
step (so resuming needs no scheduler state beyond the step): optional linear warm-up, then constant,
linear decay to 0 or cosine decay to 0 between ``lr_decay_start`` and the last step."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping

import torch


def lr_factor(cfg: Mapping[str, Any], step: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    factor = 1.0
    warmup = int(cfg.get("lr_warmup", 0))
    if warmup > 0 and step < warmup:
        factor = (step + 1) / warmup
    kind = cfg.get("lr_schedule", "constant")
    if kind == "constant":
        return factor
    start, end = int(cfg.get("lr_decay_start", 0)), int(cfg["steps"])
    progress = min(1.0, max(0.0, (step - start) / max(1, end - start)))
    if kind == "linear":
        return factor * (1.0 - progress)
    if kind == "cosine":
        return factor * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr_schedule {kind!r}")


class LRSchedule:
    """Sets ``lr = base_lr * lr_factor(step)`` on every group of every optimiser. The base rates are those
    the method built the optimisers with (so a changed ``lr`` given on resume takes effect)."""

    def __init__(self, cfg: Mapping[str, Any], opts: Mapping[str, torch.optim.Optimizer]) -> None:
        self.cfg = cfg
        self.opts = opts
        self.base: Dict[str, List[float]] = {name: [float(g["lr"]) for g in opt.param_groups] for name, opt in opts.items()}
        self.last = None

    def set(self, step: int) -> float:
        factor = lr_factor(self.cfg, step)
        if factor != self.last:  # constant schedules touch the groups once
            for name, opt in self.opts.items():
                for group, base in zip(opt.param_groups, self.base[name]):
                    group["lr"] = base * factor
            self.last = factor
        return factor

    def restore_base(self) -> None:
        """After loading optimiser state (which carries the old lr), force the next set() to write."""
        self.last = None
