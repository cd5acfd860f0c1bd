"""Layers whose training-mode output depends on the whole batch, in forms that give N processes (each holding a
share of the global batch) the result of one process holding all of it.

* :class:`GlobalBatchNorm2d`: BatchNorm whose training statistics are those of the global batch: sums are
  all-reduced over the process group, and gradients flow back through the reduction (like
  ``torch.nn.SyncBatchNorm``, which only runs on GPUs; this one works with gloo on CPU too).
* :class:`SharedNoiseDropout`: Dropout whose keep-mask can be drawn by the training step's global-batch noise
  (``ctx.rand``) instead of each process's own RNG; see :func:`dropout_noise`.

Both are subclasses of the torch layers they replace, with the same state-dict keys, so official checkpoints,
``isinstance`` checks and export are unaffected. :func:`make_world_size_invariant` swaps them into a network;
:func:`plain_copy` gives back a registered network with the torch layers again (for export).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn

RandFn = Callable[..., torch.Tensor]  # rand(*shape) -> uniform [0, 1), shape[0] = this process's batch


def _process_group_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllReduceSum(torch.autograd.Function):
    """y = sum of x over processes. Every process's loss depends on y, so the gradient of x is the sum of every
    process's gradient of y: the backward pass is the same all-reduce."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = grad.clone()
        dist.all_reduce(g)
        return g


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(t)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with global-batch statistics in training mode when a process group of 2+ is running;
    otherwise exactly ``nn.BatchNorm2d``. Mean and variance take two reductions (sum, then the sum of squared
    deviations), which keeps the variance as accurate as a single process's; running statistics are updated
    from the global mean and the unbiased global variance, as one process would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _process_group_size() < 2:
            return super().forward(x)
        self._check_input_dim(x)
        dtype, x = x.dtype, x.float()  # statistics in fp32 under autocast too
        c = x.shape[1]
        count = torch.tensor([float(x.numel() // c)], device=x.device)
        sums = _all_reduce_sum(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = sums[c]
        mean = sums[:c] / n
        centred = x - mean.view(1, c, 1, 1)
        var = _all_reduce_sum(centred.square().sum(dim=(0, 2, 3))) / n
        out = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * (n / (n - 1).clamp(min=1)), momentum)
        return out.to(dtype)


class SharedNoiseDropout(nn.Dropout):
    """Dropout that takes its keep-mask from ``self.rand`` while one is set (see :func:`dropout_noise`), else
    acts as ``nn.Dropout``. Keep iff u >= p for u ~ U[0, 1), kept values scaled by 1 / (1 - p), as F.dropout."""

    rand: Optional[RandFn] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rand is None or self.p == 0:
            return super().forward(x)
        if self.p >= 1:
            return x * 0
        keep = self.rand(*x.shape) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


@contextlib.contextmanager
def dropout_noise(module: nn.Module, rand: RandFn) -> Iterator[nn.Module]:
    """Within the block, every :class:`SharedNoiseDropout` of ``module`` draws its mask with ``rand``."""
    sites = [m for m in module.modules() if isinstance(m, SharedNoiseDropout)]
    try:
        for m in sites:
            m.rand = rand
        yield module
    finally:
        for m in sites:
            m.rand = None


def make_world_size_invariant(net: nn.Module) -> nn.Module:
    """Replace (in place) every ``nn.BatchNorm2d`` by :class:`GlobalBatchNorm2d` and every ``nn.Dropout`` by
    :class:`SharedNoiseDropout`, keeping parameters, buffers and train/eval mode. Returns ``net``."""
    for name, m in list(net.named_modules()):
        if type(m) is nn.BatchNorm2d:
            new: nn.Module = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            tensors = list(m.parameters()) + list(m.buffers())
            if tensors:
                new.to(tensors[0].device)
            new.load_state_dict(m.state_dict())
        elif type(m) is nn.Dropout:
            new = SharedNoiseDropout(m.p, m.inplace)
        else:
            continue
        new.train(m.training)
        net.set_submodule(name, new)
    return net


def plain_copy(net: nn.Module) -> nn.Module:
    """The registered network with the weights of ``net`` (plain BatchNorm and Dropout again, for export);
    ``net`` itself when it holds none of the global-batch layers."""
    if not any(isinstance(m, (nn.SyncBatchNorm, GlobalBatchNorm2d, SharedNoiseDropout)) for m in net.modules()):
        return net
    from ganedit.formats.native import registered_models  # late: the layers need no file formats

    copy = registered_models()[net.model_type](**net.config)  # type: ignore[attr-defined]
    tensors = list(net.parameters()) + list(net.buffers())
    if tensors:
        copy.to(tensors[0].device)
    copy.load_state_dict(net.state_dict())
    return copy.train(net.training)
