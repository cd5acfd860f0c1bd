"""StyleGAN2 generator and discriminator with rosinality's state-dict layout (conformance README §3).

``Generator.forward`` accepts rosinality's call (a list of styles, ``input_is_latent``, ``noise``,
``randomize_noise``, ``truncation``, ``truncation_latent``, ``inject_index``, ``return_latents``) so official
vectors replay exactly; ``mapping``, ``synthesis`` and ``StyleGAN2.sample`` are the clean API.
The channel table is configurable (rosinality's default, a base/max/multiplier rule, or an explicit dict).
"""
from __future__ import annotations

import math
import os
import random
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ganedit.checks import MAX_CHANNELS, MAX_DEPTH, Each, Range, channels as width, check_values, optional, side
from ganedit.errors import ConfigError
from ganedit.formats.native import register_model
from ganedit.nn import ConstantInput, ConvLayer, EqualLinear, PixelNorm, ResBlock, StyledConv, ToRGB, minibatch_stddev

NoiseArg = Union[None, str, Sequence[Optional[torch.Tensor]]]


def channel_table(
    size: int,
    channel_multiplier: int = 2,
    channel_base: Optional[int] = None,
    channel_max: int = 512,
    channels: Optional[Mapping] = None,
) -> Dict[int, int]:
    """Channels per resolution 4..size.

    Rosinality's table {4..32: 512, 64: 256*cm, 128: 128*cm, ..., 1024: 16*cm} is min(16384*cm / res, 512),
    so ``channel_base`` defaults to 16384 * channel_multiplier. An explicit ``channels`` dict (keys may be
    strings, as after a JSON round trip) overrides entries.
    """
    base = channel_base if channel_base is not None else 16384 * channel_multiplier
    table = {2**i: max(1, min(base // 2**i, channel_max)) for i in range(2, int(math.log2(size)) + 1)}
    for k, v in (channels or {}).items():
        table[int(k)] = int(v)
    return table


# Constructor arguments shared by Generator and Discriminator, checked before anything is built.
LIMITS = {
    "size": side(4),
    "style_dim": width(),
    "n_mlp": Range(0, MAX_DEPTH, integer=True),
    "channel_multiplier": Range(1, 64, integer=True),
    "blur_kernel": Each(Range(-1e6, 1e6), 1, 16),
    "lr_mlp": Range(0, 1e6, above=True),
    "channel_base": optional(Range(1, MAX_CHANNELS * 2**13, integer=True)),  # 2**13: the largest side's log
    "channel_max": width(),
    "stddev_group": Range(1, 1 << 16, integer=True),
    "in_channels": width(),
}


def _check_args(**values: object) -> None:
    check_values(values, LIMITS)
    table = values.get("channels")
    if table is None:
        return
    if not isinstance(table, Mapping):
        raise ConfigError(f"channels={table!r}: must be a mapping from resolution to width, e.g. {{\"4\": 512}}")
    for key, value in table.items():
        try:
            resolution = int(key)
        except (TypeError, ValueError):
            resolution = -1
        if resolution < 4 or resolution & (resolution - 1):
            raise ConfigError(f"channels key {key!r}: must be a power-of-two resolution >= 4")
        check_values({f"channels[{key}]": value}, {f"channels[{key}]": width()})


def _check_size(size: int) -> int:
    check_values({"size": size}, LIMITS)
    log = int(math.log2(size)) if size > 0 else 0
    if size < 4 or 2**log != size:
        raise ConfigError(f"StyleGAN2 size must be a power of two >= 4, got {size}")
    return log


def _table_arg(table: Dict[int, int]) -> Dict[str, int]:
    return {str(k): int(v) for k, v in sorted(table.items())}


@register_model("stylegan2.Generator")
class Generator(nn.Module):
    """Mapping network (PixelNorm + n_mlp EqualLinear, lr_mul lr_mlp) and synthesis network."""

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        channels: Optional[Mapping] = None,
        channel_base: Optional[int] = None,
        channel_max: int = 512,
    ) -> None:
        super().__init__()
        _check_args(style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier, blur_kernel=blur_kernel, lr_mlp=lr_mlp,
                    channels=channels, channel_base=channel_base, channel_max=channel_max)
        self.size, self.style_dim = size, style_dim
        self.log_size = _check_size(size)
        self.channels = channel_table(size, channel_multiplier, channel_base, channel_max, channels)
        blur_kernel = list(blur_kernel)

        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)])
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept so the module tree reads like the official one
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for k in range(self.num_layers):
            res = 2 ** ((k + 5) // 2)
            self.noises.register_buffer(f"noise_{k}", torch.randn(1, 1, res, res))
        in_ch = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_ch = self.channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            # the official Generator builds ToRGB(out_channel, style_dim): its skip upsampling always uses the
            # default [1, 3, 3, 1] taps, whatever blur_kernel the convolutions use
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        # channels_last keeps every conv in the CPU kernels' native layout (no reorders between layers)
        self.channels_last = True

    # -- mapping ---------------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z [B, style_dim] (or [B, n, style_dim]) -> w, optionally truncated towards ``truncation_latent``."""
        w = self.style(z.reshape(-1, z.shape[-1])).reshape(z.shape)
        return self.truncate(w, truncation, truncation_latent)

    get_latent = mapping

    @staticmethod
    def truncate(w: torch.Tensor, truncation: float, truncation_latent: Optional[torch.Tensor]) -> torch.Tensor:
        """w_avg + psi * (w - w_avg); a no-op when psi >= 1 (as in the official code)."""
        if truncation >= 1:
            return w
        if truncation_latent is None:
            raise ConfigError("truncation < 1 needs a truncation_latent (the average w)")
        return truncation_latent + truncation * (w - truncation_latent)

    @torch.no_grad()
    def mean_latent(self, n_latent: int = 4096, seed: Optional[int] = None) -> torch.Tensor:
        """Average w over n random z, [1, style_dim]."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n_latent, self.style_dim, generator=gen).to(self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def make_noise(self, batch: int = 1, seed: Optional[int] = None) -> List[torch.Tensor]:
        """A fresh list of num_layers noise maps [batch, 1, H, W]."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return [torch.randn(batch, 1, 2 ** ((k + 5) // 2), 2 ** ((k + 5) // 2), generator=gen).to(self.input.input.device)
                for k in range(self.num_layers)]

    # -- synthesis -------------------------------------------------------------------------------------
    def synthesis(self, latent: torch.Tensor, noise: NoiseArg = "const") -> torch.Tensor:
        """w+ [B, n_latent, style_dim] (or w [B, style_dim]) -> image [B, 3, size, size] in about [-1, 1].

        ``noise``: "const" (the stored buffers), "random" (fresh N(0,1) every call), or a list of num_layers
        tensors [1 or B, 1, H, W] (None entries draw fresh noise).
        """
        if latent.dim() == 2:
            latent = latent.unsqueeze(1).expand(-1, self.n_latent, -1)
        if latent.shape[1] != self.n_latent:
            raise ConfigError(f"w+ has {latent.shape[1]} rows, this {self.size}px generator needs {self.n_latent}")
        if isinstance(noise, str):
            if noise == "const":
                noise = [getattr(self.noises, f"noise_{k}") for k in range(self.num_layers)]
            elif noise == "random":
                noise = [None] * self.num_layers
            else:
                raise ConfigError(f"noise must be 'const', 'random' or a list of tensors, got {noise!r}")
        elif noise is None:
            noise = [None] * self.num_layers
        if len(noise) != self.num_layers:
            raise ConfigError(f"noise list has {len(noise)} entries, this generator needs {self.num_layers}")
        out = self.input(latent.shape[0])
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * j](out, latent[:, i], noise=noise[2 * j + 1])
            out = self.convs[2 * j + 1](out, latent[:, i + 1], noise=noise[2 * j + 2])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip.contiguous()

    # -- rosinality-compatible call --------------------------------------------------------------------
    def forward(
        self,
        styles: Union[torch.Tensor, Sequence[torch.Tensor]],
        return_latents: bool = False,
        inject_index: Optional[int] = None,
        truncation: float = 1,
        truncation_latent: Optional[torch.Tensor] = None,
        input_is_latent: bool = False,
        noise: Optional[Sequence[Optional[torch.Tensor]]] = None,
        randomize_noise: bool = True,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Same arguments and results as rosinality's ``Generator.forward``: (image, latent or None)."""
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = "random" if randomize_noise else "const"
        if truncation < 1:
            styles = [self.truncate(s, truncation, truncation_latent) for s in styles]
        if len(styles) < 2:
            s = styles[0]
            latent = s.unsqueeze(1).repeat(1, self.n_latent, 1) if s.dim() < 3 else s
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.n_latent - 1)
            first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
            latent = torch.cat([first, second], 1)
        image = self.synthesis(latent, noise)
        return image, (latent if return_latents else None)


@register_model("stylegan2.Discriminator")
class Discriminator(nn.Module):
    """Residual discriminator with minibatch stddev (group 4; ``stddev_layout`` "contiguous" groups consecutive
    samples, which multi-process training needs, see ``minibatch_stddev``); logits [B, 1]."""

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        channels: Optional[Mapping] = None,
        channel_base: Optional[int] = None,
        channel_max: int = 512,
        stddev_group: int = 4,
        in_channels: int = 3,
        stddev_layout: str = "strided",
    ) -> None:
        super().__init__()
        _check_args(channel_multiplier=channel_multiplier, blur_kernel=blur_kernel, channels=channels, channel_base=channel_base,
                    channel_max=channel_max, stddev_group=stddev_group, in_channels=in_channels)
        self.size = size
        if stddev_layout not in ("strided", "contiguous"):
            raise ConfigError(f"stddev_layout must be strided (official) or contiguous, got {stddev_layout!r}")
        self.stddev_layout = stddev_layout  # see nn.discriminator.minibatch_stddev
        log_size = _check_size(size)
        self.channels = channel_table(size, channel_multiplier, channel_base, channel_max, channels)
        blur_kernel = list(blur_kernel)
        layers: List[nn.Module] = [ConvLayer(in_channels, self.channels[size], 1)]
        in_ch = self.channels[size]
        for i in range(log_size, 2, -1):
            out_ch = self.channels[2 ** (i - 1)]
            layers.append(ResBlock(in_ch, out_ch, blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*layers)
        self.stddev_group, self.stddev_feat = stddev_group, 1
        self.final_conv = ConvLayer(in_ch + 1, self.channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(self.channels[4] * 4 * 4, self.channels[4], activation="fused_lrelu"),
            EqualLinear(self.channels[4], 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.convs(image)
        out = minibatch_stddev(out, self.stddev_group, self.stddev_feat, self.stddev_layout)
        out = self.final_conv(out)
        return self.final_linear(out.reshape(out.shape[0], -1))


def _flatten_extra(obj, tensors: Dict[str, torch.Tensor]):
    """JSON skeleton of a nested container; tensors are replaced by {"__tensor__": name} and collected."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj
        return {"__tensor__": name, "shape": list(obj.shape), "dtype": str(obj.dtype).replace("torch.", "")}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten_extra(k, tensors), _flatten_extra(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__": [_flatten_extra(v, tensors) for v in obj]}
    if hasattr(obj, "__dict__") and type(obj).__name__ == "Namespace":
        return {"__namespace__": _flatten_extra(vars(obj), tensors)}
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"cannot keep a {type(obj).__name__} from the checkpoint")


def _unflatten_extra(node, tensors: Mapping[str, torch.Tensor]):
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]].clone()
        if "__dict__" in node:
            return {_unflatten_extra(k, tensors): _unflatten_extra(v, tensors) for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_unflatten_extra(v, tensors) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_unflatten_extra(v, tensors) for v in node["__tuple__"])
        if "__namespace__" in node:
            import argparse

            return argparse.Namespace(**_unflatten_extra(node["__namespace__"], tensors))
        if "__float__" in node:
            return float(node["__float__"])
    return node


def _skeleton_tensors(node, found: Dict[str, dict]) -> None:
    if isinstance(node, dict):
        if "__tensor__" in node:
            found[node["__tensor__"]] = node
            return
        for v in node.values():
            _skeleton_tensors(v, found)
    elif isinstance(node, list):
        for v in node:
            _skeleton_tensors(v, found)


class _ExtraState(nn.Module):
    """Holds the non-network entries of a rosinality training checkpoint (optimiser states, args, ada_aug_p)
    so that export writes them back bit for bit. Tensors are buffers; the structure lives in the config."""

    def __init__(self, skeleton: dict) -> None:
        super().__init__()
        found: Dict[str, dict] = {}
        _skeleton_tensors(skeleton, found)
        for name, spec in found.items():
            self.register_buffer(name, torch.zeros(spec["shape"], dtype=getattr(torch, spec["dtype"])))


@register_model("stylegan2.StyleGAN2")
class StyleGAN2(nn.Module):
    """What a rosinality checkpoint holds: ``g_ema`` + ``latent_avg`` [+ ``g``, ``d``, training state].

    ``generator`` / ``discriminator`` are the constructor arguments of :class:`Generator` / :class:`Discriminator`.
    ``has_latent_avg`` is False for train.py files (their latent_avg is then estimated with a fixed seed and not
    exported). ``extra`` is the JSON skeleton of any other entries (see :class:`_ExtraState`).
    """

    def __init__(
        self,
        generator: Mapping,
        discriminator: Optional[Mapping] = None,
        with_g: bool = False,
        has_latent_avg: bool = True,
        extra: Optional[Mapping] = None,
        key_order: Optional[Sequence[str]] = None,
        latent_avg_shape: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        self.g_ema = Generator(**generator)
        if with_g:
            self.g = Generator(**generator)
        if discriminator is not None:
            self.d = Discriminator(**discriminator)
        shape = list(latent_avg_shape) if latent_avg_shape else [self.g_ema.style_dim]
        if shape[-1:] != [self.g_ema.style_dim]:  # truncation reads the last dimension as one w
            raise ConfigError(f"latent_avg_shape {shape} does not fit style_dim {self.g_ema.style_dim}: expected [..., {self.g_ema.style_dim}]")
        self.register_buffer("latent_avg", torch.zeros(shape))
        self.has_latent_avg = has_latent_avg
        self.extra_skeleton = extra
        if extra is not None:
            self.extra = _ExtraState(dict(extra))
        self.key_order = list(key_order) if key_order else None

    @property
    def n_latent(self) -> int:
        return self.g_ema.n_latent

    @property
    def style_dim(self) -> int:
        return self.g_ema.style_dim

    @property
    def size(self) -> int:
        return self.g_ema.size

    @property
    def w_avg(self) -> torch.Tensor:
        """The average w as [style_dim], whatever shape the source file stored."""
        return self.latent_avg.reshape(-1)[: self.style_dim]

    def mapping(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        return self.g_ema.mapping(z, truncation, self.w_avg)

    def synthesis(self, wplus: torch.Tensor, noise: NoiseArg = "const") -> torch.Tensor:
        return self.g_ema.synthesis(wplus, noise)

    decode = synthesis

    def forward(self, *args, **kwargs):
        """The rosinality generator call on g_ema."""
        return self.g_ema(*args, **kwargs)

    @torch.no_grad()
    def sample(self, n: int, truncation: float = 1.0, seed: int = 0, noise: NoiseArg = "const", batch_size: int = 16) -> torch.Tensor:
        """n images from z ~ N(0, I) drawn with ``seed`` (the i-th image depends only on seed and i)."""
        z = self.seed_z(seed, n)
        images = [self.synthesis(self.mapping(z[i:i + batch_size], truncation), noise) for i in range(0, n, batch_size)]
        return torch.cat(images)

    def seed_z(self, seed: int, n: int = 1) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.style_dim, generator=gen).to(self.latent_avg.device)


class _SynthesisWithFixedNoise(nn.Module):
    """w+ -> image with the generator's stored noise: the graph ONNX export sees."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(wplus, noise="const")


def export_onnx(model: nn.Module, path, batch: int = 1, opset: int = 18) -> "os.PathLike[str]":
    """Export the synthesis network (input ``wplus`` [batch, n_latent, style_dim], output ``image``) with the
    stored noise maps baked in. Needs the optional ``onnx`` package."""
    from pathlib import Path

    generator = model.g_ema if isinstance(model, StyleGAN2) else model
    if not isinstance(generator, Generator):
        raise ConfigError(f"ONNX export needs a StyleGAN2 generator, got {type(model).__name__}")
    from ganedit.nn import ModulatedConv2d

    wrapper = _SynthesisWithFixedNoise(generator).eval()
    example = torch.zeros(batch, generator.n_latent, generator.style_dim)
    path = Path(path)
    # the activation-scaling form keeps conv weights static, which ONNX needs (grouped per-sample weights are not)
    convs = [m for m in generator.modules() if isinstance(m, ModulatedConv2d)]
    saved = [m.fused for m in convs]
    for m in convs:
        m.fused = True
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (example,), str(path), input_names=["wplus"], output_names=["image"],
                              opset_version=opset, dynamo=True, verbose=False)
    finally:
        for m, f in zip(convs, saved):
            m.fused = f
    return path
