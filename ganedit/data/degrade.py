"""Degradations of any image, in the synthetic world's style (the inputs of pSp's tasks and of inversion
benchmarks): an edge sketch, box downsampling, and inpainting masks (rectangle or brush stroke).

The world renders its sketch from the region weights it knows; an image from elsewhere (a generator sample)
has none, so :func:`edge_sketch` finds the edges with a detector and draws them the same way: dark lines
(-1) on white paper (1), one channel. Unlike the world's sketch it also draws the edges of background and
clothes patterns, which are edges of the image too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ganedit.data.synthetic.export import downsample  # noqa: F401  (the world's own rule, used by edit.indomain)

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
# Gradient magnitudes (per pixel, images in [-1, 1]) mapped to paper and to full ink: a one-pixel step of
# 0.25 (an eighth of the range) reaches full ink, a faint shading gradient stays on the paper.
EDGE_LOW, EDGE_HIGH = 0.03, 0.12


def edge_sketch(images: torch.Tensor, low: float = EDGE_LOW, high: float = EDGE_HIGH) -> torch.Tensor:
    """[N,3,H,W] in [-1, 1] -> [N,1,H,W] sketch: 1 paper, -1 ink where the colour gradient (Sobel, the largest
    over the RGB channels) is strong; ramps linearly between ``low`` and ``high``."""
    n, c, h, w = images.shape
    kx = _SOBEL.to(images).expand(c, 1, 3, 3)
    ky = _SOBEL.t().to(images).expand(c, 1, 3, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.contiguous(), groups=c)
    gy = F.conv2d(padded, ky.contiguous(), groups=c)
    magnitude = (gx * gx + gy * gy).sqrt().amax(1, keepdim=True)
    ink = ((magnitude - low) / (high - low)).clamp(0.0, 1.0)
    return 1.0 - 2.0 * ink


def rectangle_masks(uniforms: torch.Tensor, size: int) -> torch.Tensor:
    """[N,1,H,W] bool holes, one rectangle per image from 4 uniforms per image (as the world's: a quarter to a
    half of the side in each direction, placed uniformly)."""
    u = uniforms
    h = (size * (0.25 + 0.25 * u[:, 0])).floor()
    w = (size * (0.25 + 0.25 * u[:, 1])).floor()
    top = ((size - h + 1) * u[:, 2]).floor()
    left = ((size - w + 1) * u[:, 3]).floor()
    ys = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    v = lambda t: t.view(-1, 1, 1)  # noqa: E731
    inside = (ys >= v(top)) & (ys < v(top + h)) & (xs >= v(left)) & (xs < v(left + w))
    return inside[:, None]


def brush_masks(points: torch.Tensor, radius: torch.Tensor, size: int) -> torch.Tensor:
    """[N,1,H,W] bool holes: a thick polyline through ``points`` [N, K, 2] (x, y in [0, 1]) with round ends,
    ``radius`` [N] in pixels. A pixel is in the hole when its centre is within radius of any segment."""
    n, k, _ = points.shape
    centres = (torch.arange(size, dtype=torch.float32) + 0.5)
    px = centres.view(1, 1, size).expand(1, size, size).reshape(1, -1)  # [1, P]
    py = centres.view(1, size, 1).expand(1, size, size).reshape(1, -1)
    pts = points * size
    best = torch.full((n, size * size), float("inf"))
    for j in range(k - 1):
        ax, ay = pts[:, j, 0:1], pts[:, j, 1:2]
        dx, dy = pts[:, j + 1, 0:1] - ax, pts[:, j + 1, 1:2] - ay
        t = (((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy).clamp(min=1e-6)).clamp(0.0, 1.0)
        dist = ((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2).sqrt()
        best = torch.minimum(best, dist)
    return (best <= radius.view(n, 1)).view(n, 1, size, size)


def fill_holes(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The masked input: holes filled with mid-grey (0 in [-1, 1]), as the world's masked images."""
    return images.masked_fill(masks.expand_as(images), 0.0)
