"""Style-modulated layers of the StyleGAN2 synthesis network (rosinality state-dict names)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ganedit.nn.equalized import Blur, EqualLinear, FusedLeakyReLU, Upsample
from ganedit.ops import fused_leaky_relu, modulated_conv2d, weight_sq


class ModulatedConv2d(nn.Module):
    """Modulated (and by default demodulated) conv. Stored ``weight`` is [1, O, I, k, k] like the official
    file; ``modulation`` maps w to the per-input-channel scales s (bias initialised to 1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        fused: Optional[bool] = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.upsample, self.downsample, self.demodulate = upsample, downsample, demodulate
        self.fused = fused  # None: the op picks grouped or activation-scaling per call
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        elif downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1)
        self._cache_key: Optional[tuple] = None
        self._cache: Tuple[torch.Tensor, Optional[torch.Tensor]] = (self.weight, None)

    def effective_weight(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(W * scale as [O, I, k, k], its demodulation sums or None).

        Without autograd the pair is cached until the stored weight changes (in-place updates bump its
        version), in the layout the CPU conv wants, so inference does not rebuild a 9 MB tensor per layer."""
        if (torch.is_grad_enabled() and self.weight.requires_grad) or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self.weight[0] * self.scale, None
        key = (self.weight._version, self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if self._cache_key != key:
            # a normal (not inference-mode) tensor: a frozen decoder may later back-propagate through it
            with torch.inference_mode(False), torch.no_grad():
                w = self.weight[0] * self.scale
                if self.upsample:  # conv_transpose2d reads it as [I, O, k, k]
                    w = w.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)
                elif self.kernel_size > 1:
                    w = w.contiguous(memory_format=torch.channels_last)
                self._cache = (w, weight_sq(w))
            self._cache_key = key
        return self._cache

    def forward(self, x: torch.Tensor, w: torch.Tensor, add: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None, gain: float = 1.0) -> torch.Tensor:
        """x [B, I, H, W], w [B, style_dim] -> gain * (conv + add + bias); ``add`` is broadcast-added to the
        output (e.g. scaled noise), ``bias`` [O] per channel (see :func:`ganedit.ops.modulated_conv2d`)."""
        style = self.modulation(w)
        blur = self.blur.kernel if (self.upsample or self.downsample) else None
        weight, wsq = self.effective_weight()
        return modulated_conv2d(
            x, weight, style, demodulate=self.demodulate, upsample=self.upsample, downsample=self.downsample,
            blur_kernel=blur, fused=self.fused, add=add, wsq=wsq, bias=bias, gain=gain,
        )

    def output_size(self, h: int, w: int) -> Tuple[int, int]:
        if self.upsample:
            return 2 * h, 2 * w
        if self.downsample:
            return h // 2, w // 2
        return h, w

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, upsample={self.upsample}, "
                f"downsample={self.downsample}, demodulate={self.demodulate}")


class NoiseInjection(nn.Module):
    """x + weight * noise, noise [1 or B, 1, H, W]; fresh N(0,1) noise when none is given."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def scaled_noise(self, like: torch.Tensor, size: Tuple[int, int], noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """weight * noise, [B or 1, 1, H, W]; fresh N(0,1) noise of ``size`` when none is given."""
        if noise is None:
            noise = like.new_empty(like.shape[0], 1, *size).normal_()
        return self.weight.to(like.dtype) * noise.to(like.dtype)

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None, inplace: bool = False) -> torch.Tensor:
        scaled = self.scaled_noise(x, (x.shape[2], x.shape[3]), noise)
        if inplace and not (torch.is_grad_enabled() and (x.requires_grad or scaled.requires_grad)):
            return x.add_(scaled)
        return x + scaled


class ConstantInput(nn.Module):
    """The learned 4x4 constant the synthesis network starts from; parameter ``input`` [1, C, size, size]."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv -> noise -> bias + leaky ReLU * sqrt(2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=demodulate, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        # noise joins the demodulation pass; `out` is a fresh tensor owned here, so inference updates it in place
        add = self.noise.scaled_noise(x, self.conv.output_size(x.shape[2], x.shape[3]), noise)
        act = self.activate
        if act.scale <= 0:
            return act(self.conv(x, w, add=add), inplace=True)
        # leaky_relu(y + b) * g = leaky_relu(g * (y + b)) for g > 0: the conv applies bias and gain (on its
        # weights or its demodulation pass), which leaves one pass over the output instead of three
        out = self.conv(x, w, add=add, bias=act.bias, gain=act.scale)
        return fused_leaky_relu(out, None, act.negative_slope, 1.0, inplace=True)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation + bias [1, C, 1, 1] (+ FIR-upsampled skip image)."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1), out_channels: int = 3) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = self.conv(x, w, bias=self.bias.reshape(-1))
        if skip is not None:
            skip = self.upsample(skip)
            # `out` is fresh: add in place when autograd does not need it
            out = out.add_(skip) if not (torch.is_grad_enabled() and (out.requires_grad or skip.requires_grad)) else out + skip
        return out
