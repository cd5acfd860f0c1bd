"""Fast upfirdn2d: FIR filtering with optional zero-insertion upsampling and subsampling, pure PyTorch.

Same semantics as :func:`ganedit.ops.reference.upfirdn2d_ref` (the kernel is applied as a true convolution,
negative padding crops) but it never materialises the zero-inserted image and never computes samples it
throws away:
- upsampling runs a depthwise ``conv_transpose2d`` with stride ``up`` (polyphase: only the non-zero taps of
  each output phase are multiplied), then pads/crops the result to the requested window;
- downsampling pads the input and runs a depthwise ``conv2d`` with stride ``down``;
- both work on channels_last tensors without a layout change.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ganedit.ops.reference import IntPair, _pad4, _pair


def _crop_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) each side; a no-op costs nothing."""
    if left == right == top == bottom == 0:
        return x
    if min(left, right, top, bottom) >= 0:
        return F.pad(x, [left, right, top, bottom])
    h, w = x.shape[2], x.shape[3]
    x = x[:, :, max(-top, 0): h - max(-bottom, 0), max(-left, 0): w - max(-right, 0)]
    if max(left, right, top, bottom) > 0:
        x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    return x


def _depthwise_weight(kernel: torch.Tensor, channels: int, dtype: torch.dtype, flip: bool) -> torch.Tensor:
    k = torch.flip(kernel, [0, 1]) if flip else kernel
    return k.to(dtype).reshape(1, 1, *k.shape).expand(channels, 1, *k.shape)


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: IntPair = 1, down: IntPair = 1, pad: Sequence[int] = (0, 0)) -> torch.Tensor:
    """Upsample (zero insertion), pad, filter with ``kernel`` (true convolution), downsample.

    x: [N, C, H, W]; kernel: [kh, kw]; up/down: int or (x, y); pad: (p0, p1) for both axes or (x0, x1, y0, y1).
    Output size per axis: (in*up + p0 + p1 - k) // down + 1.
    """
    up_x, up_y = _pair(up)
    down_x, down_y = _pair(down)
    px0, px1, py0, py1 = _pad4(pad)
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    out_h = (h * up_y + py0 + py1 - kh) // down_y + 1
    out_w = (w * up_x + px0 + px1 - kw) // down_x + 1
    if up_x == up_y == 1:
        # pad/crop, then a strided correlation with the flipped kernel = subsampled true convolution
        weight = _depthwise_weight(kernel, c, x.dtype, flip=True)
        if px0 == px1 >= 0 and py0 == py1 >= 0:  # symmetric padding: let the conv pad (no padded copy)
            return F.conv2d(x, weight, stride=(down_y, down_x), padding=(py0, px0), groups=c)
        z = _crop_pad(x, px0, px1, py0, py1)
        return F.conv2d(z, weight, stride=(down_y, down_x), groups=c)
    # conv_transpose2d(stride=up) with the unflipped kernel is the full true convolution F of the zero-inserted
    # signal; output sample o of the padded version is F[o + k - 1 - p0].
    full = F.conv_transpose2d(x, _depthwise_weight(kernel, c, x.dtype, flip=False), stride=(up_y, up_x), groups=c)
    start_y, start_x = kh - 1 - py0, kw - 1 - px0
    span_y, span_x = (out_h - 1) * down_y + 1, (out_w - 1) * down_x + 1
    z = _crop_pad(full, -start_x, start_x + span_x - full.shape[3], -start_y, start_y + span_y - full.shape[2])
    if down_x > 1 or down_y > 1:
        z = z[:, :, ::down_y, ::down_x]
    return z
