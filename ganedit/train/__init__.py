"""The training engine shared by every method: ``train(method, overrides)`` (what ``ganedit train`` runs).

Modules: ``loop`` (Trainer, train), ``config`` (defaults, --set parsing, resume merging), ``distributed``
(torchrun/DDP set-up, gradient all-reduce), ``data`` (sharded resumable order), ``context`` (mixed precision,
NaN/Inf guard, world-size invariant noise), ``checkpoint`` (atomic save, resume), ``ema``, ``schedules``,
``logs`` (JSONL, TensorBoard, snapshots, progress bar). Importing this package imports torch."""
from __future__ import annotations

from ganedit.train.loop import Trainer, TrainingDiverged, train

__all__ = ["Trainer", "TrainingDiverged", "train"]
