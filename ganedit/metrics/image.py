"""Full-reference image metrics on [-1, 1] images: PSNR and SSIM (Wang et al. 2004, Gaussian window 11, sigma 1.5).

Written out here (a few lines each) so the core package needs no metrics library; the tests compare them
with torchmetrics."""
from __future__ import annotations

import torch
import torch.nn.functional as F

DATA_RANGE = 2.0  # images live in [-1, 1]


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Per-image PSNR in dB, shape [N]. Identical images give +inf."""
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM, shape [N]: mean over channels and valid (unpadded) window positions."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"ssim: images of {tuple(x.shape[-2:])} are smaller than the {window}x{window} window")
    x, y = x.double(), y.double()
    c = x.shape[1]
    g = _gaussian_window(window, sigma, x.device)
    kernel_h = g.view(1, 1, 1, window).repeat(c, 1, 1, 1)
    kernel_v = g.view(1, 1, window, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kernel_h, groups=c), kernel_v, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()
