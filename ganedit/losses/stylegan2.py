"""StyleGAN2's losses: non-saturating logistic GAN loss, R1 gradient penalty and the path-length regulariser."""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[softplus(D(G(z)))] + E[softplus(-D(x))]: the discriminator's logistic loss."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[softplus(-D(G(z)))]: the non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """E|grad_x D(x)|^2 on real images (``real_images`` must require grad); multiply by gamma / 2."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def path_length_penalty(
    images: torch.Tensor,
    wplus: torch.Tensor,
    mean_length: torch.Tensor,
    decay: float = 0.01,
    noise: Optional[torch.Tensor] = None,
    gather: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(E(|J_w^T y| - a)^2, new running mean a, mean path length) with y ~ N(0, I) / sqrt(H*W).

    ``wplus`` [B, n_latent, dim] must be the tensor the images were synthesised from (requires grad); the
    running mean follows a <- a + decay * (mean length - a), as in the official code. ``noise`` (y before the
    scaling, shaped like ``images``) defaults to a fresh draw; ``gather`` maps this process's per-sample lengths to
    the whole batch's (e.g. ``ctx.gather``), so every process updates a from the same global mean."""
    if noise is None:
        noise = torch.randn_like(images)
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), wplus, create_graph=True)
    lengths = torch.sqrt(grad.float().pow(2).sum(2).mean(1))
    everyone = gather(lengths.detach()) if gather is not None else lengths.detach()
    new_mean = mean_length + decay * (everyone.mean() - mean_length)
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean.detach(), everyone.mean()
