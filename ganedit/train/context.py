"""The engine's StepContext: mixed precision, gradient averaging over ranks, the NaN/Inf guard, and noise
that does not depend on the number of processes.

NaN/Inf guard: before each optimiser step the gradients (after the all-reduce, so every rank decides the
same) and the phase's loss are checked; if anything is non-finite the update is skipped and the phase is
recorded in ``skipped``. The loop counts steps with a skipped phase; ``nan_patience`` in a row stop the run.
With fp16 an overflow is normal while the gradient scaler searches its scale: such skips only count once
the scale has fallen below 1."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, ContextManager, Dict, List, Optional

import torch

from ganedit.errors import ConfigError
from ganedit.methods.base import StepContext
from ganedit.train.distributed import DistInfo, average_gradients, gather_batches

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively on this CPU (AVX-512 BF16 / AMX). Without it torch falls
    back to its slow reference convolution: on an AVX2-only EPYC a StyleGAN2 64 px step ran 13x slower in bf16
    than in fp32 (benchmarks/bench_sg2_step.py)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device`` (None = fp32, no autocast)."""
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA GPU (on CPU use fp32, or bf16)")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("precision bf16: this CPU has no native bf16 convolutions (no AVX-512 BF16 / AMX), so torch "
                    "uses its slow fallback kernels; fp32 is several times faster here")
    return _DTYPES[precision]


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so (seed, step) pairs give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def autocast_region(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; a no-op for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class TrainContext(StepContext):
    def __init__(self, cfg: Dict[str, Any], info: DistInfo, opts: Dict[str, torch.optim.Optimizer]) -> None:
        self.cfg = cfg
        self.info = info
        self.rank, self.world_size, self.device = info.rank, info.world_size, info.device
        self.global_batch = int(cfg["batch"])
        self.batch = self.global_batch // self.world_size
        self.opts = opts
        self.dtype = autocast_dtype(cfg["precision"], self.device)
        self.scalers: Dict[str, torch.amp.GradScaler] = {}
        if cfg["precision"] == "fp16":
            self.scalers = {name: torch.amp.GradScaler("cuda") for name in opts}
        self.noise = torch.Generator(device=self.device)
        self.seed = int(cfg["seed"])
        self.step = 0
        self.images_seen = 0
        self.skipped: List[str] = []  # phases whose update was skipped in this step (counted by the guard)
        self.overflows: List[str] = []  # fp16 overflow skips that do not count (scale still >= 1)
        self._loss_bad: Dict[str, torch.Tensor] = {}
        self._params: Dict[str, List[torch.Tensor]] = {
            name: [p for group in opt.param_groups for p in group["params"]] for name, opt in opts.items()
        }

    def begin(self, step: int, images_seen: int) -> None:
        self.step, self.images_seen = step, images_seen
        self.noise.manual_seed(_mix(self.seed, step, 0x6E6F6973))
        self.skipped = []
        self.overflows = []

    # -- StepContext -------------------------------------------------------------------------------------------
    def autocast(self) -> ContextManager[Any]:
        return autocast_region(self.device, self.dtype)

    def _opt(self, name: str) -> torch.optim.Optimizer:
        try:
            return self.opts[name]
        except KeyError:
            raise KeyError(f"no optimiser named {name!r} (the method built: {', '.join(self.opts)})") from None

    def zero_grad(self, opt_name: str) -> None:
        self._opt(opt_name).zero_grad(set_to_none=True)
        self._loss_bad.pop(opt_name, None)

    def backward(self, loss: torch.Tensor, opt_name: str) -> None:
        self._opt(opt_name)
        bad = (~torch.isfinite(loss.detach())).any().float()
        prev = self._loss_bad.get(opt_name)
        self._loss_bad[opt_name] = bad if prev is None else prev + bad
        scaler = self.scalers.get(opt_name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def apply(self, opt_name: str) -> bool:
        opt = self._opt(opt_name)
        grads = [p.grad for p in self._params[opt_name] if p.grad is not None]
        flag = self._loss_bad.pop(opt_name, None)
        if flag is None:
            flag = torch.zeros((), device=self.device)
        flag = average_gradients(self.info, grads, flag)
        scaler = self.scalers.get(opt_name)
        if scaler is not None:
            scaler.unscale_(opt)
        # One host sync per phase: finite iff no rank had a bad loss and no gradient element is NaN/Inf.
        if grads:
            norms = torch.stack(torch._foreach_norm(grads))
            bad = flag.float().sum() + (~torch.isfinite(norms)).sum()
        else:
            bad = flag.float().sum()
        ok = bool(bad.item() == 0)
        if ok:
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            return True
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()
            if scaler.get_scale() >= 1.0:
                self.overflows.append(opt_name)
                return False
        self.skipped.append(opt_name)
        return False

    def _global(self, shape: tuple, dtype: Optional[torch.dtype], fn: Any) -> torch.Tensor:
        if not shape:
            raise ValueError("noise shape needs a batch dimension")
        full = fn((shape[0] * self.world_size,) + tuple(shape[1:]), generator=self.noise, device=self.device, dtype=dtype or torch.float32)
        return full[self.rank * shape[0] : (self.rank + 1) * shape[0]]

    def randn(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return self._global(shape, dtype, torch.randn)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return gather_batches(self.info, tensor)

    def rand(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return self._global(shape, dtype, torch.rand)

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"scalers": {name: s.state_dict() for name, s in self.scalers.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for name, s in state.get("scalers", {}).items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(s)


class EvalContext(StepContext):
    """The context of a validation pass (``Method.validate``): one process holds each whole batch; noise comes
    from a generator seeded by (seed, batch index), so every pass sees the same noise and the losses of two steps
    differ only by the weights; nothing can be optimised."""

    def __init__(self, cfg: Dict[str, Any], device: torch.device, step: int, images_seen: int) -> None:
        self.cfg = cfg
        self.rank, self.world_size, self.device = 0, 1, device
        self.step, self.images_seen = step, images_seen
        self.batch = self.global_batch = int(cfg["batch"])
        self.dtype = autocast_dtype(cfg["precision"], device)
        self.seed = int(cfg["seed"])
        self.noise = torch.Generator(device=device)

    def begin_batch(self, index: int, size: int) -> None:
        self.noise.manual_seed(_mix(self.seed, index, 0x76616C))
        self.batch = self.global_batch = size

    def autocast(self) -> ContextManager[Any]:
        return autocast_region(self.device, self.dtype)

    def _no_training(self, *args: Any) -> Any:
        raise RuntimeError("validation cannot train: validate() must not call zero_grad, backward, apply or optimize")

    zero_grad = backward = apply = optimize = _no_training  # type: ignore[assignment]

    def randn(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return torch.randn(shape, generator=self.noise, device=self.device, dtype=dtype or torch.float32)

    def rand(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return torch.rand(shape, generator=self.noise, device=self.device, dtype=dtype or torch.float32)
