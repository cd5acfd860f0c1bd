"""Distributed set-up for ``torchrun`` (env:// rendezvous: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
gloo on CPU, NCCL on CUDA. Gradients are averaged by hand after each phase's backward (one flat all-reduce
per optimiser step, as NVlabs StyleGAN3 does) instead of wrapping networks in DistributedDataParallel: a
recipe can run several phases per step, lazy regularisers and double-backward without DDP's
"unused parameter" and "marked ready twice" errors, and one process behaves exactly like N."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from ganedit.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for but no CUDA GPU is available (use --device cpu)")
        return torch.device("cuda", local_rank) if choice == "cuda" else torch.device(choice)
    if choice != "cpu":
        raise ConfigError(f"device {choice!r}: use auto, cpu or cuda")
    return torch.device("cpu")


def init(device_choice: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        _import_compiler_stack()
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def _import_compiler_stack() -> None:
    """Import torch._dynamo before the process group exists. With torch 2.13, importing it (or aot_autograd,
    which the first optimiser's constructor does) while a gloo group exists keeps that group alive after
    ``destroy_process_group``: its worker threads then outlive the interpreter, and one that frees a finished
    collective's tensors during exit aborts the process ("terminate called without an active exception",
    about 1 run in 7 on a loaded 2-core machine). Imported first, the group is freed and its threads joined."""
    import torch._dynamo  # noqa: F401


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(info: DistInfo, obj: Any) -> List[Any]:
    """Every rank's ``obj`` (pickled over the process group: only for engine-made plain data)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (agreeing on when to stop)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def agree_max(info: DistInfo, values: List[float]) -> List[float]:
    """The element-wise maximum of ``values`` over ranks (one small all-reduce): the loop's per-step agreement
    on stopping (a signal on any rank, rank 0's clock) and on rank 0's proposals."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def broadcast_parameters(info: DistInfo, modules: List[torch.nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to the other ranks (identical start whatever the seeding)."""
    if not info.enabled:
        return
    with torch.no_grad():
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)


def average_gradients(info: DistInfo, grads: List[torch.Tensor], flag: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Average ``grads`` over ranks in place with one flat all-reduce; ``flag`` (a 1-element tensor) is
    summed alongside, so a non-finite loss on one rank is known to all. Returns the summed flag."""
    if not info.enabled:
        return flag
    parts = [g.reshape(-1) for g in grads]
    if flag is not None:
        parts.append(flag.reshape(1).to(grads[0].dtype if grads else torch.float32))
    if not parts:
        return flag
    flat = torch.cat(parts)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g)).div_(info.world_size)
        offset += n
    return flat[-1:] if flag is not None else None


def gather_batches(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (equal shapes) concatenated along dim 0 in rank order; detached."""
    if not info.enabled:
        return tensor.detach()
    parts = [torch.empty_like(tensor) for _ in range(info.world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts, 0)
