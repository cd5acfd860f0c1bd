"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive Growing of GANs",
section 5), a distribution metric that needs no pretrained network.

For each set of images: build a Laplacian pyramid (5-tap binomial filter, mirror borders) from the full size
down to 16 px; at every level take ``nhoods_per_image`` random 7x7 neighbourhoods per image (all channels: one
C*7*7 descriptor each) and normalise the descriptors of the set per channel (mean and std over the whole set).
Per level, the distance is the sliced Wasserstein distance between the two descriptor sets: project both on
random unit directions (``dir_repeats`` rounds of ``dirs_per_repeat``; the official code uses 4 x 128 = 512),
take the 1-D Wasserstein-1 distance of each projection and average. Figures are reported x1e3, per level (finest
first) and their mean, as in the paper. Everything is drawn from ``seed``: the same inputs give the same figure.

Both sets are sampled at the same patch positions (the positions do not depend on the images, so this biases
nothing and lowers the noise of the estimate; identical sets give exactly 0). Sets of different sizes are
allowed: the 1-D distance is then computed exactly between the two empirical distributions (with equal sizes it
reduces to the mean absolute difference of the sorted projections, the official formula).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


@dataclass
class SWDResult:
    """Per-level figures (x1e3) keyed by level resolution (finest first) and their mean."""

    levels: Dict[int, float] = field(default_factory=dict)
    mean: float = 0.0

    def as_list(self) -> List[float]:
        return list(self.levels.values()) + [self.mean]


def _binomial(dtype: torch.dtype, device: torch.device, gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor(_BINOMIAL, dtype=dtype, device=device)
    return k / k.sum() * gain


def _blur(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """5x5 binomial filter of every channel with mirror borders (scipy's mode='mirror').

    Channels are folded into the batch and filtered by one single-channel 5x5 convolution: on CPUs this runs
    several times faster than a grouped (depthwise) or a separable pair of convolutions at these sizes."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(x, torch.outer(kernel, kernel).view(1, 1, 5, 5), stride=stride)
    return y.view(n, c, *y.shape[-2:])


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur then keep every second pixel (a stride-2 filter computes only the kept ones)."""
    return _blur(x, _binomial(x.dtype, x.device), stride=2)


def pyr_up(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Insert zeros between pixels, blur with gain 4 (2 per axis) to keep the mean, crop to ``size``."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, _binomial(x.dtype, x.device, gain=2.0))[:, :, : size[0], : size[1]]


def laplacian_pyramid(images: torch.Tensor, levels: int) -> List[torch.Tensor]:
    """``levels`` band-pass images, finest first; the last is the low-pass residual."""
    pyramid = [images]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1], pyramid[-2].shape[-2:])
    return pyramid


def level_sizes(height: int, width: int, min_resolution: int = 16) -> List[Tuple[int, int]]:
    """Sizes of the pyramid levels: halve (rounding up, as stride-2 filtering does) while the shorter side >= min."""
    sizes = []
    while min(height, width) >= min_resolution:
        sizes.append((height, width))
        height, width = (height + 1) // 2, (width + 1) // 2
    return sizes


class SWDDescriptors:
    """Collects the neighbourhood descriptors of one image set, batch by batch, in a fixed image order.

    Patch positions are drawn up front for all ``num_images`` images from ``seed``, so the result does not depend
    on how the images are batched."""

    def __init__(self, num_images: int, image_size: Tuple[int, int], seed: int = 0, nhood_size: int = 7,
                 nhoods_per_image: int = 128, min_resolution: int = 16) -> None:
        self.sizes = level_sizes(*image_size, min_resolution=min_resolution)
        if not self.sizes:
            raise ValueError(f"swd: images of {image_size} are smaller than the {min_resolution} px coarsest level")
        if min_resolution < nhood_size:
            raise ValueError(f"swd: min_resolution {min_resolution} is smaller than the {nhood_size} px neighbourhood")
        self.num_images, self.image_size = num_images, tuple(image_size)
        self.nhood_size, self.nhoods = nhood_size, nhoods_per_image
        g = torch.Generator().manual_seed(seed)
        half = nhood_size // 2
        # Centres at least `half` pixels from every border, as in the official code: y in [half, h - half).
        self.centres = [
            torch.stack([torch.randint(half, h - half, (num_images, nhoods_per_image), generator=g),
                         torch.randint(half, w - half, (num_images, nhoods_per_image), generator=g)], dim=-1)
            for h, w in self.sizes
        ]
        self.count = 0
        self._parts: List[List[torch.Tensor]] = [[] for _ in self.sizes]

    def add(self, images: torch.Tensor) -> None:
        """Add the next ``len(images)`` images of the set (NCHW, any value range; same size as declared)."""
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"swd: image of {tuple(images.shape[-2:])} in a set declared as {self.image_size}")
        n = images.shape[0]
        if self.count + n > self.num_images:
            raise ValueError(f"swd: more than the declared {self.num_images} images")
        offsets = torch.arange(self.nhood_size, device=images.device) - self.nhood_size // 2
        pyramid = laplacian_pyramid(images.float(), len(self.sizes))
        for level, band in enumerate(pyramid):
            centres = self.centres[level][self.count:self.count + n].to(images.device)
            rows = (centres[..., 0, None] + offsets)[..., :, None]  # [n, K, T, 1]
            cols = (centres[..., 1, None] + offsets)[..., None, :]  # [n, K, 1, T]
            batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
            patches = band[batch, :, rows, cols]  # advanced indexing puts channels last: [n, K, T, T, C]
            c, t = band.shape[1], self.nhood_size
            self._parts[level].append(patches.permute(0, 1, 4, 2, 3).reshape(-1, c, t, t).cpu())
        self.count += n

    def finalize(self) -> List[torch.Tensor]:
        """Per level, the [num_images * K, C*T*T] descriptors normalised per channel over the whole set."""
        if self.count != self.num_images:
            raise ValueError(f"swd: {self.count} images added, {self.num_images} declared")
        out = []
        for parts in self._parts:
            desc = torch.cat(parts)
            var, mean = torch.var_mean(desc, dim=(0, 2, 3), correction=0, keepdim=True)
            # In place: at 16k images a level holds ~2M descriptors (1.2 GB). A constant channel (std 0) maps to 0.
            out.append(desc.sub_(mean).div_(var.sqrt().clamp_min(1e-12)).flatten(1))
        return out


def _quantile_indices(na: int, nb: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact W1 between two empirical 1-D distributions as a weighted sum over the union of their quantile steps.

    Breakpoints are kept as integers over the common denominator na*nb, so no rounding can pick a wrong index."""
    if na == nb:
        idx = torch.arange(na)
        return idx, idx, torch.full((na,), 1.0 / na, dtype=torch.float64)
    v = torch.unique(torch.cat([torch.arange(1, na + 1) * nb, torch.arange(1, nb + 1) * na]))  # sorted
    ia = (v + nb - 1) // nb - 1  # quantile function of a on the interval ending at v/(na*nb)
    ib = (v + na - 1) // na - 1
    weights = torch.diff(v, prepend=v.new_zeros(1)).double() / (na * nb)
    return ia, ib, weights


def _sort_rows(t: torch.Tensor) -> torch.Tensor:
    # On CPUs numpy's sort is about 10x faster than torch.sort for these [directions, N] blocks (torch 2.x).
    if t.device.type == "cpu":
        return torch.from_numpy(np.sort(t.numpy(), axis=1))
    return torch.sort(t, dim=1).values


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dir_repeats: int = 4, dirs_per_repeat: int = 128,
                       generator: Optional[torch.Generator] = None, max_elements: int = 1 << 24) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projections of a and b.

    a: [Na, D], b: [Nb, D]. Directions are processed in chunks so that a projection stays under ``max_elements``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"sliced_wasserstein: expected [N, D] descriptor sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    equal = a.shape[0] == b.shape[0]
    ia, ib, weights = _quantile_indices(a.shape[0], b.shape[0])
    ia, ib, weights = ia.to(a.device), ib.to(a.device), weights.to(a.device)
    chunk = max(1, min(dirs_per_repeat, max_elements // max(a.shape[0], b.shape[0])))
    results = []
    for _ in range(dir_repeats):
        dirs = torch.randn(a.shape[1], dirs_per_repeat, generator=generator).to(a.device, a.dtype)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        total = 0.0
        for start in range(0, dirs_per_repeat, chunk):
            d = dirs[:, start:start + chunk]
            # [chunk, N] so that each sort runs over contiguous memory.
            proj_a = _sort_rows(d.T @ a.T)
            proj_b = _sort_rows(d.T @ b.T)
            if equal:  # the official formula: mean |difference| of the sorted projections
                dist = (proj_a - proj_b).abs_().mean(dim=1, dtype=torch.float64)
            else:
                dist = (proj_a[:, ia] - proj_b[:, ib]).abs().double() @ weights  # W1 per direction
            total += float(dist.sum())
        results.append(total / dirs_per_repeat)
    return sum(results) / len(results)


def swd_from_descriptors(desc_a: Sequence[torch.Tensor], desc_b: Sequence[torch.Tensor], sizes: Sequence[Tuple[int, int]],
                         dir_repeats: int = 4, dirs_per_repeat: int = 128, seed: int = 0) -> SWDResult:
    """Per-level SWD x1e3 and their mean from two finalised descriptor lists (see ``SWDDescriptors``)."""
    if len(desc_a) != len(desc_b):
        raise ValueError(f"swd: the sets have {len(desc_a)} and {len(desc_b)} pyramid levels; use images of one size")
    g = torch.Generator().manual_seed(seed + 7919)  # a stream apart from the patch positions
    levels = {}
    for (h, _w), da, db in zip(sizes, desc_a, desc_b):
        levels[h] = 1e3 * sliced_wasserstein(da, db, dir_repeats, dirs_per_repeat, generator=g)
    return SWDResult(levels=levels, mean=sum(levels.values()) / len(levels))


def _batches(images: Union[torch.Tensor, Iterable[torch.Tensor]], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        return images.split(batch_size)
    return images


def swd(images_a: torch.Tensor, images_b: torch.Tensor, *, seed: int = 0, nhood_size: int = 7,
        nhoods_per_image: int = 128, dir_repeats: int = 4, dirs_per_repeat: int = 128, min_resolution: int = 16,
        batch_size: int = 64) -> SWDResult:
    """Sliced Wasserstein distance between two sets of NCHW images of one size (x1e3, per level and mean).

    Example: ``r = swd(real, fake); print(r.levels, r.mean)``."""
    if images_a.shape[1:] != images_b.shape[1:]:
        raise ValueError(f"swd: image shapes differ: {tuple(images_a.shape[1:])} vs {tuple(images_b.shape[1:])}")
    size = tuple(images_a.shape[-2:])
    sets = []
    for images in (images_a, images_b):
        # Both sets use the same stream of patch positions (common random numbers): positions are independent of
        # the images, so nothing is biased, the noise of the estimate shrinks, and identical sets give exactly 0.
        collector = SWDDescriptors(images.shape[0], size, seed=seed, nhood_size=nhood_size,
                                   nhoods_per_image=nhoods_per_image, min_resolution=min_resolution)
        with torch.no_grad():
            for batch in _batches(images, batch_size):
                collector.add(batch)
        sets.append(collector.finalize())
    return swd_from_descriptors(sets[0], sets[1], collector.sizes, dir_repeats, dirs_per_repeat, seed)
