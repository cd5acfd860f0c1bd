"""The official Swapping Autoencoder losses (README §4), as pure functions of the model and a real minibatch.

Each returns a dict of *per-sample* loss tensors (per image, or per crop for the patch terms) already multiplied by
their weights, exactly like the official ``compute_*_losses``; the optimiser step sums their means
(:func:`total`). Random crops use ``generator`` (None: the global torch RNG, as the official code does), drawn in
the official order, so a seeded call reproduces the official values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ganedit.models.swapae.discriminators import RandFn


@dataclass
class LossWeights:
    lambda_L1: float = 1.0
    lambda_GAN: float = 1.0
    lambda_PatchGAN: float = 1.0
    lambda_R1: float = 10.0
    lambda_patch_R1: float = 1.0  # the official mountain launcher uses 10
    lambda_color_swap: float = 0.0  # ganedit addition, 0 in the official recipe: see color_swap_loss

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def gan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating logistic loss per sample: softplus(-pred) for real targets, softplus(pred) for fake,
    averaged over the non-batch dimensions."""
    loss = F.softplus(-pred) if real else F.softplus(pred)
    return loss.flatten(1).mean(1)


def total(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The optimiser's objective: the sum of every term's mean."""
    return sum(v.mean() for v in losses.values())  # type: ignore[return-value]


# Which images are reconstructed: the official first half of the batch (None), or any rows (a slice or an index
# tensor), e.g. the first image of each pair, ``slice(0, None, 2)``, which stays the same set of images however the
# batch is cut into per-process shares.
Rows = Union[slice, torch.Tensor, None]


def select_rows(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """The reconstructed rows of x (:data:`Rows`)."""
    return x[: x.shape[0] // 2] if rows is None else x[rows]


def _noise_rows(noise, rows: Rows):
    if not isinstance(noise, dict):
        return noise
    return {k: v if v.shape[0] == 1 else select_rows(v, rows) for k, v in noise.items()}  # batch-1 noise broadcasts


def _rec_and_mix(model, real: torch.Tensor, noise, rec_rows: Rows = None,
                 with_mix: bool = True) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """rec = G(sp[rows], gl[rows]) (rows: the first half by default); mix = G(swap_pairs(sp), gl): image i keeps
    its texture, takes its partner's structure (None without ``with_mix``: only the GAN terms read it)."""
    sp, gl = model.E(real)
    rec = model.G(select_rows(sp, rec_rows), select_rows(gl, rec_rows), _noise_rows(noise, rec_rows))
    mix = model.G(model.swap_pairs(sp), gl, noise) if with_mix else None
    return sp, gl, rec, mix


def discriminator_losses(model, real: torch.Tensor, w: LossWeights = LossWeights(), noise=None, generator: Optional[torch.Generator] = None,
                         rand: Optional[RandFn] = None, rec_rows: Rows = None) -> Dict[str, torch.Tensor]:
    """D step: image D on real / rec / mix, patch D on (reference crops of real, crops of real or mix). ``rand``
    replaces ``generator`` for the crops (``discriminators.RandFn``); ``rec_rows``: see :data:`Rows`."""
    with torch.no_grad():
        _, _, rec, mix = _rec_and_mix(model, real, noise, rec_rows)
    losses: Dict[str, torch.Tensor] = {}
    if w.lambda_GAN > 0:
        losses["D_real"] = gan_loss(model.D(real), True) * w.lambda_GAN
        losses["D_rec"] = gan_loss(model.D(rec), False) * (0.5 * w.lambda_GAN)
        losses["D_mix"] = gan_loss(model.D(mix), False) * (0.5 * w.lambda_GAN)
    if w.lambda_PatchGAN > 0:
        dp = model.Dpatch
        ref = dp.extract_features(model.crops(real, generator, rand), aggregate=model.patch_use_aggregation)
        target = dp.extract_features(model.crops(real, generator, rand))
        fake = dp.extract_features(model.crops(mix, generator, rand))
        losses["PatchD_real"] = gan_loss(dp.discriminate_features(ref, target), True) * w.lambda_PatchGAN
        losses["PatchD_mix"] = gan_loss(dp.discriminate_features(ref, fake), False) * w.lambda_PatchGAN
    return losses


def generator_losses(model, real: torch.Tensor, w: LossWeights = LossWeights(), noise=None, generator: Optional[torch.Generator] = None,
                     recolored: Optional[torch.Tensor] = None, rand: Optional[RandFn] = None,
                     rec_rows: Rows = None) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """G step (updates E and G): L1 reconstruction, GAN on rec (x0.5) and mix (x1.0), patch co-occurrence GAN;
    with ``lambda_color_swap`` > 0 also :func:`color_swap_loss` on ``recolored`` (recoloured copies of the
    reconstructed rows of ``real``: the first half, or ``rec_rows``)."""
    _, gl, rec, mix = _rec_and_mix(model, real, noise, rec_rows, with_mix=w.lambda_GAN > 0 or w.lambda_PatchGAN > 0)
    l1 = F.l1_loss(rec, select_rows(real, rec_rows))
    metrics = {"L1_dist": l1.detach()}
    losses: Dict[str, torch.Tensor] = {}
    if w.lambda_L1 > 0:
        losses["G_L1"] = l1 * w.lambda_L1
    if w.lambda_GAN > 0:
        losses["G_GAN_rec"] = gan_loss(model.D(rec), True) * (0.5 * w.lambda_GAN)
        losses["G_GAN_mix"] = gan_loss(model.D(mix), True) * w.lambda_GAN
    if w.lambda_PatchGAN > 0:
        dp = model.Dpatch
        ref = dp.extract_features(model.crops(real, generator, rand), aggregate=model.patch_use_aggregation).detach()
        fake = dp.extract_features(model.crops(mix, generator, rand))
        losses["G_mix"] = gan_loss(dp.discriminate_features(ref, fake), True) * w.lambda_PatchGAN
    if w.lambda_color_swap > 0:
        if recolored is None:
            raise ValueError("lambda_color_swap > 0 needs the recoloured images")
        losses["G_color_swap"] = color_swap_loss(model, select_rows(real, rec_rows), recolored, select_rows(gl, rec_rows), _noise_rows(noise, rec_rows)) * w.lambda_color_swap
    return losses, metrics


def color_swap_loss(model, real: torch.Tensor, recolored: torch.Tensor, texture: torch.Tensor, noise=None) -> torch.Tensor:
    """Per-image L1 between ``real`` and G(structure code of ``recolored``, texture code of ``real``).

    A swap with a known answer: ``recolored`` has the edges of ``real`` and other colours, so the only way to
    rebuild ``real`` is to take the colours from the texture code and nothing but layout from the structure code.
    The official recipe learns this split from the GAN terms alone, which takes far longer than a CPU budget."""
    sp, _ = model.E(recolored)
    out = model.G(sp, texture, noise)
    return (out - real).abs().flatten(1).mean(1)


def r1_parts(model, real: torch.Tensor, real_crops: torch.Tensor, target_crops: torch.Tensor, w: LossWeights = LossWeights()) -> Dict[str, torch.Tensor]:
    """Per-image R1 penalties: λ_R1/2·|∇_x D(x)|² and λ_patch_R1/4·(|∇ real crops|² + |∇ target crops|²) of the
    summed patch logits (crops as leaves). ``create_graph`` so the penalty can be minimised."""
    real = real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.D(real).sum(), real, create_graph=True)
    image = g.pow(2).flatten(1).sum(1) * (0.5 * w.lambda_R1)
    rc = real_crops.detach().requires_grad_(True)
    tc = target_crops.detach().requires_grad_(True)
    dp = model.Dpatch
    pred = dp.discriminate_features(dp.extract_features(rc, aggregate=model.patch_use_aggregation), dp.extract_features(tc)).sum()
    gr, gt = torch.autograd.grad(pred, [rc, tc], create_graph=True)
    patch = (gr.pow(2).flatten(1).sum(1) + gt.pow(2).flatten(1).sum(1)) * (0.25 * w.lambda_patch_R1)
    return {"image": image, "patch": patch}


def r1_loss(model, real: torch.Tensor, w: LossWeights = LossWeights(), generator: Optional[torch.Generator] = None,
            rand: Optional[RandFn] = None) -> Dict[str, torch.Tensor]:
    """The lazy R1 term ``D_R1`` per image (the trainer multiplies its mean by the R1 interval, 16)."""
    if w.lambda_patch_R1 > 0 and w.lambda_PatchGAN > 0:
        rc = model.crops(real, generator, rand)
        tc = model.crops(real, generator, rand)
        parts = r1_parts(model, real, rc, tc, w)
        return {"D_R1": parts["image"] + parts["patch"]}
    real = real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.D(real).sum(), real, create_graph=True)
    return {"D_R1": g.pow(2).flatten(1).sum(1) * (0.5 * w.lambda_R1)}
