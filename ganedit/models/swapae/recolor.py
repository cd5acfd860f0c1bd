"""Random recolouring: change an image's colours while keeping every edge where it was.

Used by the optional colour-swap term of the training recipe (``lambda_color_swap``, a ganedit addition, not in
the official code): the generator must rebuild an image from the structure code of a recoloured copy and the
texture code of the original, so colour has to travel through the texture code. Images are in [-1, 1].
"""
from __future__ import annotations

import math

import torch

PARAMS = 4  # uniform [0, 1) numbers per image: hue angle, saturation, contrast, brightness


def recolor(images: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by 2*pi*u0 about the grey axis, scale the chroma by 0.25 + 1.25*u1, the contrast by
    0.6 + 0.8*u2, and shift the brightness by 0.8*u3 - 0.4; clamp to [-1, 1]. ``u`` is (N, 4)."""
    if u.shape != (images.shape[0], PARAMS):
        raise ValueError(f"recolor needs ({images.shape[0]}, {PARAMS}) parameters, got {tuple(u.shape)}")
    u = u.to(images.dtype).view(-1, PARAMS, 1, 1)
    grey = images.mean(1, keepdim=True)
    c = images - grey  # chroma: orthogonal to the grey axis k = (1, 1, 1)/sqrt(3)
    r, g, b = c.unbind(1)
    k_cross_c = torch.stack([b - g, r - b, g - r], 1) / math.sqrt(3.0)  # rotation about k (Rodrigues, c . k = 0)
    theta = 2 * math.pi * u[:, 0:1]
    rotated = torch.cos(theta) * c + torch.sin(theta) * k_cross_c
    saturation, contrast, brightness = 0.25 + 1.25 * u[:, 1:2], 0.6 + 0.8 * u[:, 2:3], 0.8 * u[:, 3:4] - 0.4
    return (contrast * (grey + saturation * rotated) + brightness).clamp(-1.0, 1.0)
