"""Full-reference image metrics on [-1, 1] images: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003),
with a Gaussian window of 11 taps, sigma 1.5, and only the window positions that fit inside the image.

Written out here (a few lines each) so the core package needs no metrics library. With the same settings they
agree with ``torchmetrics`` (``structural_similarity_index_measure(gaussian_kernel=True, sigma=1.5,
kernel_size=11, data_range=2.0)`` and ``multiscale_structural_similarity_index_measure`` with its default
``normalize="relu"``); the tests check it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

DATA_RANGE = 2.0  # images live in [-1, 1]
# Per-scale exponents of MS-SSIM, finest first (Wang, Simoncelli & Bovik 2003, Table 1).
MS_SSIM_BETAS: Tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check_pair(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{name}: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected NCHW images, got shape {tuple(x.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Per-image PSNR in dB, shape [N]: ``10 log10(data_range^2 / MSE)``. Identical images give +inf."""
    _check_pair("psnr", x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, data_range: float, window: int, sigma: float
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and mean contrast-structure term cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)."""
    n, c, h, w = x.shape
    g = _gaussian_window(window, sigma, x.device)
    # One separable blur over the five moment images at once, channels folded into the batch: a single-channel
    # convolution runs several times faster on CPU than a grouped (depthwise) one.
    moments = torch.cat([x, y, x * x, y * y, x * y]).reshape(5 * n * c, 1, h, w)
    blurred = F.conv2d(F.conv2d(moments, g.view(1, 1, 1, window)), g.view(1, 1, window, 1))
    mu_x, mu_y, e_xx, e_yy, e_xy = blurred.view(5 * n, c, *blurred.shape[-2:]).split(n)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # Variances can dip below zero by rounding; clamp as torchmetrics does.
    var_x = (e_xx - mu_x**2).clamp_min(0)
    var_y = (e_yy - mu_y**2).clamp_min(0)
    cov = e_xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    s = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return s.flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM, shape [N]: mean over channels and valid (unpadded) window positions."""
    _check_pair("ssim", x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"ssim: images of {tuple(x.shape[-2:])} are smaller than the {window}x{window} window")
    s, _ = _ssim_and_cs(x.double(), y.double(), data_range, window, sigma)
    return s.float()


def ms_ssim_max_scales(height: int, width: int, window: int = 11) -> int:
    """How many MS-SSIM scales an image of this size has room for (the coarsest must still hold one window)."""
    scales, side = 0, min(height, width)
    while side >= window:
        scales, side = scales + 1, side // 2
    return scales


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE, window: int = 11, sigma: float = 1.5,
            betas: Sequence[float] = MS_SSIM_BETAS, scales: Optional[int] = None) -> torch.Tensor:
    """Per-image multi-scale SSIM, shape [N]: ``prod_j cs_j^beta_j * ssim_M^beta_M`` over scales halved by 2x2 averaging.

    The standard figure uses the 5 scales of ``MS_SSIM_BETAS`` and needs images of at least 176 px. ``scales``
    (fewer than ``len(betas)``) keeps the finest ``scales`` exponents renormalised to sum to 1, which lets small
    images be scored; such figures are only comparable with figures at the same number of scales. Negative
    cs/ssim terms are clamped to 0 (torchmetrics' default ``normalize="relu"``) so fractional powers stay real.
    """
    _check_pair("ms_ssim", x, y)
    betas_t = torch.tensor(list(betas), dtype=torch.float64, device=x.device)
    if scales is not None:
        if not 1 <= scales <= len(betas_t):
            raise ValueError(f"ms_ssim: scales must be between 1 and {len(betas_t)}, got {scales}")
        betas_t = betas_t[:scales] / betas_t[:scales].sum()
    m = len(betas_t)
    if ms_ssim_max_scales(*x.shape[-2:], window=window) < m:
        need = window * 2 ** (m - 1)
        raise ValueError(
            f"ms_ssim: images of {tuple(x.shape[-2:])} are too small for {m} scales (need at least {need} px); "
            f"use scales={ms_ssim_max_scales(*x.shape[-2:], window=window)} or larger images"
        )
    x, y = x.double(), y.double()
    terms = []
    for j in range(m):
        s, cs = _ssim_and_cs(x, y, data_range, window, sigma)
        terms.append(s if j == m - 1 else cs)
        if j < m - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(terms).clamp_min(0)
    return torch.prod(stacked ** betas_t.view(-1, 1), dim=0).float()
