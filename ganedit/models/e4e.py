"""e4e (encoder4editing): an encoder into W+ built for editing (conformance/stylegan2/README.md §5).

``Encoder4Editing`` has GradualStyleEncoder's modules and keys but predicts one base code w0 from the coarsest
map plus offsets: w+ row i = w0 + delta_i, where only the first ``progressive_stage`` offsets are active
(training unlocks them one by one; the inference stage uses all). ``LatentCodesDiscriminator`` is the MLP that
tells encoded w rows from w = mapping(z). :class:`E4E` is :class:`ganedit.models.psp.PSP` with that encoder
and, when the checkpoint has one, its latent discriminator.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
import torch.nn as nn

from ganedit.errors import ConfigError
from ganedit.formats.native import register_model
from ganedit.models.psp import COARSE_END, ENCODER_TYPES, MIDDLE_END, PSP, RESTYLE_ITERS, GradualStyleEncoder, upsample_add

# The official ProgressiveStage enum: WTraining = 0, Delta1Training .. Delta17Training = 1..17, Inference = 18.
INFERENCE_STAGE = 18


class Encoder4Editing(GradualStyleEncoder):
    """w0 from ``styles[0](c3)`` repeated over all rows, plus ``styles[i](features)`` for active rows i >= 1."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.progressive_stage = INFERENCE_STAGE

    def set_stage(self, stage: int) -> None:
        if not 0 <= int(stage) <= INFERENCE_STAGE:
            raise ConfigError(f"e4e progressive stage must be 0..{INFERENCE_STAGE}, got {stage}")
        self.progressive_stage = int(stage)

    def active_offsets(self) -> int:
        """How many offsets delta_1.. are trained / applied at the current stage."""
        return min(self.progressive_stage + 1, self.n_styles) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.pyramid(x)
        w0 = self.styles[0](c3)
        rows = [w0]
        features = c3
        for i in range(1, self.n_styles):
            if i > self.active_offsets():
                rows.append(w0)
                continue
            # the lateral layers run only once a row of their level is active (as in the official loop)
            if i == COARSE_END:
                p2 = features = upsample_add(c3, self.latlayer1(c2))
            elif i == MIDDLE_END:
                features = upsample_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[i](features))
        return torch.stack(rows, dim=1)


class LatentCodesDiscriminator(nn.Module):
    """MLP on single w vectors: (Linear, LeakyReLU 0.2) x (n_mlp - 1), Linear to one logit; plain nn.Linear layers."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 4) -> None:
        super().__init__()
        layers = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w)


@register_model("e4e.E4E")
class E4E(PSP):
    """e4e: PSP with Encoder4Editing; ``latent_discriminator`` = LatentCodesDiscriminator arguments, or None."""

    encoder_types = {**ENCODER_TYPES, "Encoder4Editing": Encoder4Editing}

    def __init__(self, encoder: Mapping, decoder: Mapping, start_from_latent_avg: bool = True,
                 latent_discriminator: Optional[Mapping] = None, latent_avg_rows: Optional[int] = None,
                 output_pool: Optional[int] = 256, restyle: bool = False,
                 restyle_iters: int = RESTYLE_ITERS) -> None:
        spec = {"type": "Encoder4Editing", **dict(encoder)}
        super().__init__(spec, decoder, start_from_latent_avg=start_from_latent_avg, latent_avg_rows=latent_avg_rows,
                         output_pool=output_pool, restyle=restyle, restyle_iters=restyle_iters)
        if latent_discriminator is not None:
            self.latent_discriminator = LatentCodesDiscriminator(**latent_discriminator)

    def set_stage(self, stage: int) -> None:
        self.encoder.set_stage(stage)
