"""Plain, slow reference versions of the StyleGAN2 ops, written to be read rather than to be fast.

They follow rosinality's pure-PyTorch ``upfirdn2d_native`` semantics (README of the conformance data, §3):
insert zeros to upsample, pad (negative pad crops), convolve every channel with the kernel as a *true*
convolution (the kernel is flipped before a cross-correlation), keep every ``down``-th sample. The fast ops
in this package are tested against these, and the benchmarks use them as the naive baseline.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _pad4(pad: Sequence[int]) -> Tuple[int, int, int, int]:
    """(p0, p1) applies to both axes; (x0, x1, y0, y1) names each side."""
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad[0], pad[1], pad[2], pad[3]
    raise ValueError(f"pad must have 2 or 4 entries, got {pad!r}")


def upfirdn2d_ref(x: torch.Tensor, kernel: torch.Tensor, up: IntPair = 1, down: IntPair = 1, pad: Sequence[int] = (0, 0)) -> torch.Tensor:
    """Zero insertion + pad/crop + depthwise true convolution + subsampling, one step at a time."""
    up_x, up_y = _pair(up)
    down_x, down_y = _pair(down)
    px0, px1, py0, py1 = _pad4(pad)
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    # 1. upsample by inserting up-1 zeros after every sample (as the CUDA kernel does)
    z = x.reshape(n * c, h, 1, w, 1)
    z = F.pad(z, [0, up_x - 1, 0, 0, 0, up_y - 1])
    z = z.reshape(n * c, 1, h * up_y, w * up_x)
    # 2. pad with zeros (positive) or crop (negative)
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0): z.shape[2] - max(-py1, 0), max(-px0, 0): z.shape[3] - max(-px1, 0)]
    # 3. true convolution: conv2d correlates, so flip the kernel
    weight = torch.flip(kernel, [0, 1]).reshape(1, 1, kh, kw).to(z.dtype)
    z = F.conv2d(z, weight)
    # 4. keep every down-th sample
    z = z[:, :, ::down_y, ::down_x]
    return z.reshape(n, c, z.shape[2], z.shape[3])


def fused_leaky_relu_ref(x: torch.Tensor, bias: Optional[torch.Tensor], negative_slope: float = 0.2, scale: float = math.sqrt(2)) -> torch.Tensor:
    """leaky_relu(x + bias[channel]) * scale, with the bias broadcast over dim 1."""
    if bias is not None:
        shape = [1, -1] + [1] * (x.dim() - 2)
        x = x + bias.reshape(shape)
    return F.leaky_relu(x, negative_slope) * scale


def modulated_conv2d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    style: torch.Tensor,
    demodulate: bool = True,
    upsample: bool = False,
    downsample: bool = False,
    blur_kernel: Optional[torch.Tensor] = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution exactly as the official grouped form computes it.

    ``weight`` [O, I, k, k] is the effective weight (equalised-lr scale already applied), ``style`` [B, I] the
    modulation. Each sample gets its own weight W_b = W * s_b (over I), demodulated per output channel, and the
    batch runs as one grouped convolution. Up/downsampling uses the FIR ``blur_kernel`` like rosinality.
    """
    b, in_ch, h, w = x.shape
    out_ch, _, k, _ = weight.shape
    wb = weight.unsqueeze(0) * style.reshape(b, 1, in_ch, 1, 1)
    if demodulate:
        wb = wb * torch.rsqrt(wb.pow(2).sum([2, 3, 4]) + eps).reshape(b, out_ch, 1, 1, 1)
    if upsample:
        factor = 2
        p = (blur_kernel.shape[0] - factor) - (k - 1)
        pad = ((p + 1) // 2 + factor - 1, p // 2 + 1)
        wt = wb.transpose(1, 2).reshape(b * in_ch, out_ch, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * in_ch, h, w), wt, stride=2, groups=b)
        out = out.reshape(b, out_ch, out.shape[2], out.shape[3])
        return upfirdn2d_ref(out, blur_kernel, pad=pad)
    if downsample:
        factor = 2
        p = (blur_kernel.shape[0] - factor) + (k - 1)
        x = upfirdn2d_ref(x, blur_kernel, pad=((p + 1) // 2, p // 2))
        h, w = x.shape[2], x.shape[3]
        out = F.conv2d(x.reshape(1, b * in_ch, h, w), wb.reshape(b * out_ch, in_ch, k, k), stride=2, groups=b)
        return out.reshape(b, out_ch, out.shape[2], out.shape[3])
    out = F.conv2d(x.reshape(1, b * in_ch, h, w), wb.reshape(b * out_ch, in_ch, k, k), padding=k // 2, groups=b)
    return out.reshape(b, out_ch, h, w)
