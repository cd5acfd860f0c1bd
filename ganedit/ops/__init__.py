"""Pure-PyTorch StyleGAN2 primitives (no compiled extensions). Each fast op has a plain reference in
:mod:`ganedit.ops.reference` that the tests compare against."""
from __future__ import annotations

from typing import Sequence

import torch

from ganedit.ops.bias_act import fused_leaky_relu
from ganedit.ops.modulated_conv import demodulation, modulated_conv2d, weight_sq
from ganedit.ops.standard import standard_kernels
from ganedit.ops.transposed_conv import conv_transpose2d
from ganedit.ops.upfirdn2d import upfirdn2d

__all__ = ["upfirdn2d", "fused_leaky_relu", "modulated_conv2d", "demodulation", "weight_sq", "make_kernel", "conv_transpose2d",
           "standard_kernels"]


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """2-D FIR kernel from 1-D taps (outer product) or a 2-D list, normalised to sum 1 (rosinality's make_kernel)."""
    k = torch.tensor(taps, dtype=torch.float32)
    if k.dim() == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()
