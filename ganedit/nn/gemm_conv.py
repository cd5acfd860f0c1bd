"""Conv2d / ConvTranspose2d with the same parameters and state-dict keys, that compute some shapes as one GEMM.

Why: on a CPU, PyTorch's oneDNN convolution reorders the weight into its blocked layout on every call. On large
maps that cost vanishes in the arithmetic, but the deepest levels of an encoder-decoder (1x1 to 8x8 maps with
512-1024 channels: 4-33 MB of weights and little arithmetic) then run at a few GFLOP/s, far below a plain matrix
product of the whole batch against the weight. Transposed convolutions with very few output channels (a ToRGB
with 3) are the other slow case. Here those shapes are:

* ``GemmConv2d``: patches (im2col on a channels-last view) times the weight matrix, giving channels-last output;
* ``GemmConvTranspose2d``: input rows times the weight matrix (one column block per kernel tap), then col2im.

Both are exact rewrites (the same sums, in a different order: results agree to float rounding), differentiable,
and fall back to the regular kernel for every other shape, under tracing/compiling (ONNX export sees the standard
ops) and inside :func:`native_convolutions` (used to count FLOPs with the standard kernels).
"""
from __future__ import annotations

import contextlib
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.ops.standard import ThreadSwitch

_NATIVE = ThreadSwitch()


def native_convolutions() -> "contextlib.AbstractContextManager[None]":
    """Inside this block (this thread) every Gemm* layer runs PyTorch's regular convolution kernel."""
    return _NATIVE.turned_on()


def _plain_layer(layer: nn.Module) -> bool:
    return (_NATIVE.on or layer.groups != 1 or layer.dilation != (1, 1) or torch.jit.is_tracing()
            or torch.compiler.is_compiling())


def _channels_last(x: torch.Tensor) -> bool:
    return x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)


class GemmConv2d(nn.Conv2d):
    """nn.Conv2d that runs outputs of at most ``gemm_max_positions`` positions (N*H_out*W_out, whole batch) as
    im2col + GEMM (zero padding only)."""

    gemm_max_positions = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.padding, str) or _plain_layer(self) or self.padding_mode != "zeros":
            return super().forward(x)  # ("same"/"valid" padding strings and non-zero padding modes included)
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if n * ho * wo > self.gemm_max_positions:
            return super().forward(x)
        windows = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).unfold(1, kh, sh).unfold(2, kw, sw)  # n, ho, wo, c, kh, kw
        weight = self.weight
        if _channels_last(weight):  # memory [cout, kh, kw, cin]: take patches in (kh, kw, c) order, weight as a view
            rows = windows.permute(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * c)
            matrix = weight.permute(0, 2, 3, 1).reshape(self.out_channels, kh * kw * c)
        else:
            rows = windows.reshape(n * ho * wo, c * kh * kw)
            matrix = weight.reshape(self.out_channels, c * kh * kw)
        out = rows @ matrix.t() if self.bias is None else torch.addmm(self.bias, rows, matrix.t())
        out = out.view(n, ho, wo, self.out_channels).permute(0, 3, 1, 2)  # channels-last memory
        return out if _channels_last(x) else out.contiguous()


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d that runs inputs of at most ``gemm_max_positions`` positions (N*H*W), or layers with at
    most ``gemm_max_columns`` output values per input position (C_out*kh*kw, e.g. a ToRGB), as GEMM + col2im."""

    gemm_max_positions = 64
    gemm_max_columns = 64

    def forward(self, x: torch.Tensor, output_size: Optional[List[int]] = None) -> torch.Tensor:
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        cout = self.out_channels
        small = n * h * w <= self.gemm_max_positions or cout * kh * kw <= self.gemm_max_columns
        if output_size is not None or not small or _plain_layer(self):
            return super().forward(x, output_size)
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        weight = self.weight
        if not _channels_last(weight):  # [cin, cout * kh * kw], column index cout-major as col2im wants
            cols = (rows @ weight.reshape(c, cout * kh * kw)).view(n, h * w, cout * kh * kw).transpose(1, 2)
        else:  # channels-last weight: memory is [cin, kh, kw, cout], so this reshape is a view
            cols = rows @ weight.permute(0, 2, 3, 1).reshape(c, kh * kw * cout)
            cols = cols.view(n, h * w, kh * kw, cout).permute(0, 3, 2, 1).reshape(n, cout * kh * kw, h * w)
        out_h = (h - 1) * self.stride[0] - 2 * self.padding[0] + kh + self.output_padding[0]
        out_w = (w - 1) * self.stride[1] - 2 * self.padding[1] + kw + self.output_padding[1]
        # col2im needs the padded extent; crop the padding (and nothing else) afterwards
        full = F.fold(cols, (out_h + 2 * self.padding[0], out_w + 2 * self.padding[1]), (kh, kw), stride=self.stride)
        out = full[:, :, self.padding[0] : self.padding[0] + out_h, self.padding[1] : self.padding[1] + out_w]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out.contiguous(memory_format=torch.channels_last) if _channels_last(x) else out.contiguous()
