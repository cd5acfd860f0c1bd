"""Tiny models for the web UI tests, saved as native folders under one --models folder."""
from __future__ import annotations

from pathlib import Path

import torch

from ganedit.edit.directions import save_direction, sefa
from ganedit.formats.native import save_model
from ganedit.models.cyclegan import GeneratorPair, ResnetGenerator
from ganedit.models.pix2pix import UnetGenerator
from ganedit.models.stylegan2 import StyleGAN2


def make_models(root: Path) -> Path:
    torch.manual_seed(0)
    sg = StyleGAN2(generator=dict(size=16, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=32))
    sg.latent_avg.copy_(sg.g_ema.mean_latent(256, seed=0).reshape(-1))
    save_model(sg, root / "sg2_tiny", meta={"trained_on": "nothing (random weights, test)"})
    save_direction(root / "directions" / "sg2_tiny_sefa.safetensors", sefa(sg, n_components=4))  # fits sg2_tiny only
    unet = UnetGenerator(num_downs=5, ngf=4)
    with torch.no_grad():  # freshly initialised, it outputs near-grey; larger weights give a visible image
        for p in unet.parameters():
            if p.dim() == 4:
                p.mul_(8)
    save_model(unet, root / "pix2pix_tiny", meta={"trained_on": "nothing (pix2pix test)"})
    save_model(GeneratorPair.of(ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1)), root / "cyclegan" / "pair")
    return root
