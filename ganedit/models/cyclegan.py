"""CycleGAN networks (Zhu et al. 2017) with the official junyanz state-dict layout:

* ``ResnetGenerator``: reflection-padded 7x7 conv, two stride-2 convs, ``n_blocks`` residual blocks (6 or 9),
  two stride-2 transposed convs (``upsample="resize"``: nearest x2 + 3x3 conv instead), a 7x7 conv and tanh.
  Image sides must be multiples of 4.
* ``GeneratorPair``: G_A (A->B) and G_B (B->A) saved together, so one native checkpoint translates both ways.

The discriminator of CycleGAN is the PatchGAN of :mod:`ganedit.models.pix2pix` with InstanceNorm.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn as nn

from ganedit.errors import ConfigError
from ganedit.formats.native import register_model, registered_models
from ganedit.models.pix2pix import ResizeConv2d, check_size, check_translation_args, init_weights, make_norm, uses_bias

DIRECTIONS = ("AtoB", "BtoA")


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``, conv_block = [pad, conv3x3, norm, ReLU, (Dropout), pad, conv3x3, norm] with
    reflection padding (the official generator always uses it). Dropout shifts the indices of the second half,
    exactly as in official files."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: List[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register_model("cyclegan.ResnetGenerator")
class ResnetGenerator(nn.Module):
    """The CycleGAN generator (resnet_9blocks for 256 px, resnet_6blocks for 128 px in the paper). Official
    CycleGAN defaults: InstanceNorm, no dropout."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        use_dropout: bool = False,
        init_type: str = "normal",
        init_gain: float = 0.02,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        check_translation_args(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks, use_dropout=use_dropout, init_type=init_type,
                               init_gain=init_gain, upsample=upsample)
        make_norm(norm, 1)
        bias = uses_bias(norm)
        layers: List[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), make_norm(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # two stride-2 downsamplings
            c = ngf * 2**i
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), make_norm(norm, c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):  # two stride-2 upsamplings
            c = ngf * 2 ** (2 - i)
            up = (nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias) if upsample == "transposed"
                  else ResizeConv2d(c, c // 2, bias=bias))
            layers += [
                up,
                make_norm(norm, c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)

    size_multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            check_size(x, self.size_multiple, "resnet generator")
        return self.model(x)


def build_registered(spec: Dict[str, Any]) -> nn.Module:
    """Build a registered model from {"model_type": name, "config": {...}} (the form GeneratorPair stores)."""
    import ganedit.models.pix2pix  # noqa: F401  (registers the U-Net and discriminators)

    name = spec.get("model_type")
    cls = registered_models().get(name)  # type: ignore[arg-type]
    if cls is None:
        raise ConfigError(f"unknown generator type {name!r}")
    return cls(**spec.get("config", {}))


def spec_of(model: nn.Module) -> Dict[str, Any]:
    return {"model_type": model.model_type, "config": model.config}  # type: ignore[attr-defined]


@register_model("cyclegan.GeneratorPair")
class GeneratorPair(nn.Module):
    """G_A (A->B) and G_B (B->A) of one CycleGAN, saved and loaded together. ``forward(x, direction)``."""

    def __init__(self, G_A: Dict[str, Any], G_B: Dict[str, Any]) -> None:
        super().__init__()
        self.G_A = build_registered(G_A)
        self.G_B = build_registered(G_B)

    @classmethod
    def of(cls, G_A: nn.Module, G_B: nn.Module) -> "GeneratorPair":
        """Wrap two built generators (weights are copied)."""
        pair = cls(spec_of(G_A), spec_of(G_B))
        pair.G_A.load_state_dict(G_A.state_dict())
        pair.G_B.load_state_dict(G_B.state_dict())
        return pair

    def generator(self, direction: str = "AtoB") -> nn.Module:
        if direction not in DIRECTIONS:
            raise ConfigError(f"unknown direction {direction!r}: choose AtoB or BtoA")
        return self.G_A if direction == "AtoB" else self.G_B

    def forward(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        return self.generator(direction)(x)


def select_generator(model: nn.Module, direction: str = "AtoB") -> nn.Module:
    """The generator for ``direction``: from a GeneratorPair either one; a single generator only maps A->B (its
    own input domain to its output domain), so BtoA is an error for it."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}: choose AtoB or BtoA")
    if isinstance(model, GeneratorPair):
        return model.generator(direction)
    if not hasattr(model, "size_multiple"):
        raise ConfigError(f"{type(model).__name__} is not an image-to-image generator (expected a pix2pix or CycleGAN generator)")
    if direction == "BtoA":
        raise ConfigError(
            "this model holds a single generator (A->B) and no B->A generator; use --direction AtoB, or a CycleGAN "
            "checkpoint with both G_A and G_B (a ganedit CycleGAN save, or an official folder with latest_net_G_A.pth and latest_net_G_B.pth)"
        )
    return model
