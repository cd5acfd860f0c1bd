"""The two discriminators of the Swapping Autoencoder and the random crops the patch discriminator sees.

* Image discriminator: StyleGAN2's residual D without the minibatch-stddev layer (commented out in the official
  code), under the official key prefix ``D.stylegan2_D.``.
* Patch co-occurrence discriminator: encodes crops to (C, 2, 2) features; a reference is the mean feature of an
  image's crops; an MLP classifies the concatenation (reference, crop) as real or fake.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.models.swapae.layers import ConvLayer, EqualLinear, ResBlock

BLUR = (1, 3, 3, 1)

# rand(batch, *shape) -> uniform [0, 1) draws for each image of a batch, e.g. a training step's ``ctx.rand``,
# which draws for the global batch so that crops do not depend on the number of processes
RandFn = Callable[..., torch.Tensor]


def rounded_log2(size: int) -> int:
    """The official D is built for 2^round(log2(crop)) (a 768 crop gives a 1024 D with a 3x3 final map)."""
    return int(round(math.log2(size)))


class StyleGAN2Discriminator(nn.Module):
    """``channels``: widths at 2^L, 2^(L-1), ..., 4 for L = round(log2(image_size)); blocks named like the official
    code: ``str(9 - i)`` for i <= 8 else ``"{2^i}x{2^i}"``."""

    def __init__(self, image_size: int, channels: Sequence[int]) -> None:
        super().__init__()
        log_size = rounded_log2(image_size)
        if len(channels) != log_size - 1:
            raise ValueError(f"a D for {image_size} px needs {log_size - 1} widths (2^{log_size} .. 4), got {len(channels)}")
        self.side = int(4 * image_size / 2 ** log_size)
        convs = nn.Sequential()
        convs.add_module("0", ConvLayer(3, channels[0], 1))
        for k, i in enumerate(range(log_size, 2, -1)):
            name = str(9 - i) if i <= 8 else f"{2 ** i}x{2 ** i}"
            convs.add_module(name, ResBlock(channels[k], channels[k + 1], BLUR))
        self.convs = convs
        c4 = channels[-1]
        self.final_conv = ConvLayer(c4, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * self.side ** 2, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))


class ImageDiscriminator(nn.Module):
    """Wrapper that gives the official prefix ``D.stylegan2_D.``; returns a logit (B, 1)."""

    def __init__(self, image_size: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.stylegan2_D = StyleGAN2Discriminator(image_size, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stylegan2_D(x)


class PatchCooccurrenceDiscriminator(nn.Module):
    """``channels``: widths at 2^L .. 4 for L = ceil(log2(patch_size)); ``feature_channels``: width of the final
    (C, 2, 2) patch feature (official ``netPatchD_max_nc``); ``pair_hidden``: the MLP's hidden widths."""

    def __init__(self, patch_size: int, channels: Sequence[int], feature_channels: int, pair_hidden: Sequence[int] = (2048, 2048, 1024)) -> None:
        super().__init__()
        log_size = int(math.ceil(math.log2(patch_size)))
        if len(channels) != log_size - 1:
            raise ValueError(f"a patch D for {patch_size} px patches needs {log_size - 1} widths, got {len(channels)}")
        convs = nn.Sequential()
        convs.add_module("0", ConvLayer(3, channels[0], 3))
        for k, i in enumerate(range(log_size, 2, -1)):
            name = str(7 - i) if i <= 6 else f"{2 ** i}x{2 ** i}"
            convs.add_module(name, ResBlock(channels[k], channels[k + 1], BLUR))
        convs.add_module("5", ResBlock(channels[-1], 2 * feature_channels, downsample=False))
        convs.add_module("6", ConvLayer(2 * feature_channels, feature_channels, 3, pad=0))
        self.convs = convs
        widths = [feature_channels * 2 * 2 * 2, *pair_hidden]
        layers = [EqualLinear(a, b, activate=True) for a, b in zip(widths[:-1], widths[1:])]
        self.pairlinear = nn.Sequential(*layers, EqualLinear(widths[-1], 1))

    def extract_features(self, patches: torch.Tensor, aggregate: bool = False) -> torch.Tensor:
        """patches (B, T, 3, P, P) -> features (B*T, C, 2, 2); with ``aggregate`` each image's T features are
        replaced by their mean (the reference of the co-occurrence test)."""
        b, t = patches.shape[:2]
        f = self.convs(patches.flatten(0, 1))
        if aggregate:
            f = f.view(b, t, *f.shape[1:]).mean(1, keepdim=True).expand(-1, t, -1, -1, -1).flatten(0, 1)
        return f

    def discriminate_features(self, reference: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logit (N, 1) for each (reference, target) feature pair, reference first in the concatenation."""
        return self.pairlinear(torch.cat([reference.flatten(1), target.flatten(1)], dim=1))

    def forward(self, reference_patches: torch.Tensor, patches: torch.Tensor, aggregate: bool = True) -> torch.Tensor:
        return self.discriminate_features(self.extract_features(reference_patches, aggregate), self.extract_features(patches))


def draw_crop_params(batch: int, num_crops: int, min_scale: float, max_scale: float, generator: Optional[torch.Generator] = None, device=None,
                     rand: Optional[RandFn] = None) -> Dict[str, torch.Tensor]:
    """The random draws of the official ``apply_random_crop``, in its order: flip, scale (x, y), offset (x, y).

    Crop index = image * num_crops + t. Side fractions are independent for x and y; offsets keep the crop inside.
    ``rand`` (see :data:`RandFn`) replaces ``torch.rand(..., generator=generator)``; its draws are made per image
    (shape (batch, num_crops, ...)), which gives the same numbers in the same order for one process."""
    n = batch * num_crops

    def uniform(*tail: int) -> torch.Tensor:
        if rand is not None:
            return rand(batch, num_crops, *tail).reshape(n, *tail)
        return torch.rand(n, *tail, generator=generator, device=device)

    flip = torch.round(uniform(1, 1, 1)) * 2 - 1
    scale = uniform(1, 1, 2) * (max_scale - min_scale) + min_scale
    offset = (uniform(1, 1, 2) * 2 - 1) * (1 - scale)
    return {"flip": flip, "scale": scale, "offset": offset}


def crops_from_params(x: torch.Tensor, params: Dict[str, torch.Tensor], patch_size: int) -> torch.Tensor:
    """Resample crops with grid_sample (bilinear, zeros, align_corners False) -> (B, T, C, P, P)."""
    b, c = x.shape[:2]
    n = params["flip"].shape[0]
    t = n // b
    ramp = torch.linspace(-1, 1, patch_size, device=x.device, dtype=x.dtype)
    gx = params["flip"][..., 0] * ramp.view(1, 1, -1) * params["scale"][..., 0] + params["offset"][..., 0]  # (n,1,P)
    gy = ramp.view(1, -1, 1) * params["scale"][..., 1] + params["offset"][..., 1]  # (n,P,1)
    grid = torch.stack([gx.expand(n, patch_size, patch_size), gy.expand(n, patch_size, patch_size)], dim=-1)
    src = x.repeat_interleave(t, dim=0)
    out = F.grid_sample(src, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(b, t, c, patch_size, patch_size)


def random_crops(x: torch.Tensor, num_crops: int, patch_size: int, scale_range: Tuple[float, float] = (1 / 8, 1 / 4), generator: Optional[torch.Generator] = None,
                 rand: Optional[RandFn] = None) -> torch.Tensor:
    """``num_crops`` random crops per image of 1/8..1/4 of each side (independently), flipped with probability 0.5,
    resampled to ``patch_size`` (official ``util.apply_random_crop``); shape (B, T, C, P, P)."""
    params = draw_crop_params(x.shape[0], num_crops, scale_range[0], scale_range[1], generator, x.device, rand)
    return crops_from_params(x, params, patch_size)
