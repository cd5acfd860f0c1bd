"""Discriminator building blocks (rosinality layout): ConvLayer as an nn.Sequential, residual blocks with FIR
downsampling, and the minibatch standard-deviation feature."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from ganedit.errors import ConfigError
from ganedit.nn.equalized import Blur, EqualConv2d, FusedLeakyReLU


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d -> [FusedLeakyReLU]. Sequential indices are part of the state-dict keys:
    with downsampling 0 = blur (buffer ``kernel``), 1 = conv, 2 = activation; otherwise 0 = conv, 1 = activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """(conv2(conv1(x)) + skip(x)) / sqrt(2), halving the resolution."""

    def __init__(self, in_channels: int, out_channels: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) * (1 / math.sqrt(2))


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_features: int = 1, layout: str = "strided") -> torch.Tensor:
    """Append the minibatch standard deviation as ``num_features`` extra channels.

    ``layout="strided"`` (official): samples b, b + B/G, b + 2B/G, ... form one group of G = min(B, group_size).
    ``"contiguous"``: samples [kG, (k+1)G) form a group, so a batch cut into per-process shares of a multiple of
    G samples gets the same groups as one process (the strided groups depend on B, hence on the share).
    The statistic is sqrt(biased variance over the group + 1e-8), averaged over channels and pixels of each
    feature slice.
    """
    b, c, h, w = x.shape
    g = min(b, group_size)
    if b % g:
        raise ConfigError(f"minibatch stddev needs a batch divisible by min(batch, {group_size}); got batch {b}")
    if layout == "strided":
        y = x.reshape(g, b // g, num_features, c // num_features, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)  # [B/G, F, C/F, H, W]
        y = y.mean([2, 3, 4]).reshape(b // g, num_features, 1, 1)
        y = y.repeat(g, 1, h, w)
    elif layout == "contiguous":
        y = x.reshape(b // g, g, num_features, c // num_features, h, w)
        y = torch.sqrt(y.var(1, unbiased=False) + 1e-8)  # [B/G, F, C/F, H, W]
        y = y.mean([2, 3, 4]).reshape(b // g, num_features, 1, 1)
        y = y.repeat_interleave(g, 0).expand(b, num_features, h, w)
    else:
        raise ConfigError(f"minibatch stddev layout must be strided or contiguous, got {layout!r}")
    return torch.cat([x, y.to(x.dtype)], 1)
