"""The training loop shared by every method (see ganedit/methods/base.py for what a method provides).

One step: take this rank's share of the next global batch, set the learning rates for the step, run the
method's ``train_step`` (its phases call ``ctx.optimize``), update EMA copies (rank 0), count images, apply
the NaN/Inf guard, log, snapshot, checkpoint. Every way a run stops normally (``steps`` reached, the
``minutes`` budget spent, SIGTERM/SIGINT to the trainer or to its whole process group) finishes the current
step and writes a checkpoint and the inference model (``<out>/model``: config.json + model.safetensors,
loadable with ``ganedit.load``); a second signal acts as usual. A diverged run writes a checkpoint only, and
its error names the last healthy checkpoint to resume from.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Type

import numpy as np
import torch

from ganedit.errors import CheckpointError, ConfigError, DataError, GaneditError, ImageError, PeerLost
from ganedit.formats.atomic import remove_temporaries
from ganedit.methods import get_method
from ganedit.methods.base import Method
from ganedit.train import checkpoint as ckpt
from ganedit.train import distributed as dist_util
from ganedit.train.config import resolve, resume_config
from ganedit.train.context import EvalContext, TrainContext, _mix
from ganedit.train.data import ShardedBatchSampler, count_skipped, make_loader, start_workers, to_device
from ganedit.train.ema import EMA
from ganedit.train.logs import RunLogger

# Environment variable naming a file that rank 0 writes when a signalled run has stopped cleanly.
STOP_RECORD_ENV = "GANEDIT_STOP_RECORD"
from ganedit.train.schedules import LRSchedule

log = logging.getLogger(__name__)


class TrainingDiverged(GaneditError):
    """Too many consecutive steps with non-finite losses or gradients."""


# Budget calibration: after this share of the budget (and at least CALIBRATION_STEPS steps), the steps that
# fit in the rest are estimated from the measured speed, and step-tied schedules are fitted to them.
CALIBRATION_SHARE = 0.05
CALIBRATION_STEPS = 3


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


@contextlib.contextmanager
def preserved_rng() -> Any:
    """Run a block without disturbing the global generators (snapshots must not change the run)."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)


@contextlib.contextmanager
def kept_modes(nets: List[torch.nn.Module]) -> Any:
    """Restore the train/eval mode of every module of ``nets`` afterwards (a frozen part stays in eval mode)."""
    modes = [(m, m.training) for net in nets for m in net.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class Trainer:
    """Builds a run from a resolved configuration (and optionally a loaded checkpoint), then ``run()``s it."""

    def __init__(self, method_cls: Type[Method], cfg: Dict[str, Any], resume: Optional[Dict[str, Any]] = None, resume_path: Optional[Path] = None) -> None:
        self.cfg = cfg
        self.info = dist_util.init(str(cfg["device"]))
        info = self.info
        if cfg["batch"] % info.world_size:
            raise ConfigError(
                f"--batch {cfg['batch']} is the global batch and must be divisible by the number of processes "
                f"({info.world_size}); each process takes batch / processes samples"
            )
        if info.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(cfg["tf32"])
            torch.backends.cudnn.allow_tf32 = bool(cfg["tf32"])
            torch.backends.cudnn.benchmark = True
        self.out = Path(cfg["out"])
        self.main = info.is_main
        self.global_batch = int(cfg["batch"])
        self.steps = int(cfg["steps"])

        # Same seed on every rank: identical initial weights (also broadcast from rank 0 below).
        seed = int(cfg["seed"])
        seed_all(seed)
        self.method = method_cls(cfg)
        self.dataset = self.method.build_data()
        nets, opts = self.method.build(info.device)
        self.method.device, self.method.nets, self.method.opts = info.device, nets, opts
        self.nets, self.opts = nets, opts
        dist_util.broadcast_parameters(info, list(nets.values()))
        self.ctx = TrainContext(cfg, info, opts)
        self.schedule = LRSchedule(cfg, opts)
        names = tuple(method_cls.ema_networks)
        self.ema = (EMA(nets, names, cfg["ema_kimg"], cfg["ema_rampup"], average_buffers=method_cls.ema_average_buffers)
                    if names and self.main else None)
        self.method.ema = dict(self.ema.copies) if self.ema else {n: nets[n] for n in names}
        self.val_dataset: Any = None
        if int(cfg["val_every"]) > 0:
            if type(self.method).validate is Method.validate:
                raise ConfigError(f"{method_cls.name} has no validation loss: leave val_every at 0")
            try:
                self.val_dataset = self.method.build_val_data()
                if len(self.val_dataset) == 0:  # type: ignore[arg-type]
                    raise ConfigError(f"val_data {cfg['val_data']}: no items to validate on")
                for i in range(self._val_count()):  # read each once now: a bad file stops the run before it trains
                    self.val_dataset[i]
            except (DataError, ImageError) as exc:
                raise DataError(f"val_data (held-out data for validation): {exc}") from None

        self.fixed: Any = None
        has_snapshots = type(self.method).snapshot is not Method.snapshot
        if self.main and has_snapshots and int(cfg["snapshot_every"]) > 0:
            with preserved_rng():
                fixed = self.method.snapshot_inputs(self.dataset, int(cfg["snapshot_n"]), torch.Generator().manual_seed(seed))
            self.fixed = to_device(fixed, info.device)

        # From here on every rank draws its own stream (dropout, crops differ across ranks, as they should).
        seed_all(_mix(seed, info.rank, 0x747261696E))
        self.step = 0
        self.images_seen = 0
        self.bad_streak = 0
        self.bad_images = 0  # unreadable images skipped by this process (skip_bad)
        self.last_checkpoint_step = -1
        self.unhealthy = False  # a non-finite step since the last checkpoint
        self.last_healthy: Optional[int] = None  # step of the newest healthy checkpoint (never pruned)
        self.confirmed: Optional[int] = None  # newest healthy checkpoint whose next interval was clean too (never pruned)
        self.train_seconds = 0.0  # training wall-clock time over all sessions (the --minutes budget)
        self.budget_minutes = 0.0  # the budget that `steps` was fitted to (0: not fitted)
        self._session_start: Optional[float] = None  # perf_counter() when this session's loop began
        self.best_val: Optional[Dict[str, float]] = None  # {"step", "value"}: the lowest validation loss so far
        self.resumed_from = resume_path
        if resume is not None:
            self._restore(resume, resume_path)
        self.stopped_by: Optional[str] = None
        self.step_times: List[float] = []
        self.timings: Dict[str, List[float]] = {"checkpoint": [], "snapshot": [], "export": [], "validation": []}
        self._signal: Optional[str] = None
        self._previous_handlers: Dict[int, Any] = {}
        self.logger: Optional[RunLogger] = None

    # -- state ---------------------------------------------------------------------------------------------------
    def _restore(self, state: Dict[str, Any], path: Optional[Path]) -> None:
        where = path or "checkpoint"
        for name, net in self.nets.items():
            if name not in state["nets"]:
                raise CheckpointError(where, f"has no weights for network {name!r}")
            try:
                net.load_state_dict(state["nets"][name])
            except RuntimeError as exc:
                raise CheckpointError(where, f"network {name!r} does not match this configuration: {str(exc)[:300]}") from None
        for name, opt in self.opts.items():
            if name in state["opts"]:
                opt.load_state_dict(state["opts"][name])
        self.schedule.restore_base()
        if self.ema is not None:
            absent = self.ema.load_state_dict(state.get("ema", {}))
            for name in absent:
                log.warning(f"{where} has no EMA copy of {name}; it restarts from the network")
        self.ctx.load_state_dict(state.get("ctx", {}))
        ranks = state["ranks"]
        if len(ranks) == self.info.world_size:
            mine = ranks[self.info.rank]
            ckpt.set_rng_state(mine["rng"])
        else:
            mine = ranks[0]
            if self.main:
                log.warning(
                    f"{where} was written by {len(ranks)} process(es), this run has {self.info.world_size}: "
                    "random streams restart (the data order continues exactly)"
                )
        self.method.load_extra_state(mine.get("extra", {}))
        self.step = int(state["step"])
        self.images_seen = int(state["images_seen"])
        self.bad_streak = int(state.get("bad_streak", 0))
        self.last_checkpoint_step = self.step
        healthy = bool(state.get("healthy", self.bad_streak == 0))  # version 1 files: judged by the streak
        self.unhealthy = not healthy
        self.last_healthy = self.step if healthy else state.get("last_healthy")
        self.confirmed = state.get("confirmed")
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.budget_minutes = float(state.get("budget_minutes", 0.0))
        self.best_val = state.get("best_val")

    def state_dict(self, ranks: List[Dict[str, Any]]) -> Dict[str, Any]:
        epoch, index = self.sampler.position(self.step)
        return {
            "format": ckpt.FORMAT,
            "version": ckpt.VERSION,
            "method": self.method.name,
            "step": self.step,
            "images_seen": self.images_seen,
            "epoch": epoch,
            "batch_in_epoch": index,
            "dataset_len": len(self.dataset),  # type: ignore[arg-type]
            "world_size": self.info.world_size,
            "bad_streak": self.bad_streak,
            "train_seconds": self.elapsed(),
            "budget_minutes": self.budget_minutes,
            "best_val": self.best_val,
            "config": dict(self.cfg),
            "nets": {name: net.state_dict() for name, net in self.nets.items()},
            "ema": self.ema.state_dict() if self.ema else {},
            "opts": {name: opt.state_dict() for name, opt in self.opts.items()},
            "ctx": self.ctx.state_dict(),
            "ranks": ranks,
        }

    def checkpoint(self, diverged: bool = False) -> Optional[Path]:
        """Write a training checkpoint (a collective: every rank must call it at the same step). It is healthy
        when no step since the previous checkpoint was non-finite; the newest healthy one is never pruned."""
        t0 = time.perf_counter()
        local = {"rng": ckpt.rng_state(), "extra": self.method.extra_state()}
        ranks = dist_util.all_gather_objects(self.info, local)
        previous, self.last_checkpoint_step = self.last_checkpoint_step, self.step
        healthy = not (self.unhealthy or diverged)
        self.unhealthy = False
        if healthy:
            if self.last_healthy is not None and self.last_healthy == previous:
                self.confirmed = previous  # the interval after it ended healthy as well
            self.last_healthy = self.step
        if not self.main:
            return None
        folder = ckpt.checkpoint_dir(self.out)
        state = self.state_dict(ranks)
        state.update(healthy=healthy, last_healthy=self.last_healthy, confirmed=self.confirmed, diverged=diverged)
        path = ckpt.save_atomic(state, folder / ckpt.checkpoint_name(self.step))
        protect = [folder / ckpt.checkpoint_name(s) for s in (self.last_healthy, self.confirmed) if s is not None]
        ckpt.prune(folder, int(self.cfg["keep"]), protect=protect)
        self.timings["checkpoint"].append(time.perf_counter() - t0)
        if self.logger:
            self.logger.event(self.step, "checkpoint", path=str(path))
        return path

    def snapshot(self) -> Optional[Path]:
        if not self.main or self.fixed is None:
            return None
        t0 = time.perf_counter()
        with preserved_rng(), torch.no_grad():
            images = self.method.snapshot(self.fixed)
        if images is None:
            self.fixed = None  # the method has no snapshots
            return None
        from ganedit.data.io import make_grid, write_image

        grid = make_grid(images.detach().float().cpu(), nrow=self.method.snapshot_columns)
        path = self.out / "snapshots" / f"step-{self.step:09d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(grid, path)
        if self.logger:
            self.logger.image(self.step, grid)
        self.timings["snapshot"].append(time.perf_counter() - t0)
        return path

    def export(self, folder: str = "model", **extra_meta: Any) -> Path:
        from ganedit.formats.native import save_model

        t0 = time.perf_counter()
        meta = {"method": self.method.name, "step": self.step, "images_seen": self.images_seen, "train_config": dict(self.cfg),
                **extra_meta}
        with kept_modes(list(self.nets.values())):  # a recipe's export may switch the live networks to eval mode
            path = save_model(self.method.export(), self.out / folder, meta=meta)
        self.timings["export"].append(time.perf_counter() - t0)
        return path

    def _val_count(self) -> int:
        """How many items of val_data a validation reads: its first val_n (0: all)."""
        n = len(self.val_dataset)
        return min(n, int(self.cfg["val_n"])) if int(self.cfg["val_n"]) > 0 else n

    def validate(self) -> Optional[Dict[str, float]]:
        """Rank 0: the recipe's validation losses on the first ``val_n`` items of ``val_data``, averaged over the
        items, logged as ``val/<name>``; with ``keep_best``, the model goes to ``<out>/model_best`` whenever its
        ``val_metric`` is the lowest so far. The run is unchanged by it (eval mode, no_grad, its own noise, the
        global generators restored), so validating or not trains the same weights."""
        if not self.main or self.val_dataset is None:
            return None
        t0 = time.perf_counter()
        n = self._val_count()
        ctx = EvalContext(self.cfg, self.info.device, self.step, self.images_seen)
        sums: Dict[str, float] = {}
        nets = list(self.nets.values())
        assert self.logger is not None
        with preserved_rng(), torch.no_grad(), kept_modes(nets):
            for net in nets:
                net.eval()
            for index, start in enumerate(range(0, n, self.global_batch)):
                try:
                    items = [self.val_dataset[i] for i in range(start, min(start + self.global_batch, n))]
                except (DataError, ImageError, OSError) as exc:  # checked at the start: changed since; training goes on
                    self.logger.warn(f"step {self.step}: validation skipped, val_data cannot be read now: {exc}")
                    return None
                ctx.begin_batch(index, len(items))
                values = self.method.validate(to_device(torch.utils.data.default_collate(items), self.info.device), ctx) or {}
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(items)
        means = {key: total / n for key, total in sums.items()}
        metric = type(self.method).val_metric
        if metric not in means:
            raise ConfigError(f"{self.method.name}: validate() gave no {metric!r} (it gave {', '.join(means) or 'nothing'})")
        self.logger.scalars(self.step, {f"val/{key}": value for key, value in means.items()})
        value = means[metric]
        best = math.isfinite(value) and (self.best_val is None or value < float(self.best_val["value"]))
        if best:
            self.best_val = {"step": self.step, "value": value}
        if best and self.cfg["keep_best"]:
            path = self.export("model_best", val={metric: value, "items": n})
            self.logger.event(self.step, "best", path=str(path), **{metric: value})
        self.timings["validation"].append(time.perf_counter() - t0)
        return means

    # -- signals -------------------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Stop after the current step, with a checkpoint, as on SIGTERM (safe to call from another thread, e.g.
        a time-budget timer); ``reason`` ends up in ``stopped_by``."""
        self._signal = reason

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signal.Signals(signum).name
        # A second signal acts as it would without us (SIGINT: KeyboardInterrupt, SIGTERM: terminate).
        signal.signal(signum, self._previous_handlers.get(signum, signal.SIG_DFL))

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    # -- time budget -------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Training seconds so far, over every session of the run (start-up and data loading excluded)."""
        started = self._session_start
        return self.train_seconds + (time.perf_counter() - started if started is not None else 0.0)

    def _budget_fitted(self) -> bool:
        return self.budget_minutes == float(self.cfg["minutes"])

    def _at_decay_start(self) -> bool:
        """The step where a decaying learning-rate schedule begins (the same on every rank)."""
        return (self.cfg.get("lr_schedule") in ("linear", "cosine") and self.step > 0
                and self.step == int(self.cfg.get("lr_decay_start", 0)))

    def _budget_proposal(self, budget: float, session_steps: int, first_step_done: float) -> float:
        """Rank 0's estimate of the total steps that fit in the budget, once enough of it is measured (0: not yet);
        after the first fit, once more where the learning rate starts to decay."""
        if not self.main or budget <= 0 or (self._budget_fitted() and not self._at_decay_start()):
            return 0.0
        spent = self.elapsed()
        if session_steps <= CALIBRATION_STEPS or spent < CALIBRATION_SHARE * budget:
            return 0.0
        per_step = (time.perf_counter() - first_step_done) / (session_steps - 1)  # the first step warms up
        recent = self.step_times[-max(CALIBRATION_STEPS, len(self.step_times) // 4):]
        if self._budget_fitted() and recent:  # the refit: the speed now (the last quarter of the session's steps)
            per_step = sum(recent) / len(recent)
        return float(self.step + max(1, int((budget - spent) / max(per_step, 1e-9))))

    def fit_steps_to_budget(self, total: int) -> None:
        """End the run, and every schedule tied to its length, at ``total`` steps (never beyond ``steps``).
        ``lr_decay_start`` keeps its share of the run, and the recipe re-derives its own step-tied keys (pix2pix
        and CycleGAN: ``decay_from * steps``) by building its configuration again, exactly as a resume does."""
        self.budget_minutes = float(self.cfg["minutes"])
        old = int(self.cfg["steps"])
        if total > old and self.logger is not None:  # the budget would buy more: say so, the run ends at `steps`
            self.logger.warn(f"time budget {self.budget_minutes:g} min fits about {total} steps, but steps = {old} ends the "
                             f"run first (unused budget); pass --steps {total} (or more) to train for the whole budget")
        total = min(max(total, self.step + 1), old)
        if total < old:
            self._set_length(total, int(round(int(self.cfg["lr_decay_start"]) * total / old)))
        if self.main:
            (self.out / "train_config.json").write_text(json.dumps(self.cfg, indent=2) + "\n")
        if self.logger is not None:
            self.logger.event(self.step, "budget", minutes=self.budget_minutes, steps=self.steps)
            self.logger.info(f"time budget {self.budget_minutes:g} min: about {self.steps} steps fit; the run and its "
                             f"learning-rate schedule end there (lr_decay_start {self.cfg['lr_decay_start']})")

    def _set_length(self, total: int, decay_start: int) -> None:
        self.cfg["steps"] = total
        self.cfg["lr_decay_start"] = decay_start
        type(self.method)(self.cfg)  # recomputes derived keys in the shared cfg dict (no other effect)
        self.steps = total
        self.schedule.restore_base()

    def refit_decay_to_budget(self, total: int) -> None:
        """At the decay start, end the decay where the budget now runs out: the first fit measured the speed over
        the first 5% of the budget only, and a run that slows down later (a shared machine) would be stopped by the
        clock with its learning rate still high. The decay keeps its start (this step, so the learning rate does
        not jump) and only shortens: ``steps`` is never raised. A recipe's own step-tied keys follow through
        ``decay_from`` (pix2pix, CycleGAN), so a resume derives the same values."""
        total = min(max(total, self.step + 1), int(self.cfg["steps"]))
        if total >= int(self.cfg["steps"]):
            return
        if "decay_from" in self.cfg:
            self.cfg["decay_from"] = self.step / total
        self._set_length(total, self.step)
        if self.main:
            (self.out / "train_config.json").write_text(json.dumps(self.cfg, indent=2) + "\n")
        if self.logger is not None:
            self.logger.event(self.step, "budget", minutes=self.budget_minutes, steps=self.steps, refit="decay")
            self.logger.info(f"time budget {self.budget_minutes:g} min, measured again where the learning rate starts to "
                             f"decay: about {self.steps} steps fit; the decay ends there")

    # -- the loop ------------------------------------------------------------------------------------------------
    def _set_aside_newer_checkpoints(self) -> None:
        """Resuming from an older checkpoint of this run (e.g. the last healthy one after a divergence): the
        newer ones belong to the abandoned continuation. They move to checkpoints/abandoned-after-<step>/ so
        that neither --resume auto nor pruning mixes them with the new ones."""
        folder = ckpt.checkpoint_dir(self.out)
        if self.resumed_from is None or Path(self.resumed_from).resolve().parent != folder.resolve():
            return
        newer = [path for step, path in ckpt.list_checkpoints(folder) if step > self.step]
        if not newer:
            return
        aside = folder / f"abandoned-after-{self.step:09d}"
        aside.mkdir(exist_ok=True)
        for path in newer:
            os.replace(path, aside / path.name)
        logging.getLogger(__name__).warning(f"resuming from step {self.step}: moved {len(newer)} newer checkpoint(s) of this run to {aside}")

    def run(self) -> "Trainer":
        cfg, info = self.cfg, self.info
        self.sampler = ShardedBatchSampler(
            len(self.dataset), self.global_batch, info.rank, info.world_size, int(cfg["seed"]), bool(cfg["shuffle"]), self.step  # type: ignore[arg-type]
        )
        if self.main:
            ckpt.remove_temporaries(ckpt.checkpoint_dir(self.out))
            remove_temporaries(self.out / "model")  # a writer killed during an earlier export
            self.out.mkdir(parents=True, exist_ok=True)
            self._set_aside_newer_checkpoints()
            # Records past the starting step belong to a run that was killed (or, at step 0, never checkpointed).
            RunLogger.truncate_after(self.out, self.step if self.resumed_from is not None else -1)
            (self.out / "train_config.json").write_text(json.dumps(self.cfg, indent=2) + "\n")
        self.logger = RunLogger(
            self.out, enabled=self.main, quiet=bool(cfg["quiet"]), tensorboard=bool(cfg["tensorboard"]),
            total_steps=self.steps, start_step=self.step, global_batch=self.global_batch,
        )
        log = self.logger
        if self.resumed_from is not None:
            log.event(self.step, "resume", path=str(self.resumed_from))
            log.info(f"resumed from {self.resumed_from} at step {self.step} ({self.images_seen} images)")
        budget = float(cfg["minutes"]) * 60.0
        log.info(
            f"{self.method.name}: {len(self.dataset)} training items, global batch {self.global_batch} = "  # type: ignore[arg-type]
            f"{info.world_size} process(es) x {self.global_batch // info.world_size}, {self.steps} steps"
            + (f" or {cfg['minutes']:g} minutes" if budget > 0 else "")
            + f", {cfg['precision']} on {info.device}, run folder {self.out}"
        )
        # Handlers first, then the workers (which ignore SIGINT/SIGTERM): a Ctrl-C from now on is ours.
        self._install_signals()
        log_every, snap_every, ckpt_every = int(cfg["log_every"]), int(cfg["snapshot_every"]), int(cfg["checkpoint_every"])
        val_every = int(cfg["val_every"])
        patience = int(cfg["nan_patience"])
        self._session_start = time.perf_counter()
        session_steps, first_step_done = 0, 0.0
        try:
            loader = make_loader(self.dataset, self.sampler, int(cfg["workers"]), pin=info.device.type == "cuda")
            batches = start_workers(loader)
            if self.step == 0 and snap_every > 0:
                self.snapshot()
            while self.step < self.steps:
                t0 = time.perf_counter()
                batch = to_device(next(batches), info.device)
                self._note_bad_images(count_skipped(batch))
                lr_factor = self.schedule.set(self.step)
                self.ctx.begin(self.step, self.images_seen)
                outputs = self.method.train_step(batch, self.ctx)
                self.step += 1
                self.images_seen += self.global_batch
                if self.ema is not None:
                    self.ema.update(self.global_batch, self.images_seen)
                if self.ctx.overflows:
                    log.event(self.step, "fp16_overflow", phases=list(self.ctx.overflows))
                if self.ctx.skipped:
                    self.bad_streak += 1
                    self.unhealthy = True
                    log.event(self.step, "nonfinite", phases=list(self.ctx.skipped), streak=self.bad_streak)
                    log.warn(f"step {self.step}: non-finite loss or gradient in {', '.join(self.ctx.skipped)}; update skipped ({self.bad_streak} in a row)")
                    if self.bad_streak >= patience:
                        self.checkpoint(diverged=True)
                        raise TrainingDiverged(self._divergence_advice())
                else:
                    self.bad_streak = 0
                log.step_done(outputs)
                if log_every and self.step % log_every == 0:
                    log.flush_scalars(self.step, self.images_seen, {"lr_factor": lr_factor})
                if snap_every and self.step % snap_every == 0:
                    self.snapshot()
                if val_every and (self.step % val_every == 0 or self.step == self.steps):
                    self.validate()
                session_steps += 1
                if session_steps == 1:
                    first_step_done = time.perf_counter()
                over = budget > 0 and self.main and self.elapsed() >= budget
                proposal = self._budget_proposal(budget, session_steps, first_step_done)
                signalled, over, proposal = dist_util.agree_max(info, [float(self._signal is not None), float(over), proposal])
                if proposal > 0:
                    if self._budget_fitted():
                        self.refit_decay_to_budget(int(proposal))
                    else:
                        self.fit_steps_to_budget(int(proposal))
                if signalled or over:
                    self.stopped_by = (self._signal or "peer") if signalled else f"time budget ({cfg['minutes']:g} min)"
                    self.checkpoint()
                    self._export(f"{self.stopped_by}: stopped after step {self.step}; checkpoint written, continue with --resume auto")
                    log.event(self.step, "stopped", signal=self.stopped_by)
                    self._write_stop_record()
                    break
                if ckpt_every and self.step % ckpt_every == 0:
                    self.checkpoint()
                self.step_times.append(time.perf_counter() - t0)
            else:
                if self.last_checkpoint_step != self.step:
                    self.checkpoint()
                self._export(f"done: {self.step} steps, {self.images_seen} images")
        finally:
            self.train_seconds = self.elapsed()
            self._session_start = None
            self._restore_signals()
            if self.bad_images:
                log.warn(f"{self.bad_images} unreadable image read(s) skipped (--skip-bad; a bad file counts once per epoch), each replaced by the next readable image")
            log.close()
        return self

    def _write_stop_record(self) -> None:
        """Rank 0 tells a launcher (``ganedit torchrun``, via ``STOP_RECORD_ENV``) that the stop finished: the
        checkpoint and ``model/`` are on disk. torchrun's own agent only knows it was signalled, not that the
        ranks stopped cleanly, so without this a signalled multi-process run always looks failed."""
        target = os.environ.get(STOP_RECORD_ENV)
        if not target or not self.main:
            return
        record = {"stopped_by": self.stopped_by, "step": self.step, "out": str(self.out)}
        Path(target).write_text(json.dumps(record))

    def _export(self, message: str) -> None:
        """Rank 0 writes ``model/`` (any stop leaves something every command can load) and reports it."""
        if not self.main:
            return
        path = self.export()
        assert self.logger is not None
        self.logger.event(self.step, "export", path=str(path))
        self.logger.info(f"{message}; model written to {path}")

    def _divergence_advice(self) -> str:
        """The error of a diverged run, with a command that continues from the last healthy checkpoint."""
        folder = ckpt.checkpoint_dir(self.out)
        head = (f"training diverged at step {self.step}: {self.bad_streak} steps in a row had non-finite losses or gradients "
                f"(their updates were skipped; checkpoint {folder / ckpt.checkpoint_name(self.step)}, marked diverged).")
        lower = float(self.cfg["lr"]) / 10
        # The interval after the last healthy checkpoint led into the divergence, so its weights may already be
        # on the way up; the one before it was followed by a whole clean interval.
        start = self.confirmed if self.confirmed is not None else self.last_healthy
        if start is None:
            return (f"{head} No healthy checkpoint exists yet: start a new run with a lower learning rate, e.g. "
                    f"ganedit train {self.method.name} --data {self.cfg['data']} --out NEW_FOLDER --lr {lower:g}")
        path = folder / ckpt.checkpoint_name(start)
        return (f"{head} Continue from the last healthy checkpoint before it (step {start}) with a lower learning rate: "
                f"ganedit train {self.method.name} --out {self.out} --resume {path} --lr {lower:g}  "
                "(--resume auto picks the same checkpoint)")


    def _note_bad_images(self, count: int) -> None:
        if not count or self.logger is None:
            return
        if not self.bad_images:
            self.logger.warn(f"step {self.step}: skipping unreadable image(s) (--skip-bad); the total is reported at the end")
        self.bad_images += count
        self.logger.event(self.step, "bad_images", count=count, total=self.bad_images)


def _is_peer_failure(exc: BaseException) -> bool:
    """A collective that failed because a peer is gone (gloo/NCCL report it as RuntimeError subclasses)."""
    dist_errors = tuple(getattr(torch.distributed, name) for name in ("DistError", "DistBackendError", "DistNetworkError")
                        if hasattr(torch.distributed, name))
    if isinstance(exc, dist_errors):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "closed by peer", "broken pipe", "timed out"))


def train(method: str, overrides: Mapping[str, Any], resume: Optional[str] = None, dry_run: bool = False) -> Optional[Trainer]:
    """Resolve the configuration (fresh, or from a checkpoint plus explicit ``overrides``) and train.
    ``dry_run`` prints the resolved configuration as JSON and returns None. Launch under torchrun for DDP."""
    method_cls = get_method(method)
    cfg = resolve(method_cls, overrides)
    found = ckpt.resolve_resume(resume, cfg["out"]) if resume else None
    state, path = None, None
    if found is not None:
        path, state = found
        if state.get("method") not in (None, method_cls.name):
            raise CheckpointError(path, f"was written by method {state.get('method')!r}, not {method_cls.name!r}")
        cfg, changed = resume_config(method_cls, state["config"], overrides)
        if changed and not dry_run:
            log.warning(
                f"resuming with changed options ({', '.join(changed)}); the continuation differs from an uninterrupted run"
            )
    elif resume and resume != "auto":
        raise CheckpointError(resume, "no checkpoint to resume from")
    else:
        existing = ckpt.list_checkpoints(ckpt.checkpoint_dir(cfg["out"]))
        if existing:
            # A fresh run would interleave its checkpoints with the old ones, and --resume auto would later
            # pick whichever has the highest step: refuse instead of mixing two runs.
            raise ConfigError(
                f"run folder {cfg['out']} already holds training checkpoints (newest {existing[0][1].name}): "
                "continue it with --resume auto, or choose another --out"
            )
    if dry_run:
        print(json.dumps(cfg, indent=2))
        return None
    if found is None and resume == "auto" and not cfg["quiet"] and int(os.environ.get("RANK", "0")) == 0:
        log.info(f"no checkpoint in {ckpt.checkpoint_dir(cfg['out'])}: starting a new run")
    trainer = None
    try:
        trainer = Trainer(method_cls, cfg, state, path)
        return trainer.run()
    except RuntimeError as exc:
        if trainer is None or not trainer.info.enabled or not _is_peer_failure(exc):
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PeerLost(
            f"process {trainer.info.rank} of {trainer.info.world_size}: another training process died or its connection "
            f"broke at step {trainer.step} ({first}). Checkpoints are in {ckpt.checkpoint_dir(trainer.out)}: start every "
            "process again with --resume auto."
        ) from None
    finally:
        if trainer is not None:
            dist_util.shutdown(trainer.info)
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
