"""Random recolouring: change an image's colours while keeping every edge where it was.

Used by the optional colour-swap term of the training recipe (``lambda_color_swap``, a ganedit addition, not in
the official code): the generator must rebuild an image from the structure code of a recoloured copy and the
texture code of the original, so colour has to travel through the texture code. Images are in [-1, 1].

Two strengths of change. The global one (``warp=0``) turns every colour by the same hue angle and scales
saturation, contrast and brightness: a colour cast. With ``warp > 0`` the hue turn also depends on each pixel's own
hue, and the brightness goes through a random wavy tone curve, so regions of different colours are recoloured
*differently* (as two photos of one scene under different paint): the structure code then has to keep which
region is which without their colours, and the texture code has to carry the colour of each region.

``relight`` changes the light instead: a random brightness ramp across the image. Applied to the copy as well
(``color_swap_light`` in the recipe), it makes the direction and strength of the light, like colour, something
the structure code cannot keep and the texture code must carry.
"""
from __future__ import annotations

import math

import torch

PARAMS = 8  # uniform [0, 1) numbers per image: hue angle, saturation, contrast, brightness, 4 for the warp
LIGHT_PARAMS = 2  # relight: the ramp's direction and strength


def recolor(images: torch.Tensor, u: torch.Tensor, warp: float = 0.0) -> torch.Tensor:
    """Rotate the hue by 2*pi*u0 about the grey axis, scale the chroma by 0.25 + 1.25*u1, the contrast by
    0.6 + 0.8*u2, and shift the brightness by 0.8*u3 - 0.4; clamp to [-1, 1]. ``u`` is (N, PARAMS) (the first
    four columns are enough when ``warp`` is 0).

    ``warp`` adds, per pixel, ``warp*pi*(2*u4 - 1)*sin(2*phi + 2*pi*u5)`` to the hue angle (``phi``: the pixel's
    hue angle) and ``0.5*warp*(2*u6 - 1)*sin(pi*(grey + 1) + 2*pi*u7)`` to its brightness before the contrast."""
    need = PARAMS if warp else 4
    if u.dim() != 2 or u.shape[0] != images.shape[0] or u.shape[1] < need:
        raise ValueError(f"recolor needs ({images.shape[0]}, {need}) parameters, got {tuple(u.shape)}")
    u = u.to(images.dtype).view(u.shape[0], u.shape[1], 1, 1)
    grey = images.mean(1, keepdim=True)
    c = images - grey  # chroma: orthogonal to the grey axis k = (1, 1, 1)/sqrt(3)
    r, g, b = c.unbind(1)
    k_cross_c = torch.stack([b - g, r - b, g - r], 1) / math.sqrt(3.0)  # rotation about k (Rodrigues, c . k = 0)
    theta = 2 * math.pi * u[:, 0:1]
    if warp:
        # The hue angle phi of c in the chroma plane, from two orthonormal axes of that plane.
        phi = torch.atan2((g - b).unsqueeze(1) / math.sqrt(2.0), (2 * r - g - b).unsqueeze(1) / math.sqrt(6.0))
        theta = theta + warp * math.pi * (2 * u[:, 4:5] - 1) * torch.sin(2 * phi + 2 * math.pi * u[:, 5:6])
        grey = grey + 0.5 * warp * (2 * u[:, 6:7] - 1) * torch.sin(math.pi * (grey + 1) + 2 * math.pi * u[:, 7:8])
    rotated = torch.cos(theta) * c + torch.sin(theta) * k_cross_c
    saturation, contrast, brightness = 0.25 + 1.25 * u[:, 1:2], 0.6 + 0.8 * u[:, 2:3], 0.8 * u[:, 3:4] - 0.4
    return (contrast * (grey + saturation * rotated) + brightness).clamp(-1.0, 1.0)


def relight(images: torch.Tensor, u: torch.Tensor, strength: float) -> torch.Tensor:
    """Multiply each image's brightness (on the [0, 1] scale) by ``1 + s * ramp``: a linear ramp along the direction
    ``2*pi*u0`` (0: left to right), from -1 at the darkest corner to +1 at the brightest, and ``s = strength * u1``;
    clamp to [-1, 1]. ``u`` is (N, LIGHT_PARAMS) uniform [0, 1) numbers."""
    if u.dim() != 2 or u.shape[0] != images.shape[0] or u.shape[1] < LIGHT_PARAMS:
        raise ValueError(f"relight needs ({images.shape[0]}, {LIGHT_PARAMS}) parameters, got {tuple(u.shape)}")
    n, _, h, w = images.shape
    u = u.to(images.dtype)
    angle, s = 2 * math.pi * u[:, 0].view(n, 1, 1, 1), strength * u[:, 1].view(n, 1, 1, 1)
    ys = torch.linspace(-1.0, 1.0, h, dtype=images.dtype, device=images.device).view(1, 1, h, 1)
    xs = torch.linspace(-1.0, 1.0, w, dtype=images.dtype, device=images.device).view(1, 1, 1, w)
    cos, sin = torch.cos(angle), torch.sin(angle)
    ramp = (cos * xs + sin * ys) / (cos.abs() + sin.abs())  # reaches exactly -1 and +1 at two corners
    return ((images + 1) * (1 + s * ramp) - 1).clamp(-1.0, 1.0)
