"""In-domain ground truth for StyleGAN inversion (issue 12 §4, DESIGN.md §4): images G(w) of a generator with
their codes known, plus the world-style degradations of each image, so that inversion, pSp's tasks and latent
recovery are scored against an exactly known answer.

Image ``i`` of seed ``s`` is a pure function of (generator, s, i, options): its latents are the i-th draw of
a torch generator seeded with ``s`` (a fixed number of values per image), so a set of n images is the first n
images of any larger set of the same seed. With style
mixing probability ``p``, an image takes rows ``crossover..`` of its w+ from a second w (the crossover drawn
uniformly from 1..n_latent-1), as in StyleGAN2 training. Images are decoded with the generator's stored noise
(``noise="const"``), so ``synthesis(wplus)`` reproduces them exactly.

Layout written by :func:`write_indomain` (``ganedit data indomain``)::

    OUT/images/NNNNNNNN.png          the generated images
    OUT/latents.safetensors          w+ of every image (ganedit.edit.latents format; meta: z, w, mixing)
    OUT/codes.safetensors            z [N, 2, D] (second row: the mixing z), w [N, D] (the first w),
                                     mixed [N] (bool), crossover [N] (n_latent when not mixed)
    OUT/sketch/NNNNNNNN.png          edge sketch (dark lines on white), data.degrade.edge_sketch
    OUT/lowres4/, OUT/lowres8/       box-downsampled by 4 and 8
    OUT/masked/NNNNNNNN.png          the image with the hole filled with mid-grey
    OUT/masks/NNNNNNNN.png           the hole (white) of each masked image: a rectangle or a brush stroke
    OUT/indomain.json                options, generator fingerprint, per-image mask kind
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from ganedit.data.degrade import brush_masks, downsample, edge_sketch, fill_holes, rectangle_masks
from ganedit.data.io import write_image
from ganedit.edit.latents import generator_fingerprint, save_latents, stylegan_generator
from ganedit.errors import ConfigError

LOWRES_FACTORS = (4, 8)
MASK_KINDS = ("rectangle", "brush")
BRUSH_POINTS = 4
MASK_UNIFORMS = 1 + 4 + 2 * BRUSH_POINTS + 1  # kind, rectangle, brush points, brush radius


def image_name(i: int) -> str:
    return f"{i:08d}"


@torch.no_grad()
def sample_codes(G: Any, n: int, seed: int = 0, mixing: float = 0.0, truncation: float = 1.0, start: int = 0) -> Dict[str, torch.Tensor]:
    """Codes of images ``start .. start+n-1``: z [n,2,D], w [n,D], wplus [n,L,D], mixed [n], crossover [n],
    and the uniforms of each image's mask (mask_u [n, MASK_UNIFORMS]).
    ``G`` is a StyleGAN2 wrapper (``mapping`` with truncation towards its mean latent, ``synthesis``)."""
    if not 0.0 <= mixing <= 1.0:
        raise ConfigError(f"style-mixing probability must be in [0, 1], got {mixing}")
    g = stylegan_generator(G)
    dim, rows = int(g.style_dim), int(g.n_latent)
    # One stream per seed, drawn image after image in a fixed layout: image i's numbers are the same however
    # many images follow it (a per-image seed would not do: torch's CPU generator keeps only 32 seed bits).
    rng = torch.Generator().manual_seed(int(seed))
    zs, us = [], []
    for i in range(start + n):
        z_i, u_i = torch.randn(2, dim, generator=rng), torch.rand(2 + MASK_UNIFORMS, generator=rng)
        if i >= start:
            zs.append(z_i)
            us.append(u_i)
    z = torch.stack(zs)
    u = torch.stack(us)
    device = next(g.parameters()).device
    w_both = G.mapping(z.reshape(2 * n, dim).to(device), truncation).reshape(n, 2, dim).cpu()
    mixed = u[:, 0] < mixing
    crossover = torch.where(mixed, 1 + (u[:, 1] * (rows - 1)).floor().long().clamp(max=rows - 2), torch.full((n,), rows))
    row = torch.arange(rows).view(1, rows, 1)
    wplus = torch.where(row < crossover.view(n, 1, 1), w_both[:, :1], w_both[:, 1:])
    return {"z": z, "w": w_both[:, 0], "wplus": wplus, "mixed": mixed, "crossover": crossover, "mask_u": u[:, 2:]}


@torch.no_grad()
def decode(G: Any, wplus: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Images of w+ codes with the generator's stored noise (the exact answer of an inversion)."""
    device = next(stylegan_generator(G).parameters()).device
    parts = [G.synthesis(wplus[i:i + batch_size].to(device), noise="const").cpu() for i in range(0, len(wplus), batch_size)]
    return torch.cat(parts)


def make_masks(mask_u: torch.Tensor, size: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """(holes [n,1,H,W] bool, kind [n] int64 index of MASK_KINDS) from each image's mask uniforms: half the
    images get a rectangle, half a brush stroke through BRUSH_POINTS random points, 8-16 % of the side wide."""
    kind = (mask_u[:, 0] >= 0.5).long()
    rect = rectangle_masks(mask_u[:, 1:5], size)
    points = 0.1 + 0.8 * mask_u[:, 5:5 + 2 * BRUSH_POINTS].reshape(-1, BRUSH_POINTS, 2)
    radius = size * (0.04 + 0.04 * mask_u[:, 5 + 2 * BRUSH_POINTS])
    brush = brush_masks(points, radius, size)
    return torch.where(kind.view(-1, 1, 1, 1) == 1, brush, rect), kind


def write_indomain(
    G: Any,
    out: "str | os.PathLike[str]",
    n: int,
    seed: int = 0,
    mixing: float = 0.0,
    truncation: float = 1.0,
    batch_size: int = 16,
    source: Optional[str] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict[str, Any]:
    """Write the in-domain set of ``n`` images to ``out`` (layout in the module docstring); returns the record
    also written to ``indomain.json``."""
    from safetensors.torch import save_file

    if n < 1:
        raise ConfigError(f"the in-domain set needs at least one image, got n={n}")
    size = int(stylegan_generator(G).size)
    for factor in LOWRES_FACTORS:
        if size % factor:
            raise ConfigError(f"generator size {size} is not a multiple of the low-res factor {factor}")
    root = Path(out)
    folders = ["images", "sketch", "masked", "masks"] + [f"lowres{f}" for f in LOWRES_FACTORS]
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    codes = sample_codes(G, n, seed, mixing, truncation)
    kinds = []
    for i in range(0, n, batch_size):
        j = min(n, i + batch_size)
        # degradations of the image as written (clamped): the ground truth and the inputs agree
        images = decode(G, codes["wplus"][i:j], batch_size).clamp(-1.0, 1.0)
        holes, kind = make_masks(codes["mask_u"][i:j], size)
        kinds += [MASK_KINDS[k] for k in kind.tolist()]
        views = {"images": images, "sketch": edge_sketch(images), "masked": fill_holes(images, holes),
                 "masks": holes.float() * 2.0 - 1.0}
        views.update({f"lowres{f}": downsample(images, f) for f in LOWRES_FACTORS})
        for k in range(j - i):
            for folder, batch in views.items():
                write_image(batch[k], root / folder / f"{image_name(i + k)}.png")
        if progress is not None:
            progress(j - i)
    names = [image_name(i) for i in range(n)]
    fingerprint = generator_fingerprint(G)
    options = {"seed": seed, "mixing": mixing, "truncation": truncation, "noise": "const"}
    save_latents(root / "latents.safetensors", codes["wplus"], names,
                 meta={"space": "w+", "source": "indomain", "generator": fingerprint, **options})
    save_file({k: codes[k].contiguous() for k in ("z", "w", "mixed", "crossover")}, str(root / "codes.safetensors"))
    record = {"n": n, "size": size, "generator_path": source, "generator": fingerprint, **options,
              "lowres_factors": list(LOWRES_FACTORS), "mask_kind": kinds, "mixed": int(codes["mixed"].sum()),
              "layout": folders + ["latents.safetensors", "codes.safetensors"]}
    (root / "indomain.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
