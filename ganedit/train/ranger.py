"""Ranger: RAdam + Lookahead + gradient centralisation, the optimiser pSp and e4e train with.

Hyper-parameters default to the values of the Ranger copy the official pSp ships (betas (0.95, 0.999), eps 1e-5,
Lookahead k=6 and alpha 0.5, RAdam's variance-rectification threshold 5, gradient centralisation on every
parameter with more than one dimension). All state lives in ``self.state`` so checkpoints resume exactly.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Tuple

import torch


class Ranger(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, alpha: float = 0.5, k: int = 6, n_sma_threshold: float = 5.0,
                 betas: Tuple[float, float] = (0.95, 0.999), eps: float = 1e-5, weight_decay: float = 0.0,
                 use_gc: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0 or k < 1 or lr <= 0:
            raise ValueError(f"Ranger: need lr > 0, 0 <= alpha <= 1 and k >= 1 (got {lr}, {alpha}, {k})")
        defaults = dict(lr=lr, alpha=alpha, k=k, n_sma_threshold=n_sma_threshold, betas=tuple(betas), eps=eps,
                        weight_decay=weight_decay, use_gc=use_gc)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[callable] = None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            n_sma_max = 2 / (1 - beta2) - 1
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if group["use_gc"] and grad.dim() > 1:
                    # gradient centralisation: remove the mean over all but the output dimension
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow_buffer"] = p.detach().clone().float()
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                beta2_t = beta2**t
                n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
                update = p.detach().float()
                if group["weight_decay"]:
                    update.add_(update, alpha=-group["weight_decay"] * group["lr"])
                if n_sma > group["n_sma_threshold"]:
                    # rectified Adam step once the variance estimate is reliable
                    rect = math.sqrt((1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2))
                    step_size = rect / (1 - beta1**t)
                    update.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size * group["lr"])
                else:  # early steps: momentum SGD with bias correction
                    update.add_(exp_avg, alpha=-group["lr"] / (1 - beta1**t))
                if t % group["k"] == 0:  # Lookahead: pull the slow weights towards the fast ones and restart from them
                    slow = state["slow_buffer"]
                    slow.add_(update - slow, alpha=group["alpha"])
                    update.copy_(slow)
                p.copy_(update)
        return loss
