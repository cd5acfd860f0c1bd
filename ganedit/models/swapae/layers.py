"""Layers of the official Swapping Autoencoder (taesungp/swapping-autoencoder-pytorch), with its key names.

They look like rosinality's StyleGAN2 layers but differ where it matters for official weights
(conformance/swapae/README.md §3):

* the modulated convolution scales the *input activations* by the style and normalises the weight per output
  channel independently of the style: ``conv(x * rms_norm(s), l2norm(W))`` -- not StyleGAN2's per-sample weight
  demodulation. This is also what makes it fast: every sample shares one dense weight, no grouped conv;
* encoder ResBlocks use reflection padding and a [1,2,1] blur; the texture branch uses valid strided convs;
* ``ConvLayer`` keeps the official child names ``Blur`` / ``Conv`` / ``Act``, so state dicts load as they are.

Speed without changing the maths: every activation is leaky ReLU(0.2)·√2 and leaky ReLU is positively
homogeneous, so the √2 gain (and a residual 1/√2) is folded into the conv weights and biases, which are tiny next
to the activations; the activation then runs in place. Results match the official formulation to float rounding.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


def normalize(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Official code normalisation along dim 1: v / sqrt(sum(v^2) + eps) (per position for the structure code)."""
    return v * torch.rsqrt(v.pow(2).sum(1, keepdim=True) + eps)


def make_kernel(taps: Sequence[float], gain: float = 1.0) -> torch.Tensor:
    """2-D FIR kernel: outer product of the 1-D taps, normalised to sum to `gain`."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def lrelu_(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU(0.2) in place on a fresh conv/linear output (autograd allows it: the backward of leaky ReLU
    only needs the sign of its output, and conv/linear do not keep their outputs)."""
    if x.is_leaf and x.requires_grad:
        return F.leaky_relu(x, LRELU_SLOPE)
    return F.leaky_relu_(x, LRELU_SLOPE)


def frozen_cache(module: nn.Module, tag: object, sources: Sequence[torch.Tensor], make) -> torch.Tensor:
    """``make()`` computed once and reused while no gradient is recorded and ``sources`` are unchanged.

    Effective weights (equalised scale, gains, the style-independent demodulation, channels_last reordering) are
    pure functions of the parameters; recomputing them on every inference call costs as much as a small layer.
    The key holds each source's version counter and storage, so optimiser steps, ``load_state_dict`` and ``.to()``
    invalidate it. With autograd on, nothing is cached."""
    if torch.is_grad_enabled():
        return make()
    key = (tag, torch.is_inference_mode_enabled(), tuple((t._version, t.data_ptr(), t.device, t.dtype) for t in sources))
    cache = module.__dict__.setdefault("_frozen_cache", {})
    hit = cache.get(tag)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = make()
    cache[tag] = (key, value)
    return value


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _like_input(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Store a conv weight in the input's memory format so oneDNN does not reorder it on every call."""
    return w.contiguous(memory_format=torch.channels_last) if _channels_last(x) else w.contiguous()


class Blur(nn.Module):
    """Depthwise FIR filter (a true convolution, i.e. the flipped kernel correlated) after padding.

    ``pad`` = (before, after) on both axes; ``reflect`` pads by reflection (the official encoder) instead of zeros."""

    def __init__(self, taps: Sequence[float], pad: Tuple[int, int], gain: float = 1.0, reflect: bool = False, stride: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps, gain))
        self.pad = (int(pad[0]), int(pad[1]))
        self.reflect = reflect
        self.stride = stride  # >1 only when a strided 1x1 conv follows: compute just the samples it keeps
        self.identity = len(taps) == 1  # a [1] kernel with no padding is the identity

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        p0, p1 = self.pad
        if self.identity and p0 == 0 and p1 == 0 and self.stride == 1:
            return x if bias is None else x + bias.view(1, -1, 1, 1)
        channels = x.shape[1]
        weight = frozen_cache(self, ("w", channels, x.dtype), [self.kernel], lambda: torch.flip(self.kernel, [0, 1]).to(x.dtype)[None, None].expand(channels, 1, -1, -1).contiguous())
        if self.reflect:
            x = F.pad(x, (p0, p1, p0, p1), mode="reflect")
            return F.conv2d(x, weight, bias, stride=self.stride, groups=channels)
        k, s = self.kernel.shape[0], self.stride
        # symmetric zero padding done by the conv itself when it yields the same kept samples (no padded copy)
        same = all((n + p0 + p1 - k) // s == (n + 2 * p0 - k) // s for n in x.shape[2:])
        if p0 == p1 or (p0 > p1 and same):
            return F.conv2d(x, weight, bias, stride=s, padding=p0, groups=channels)
        x = F.pad(x, (p0, p1, p0, p1))
        return F.conv2d(x, weight, bias, stride=s, groups=channels)


class EqualConv2d(nn.Module):
    """Conv with the equalised learning rate: weight N(0,1) stored, scaled by 1/sqrt(in*k*k) at run time."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor, gain: float = 1.0, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``gain`` multiplies the whole output (folded into the weights); ``bias`` (already scaled) overrides."""
        b = bias if bias is not None else (self.bias * gain if self.bias is not None else None)
        if self.weight.shape[2] == 1 and self.stride == 1 and self.padding == 0 and _channels_last(x):
            # a 1x1 conv on channels_last data is a matmul over the channel axis of an (N, H, W, C) view
            w = frozen_cache(self, ("lin", gain), [self.weight], lambda: self.weight[:, :, 0, 0] * (self.scale * gain))
            return F.linear(x.permute(0, 2, 3, 1), w, b).permute(0, 3, 1, 2)
        k = self.weight.shape[2]
        ho = (x.shape[2] + 2 * self.padding - k) // self.stride + 1
        wo = (x.shape[3] + 2 * self.padding - k) // self.stride + 1
        if not torch.is_grad_enabled() and x.shape[0] * ho * wo <= 1024 and k > 1:
            # tiny outputs with big weights (the texture branch: 1024->2048 channels on 7x7): oneDNN re-packs the
            # whole weight on every call; a GEMM on the unfolded input reads the cached matrix once
            w2 = frozen_cache(self, ("gemm", gain), [self.weight], lambda: (self.weight * (self.scale * gain)).flatten(1).contiguous())
            cols = F.unfold(x, k, padding=self.padding, stride=self.stride)  # (N, C*k*k, L)
            out = F.linear(cols.transpose(1, 2).reshape(-1, cols.shape[1]), w2, b)  # one GEMM: (N*L, O)
            return out.view(x.shape[0], ho, wo, -1).permute(0, 3, 1, 2)
        w = frozen_cache(self, ("w", gain, _channels_last(x)), [self.weight], lambda: _like_input(self.weight * (self.scale * gain), x))
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate; optional fused leaky ReLU·√2 (bias inside the activation)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = SQRT2 if self.activate else 1.0
        w = frozen_cache(self, "w", [self.weight], lambda: self.weight * (self.scale * gain))
        out = F.linear(x, w, self.bias * gain if self.activate else self.bias)
        return lrelu_(out) if self.activate else out


class FusedLeakyReLU(nn.Module):
    """Holds the per-channel bias of leaky_relu(x + b, 0.2)·√2 (official key ``Act.bias``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, *([1] * (x.dim() - 2))), LRELU_SLOPE) * SQRT2


class ConvLayer(nn.Module):
    """The official ``ConvLayer``: [Blur (when downsampling)] -> Conv -> [Act].

    With an activation the bias lives in ``Act.bias``; without, in ``Conv.bias`` (if any). Downsampling blurs with
    padding ``p = (len(taps)-2) + (k-1)`` split ``((p+1)//2, p//2)`` (or the given ``pad``) then convolves with
    stride 2 and no padding. Without downsampling the conv pads ``k//2`` (or ``pad``), by reflection if asked.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        downsample: bool = False,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
        pad: Optional[int] = None,
        reflect: bool = False,
    ) -> None:
        super().__init__()
        self.reflect_pad = 0
        if downsample:
            p = (len(blur_taps) - 2) + (kernel_size - 1) if pad is None else pad
            # a 1x1 conv commutes with subsampling: let the blur keep only every other sample
            blur_stride = 2 if kernel_size == 1 else 1
            self.Blur = Blur(blur_taps, ((p + 1) // 2, p // 2), reflect=reflect, stride=blur_stride)
            stride, padding = 2 // blur_stride, 0
        else:
            self.Blur = None
            stride, padding = 1, (kernel_size // 2 if pad is None else pad)
            if reflect:
                self.reflect_pad, padding = padding, 0
        self.Conv = EqualConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias and not activate)
        self.Act = FusedLeakyReLU(out_ch) if (activate and bias) else None
        self.activate = activate
        if activate and not bias:
            raise ValueError("an activation without bias is never used by these networks")

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """Returns ``gain`` times the official output (exact for gain > 0 because leaky ReLU is homogeneous)."""
        if self.Blur is not None:
            x = self.Blur(x)
        elif self.reflect_pad:
            p = self.reflect_pad
            x = F.pad(x, (p, p, p, p), mode="reflect")
        if self.Act is None:
            return self.Conv(x, gain)
        return lrelu_(self.Conv(x, gain * SQRT2, bias=self.Act.bias * (gain * SQRT2)))


class ResBlock(nn.Module):
    """conv1 (in->in, 3x3, act), conv2 (in->out, 3x3, [blur + stride 2], act), 1x1 skip without bias or act;
    output (main + skip)/√2. The encoder's blocks pad conv1 and conv2's blur by reflection."""

    def __init__(self, in_ch: int, out_ch: int, blur_taps: Sequence[float] = (1, 3, 3, 1), reflect: bool = False, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, reflect=reflect)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=downsample, blur_taps=blur_taps, reflect=reflect)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=downsample, blur_taps=blur_taps, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = 1.0 / SQRT2  # the residual average, folded into both branches
        out = self.conv2(self.conv1(x), g)
        return out.add_(self.skip(x, g)) if not out.requires_grad else out + self.skip(x, g)


class ModulatedConv2d(nn.Module):
    """The official modulated conv: ``conv(x * s', W / |W|_out)`` with s = EqualLinear(style) (bias init 1),
    s' = s / rms(s) when demodulating (else s'=s and W is only equalised). Weight stored as [1, out, in, k, k].
    ``upsample``: stride-2 transposed conv, then a [1,3,3,1]x4 blur with pad (1, 1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True, upsample: bool = False, blur_taps: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.upsample = upsample
        if upsample:
            p = (len(blur_taps) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_taps, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.demodulate = demodulate
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)

    def style(self, texture: torch.Tensor) -> torch.Tensor:
        """Per-sample input scaling s' (B, in)."""
        s = self.modulation(texture)
        if self.demodulate:
            s = s * torch.rsqrt(s.pow(2).mean(1, keepdim=True) + 1e-8)
        return s

    def effective_weight(self, gain: float = 1.0) -> torch.Tensor:
        """scale·W, L2-normalised per output channel when demodulating (style-independent), times gain."""
        w = self.weight[0] * self.scale
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
        return w * gain if gain != 1.0 else w

    def _weight_for(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        if self.upsample:  # conv_transpose2d wants (in, out, k, k)
            make = lambda: _like_input(self.effective_weight(gain).transpose(0, 1), x)  # noqa: E731
        else:
            make = lambda: _like_input(self.effective_weight(gain), x)  # noqa: E731
        return frozen_cache(self, ("w", gain, _channels_last(x)), [self.weight], make)

    def forward(self, x: torch.Tensor, texture: torch.Tensor, gain: float = 1.0, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """gain·conv(...) (+ bias, added after the blur when upsampling)."""
        s = self.style(texture)
        if self.kernel_size == 1 and not self.upsample and _channels_last(x):
            # 1x1 (ToRGB): scale and matmul over the channel axis of the (N, H, W, C) view, no conv dispatch
            w = frozen_cache(self, ("lin", gain), [self.weight], lambda: self.effective_weight(gain)[:, :, 0, 0])
            return F.linear(x.permute(0, 2, 3, 1) * s[:, None, None, :], w, bias).permute(0, 3, 1, 2)
        x = x * s[:, :, None, None]
        w = self._weight_for(x, gain)
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, w, stride=2), bias)
        return F.conv2d(x, w, bias, padding=self.kernel_size // 2)


class NoiseInjection(nn.Module):
    """x + weight·noise with noise (B or 1, 1, H, W); drawn from N(0,1) when none is given."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None, gain: float = 1.0) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
        elif noise.shape[-2:] != x.shape[-2:] and noise.numel() > 1:
            noise = F.interpolate(noise, x.shape[-2:], mode="nearest")  # as the official fixed noise does
        wn = noise.to(x.dtype) * (self.weight * gain)
        return x.add_(wn) if not x.requires_grad else x + wn


class StyledConv(nn.Module):
    """Modulated conv -> noise -> leaky ReLU(x + bias)·√2 (official keys ``conv``, ``noise``, ``activate``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False, blur_taps: Sequence[float] = (1, 3, 3, 1), use_noise: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)
        self.use_noise = use_noise

    def forward(self, x: torch.Tensor, texture: torch.Tensor, noise: Optional[torch.Tensor] = None, gain: float = 1.0) -> torch.Tensor:
        g = gain * SQRT2
        out = self.conv(x, texture, g, bias=self.activate.bias * g)
        if self.use_noise:
            out = self.noise(out, noise, g)
        return lrelu_(out)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, plus a (1,3,1,1) bias. ``upsample`` is saved but never used."""

    def __init__(self, in_ch: int, style_dim: int, blur_taps: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = _UnusedUpsample(blur_taps)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)

    def forward(self, x: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        return self.conv(x, texture, bias=self.bias.view(3))


class _UnusedUpsample(nn.Module):
    """Only carries the FIR kernel buffer (x4) the official ToRGB saves (``G.ToRGB.upsample.kernel``)."""

    def __init__(self, taps: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps, 4.0))
