"""Exponential moving averages of network weights (kept on rank 0). The decay follows from a half-life in
images, as in StyleGAN2: ``beta = 0.5 ** (global_batch / (ema_kimg * 1000))``, optionally ramped up
early in training (``ema_rampup``: the half-life is at most ``images_seen * ema_rampup``).

Buffers are copied from the live network by default, as in StyleGAN2-ADA. A network with BatchNorm needs
``average_buffers``: its running statistics were measured with the live weights, and an averaged network evaluated
with the live network's statistics loses the gain of the averaging (pix2pix on the synthetic world: 27.1 dB with
copied statistics, 27.8 with averaged ones, for the same average of its last four checkpoints).
Integer buffers (BatchNorm's batch counter) are always copied."""
from __future__ import annotations

import copy
from typing import Dict, Iterable, List

import torch
from torch import nn


class EMA:
    def __init__(self, nets: Dict[str, nn.Module], names: Iterable[str], ema_kimg: float, rampup: float = 0.0,
                 average_buffers: bool = False) -> None:
        self.nets = nets
        self.names = list(names)
        missing = [n for n in self.names if n not in nets]
        if missing:
            raise KeyError(f"EMA asked for networks {missing} that the method did not build ({', '.join(nets)})")
        self.copies: Dict[str, nn.Module] = {}
        for name in self.names:
            shadow = copy.deepcopy(nets[name]).eval()
            shadow.requires_grad_(False)
            self.copies[name] = shadow
        self.ema_kimg = float(ema_kimg)
        self.rampup = float(rampup)
        self.average_buffers = bool(average_buffers)
        self._pairs = {name: self._tensors(name) for name in self.names}

    def _tensors(self, name: str):
        live, shadow = self.nets[name], self.copies[name]
        lp = [p.detach() for p in live.parameters()]
        sp = [p.detach() for p in shadow.parameters()]
        lb = [b for b in live.buffers()]
        sb = [b for b in shadow.buffers()]
        float_b = [(s, l) for s, l in zip(sb, lb) if s.is_floating_point()]
        other_b = [(s, l) for s, l in zip(sb, lb) if not s.is_floating_point()]
        return lp, sp, float_b, other_b

    def beta(self, batch: int, images_seen: int) -> float:
        half_life = self.ema_kimg * 1000.0
        if self.rampup > 0:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, batch: int, images_seen: int) -> None:
        """Blend after a step; ``images_seen`` counts the images consumed including this step's batch."""
        weight = 1.0 - self.beta(batch, images_seen)
        for name in self.names:
            lp, sp, float_b, other_b = self._pairs[name]
            if sp:
                torch._foreach_lerp_(sp, lp, weight)
            copied = other_b
            if self.average_buffers and float_b:
                torch._foreach_lerp_([s for s, _ in float_b], [l for _, l in float_b], weight)
            else:
                copied = float_b + other_b
            for s, l in copied:
                s.copy_(l)

    def state_dict(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return {name: m.state_dict() for name, m in self.copies.items()}

    def load_state_dict(self, state: Dict[str, Dict[str, torch.Tensor]]) -> List[str]:
        """Load copies present in ``state``; returns the names that were absent (left as copies of the nets)."""
        absent = []
        for name, module in self.copies.items():
            if name in state:
                module.load_state_dict(state[name])
            else:
                absent.append(name)
        return absent
