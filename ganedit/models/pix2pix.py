"""pix2pix networks (Isola et al. 2017) with the state-dict layout of the official junyanz code, so that its
``latest_net_G.pth`` / ``latest_net_D.pth`` files load without renaming a key:

* ``UnetGenerator``: the recursive U-Net (``num_downs`` 8 = unet_256, 7 = unet_128, any depth >= 5);
* ``NLayerDiscriminator``: the PatchGAN (n_layers 3 = the 70x70 "basic" D);
* ``PixelDiscriminator``: the 1x1 PixelGAN.

Shared pieces used by the CycleGAN generator too: ``make_norm`` (batch / instance / none, with the official
bias rule), ``init_weights`` (the official normal init, gain 0.02), the two test modes and dropout-mask replay.

Test modes (DESIGN.md §3): ``"eval"`` is ``model.eval()`` (running BatchNorm statistics, no dropout, i.e. the
official ``test.py --eval``); ``"official"`` is the official default, the net left in train mode: BatchNorm uses the
statistics of the batch and Dropout(0.5) stays on. For nets with InstanceNorm and no dropout the two coincide.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.checks import MAX_CHANNELS, MAX_IMAGE_SIDE, MAX_DEPTH, OneOf, Range, channels, check_values
from ganedit.errors import ConfigError
from ganedit.formats.native import register_model
from ganedit.nn.gemm_conv import GemmConv2d, GemmConvTranspose2d

NORMS = ("batch", "instance", "none")
TEST_MODES = ("eval", "official")
# How a generator doubles its resolution: "transposed" (official: a stride-2 transposed conv, whose uneven kernel
# overlap paints a checkerboard until training evens it out) or "resize" (nearest-neighbour x2, then a 3x3 conv:
# every output pixel gets the same number of kernel taps, so there is no checkerboard to unlearn; Odena et al. 2016).
UPSAMPLES = ("transposed", "resize")


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance normalisation without affine parameters or running statistics (the official setting).

    Computed as group norm with one channel per group: the same numbers, but PyTorch's CPU group-norm kernel keeps
    channels_last and is several times faster than its instance-norm path, which reshapes to a batch norm."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, eps=self.eps)


INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
# Shared by the generators and discriminators of pix2pix and CycleGAN (their constructor argument names).
# Widths grow to 8 * ngf / ndf, so those are bounded by MAX_CHANNELS / 8.
TRANSLATION_LIMITS = {
    "input_nc": channels(), "output_nc": channels(),
    "ngf": channels(MAX_CHANNELS // 8), "ndf": channels(MAX_CHANNELS // 8),
    # unet_N has log2(N) levels; a U-Net deeper than the largest image side could never run
    "num_downs": Range(5, MAX_IMAGE_SIDE.bit_length() - 1, integer=True),
    "n_layers": Range(1, MAX_DEPTH, integer=True), "n_blocks": Range(0, MAX_DEPTH, integer=True),
    "init_type": OneOf(INIT_TYPES), "init_gain": Range(0, 10.0),
    "use_dropout": OneOf((True, False)),
    "upsample": OneOf(UPSAMPLES),
}


def check_translation_args(**values: object) -> None:
    """Range-check the constructor arguments of a translation network before anything is built."""
    check_values(values, TRANSLATION_LIMITS)


def make_norm(norm: str, channels: int) -> nn.Module:
    """The official norm layer factory: BatchNorm2d(affine, running stats), InstanceNorm2d (no affine, no running
    stats) or Identity for ``"none"``."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return InstanceNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def uses_bias(norm: str) -> bool:
    """The official bias rule: convolutions followed by a norm have a bias only with InstanceNorm (with "none" the
    official factory is a plain function, so its check also gives False)."""
    return norm == "instance"


@torch.no_grad()
def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """The official initialisation: conv weights ~ N(0, gain) (or xavier / kaiming / orthogonal), conv biases 0,
    BatchNorm weights ~ N(1, gain) and biases 0. Modules are visited children first, like ``Module.apply``."""

    def visit(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ConfigError(f"unknown init type {init_type!r}: choose normal, xavier, kaiming or orthogonal")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(visit)


def check_size(x: torch.Tensor, multiple: int, what: str) -> None:
    """Raise a ConfigError unless both image sides are positive multiples of ``multiple``."""
    if x.dim() != 4:
        raise ConfigError(f"{what} expects a batch of images [N, C, H, W], got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ConfigError(
            f"{what} needs image sides that are multiples of {multiple}; got {w}x{h} "
            f"(resize or crop, e.g. to {max(multiple, round(w / multiple) * multiple)}x{max(multiple, round(h / multiple) * multiple)})"
        )


def set_test_mode(model: nn.Module, mode: str) -> nn.Module:
    """``"eval"``: model.eval(); ``"official"``: the official test default, train mode (batch statistics, dropout
    on; note that BatchNorm then also updates its running buffers, as in the official code)."""
    if mode == "eval":
        return model.eval()
    if mode == "official":
        return model.train()
    raise ConfigError(f"unknown test mode {mode!r}: choose one of {', '.join(TEST_MODES)}")


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class ReplayDropout(nn.Module):
    """Dropout with a fixed keep-mask: ``x * mask / (1 - p)``, to reproduce a recorded train-mode forward."""

    def __init__(self, mask: torch.Tensor, p: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32), persistent=False)
        self.scale = 1.0 / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask * self.scale


def dropout_sites(model: nn.Module) -> List[str]:
    """Module paths of every Dropout in the model (the names that ``replay_dropout`` accepts)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]


@contextlib.contextmanager
def replay_dropout(model: nn.Module, masks: Dict[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Temporarily replace the Dropout modules named in ``masks`` by ReplayDropout with those keep-masks."""
    originals = {}
    try:
        for name, mask in masks.items():
            original = model.get_submodule(name)
            if not isinstance(original, nn.Dropout):
                raise ConfigError(f"{name} is not a dropout site (sites: {', '.join(dropout_sites(model)) or 'none'})")
            originals[name] = original
            model.set_submodule(name, ReplayDropout(mask, original.p))
        yield model
    finally:
        for name, original in originals.items():
            model.set_submodule(name, original)


class ResizeConv2d(nn.Module):
    """x2 nearest-neighbour upsampling, then a 3x3 conv (padding 1): the resize-convolution alternative to a
    stride-2 transposed conv, same input and output shapes."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = GemmConv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def make_upsample(in_channels: int, out_channels: int, upsample: str, bias: bool = True) -> nn.Module:
    """A x2 upsampling conv: the official 4x4 stride-2 transposed conv or ``ResizeConv2d`` (see UPSAMPLES)."""
    if upsample == "transposed":
        return GemmConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=bias)
    if upsample == "resize":
        return ResizeConv2d(in_channels, out_channels, bias=bias)
    raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {upsample!r}")


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``x -> [x, up(sub(down(x)))]`` (concatenated on channels), or without the concatenation at
    the outermost level. ``self.model`` is a Sequential whose indices match the official keys:
    outermost [down-conv, sub, ReLU, up-conv, Tanh]; innermost [LReLU, down-conv, ReLU, up-conv, up-norm];
    middle [LReLU, down-conv, down-norm, sub, ReLU, up-conv, up-norm, (Dropout)]."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: Optional[int] = None,
        submodule: Optional[nn.Module] = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        bias = uses_bias(norm)
        down_conv = GemmConv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        # The official LeakyReLU is in place and so also rewrites the skip tensor; the parent applies ReLU to the
        # concatenation next, and ReLU(LReLU(d)) == ReLU(d), so an out-of-place LReLU gives identical outputs.
        down_act = nn.LeakyReLU(0.2)
        up_act = nn.ReLU(inplace=True)
        if outermost:
            up_conv = make_upsample(inner_nc * 2, outer_nc, upsample)
            layers: List[nn.Module] = [down_conv, submodule, up_act, up_conv, nn.Tanh()]
        elif innermost:
            up_conv = make_upsample(inner_nc, outer_nc, upsample, bias)
            layers = [down_act, down_conv, up_act, up_conv, make_norm(norm, outer_nc)]
        else:
            up_conv = make_upsample(inner_nc * 2, outer_nc, upsample, bias)
            layers = [down_act, down_conv, make_norm(norm, inner_nc), submodule, up_act, up_conv, make_norm(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


@register_model("pix2pix.UnetGenerator")
class UnetGenerator(nn.Module):
    """The pix2pix U-Net: ``num_downs`` stride-2 levels (8 = unet_256, 7 = unet_128), so each image side must be
    a multiple of 2**num_downs. Channels ngf, 2ngf, 4ngf, then 8ngf for every deeper level; dropout 0.5 in the
    three decoder levels next to the bottleneck (pix2pix default: on). ``upsample="resize"`` replaces every
    transposed conv by nearest x2 + 3x3 conv (``UPSAMPLES``; the official checkpoints are "transposed")."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
        init_type: str = "normal",
        init_gain: float = 0.02,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        check_translation_args(input_nc=input_nc, output_nc=output_nc, num_downs=num_downs, ngf=ngf, use_dropout=use_dropout,
                               init_type=init_type, init_gain=init_gain, upsample=upsample)
        make_norm(norm, 1)  # validates the name before building
        self.num_downs = num_downs
        up = dict(norm=norm, upsample=upsample)
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **up)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **up)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **up)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **up)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            check_size(x, self.size_multiple, f"unet (depth {self.num_downs})")
        return self.model(x)


@register_model("pix2pix.NLayerDiscriminator")
class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs, ``n_layers`` stride-2 levels (channels ndf * min(2**n, 8)), one stride-1 level and a
    1-channel stride-1 output; n_layers=3 is the 70x70 "basic" discriminator. pix2pix feeds it cat(A, B)."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 init_type: str = "normal", init_gain: float = 0.02) -> None:
        super().__init__()
        check_translation_args(input_nc=input_nc, ndf=ndf, n_layers=n_layers, init_type=init_type, init_gain=init_gain)
        make_norm(norm, 1)
        bias = uses_bias(norm)
        layers: List[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias), make_norm(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_model("pix2pix.PixelDiscriminator")
class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convs ndf -> 2ndf -> 1, a real/fake logit per pixel."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, norm: str = "batch",
                 init_type: str = "normal", init_gain: float = 0.02) -> None:
        super().__init__()
        check_translation_args(input_nc=input_nc, ndf=ndf, init_type=init_type, init_gain=init_gain)
        make_norm(norm, 1)
        bias = uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            make_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )
        init_weights(self, init_type, init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def unet_num_downs(name: str) -> int:
    """'unet_256' -> 8, 'unet_128' -> 7, 'unet_N' -> log2(N) for a power of two N >= 32."""
    try:
        side = int(name.split("_", 1)[1])
    except (IndexError, ValueError):
        raise ConfigError(f"not a U-Net name: {name!r} (expected unet_<size>, e.g. unet_256)") from None
    depth = side.bit_length() - 1
    if side != 2**depth or depth < 5:
        raise ConfigError(f"{name}: the size must be a power of two >= 32")
    return depth


def define_G(netG: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
             use_dropout: bool = True, **kwargs) -> nn.Module:
    """A generator by its official ``--netG`` name: unet_<size> (unet_256, unet_128, ...) or resnet_<n>blocks."""
    if netG.startswith("unet_"):
        return UnetGenerator(input_nc, output_nc, unet_num_downs(netG), ngf, norm, use_dropout, **kwargs)
    if netG.startswith("resnet_") and netG.endswith("blocks"):
        from ganedit.models.cyclegan import ResnetGenerator

        try:
            n_blocks = int(netG[len("resnet_"):-len("blocks")])
        except ValueError:
            raise ConfigError(f"not a ResNet generator name: {netG!r} (e.g. resnet_9blocks)") from None
        return ResnetGenerator(input_nc, output_nc, ngf, n_blocks, norm, use_dropout, **kwargs)
    raise ConfigError(f"unknown generator {netG!r}: use unet_256, unet_128 (or unet_<size>), resnet_9blocks or resnet_6blocks")


def define_D(netD: str, input_nc: int, ndf: int = 64, n_layers_D: int = 3, norm: str = "batch", **kwargs) -> nn.Module:
    """A discriminator by its official ``--netD`` name: basic (70x70 PatchGAN), n_layers or pixel."""
    if netD == "basic":
        return NLayerDiscriminator(input_nc, ndf, 3, norm, **kwargs)
    if netD == "n_layers":
        return NLayerDiscriminator(input_nc, ndf, n_layers_D, norm, **kwargs)
    if netD == "pixel":
        return PixelDiscriminator(input_nc, ndf, norm, **kwargs)
    raise ConfigError(f"unknown discriminator {netD!r}: use basic, n_layers or pixel")


def export_onnx(generator: nn.Module, path: str, height: int = 256, width: int = 256, batch: int = 1,
                dynamo: bool = True, opset_version: int = 18) -> None:
    """Export a generator in eval mode to ONNX for a fixed input size (sides must fit the network).
    ``dynamo=False`` uses the TorchScript exporter, which is much faster for tests."""
    generator = generator.eval()
    example = torch.zeros(batch, int(generator.config["input_nc"]), height, width)
    check_size(example, int(getattr(generator, "size_multiple", 1)), type(generator).__name__)
    with torch.no_grad():
        if dynamo:
            torch.onnx.export(generator, (example,), path, dynamo=True, external_data=False, opset_version=opset_version)
        else:
            torch.onnx.export(generator, (example,), path, dynamo=False, opset_version=min(opset_version, 17),
                              input_names=["input"], output_names=["output"])
