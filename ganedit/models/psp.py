"""pSp (pixel2style2pixel): IR-SE encoders into W / W+ of a frozen StyleGAN2 decoder.

Networks and state-dict keys follow eladrich/pixel2style2pixel (conformance/stylegan2/README.md §4):
``GradualStyleEncoder`` (feature pyramid + map2style blocks), ``BackboneEncoderUsingLastLayerIntoW`` and
``...IntoWPlus``. :class:`PSP` is encoder + decoder + ``latent_avg`` with the official forward (so the
reference vectors replay) and the clean surface ``encode(images) -> w+``, ``decode(w+) -> images``, plus
multi-modal style mixing and ReStyle iterative refinement.

Widths are configurable so small models train on a CPU; ``input_size`` (256 officially) sets the map2style
depths, so an encoder for 64 px inputs has the same structure at a quarter of the resolution.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.errors import ConfigError
from ganedit.formats.native import register_model
from ganedit.models.stylegan2 import Generator, NoiseArg
from ganedit.nn import EqualLinear
from ganedit.nn.irse import DEPTHS, backbone_units, block_ends, input_layer, make_body, unit_counts

# Rows below COARSE_END come from the coarsest map, rows below MIDDLE_END from the middle one (official).
COARSE_END, MIDDLE_END = 3, 7


class IRBackboneEncoder(nn.Module):
    """The stem and IR / IR-SE body shared by every pSp and e4e encoder."""

    def __init__(self, input_nc: int = 3, num_layers: int = 50, mode: str = "ir_se", depths: Sequence[int] = DEPTHS,
                 units: Optional[Sequence[int]] = None, input_width: int = 64, input_size: int = 256, se_reduction: int = 16) -> None:
        super().__init__()
        if len(depths) != 4:
            raise ConfigError(f"the IR backbone has 4 blocks, got {len(depths)} depths")
        self.input_nc, self.input_size = input_nc, input_size
        self.units = unit_counts(num_layers, units)
        self.depths = tuple(int(d) for d in depths)
        self.taps = block_ends(self.units)  # 2, 6, 20, 23 for IR-50
        self.input_layer = input_layer(input_nc, input_width)
        self._body_args = (backbone_units(num_layers, self.depths, input_width, self.units), mode, se_reduction)

    def _make_body(self) -> None:
        # registered by subclasses after their own heads where the official class does so (state-dict order)
        self.body = make_body(*self._body_args)

    def _channels_last(self) -> None:
        """Called at the end of each encoder's constructor: with weights and activations both channels_last,
        the CPU convolutions reorder nothing (NCHW weights cost a copy per conv per call, ~14% of a forward)."""
        self.to(memory_format=torch.channels_last)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ConfigError(f"encoder input must be [B, {self.input_nc}, {self.input_size}, {self.input_size}], got {list(x.shape)}")
        # channels_last keeps every conv in the CPU kernels' native layout (no reorders between layers)
        return x.contiguous(memory_format=torch.channels_last)

    def pyramid(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c1, c2, c3): outputs of the last units of blocks 2, 3 and 4 (body 6, 20, 23 for IR-50)."""
        x = self.input_layer(self.check_input(x))
        taps: List[torch.Tensor] = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps[1:]:
                taps.append(x)
        return taps[0], taps[1], taps[2]


class GradualStyleBlock(nn.Module):
    """map2style: log2(spatial) stride-2 3x3 convs (with bias, LeakyReLU 0.01) down to 1x1, then an EqualLinear."""

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c, self.spatial = out_c, spatial
        n_convs = max(1, int(math.log2(spatial)))
        layers: List[nn.Module] = []
        for k in range(n_convs):
            layers += [nn.Conv2d(in_c if k == 0 else out_c, out_c, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.out_c))


def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to y's size (align_corners=True, as the official FPN) plus y."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class GradualStyleEncoder(IRBackboneEncoder):
    """Feature-pyramid encoder into W+: rows 0-2 from c3, 3-6 from c3 + lateral(c2), the rest from + lateral(c1)."""

    def __init__(self, n_styles: int = 18, style_dim: int = 512, **backbone) -> None:
        super().__init__(**backbone)
        if self.input_size % 16 or self.input_size < 32:
            raise ConfigError(f"GradualStyleEncoder input_size must be a multiple of 16 and >= 32, got {self.input_size}")
        self.n_styles, self.style_dim = n_styles, style_dim
        self._make_body()
        width = self.depths[3]
        spatial = [self.input_size // 16 if i < COARSE_END else self.input_size // 8 if i < MIDDLE_END else self.input_size // 4
                   for i in range(n_styles)]
        self.styles = nn.ModuleList([GradualStyleBlock(width, style_dim, s) for s in spatial])
        self.latlayer1 = nn.Conv2d(self.depths[2], width, 1)
        self.latlayer2 = nn.Conv2d(self.depths[1], width, 1)
        self._channels_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.pyramid(x)
        rows = [self.styles[j](c3) for j in range(min(COARSE_END, self.n_styles))]
        p2 = upsample_add(c3, self.latlayer1(c2))
        rows += [self.styles[j](p2) for j in range(COARSE_END, min(MIDDLE_END, self.n_styles))]
        if self.n_styles > MIDDLE_END:
            p1 = upsample_add(p2, self.latlayer2(c1))
            rows += [self.styles[j](p1) for j in range(MIDDLE_END, self.n_styles)]
        return torch.stack(rows, dim=1)


class BackboneEncoderUsingLastLayerIntoW(IRBackboneEncoder):
    """Global average of the last map -> EqualLinear -> one w [B, style_dim]."""

    def __init__(self, style_dim: int = 512, **backbone) -> None:
        super().__init__(**backbone)
        self.style_dim = style_dim
        self.output_pool = nn.AdaptiveAvgPool2d(1)
        self.linear = EqualLinear(self.depths[3], style_dim, lr_mul=1)
        self._make_body()
        self._channels_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.input_layer(self.check_input(x)))
        return self.linear(self.output_pool(x).reshape(-1, self.depths[3]))


class BackboneEncoderUsingLastLayerIntoWPlus(IRBackboneEncoder):
    """BN -> 7x7 adaptive pool -> Linear -> EqualLinear to n_styles rows at once."""

    def __init__(self, n_styles: int = 18, style_dim: int = 512, **backbone) -> None:
        super().__init__(**backbone)
        self.n_styles, self.style_dim = n_styles, style_dim
        width = self.depths[3]
        self.output_layer_2 = nn.Sequential(nn.BatchNorm2d(width), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(width * 49, style_dim))
        self.linear = EqualLinear(style_dim, style_dim * n_styles, lr_mul=1)
        self._make_body()
        self._channels_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_layer_2(self.body(self.input_layer(self.check_input(x))))
        return self.linear(x).reshape(-1, self.n_styles, self.style_dim)


ENCODER_TYPES: Dict[str, type] = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "BackboneEncoderUsingLastLayerIntoW": BackboneEncoderUsingLastLayerIntoW,
    "BackboneEncoderUsingLastLayerIntoWPlus": BackboneEncoderUsingLastLayerIntoWPlus,
}

# ReStyle's inference default (n_iters_per_batch): what encode() runs for a ReStyle encoder.
RESTYLE_ITERS = 5


def back_project(images: torch.Tensor, low: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Super-resolution's consistency step (iterative back-projection): correct the decoder image [B, 3, S, S] so that
    its box downsampling (the degradation of ``resize_factors``) matches the low-resolution input [B, 3, S/f, S/f];
    the decoder keeps what lies above the input's band. Each iteration adds the bicubic upsampling of the residual."""
    side, low_side = images.shape[-1], low.shape[-1]
    f = side // max(1, low_side)
    if f < 1 or f * low_side != side or f * low.shape[-2] != images.shape[-2]:
        raise ConfigError(f"back_project: the low-res input {list(low.shape[-2:])} does not divide the output {list(images.shape[-2:])}")
    out = images
    for _ in range(iters if f > 1 else 0):
        out = out + F.interpolate(low - F.avg_pool2d(out, f), scale_factor=f, mode="bicubic", align_corners=False)
    return out


def keep_known_pixels(inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Inpainting's final image: the decoder's pixels inside the hole, the input's own pixels outside it.
    ``inputs`` is the inpaint encoder input [B, 4, s, s] (masked RGB, then the mask channel, 1 = missing);
    ``images`` the decoder output [B, 3, S, S]. The input is resized to S where the sizes differ."""
    if inputs.shape[1] != 4:
        raise ConfigError(f"keep_known_pixels needs the inpaint input [B, 4, H, W] (RGB + mask), got {list(inputs.shape)}")
    if inputs.shape[-2:] != images.shape[-2:]:
        inputs = F.interpolate(inputs, size=images.shape[-2:], mode="bilinear", align_corners=False)
    hole = inputs[:, 3:4].clamp(0, 1)
    return hole * images + (1 - hole) * inputs[:, :3]

TASKS = ("encode", "sketch", "segmentation", "super_resolution", "frontalize", "inpaint")


def parse_rows(spec: "str | Sequence[int] | None", n_rows: int) -> Optional[List[int]]:
    """'8-17' / '1,3,5-7' / [8, 9] -> sorted row indices, each checked against n_rows."""
    if spec is None or spec == "":
        return None
    rows: List[int] = []
    if isinstance(spec, str):
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            try:
                rows.extend(range(int(lo), int(hi or lo) + 1))
            except ValueError:
                raise ConfigError(f"latent rows {spec!r}: expected numbers and ranges like '8-17' or '1,3,5'") from None
    else:
        rows = [int(r) for r in spec]
    bad = [r for r in rows if not 0 <= r < n_rows]
    if bad:
        raise ConfigError(f"latent rows {bad} are outside 0..{n_rows - 1}")
    return sorted(set(rows))


@register_model("psp.PSP")
class PSP(nn.Module):
    """An encoder into W / W+ of a frozen StyleGAN2 decoder, with the official average latent.

    ``encoder``: {"type": one of ENCODER_TYPES, ...constructor arguments}; ``decoder``: Generator arguments.
    ``start_from_latent_avg``: the encoder predicts an offset from ``latent_avg`` ([n_styles, dim], or [1, dim]
    with ``learn_in_w``). ``output_pool``: the official ``face_pool`` side (256), None to keep the decoder's size.
    ``task`` names what the encoder reads (see TASKS; ``label_nc`` classes for segmentation). ``restyle``: the
    encoder reads [image, current reconstruction] and predicts a residual (ReStyle); ``restyle_iters`` refinement
    steps make ``encode``'s answer (training sets it to the steps it trained with; official inference: 5).
    """

    encoder_types: Dict[str, type] = ENCODER_TYPES

    def __init__(self, encoder: Mapping, decoder: Mapping, start_from_latent_avg: bool = True, learn_in_w: bool = False,
                 latent_avg_rows: Optional[int] = None, output_pool: Optional[int] = 256, task: str = "encode",
                 label_nc: int = 0, restyle: bool = False, restyle_iters: int = RESTYLE_ITERS) -> None:
        super().__init__()
        spec = dict(encoder)
        kind = spec.pop("type", "GradualStyleEncoder")
        if kind not in self.encoder_types:
            raise ConfigError(f"unknown encoder type {kind!r} for {type(self).__name__} (known: {', '.join(self.encoder_types)})")
        if task not in TASKS:
            raise ConfigError(f"unknown pSp task {task!r} (known: {', '.join(TASKS)})")
        self.encoder_type = kind
        self.encoder = self.encoder_types[kind](**spec)
        self.decoder = Generator(**decoder)
        self.start_from_latent_avg, self.learn_in_w = start_from_latent_avg, learn_in_w
        self.output_pool, self.task, self.label_nc, self.restyle = output_pool, task, label_nc, restyle
        if int(restyle_iters) < 1:
            raise ConfigError(f"restyle_iters must be >= 1, got {restyle_iters}")
        self.restyle_iters = int(restyle_iters)  # the refinement steps encode() runs: those the model was trained with
        rows = latent_avg_rows if latent_avg_rows is not None else (1 if learn_in_w else self.decoder.n_latent)
        self.register_buffer("latent_avg", torch.zeros(rows, self.decoder.style_dim))

    # -- the clean surface -----------------------------------------------------------------------------
    @property
    def generator(self) -> Generator:
        return self.decoder

    @property
    def n_latent(self) -> int:
        return self.decoder.n_latent

    @property
    def input_size(self) -> int:
        return self.encoder.input_size

    def average_wplus(self, batch: int = 1) -> torch.Tensor:
        """latent_avg as w+ [batch, n_latent, dim] (a single stored row is repeated)."""
        return self.latent_avg.expand(self.n_latent, -1).unsqueeze(0).expand(batch, -1, -1) if self.latent_avg.shape[0] == 1 \
            else self.latent_avg.unsqueeze(0).expand(batch, -1, -1)

    def add_latent_avg(self, codes: torch.Tensor) -> torch.Tensor:
        # official: codes + latent_avg.repeat(B, 1, 1) for w+, row 0 of it for a single w
        return codes + (self.latent_avg[0] if codes.dim() == 2 else self.latent_avg)

    def to_encoder_input(self, images: torch.Tensor) -> torch.Tensor:
        """Resize images to the encoder's input size (what the official Resize((256, 256)) transform does)."""
        if images.shape[-1] == self.input_size and images.shape[-2] == self.input_size:
            return images
        size = (self.input_size, self.input_size)
        if images.shape[-1] > self.input_size:
            return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder input [B, input_nc, H, W] -> w+ [B, n_latent, style_dim] (a single w is repeated)."""
        if self.restyle:
            return self.restyle_steps(images, self.restyle_iters)[-1][0]
        codes = self.encoder(self.to_encoder_input(images))
        if self.start_from_latent_avg:
            codes = self.add_latent_avg(codes)
        return codes.unsqueeze(1).expand(-1, self.n_latent, -1) if codes.dim() == 2 else codes

    def decode(self, wplus: torch.Tensor, noise: NoiseArg = "const") -> torch.Tensor:
        """w+ (or w) -> decoder image [B, 3, size, size] (stored noise maps by default: deterministic)."""
        return self.decoder.synthesis(wplus, noise)

    synthesis = decode

    def pool(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.output_pool is None else F.adaptive_avg_pool2d(images, (self.output_pool, self.output_pool))

    # -- multi-modal synthesis -------------------------------------------------------------------------
    def mix_latents(self, wplus: torch.Tensor, n: int, latent_mask: "str | Sequence[int]", alpha: Optional[float] = None,
                    seed: int = 0) -> torch.Tensor:
        """[B, L, D] -> [B, n, L, D]: rows in ``latent_mask`` taken from n random w = mapping(z) (the same n for every
        input, drawn with ``seed``), blended as alpha*random + (1-alpha)*own (replaced when alpha is None).
        This is the official style_mixing with the random vectors made reproducible."""
        rows = parse_rows(latent_mask, self.n_latent) or []
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.decoder.style_dim, generator=gen).to(wplus.device)
        inject = self.decoder.mapping(z)  # [n, D]
        mixed = wplus.unsqueeze(1).repeat(1, n, 1, 1)
        for r in rows:
            own = mixed[:, :, r]
            mixed[:, :, r] = inject.unsqueeze(0).expand_as(own) if alpha is None else alpha * inject + (1 - alpha) * own
        return mixed

    @torch.no_grad()
    def style_mix(self, images: torch.Tensor, n: int, latent_mask: "str | Sequence[int]", alpha: Optional[float] = None,
                  seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """n outputs per input: (images [B, n, 3, S, S], latents [B, n, L, D])."""
        mixed = self.mix_latents(self.encode(images), n, latent_mask, alpha, seed)
        b = mixed.shape[0]
        out = self.decode(mixed.reshape(b * n, *mixed.shape[2:]))
        return out.reshape(b, n, *out.shape[1:]), mixed

    # -- ReStyle ---------------------------------------------------------------------------------------
    def restyle_steps(self, images: torch.Tensor, n_iters: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """ReStyle: start from the average latent and its image; each step the encoder reads [input, current
        reconstruction] and its output is added to the current w+. Returns (w+, decoder image) per step."""
        if not self.restyle:
            raise ConfigError("this encoder was not built for ReStyle (restyle=False): it reads the image alone")
        if n_iters < 1:
            raise ConfigError(f"ReStyle needs n_iters >= 1, got {n_iters}")
        x = self.to_encoder_input(images)
        w, current = self.restyle_start(x.shape[0])
        steps = []
        for _ in range(n_iters):
            w = self.restyle_update(x, w, current)
            current = self.decode(w)
            steps.append((w, current))
        return steps

    def restyle_start(self, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """ReStyle's starting point for ``batch`` inputs: the average w+ and its image."""
        w = self.average_wplus(batch)
        return w, self.decode(w[:1]).expand(batch, -1, -1, -1)

    def restyle_update(self, x: torch.Tensor, w: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """One ReStyle step: ``w`` plus the encoder's residual for [encoder input ``x``, the current image]."""
        delta = self.encoder(torch.cat([x, self.to_encoder_input(current)], 1))
        return w + (delta.unsqueeze(1) if delta.dim() == 2 else delta)

    # -- the official call -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, resize: bool = True, latent_mask: Optional[Sequence[int]] = None, input_code: bool = False,
                randomize_noise: bool = True, inject_latent: Optional[torch.Tensor] = None, return_latents: bool = False,
                alpha: Optional[float] = None):
        """pSp.forward of the official code (README §4): same arguments, defaults and results."""
        if input_code:
            codes = x
        else:
            codes = self.encoder(x)
            if self.start_from_latent_avg:
                codes = self.add_latent_avg(codes)
        if latent_mask is not None:
            if codes.dim() == 2:
                codes = codes.unsqueeze(1).repeat(1, self.n_latent, 1)
            codes = codes.clone()
            for i in latent_mask:
                if inject_latent is None:
                    codes[:, i] = 0
                elif alpha is None:
                    codes[:, i] = inject_latent[:, i]
                else:
                    codes[:, i] = alpha * inject_latent[:, i] + (1 - alpha) * codes[:, i]
        images, latent = self.decoder([codes], input_is_latent=not input_code, randomize_noise=randomize_noise,
                                      return_latents=return_latents)
        if resize:
            images = self.pool(images)
        return (images, latent) if return_latents else images
