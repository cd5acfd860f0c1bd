"""Stride-2 transposed convolution computed as four ordinary convolutions, one per output phase.

Output sample o = 2*i + t of a stride-2 transposed conv only ever meets kernel taps t of o's parity, so each of the
four (row, column) parities of the output is an ordinary convolution of the input with the taps of that parity
(flipped: a transposed conv is a true convolution), and the four results interleave into the output. The same
multiply-adds, no zero insertion.

Why: on the CPU, oneDNN's transposed conv runs at about half the speed of its ordinary conv when the layer has few
output channels, as StyleGAN2's 256-1024 px up-sampling convs do (128, 64, 32 outputs; all up-sampling convs
were 38% of the 1024 px decoder's time at batch 4). Split, those three layers ran 1.6x (batch 1) and 1.8x (batch 4)
faster, interleaving included (1 thread; ``python -m benchmarks.bench_psp`` prints the per-part table); at 256
outputs and more a micro-benchmark showed no gain, so those keep the standard call. The split is used for
inference on channels_last CPU tensors only (its backward is not measured).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ganedit.ops.standard import rewrites_allowed

# widest output (channels) that is split; measured: 32-128 gained 1.5-1.8x, 256 lost a few %
PHASE_SPLIT_MAX_OUT = 128


def use_phase_split(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> bool:
    """Whether :func:`conv_transpose2d` splits this call (see the module's note)."""
    return (stride == 2 and groups == 1 and x.dim() == 4 and x.device.type == "cpu" and weight.shape[1] <= PHASE_SPLIT_MAX_OUT
            and min(weight.shape[2], weight.shape[3]) >= 2 and x.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)) and rewrites_allowed())


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 2, groups: int = 1) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=stride, groups=groups)`` (no padding; weight [I, O/groups, kh, kw]),
    split into phase convolutions where that is faster."""
    if use_phase_split(x, weight, stride, groups):
        return phase_conv_transpose2d(x, weight)
    return F.conv_transpose2d(x, weight, stride=stride, groups=groups)


def phase_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Stride-2, unpadded transposed conv of x [B, I, H, W] with weight [I, O, kh, kw] (kh, kw >= 2) as four convs.

    Phase p of an axis holds outputs 2*m + p, m = 0 .. H + n_p - 2, where n_p = ceil((k - p) / 2) taps
    W[p], W[p + 2], ... meet it: out_p[m] = sum_j x[m - j] * W[p + 2j], a correlation of x padded by n_p - 1 on
    both sides with those taps reversed. The result is channels_last, like its input.
    """
    b, _, h, w = x.shape
    _, out_ch, kh, kw = weight.shape
    out = torch.empty((b, out_ch, 2 * (h - 1) + kh, 2 * (w - 1) + kw), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    conv_weight = weight.transpose(0, 1)  # [O, I, kh, kw]
    for py in (0, 1):
        for px in (0, 1):
            taps = conv_weight[:, :, py::2, px::2].flip([2, 3]).contiguous(memory_format=torch.channels_last)
            phase = F.conv2d(x, taps, padding=(taps.shape[2] - 1, taps.shape[3] - 1))
            out[:, :, py::2, px::2] = phase
    return out
