"""The top-level Swapping Autoencoder: E, G, D, Dpatch under the official prefixes, one state dict.

``SwappingAutoencoder.official("church256")`` (or any official option set) builds the released architectures;
``SwappingAutoencoder.small(64)`` a model for small images on a CPU. The state dict of this module is key-for-key
the official ``latest_checkpoint.pth`` (``num_discriminator_iters``, ``E.*``, ``G.*``, ``D.stylegan2_D.*``,
``Dpatch.*``), so official files load with ``load_state_dict``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ganedit.checks import Each, OneOf, Range, channels, check_values, side
from ganedit.errors import ImageError
from ganedit.formats.native import register_model
from ganedit.models.swapae.discriminators import ImageDiscriminator, PatchCooccurrenceDiscriminator, rounded_log2
from ganedit.models.swapae.layers import normalize
from ganedit.models.swapae.networks import NoiseSpec, StructureTextureEncoder, SwapGenerator

# Official launcher options that decide the architecture (README §2); everything else is training-only.
OFFICIAL_DEFAULTS: Dict[str, Any] = dict(
    crop_size=256, spatial_code_ch=8, global_code_ch=2048,
    netE_scale_capacity=1.0, netE_num_downsampling_sp=4, netE_num_downsampling_gl=2, netE_nc_steepness=2.0,
    netG_scale_capacity=1.0, netG_num_base_resnet_layers=2, netG_use_noise=True,
    netD_scale_capacity=1.0, netD_base_ch=512,
    netPatchD_scale_capacity=4.0, netPatchD_max_nc=384, patch_size=128, netPatchD_pair_hidden=(2048, 2048, 1024),
    patch_num_crops=8, patch_min_scale=1 / 8, patch_max_scale=1 / 4, patch_use_aggregation=True,
)
OFFICIAL_PRESETS: Dict[str, Dict[str, Any]] = {
    "church256": {}, "bedroom256": {}, "afhq256": {},
    "ffhq512": dict(crop_size=512), "mountain512": dict(crop_size=512),
    "ffhq1024": dict(crop_size=768, netE_num_downsampling_sp=5, netE_scale_capacity=0.4, netG_scale_capacity=0.8, global_code_ch=1536, patch_size=256),
    "ffhq1024_patchDv7_L1_smallerstructurecode": dict(crop_size=768, netE_num_downsampling_sp=6, netE_scale_capacity=1.0, netE_nc_steepness=1.8,
                                                     netG_scale_capacity=0.8, global_code_ch=1024, spatial_code_ch=64, patch_size=256),
}


def official_architecture(**options: Any) -> Dict[str, Any]:
    """Constructor arguments of :class:`SwappingAutoencoder` from official option names (README §3 formulas)."""
    unknown = set(options) - set(OFFICIAL_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown official options: {sorted(unknown)}")
    o = {**OFFICIAL_DEFAULTS, **options}
    sp, gl = o["netE_num_downsampling_sp"], o["netE_num_downsampling_gl"]
    enc = [min(o["global_code_ch"], round(o["netE_nc_steepness"] ** (5 + i) * o["netE_scale_capacity"])) for i in range(sp + gl + 1)]

    def nf(j: int) -> int:
        return int(min(512, 128 * 2 ** (sp - j)) * o["netG_scale_capacity"])

    n_head = o["netG_num_base_resnet_layers"]
    head = [max(o["spatial_code_ch"], round((i + 1) / n_head * nf(0))) for i in range(n_head)]
    up = [nf(j + 1) for j in range(sp)]
    # image D table, scaled by base/512 (the official table is base 512): {4: B, 8: B, 16: min(B, B*cm), ...}
    b, cm = o["netD_base_ch"], 2 * o["netD_scale_capacity"]
    d_table = {4: b, 8: b, 16: min(b, int(b * cm)), 32: min(b, int(b * cm))}
    for i in range(6, 11):
        d_table[2 ** i] = int(b // 2 ** (i - 5) * cm)
    log_d = rounded_log2(o["crop_size"])
    d_ch = [d_table[2 ** i] for i in range(log_d, 1, -1)]
    c, mx = o["netPatchD_scale_capacity"], o["netPatchD_max_nc"]
    p_table = {4: min(mx, int(256 * c)), 8: min(mx, int(128 * c)), 16: min(mx, int(64 * c))}
    for i in range(5, 10):
        p_table[2 ** i] = int(2 ** (10 - i) * c)
    log_p = int(math.ceil(math.log2(o["patch_size"])))
    p_ch = [p_table[2 ** i] for i in range(log_p, 1, -1)]
    return dict(
        structure_channels=o["spatial_code_ch"], texture_channels=o["global_code_ch"],
        encoder_channels=enc, num_downsampling_sp=sp, num_downsampling_gl=gl,
        generator_head_channels=head, generator_up_channels=up, use_noise=o["netG_use_noise"],
        image_size=o["crop_size"], discriminator_channels=d_ch,
        patch_size=o["patch_size"], patch_channels=p_ch, patch_feature_channels=mx, patch_pair_hidden=list(o["netPatchD_pair_hidden"]),
        patch_num_crops=o["patch_num_crops"], patch_scale_range=[o["patch_min_scale"], o["patch_max_scale"]],
        patch_use_aggregation=o["patch_use_aggregation"],
    )


# Constructor arguments, checked before anything is built (a config.json or a recipe may carry any value).
LIMITS = {
    "structure_channels": channels(), "texture_channels": channels(),
    "encoder_channels": Each(channels(), 1), "num_downsampling_sp": Range(1, 12, integer=True),
    "num_downsampling_gl": Range(0, 12, integer=True),
    "generator_head_channels": Each(channels(), 1), "generator_up_channels": Each(channels(), 1),
    "use_noise": OneOf((True, False)), "image_size": side(4), "discriminator_channels": Each(channels(), 1),
    "patch_size": side(4), "patch_channels": Each(channels(), 1), "patch_feature_channels": channels(),
    "patch_pair_hidden": Each(channels(), 1), "patch_num_crops": Range(1, 1024, integer=True),
    "patch_scale_range": Each(Range(0, 1, above=True), 2, 2), "patch_use_aggregation": OneOf((True, False)),
    "with_discriminators": OneOf((True, False)),
}

@register_model("swapae.SwappingAutoencoder")
class SwappingAutoencoder(nn.Module):
    """Encoder E (image -> structure code, texture code), generator G (codes -> image), image discriminator D and
    patch co-occurrence discriminator Dpatch. Images are NCHW RGB in [-1, 1]; G's output is not clamped.

    The discriminators are only needed for training: ``with_discriminators=False`` leaves them out (an official
    file saved in test mode may lack their keys)."""

    def __init__(
        self,
        structure_channels: int = 8,
        texture_channels: int = 2048,
        encoder_channels: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        num_downsampling_sp: int = 4,
        num_downsampling_gl: int = 2,
        generator_head_channels: Sequence[int] = (256, 512),
        generator_up_channels: Sequence[int] = (512, 512, 256, 128),
        use_noise: bool = True,
        image_size: int = 256,
        discriminator_channels: Sequence[int] = (128, 256, 512, 512, 512, 512, 512),
        patch_size: int = 128,
        patch_channels: Sequence[int] = (32, 64, 128, 256, 384, 384),
        patch_feature_channels: int = 384,
        patch_pair_hidden: Sequence[int] = (2048, 2048, 1024),
        patch_num_crops: int = 8,
        patch_scale_range: Sequence[float] = (1 / 8, 1 / 4),
        patch_use_aggregation: bool = True,
        with_discriminators: bool = True,
    ) -> None:
        super().__init__()
        check_values(dict(locals()), LIMITS)  # every argument by name, before any layer is built
        if len(generator_up_channels) != num_downsampling_sp:
            raise ValueError("the generator upsamples as many times as the encoder downsamples to the structure code")
        # counts D steps for lazy R1; saved first in official files
        self.register_buffer("num_discriminator_iters", torch.zeros(1, dtype=torch.long))
        self.E = StructureTextureEncoder(encoder_channels, structure_channels, texture_channels, num_downsampling_sp, num_downsampling_gl)
        self.G = SwapGenerator(structure_channels, texture_channels, generator_head_channels, generator_up_channels, use_noise)
        if with_discriminators:
            self.D = ImageDiscriminator(image_size, discriminator_channels)
            self.Dpatch = PatchCooccurrenceDiscriminator(patch_size, patch_channels, patch_feature_channels, patch_pair_hidden)
        self.downsampling = 2 ** num_downsampling_sp
        self.patch_size, self.patch_num_crops = patch_size, patch_num_crops
        self.patch_scale_range = (float(patch_scale_range[0]), float(patch_scale_range[1]))
        self.patch_use_aggregation = patch_use_aggregation

    # ---- constructors -------------------------------------------------------------------------------------------
    @classmethod
    def official(cls, preset: str = "church256", with_discriminators: bool = True, **options: Any) -> "SwappingAutoencoder":
        """An official architecture by preset name (``church256``, ``ffhq512``, ``ffhq1024``, ...) and/or options."""
        if preset not in OFFICIAL_PRESETS:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(OFFICIAL_PRESETS)})")
        return cls(**official_architecture(**{**OFFICIAL_PRESETS[preset], **options}), with_discriminators=with_discriminators)

    @classmethod
    def small(cls, image_size: int = 64, structure_channels: int = 8, texture_channels: int = 256, width: int = 32, with_discriminators: bool = True,
              structure_downsampling: int = 0, **overrides: Any) -> "SwappingAutoencoder":
        """A CPU-sized model. Below 128 px the encoder downsamples 3 times (structure code at 1/8, so 64 px images
        keep a texture branch of two valid 3x3 convs: 8 -> 3 -> 1), else 4 times like the official models;
        ``structure_downsampling`` > 0 chooses the count (2: a 16x16 structure code at 64 px, for sharper layout).
        Widths grow from width/2 and stop at 4·width; the patch D sees 1/4-size patches (at least 16 px)."""
        sp = structure_downsampling or (3 if image_size < 128 else 4)
        top = 4 * width
        enc = [min(top, width * 2 ** i // 2) for i in range(sp + 3)]
        head = [2 * width, top]
        up = [max(16, top // 2 ** j) for j in range(sp)]
        d_ch = [min(top, width * 2 ** k) for k in range(rounded_log2(image_size) - 1)]
        psize = max(16, image_size // 4)
        p_ch = [min(2 * width, 16 * 2 ** k) for k in range(int(math.ceil(math.log2(psize))) - 1)]
        args = dict(structure_channels=structure_channels, texture_channels=texture_channels, encoder_channels=enc,
                    num_downsampling_sp=sp, num_downsampling_gl=2, generator_head_channels=head, generator_up_channels=up,
                    image_size=image_size, discriminator_channels=d_ch, patch_size=psize, patch_channels=p_ch,
                    patch_feature_channels=p_ch[-1], patch_pair_hidden=[8 * width, 8 * width, 4 * width],
                    with_discriminators=with_discriminators)
        return cls(**{**args, **overrides})

    # ---- the public surface -------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1], H and W multiples of 2^num_downsampling_sp -> (structure (B, C, H/s, W/s)
        unit-norm per position, texture (B, D) unit-norm)."""
        self._check_images(images)
        return self.E(images)

    def decode(self, structure: torch.Tensor, texture: torch.Tensor, noise: NoiseSpec = None) -> torch.Tensor:
        """Image from codes; codes are re-normalised by G, so interpolated codes are fine. See SwapGenerator.forward
        for ``noise`` (None: fresh noise, dict: fixed, "zero")."""
        return self.G(structure, texture, noise)

    def make_noise(self, structure: torch.Tensor, generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Fixed noise for every layer, one draw per structure image (batch of ``structure``)."""
        return self.G.make_noise(structure.shape[0], tuple(structure.shape[-2:]), generator, structure.device)

    def swap(self, structure_images: torch.Tensor, texture_images: torch.Tensor, noise: NoiseSpec = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Structure of ``structure_images[i]`` with the texture of ``texture_images[i]`` (a batch-1 texture is
        shared). Texture images may have any size that the encoder accepts."""
        if structure_images.shape[1:] == texture_images.shape[1:]:
            # one encoder pass over both sets: bigger convs run closer to the machine's peak
            sp, gl = self.encode(torch.cat([structure_images, texture_images]))
            sp, gl = sp[: structure_images.shape[0]], gl[structure_images.shape[0]:]
        else:
            sp, _ = self.encode(structure_images)
            _, gl = self.encode(texture_images)
        if gl.shape[0] == 1 and sp.shape[0] > 1:
            gl = gl.expand(sp.shape[0], -1)
        elif gl.shape[0] != sp.shape[0]:
            raise ValueError(f"swap pairs structure[i] with texture[i]: got {sp.shape[0]} structure and {gl.shape[0]} texture images")
        if noise is None and generator is not None:
            noise = self.make_noise(sp, generator)
        return self.decode(sp, gl, noise)

    def interpolate_texture(self, structure: torch.Tensor, texture_a: torch.Tensor, texture_b: torch.Tensor, alphas: Sequence[float], noise: NoiseSpec = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Decode structure[i] with lerp(texture_a[i], texture_b[i], alpha) for every alpha -> (B, A, 3, H, W).

        G renormalises the lerp, so alpha 0 reconstructs and alpha 1 is the full swap. As the official
        ``simple_swapping`` tool does, the noise is drawn once per structure image and shared by every alpha."""
        b, a = structure.shape[0], len(alphas)
        if noise is None:
            noise = self.make_noise(structure, generator)
        al = torch.as_tensor(list(alphas), dtype=texture_a.dtype, device=texture_a.device).view(1, a, 1)
        gl = torch.lerp(texture_a.unsqueeze(1), texture_b.unsqueeze(1), al)  # (B, A, D)
        sp = structure.unsqueeze(1).expand(b, a, *structure.shape[1:]).flatten(0, 1)
        if isinstance(noise, dict):
            noise = {k: (v.unsqueeze(1).expand(v.shape[0], a, *v.shape[1:]).flatten(0, 1) if v.shape[0] == b else v) for k, v in noise.items()}
        out = self.decode(sp, gl.flatten(0, 1), noise)
        return out.view(b, a, *out.shape[1:])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction G(E(x))."""
        return self.decode(*self.encode(images))

    # ---- training helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def swap_pairs(x: torch.Tensor) -> torch.Tensor:
        """The official minibatch swap: exchange consecutive pairs, [a, b, c, d] -> [b, a, d, c]."""
        if x.shape[0] % 2:
            raise ValueError("the swap pairs consecutive images: the batch must be even")
        return x.view(x.shape[0] // 2, 2, *x.shape[1:]).flip(1).reshape(x.shape)

    def crops(self, images: torch.Tensor, generator: Optional[torch.Generator] = None, rand=None) -> torch.Tensor:
        """The patch discriminator's random crops (``rand``: see ``discriminators.RandFn``)."""
        from ganedit.models.swapae.discriminators import random_crops

        return random_crops(images, self.patch_num_crops, self.patch_size, self.patch_scale_range, generator, rand)

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ImageError(None, f"expected RGB images of shape (B, 3, H, W), got {tuple(images.shape)}")
        s = self.downsampling
        if images.shape[2] % s or images.shape[3] % s:
            raise ImageError(None, f"image sides must be multiples of {s} for this model (got {images.shape[2]}x{images.shape[3]}); resize or crop first")
        need = 2 ** (self.E.num_downsampling_gl + 1) - 1  # valid 3x3 stride-2 convs of the texture branch
        if min(images.shape[2], images.shape[3]) < s * need:
            raise ImageError(None, f"images must be at least {need * s} px on each side for this model (got {images.shape[2]}x{images.shape[3]})")


def structure_to_rgb(structure: torch.Tensor) -> torch.Tensor:
    """Visualise a structure code with its first 3 principal components mapped to [-1, 1] RGB (per batch)."""
    b, c, h, w = structure.shape
    v = normalize(structure).permute(0, 2, 3, 1).reshape(-1, c)
    v = v - v.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(v, full_matrices=False)
    p = v @ vh[: min(3, c)].T
    if p.shape[1] < 3:
        p = torch.cat([p, p.new_zeros(p.shape[0], 3 - p.shape[1])], 1)
    p = p / p.abs().amax(0, keepdim=True).clamp_min(1e-8)
    return p.view(b, h, w, 3).permute(0, 3, 1, 2)
