"""Encoder and generator of the Swapping Autoencoder, official structure and key names (README §2-3).

Encoder: FromRGB -> residual downsampling trunk -> (a) structure head: two 1x1 convs to a spatial code,
L2-normalised per position; (b) texture head: valid stride-2 convs, global mean, one linear, L2-normalised.
Generator: the structure code modulated by the texture code, styled residual blocks at the code's resolution,
styled upsampling residual blocks, and a ToRGB without demodulation. Widths are explicit lists, so that any
depth and capacity (the official 256/512/1024 models, or 64 px models with small channels) is one constructor.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.models.swapae.layers import SQRT2, ConvLayer, EqualLinear, ResBlock, StyledConv, ToRGB, normalize

NoiseSpec = Union[None, str, Mapping[str, torch.Tensor]]

ENCODER_BLUR = (1, 2, 1)  # the "antialias" option of the official encoder
GENERATOR_BLUR = (1, 3, 3, 1)


class StructureTextureEncoder(nn.Module):
    """``channels[i]`` is the width after i downsamplings (official ``nc(i)``), for i = 0 .. sp + gl."""

    def __init__(self, channels: Sequence[int], structure_channels: int, texture_channels: int, num_downsampling_sp: int, num_downsampling_gl: int = 2) -> None:
        super().__init__()
        sp, gl = num_downsampling_sp, num_downsampling_gl
        if len(channels) != sp + gl + 1:
            raise ValueError(f"encoder needs {sp + gl + 1} widths for {sp}+{gl} downsamplings, got {len(channels)}")
        self.num_downsampling_sp, self.num_downsampling_gl = sp, gl
        self.FromRGB = ConvLayer(3, channels[0], 1)
        self.DownToSpatialCode = nn.Sequential()
        for i in range(sp):
            self.DownToSpatialCode.add_module(f"ResBlockDownBy{2 ** i}", ResBlock(channels[i], channels[i + 1], ENCODER_BLUR, reflect=True))
        mid = channels[sp]
        self.ToSpatialCode = nn.Sequential(ConvLayer(mid, mid, 1), ConvLayer(mid, structure_channels, 1, activate=False, bias=True))
        self.DownToGlobalCode = nn.Sequential()
        for i in range(gl):
            k = sp + i
            # valid 3x3 stride-2 convs: the [1] "blur" with pad 0 is the identity, kept for its saved kernel
            self.DownToGlobalCode.add_module(f"ConvLayerDownBy{2 ** k}", ConvLayer(channels[k], channels[k + 1], 3, downsample=True, blur_taps=(1,), pad=0))
        self.ToGlobalCode = nn.Sequential(EqualLinear(channels[sp + gl], texture_channels))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.DownToSpatialCode(self.FromRGB(x))

    def heads(self, mid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised structure and texture codes from the trunk output."""
        sp = self.ToSpatialCode(mid)
        gl = self.ToGlobalCode(self.DownToGlobalCode(mid).mean(dim=(2, 3)))
        return sp, gl

    def features(self, mid: torch.Tensor) -> torch.Tensor:
        """The official ``extract_features`` map: reflect-pad left/top by 1, first texture conv, bilinear to 7x7."""
        f = self.DownToGlobalCode[0](F.pad(mid, (1, 0, 1, 0), mode="reflect"))
        return F.interpolate(f, size=(7, 7), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, extract_features: bool = False):
        mid = self.trunk(x)
        sp, gl = self.heads(mid)
        if extract_features:
            return normalize(sp), normalize(gl), self.features(mid)
        return normalize(sp), normalize(gl)


class SpatialCodeModulation(nn.Module):
    """x = structure * A(texture) + B(texture) per channel (multiplicative scale, not 1 + A)."""

    def __init__(self, texture_channels: int, structure_channels: int) -> None:
        super().__init__()
        self.scale = EqualLinear(texture_channels, structure_channels)
        self.bias = EqualLinear(texture_channels, structure_channels)

    def forward(self, sp: torch.Tensor, gl: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias(gl)[:, :, None, None], sp, self.scale(gl)[:, :, None, None])


class HeadResBlock(nn.Module):
    """Two styled 3x3 convs at the structure resolution; 1x1 skip (no bias, no act) when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int) -> None:
        super().__init__()
        # the official block never passes use_noise, so its convs always inject noise
        self.conv1 = StyledConv(in_ch, out_ch, 3, style_dim, blur_taps=GENERATOR_BLUR)
        self.conv2 = StyledConv(out_ch, out_ch, 3, style_dim, blur_taps=GENERATOR_BLUR)
        self.skip = ConvLayer(in_ch, out_ch, 1, activate=False, bias=False) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, gl: torch.Tensor, n1: Optional[torch.Tensor], n2: Optional[torch.Tensor]) -> torch.Tensor:
        g = 1.0 / SQRT2
        skip = self.skip(x, g) if isinstance(self.skip, ConvLayer) else x * g
        res = self.conv2(self.conv1(x, gl, n1), gl, n2, gain=g)
        return res.add_(skip) if not res.requires_grad else res + skip


class UpsamplingResBlock(nn.Module):
    """Styled conv with ×2 upsampling, styled conv; skip = bilinear ×2 of (1x1 conv + act when the width changes)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, use_noise: bool = True) -> None:
        super().__init__()
        self.conv1 = StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_taps=GENERATOR_BLUR, use_noise=use_noise)
        self.conv2 = StyledConv(out_ch, out_ch, 3, style_dim, blur_taps=GENERATOR_BLUR, use_noise=use_noise)
        self.skip = ConvLayer(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, gl: torch.Tensor, n1: Optional[torch.Tensor], n2: Optional[torch.Tensor]) -> torch.Tensor:
        g = 1.0 / SQRT2
        if isinstance(self.skip, ConvLayer):
            skip = F.interpolate(self.skip(x, g), scale_factor=2, mode="bilinear", align_corners=False)
        else:
            skip = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).mul_(g)
        res = self.conv2(self.conv1(x, gl, n1), gl, n2, gain=g)
        return res.add_(skip) if not res.requires_grad else res + skip


class SwapGenerator(nn.Module):
    """``head_channels``: widths of HeadResnetBlock0.. ; ``up_channels``: widths of the upsampling blocks, named
    ``UpsamplingResBlock{16,32,...}`` whatever the real resolution (official naming)."""

    def __init__(self, structure_channels: int, texture_channels: int, head_channels: Sequence[int], up_channels: Sequence[int], use_noise: bool = True) -> None:
        super().__init__()
        self.num_head, self.num_up = len(head_channels), len(up_channels)
        self.SpatialCodeModulation = SpatialCodeModulation(texture_channels, structure_channels)
        ch = structure_channels
        for i, out in enumerate(head_channels):
            self.add_module(f"HeadResnetBlock{i}", HeadResBlock(ch, out, texture_channels))
            ch = out
        for j, out in enumerate(up_channels):
            self.add_module(f"UpsamplingResBlock{2 ** (4 + j)}", UpsamplingResBlock(ch, out, texture_channels, use_noise))
            ch = out
        self.ToRGB = ToRGB(ch, texture_channels, GENERATOR_BLUR)

    def blocks(self) -> List[Tuple[str, nn.Module]]:
        names = [f"HeadResnetBlock{i}" for i in range(self.num_head)] + [f"UpsamplingResBlock{2 ** (4 + j)}" for j in range(self.num_up)]
        return [(n, getattr(self, n)) for n in names]

    def noise_shapes(self, structure_hw: Tuple[int, int]) -> Dict[str, Tuple[int, int]]:
        """Spatial size of every NoiseInjection, keyed by its official module path (``<block>.conv{1,2}.noise``)."""
        h, w = structure_hw
        shapes: Dict[str, Tuple[int, int]] = {}
        for name, block in self.blocks():
            if isinstance(block, UpsamplingResBlock):
                h, w = 2 * h, 2 * w
            shapes[f"{name}.conv1.noise"] = (h, w)
            shapes[f"{name}.conv2.noise"] = (h, w)
        return shapes

    def make_noise(self, batch: int, structure_hw: Tuple[int, int], generator: Optional[torch.Generator] = None, device=None) -> Dict[str, torch.Tensor]:
        """Fixed N(0,1) noise for every layer, (batch, 1, H, W) each (the official ``fix_noise``)."""
        device = device or self.ToRGB.bias.device
        return {k: torch.randn(batch, 1, h, w, generator=generator, device=device) for k, (h, w) in self.noise_shapes(structure_hw).items()}

    def forward(self, sp: torch.Tensor, gl: torch.Tensor, noise: NoiseSpec = None, return_intermediates: bool = False):
        """Image from a structure code (B, C, h, w) and a texture code (B, D); both are re-normalised here.

        ``noise``: None draws fresh N(0,1) noise per layer (official default); a dict keyed like
        :meth:`noise_shapes` gives fixed noise (batch 1 broadcasts); ``"zero"`` switches noise off."""
        sp, gl = normalize(sp), normalize(gl)
        x = self.SpatialCodeModulation(sp, gl)
        inter = {"SpatialCodeModulation": x} if return_intermediates else None
        for name, block in self.blocks():
            n1 = _pick_noise(noise, f"{name}.conv1.noise", x)
            n2 = _pick_noise(noise, f"{name}.conv2.noise", x)
            x = block(x, gl, n1, n2)
            if inter is not None:
                inter[name] = x
        rgb = self.ToRGB(x, gl)
        return (rgb, inter) if return_intermediates else rgb


def _pick_noise(noise: NoiseSpec, key: str, like: torch.Tensor) -> Optional[torch.Tensor]:
    if noise is None:
        return None
    if isinstance(noise, str):
        if noise != "zero":
            raise ValueError(f"noise must be None, 'zero' or a dict of tensors, got {noise!r}")
        return like.new_zeros(1, 1, 1, 1)
    if key not in noise:
        raise KeyError(f"fixed noise has no entry {key!r}")
    return noise[key]
