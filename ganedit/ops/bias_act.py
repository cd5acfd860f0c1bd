"""Bias + leaky ReLU with gain (StyleGAN2's ``fused_leaky_relu``), pure PyTorch."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


def fused_leaky_relu(
    x: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    negative_slope: float = 0.2,
    scale: float = math.sqrt(2),
    inplace: bool = False,
) -> torch.Tensor:
    """``leaky_relu(x + bias[c], negative_slope) * scale`` with ``bias`` broadcast over dim 1.

    The gain sqrt(2) keeps the activations' second moment at 1 for unit-variance inputs. ``inplace=True``
    overwrites ``x`` (only when no gradient is needed) so inference does not allocate a new tensor per layer.
    """
    if inplace and not (torch.is_grad_enabled() and x.requires_grad):
        if bias is not None:
            x.add_(bias.reshape([1, -1] + [1] * (x.dim() - 2)))
        F.leaky_relu_(x, negative_slope)
        if scale != 1:
            x.mul_(scale)
        return x
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.dim() - 2))
    out = F.leaky_relu(x, negative_slope)
    return out * scale if scale != 1 else out
