"""IR and IR-SE bottleneck units (ArcFace's improved residual units), the backbone of pSp, e4e and the identity
network. Attribute names follow pSp's ``models/encoders/helpers.py`` (``shortcut_layer``, ``res_layer``, ``fc1``,
``fc2``) so official state dicts load unchanged (conformance/stylegan2/README.md §4)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.errors import ConfigError

# Units per block of the IR-50 / 100 / 152 backbones.
UNITS_PER_BLOCK = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
DEPTHS = (64, 128, 256, 512)


class UnitSpec(NamedTuple):
    in_channels: int
    depth: int
    stride: int


def unit_counts(num_layers: int = 50, units: Optional[Sequence[int]] = None) -> Tuple[int, ...]:
    """Units per block: explicit ``units`` (small models) or the standard table for ``num_layers``."""
    if units is not None:
        return tuple(int(u) for u in units)
    if num_layers not in UNITS_PER_BLOCK:
        raise ConfigError(f"IR backbone depth must be one of {sorted(UNITS_PER_BLOCK)}, got {num_layers}")
    return UNITS_PER_BLOCK[num_layers]


def backbone_units(num_layers: int = 50, depths: Sequence[int] = DEPTHS, in_channels: int = 64,
                   units: Optional[Sequence[int]] = None) -> List[UnitSpec]:
    """The unit list of an IR backbone: each block starts with a stride-2 unit, the rest keep the size."""
    units = unit_counts(num_layers, units)
    if len(units) != len(depths):
        raise ConfigError(f"{len(units)} unit counts for {len(depths)} block depths")
    specs: List[UnitSpec] = []
    previous = in_channels
    for count, depth in zip(units, depths):
        specs.append(UnitSpec(previous, depth, 2))
        specs.extend(UnitSpec(depth, depth, 1) for _ in range(count - 1))
        previous = depth
    return specs


def block_ends(units: Sequence[int]) -> Tuple[int, ...]:
    """Index of the last unit of each block (the feature-pyramid taps: 2, 6, 20, 23 for IR-50)."""
    ends, total = [], 0
    for count in units:
        total += count
        ends.append(total - 1)
    return tuple(ends)


class SEModule(nn.Module):
    """Squeeze-excitation: x * sigmoid(fc2(relu(fc1(mean over H, W of x)))), 1x1 convs without bias."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels // reduction < 1:
            raise ConfigError(f"SE reduction {reduction} leaves no channels of {channels}; use a smaller se_reduction")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the 1x1 convs on a 1x1 map are matrix products: F.linear skips the slow small-conv path
        squeezed = x.mean(dim=(2, 3))
        hidden = torch.relu(F.linear(squeezed, self.fc1.weight.flatten(1)))
        gate = torch.sigmoid(F.linear(hidden, self.fc2.weight.flatten(1)))
        return x * gate[:, :, None, None]


class Subsample(nn.Module):
    """Keep every ``stride``-th pixel: what the official ``MaxPool2d(1, stride)`` shortcut computes, without
    the pooling kernel (it has no state, so the keys are unchanged)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]


class SubsampledConv1x1(nn.Conv2d):
    """A 1x1 convolution with stride s computed as subsampling then a stride-1 1x1 conv: the same numbers, a
    quarter of the work, and it avoids torch's CPU backward of strided 1x1 convs on channels_last inputs,
    which corrupts memory (torch 2.13). Parameters and keys are those of ``nn.Conv2d(in, out, 1, stride)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, 1, 1, bias=False)
        self.subsample = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subsample > 1:
            x = x[:, :, :: self.subsample, :: self.subsample]
        return super().forward(x)


class BottleneckIR(nn.Module):
    """res + shortcut (no activation after the sum); res = BN, 3x3 conv, PReLU, 3x3 conv (stride), BN [, SE]."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool = False, se_reduction: int = 16) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(SubsampledConv1x1(in_channels, depth, stride), nn.BatchNorm2d(depth))
        layers: List[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def make_body(specs: Sequence[UnitSpec], mode: str = "ir_se", se_reduction: int = 16) -> nn.Sequential:
    """The ``body`` Sequential of IR (``mode='ir'``) or IR-SE (``'ir_se'``) units."""
    if mode not in ("ir", "ir_se"):
        raise ConfigError(f"IR backbone mode must be 'ir' or 'ir_se', got {mode!r}")
    return nn.Sequential(*[BottleneckIR(s.in_channels, s.depth, s.stride, mode == "ir_se", se_reduction) for s in specs])


def input_layer(in_channels: int, width: int = 64) -> nn.Sequential:
    """3x3 conv (no bias), BN, PReLU: the stem shared by every pSp / e4e encoder."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))
