"""Optimisation inversion of StyleGAN2 ("projection"), after the NVlabs / rosinality projectors.

For each image, a code (one w, or a w+ of n_latent rows) and, optionally, the generator's noise maps are found
by Adam so that G(code, noise) looks like the image:
  * start from the mean latent (or an encoder's output, ``init``); Adam at lr 0.1 with a linear warm-up over the
    first 5 % of the steps and a cosine ramp-down over the last 25 %;
  * Gaussian noise added to the code, of strength 0.05 * std(w) * max(0, 1 - t / 0.75)^2, so early steps explore;
  * the noise maps are optimised too, with the multi-scale autocorrelation penalty (weight 1e5) and renormalised
    to zero mean / unit variance after every step, so they cannot carry the image;
  * loss: LPIPS-VGG (local weight files, see ganedit.metrics.lpips_net) on images at most 256 px, plus optional
    MSE. Without the weights a loss that needs none is used (pixel MSE on a 3-level pyramid), and a warning
    says so.
Images of a batch are optimised together but independently: every loss term is per image, and so are Adam's
element-wise updates and the noise renormalisation.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn.functional as F

from ganedit.edit.latents import stylegan_generator, generator_fingerprint
from ganedit.errors import ConfigError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, Dict[str, float]], None]
CancelFn = Callable[[], bool]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ProjectionResult:
    """``wplus`` [N, n_latent, dim] (rows equal for space "w"); ``noise`` the optimised maps [N, 1, H, W] (None
    when the generator's stored maps were used); ``images`` G(wplus, noise); ``history`` the mean loss per step."""

    wplus: torch.Tensor
    noise: Optional[List[torch.Tensor]]
    images: torch.Tensor
    space: str
    steps: int
    history: List[float] = field(default_factory=list)
    final_loss: Optional[torch.Tensor] = None
    cancelled: bool = False
    loss_name: str = ""

    def meta(self, G: Any) -> Dict[str, Any]:
        """The latents-file metadata of this result (pass to ``save_latents``)."""
        return {"space": self.space, "source": "projection", "generator": generator_fingerprint(G), "steps": self.steps,
                "loss": self.loss_name, "cancelled": self.cancelled}

    @property
    def noise_or_const(self) -> Union[str, List[torch.Tensor]]:
        return "const" if self.noise is None else self.noise


# ----------------------------------------------------------------------------------------------- schedules


def learning_rate(t: float, base: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """NVlabs schedule at progress t in [0, 1]: linear warm-up over ``rampup``, cosine ramp-down over the last
    ``rampdown``."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return base * ramp


def latent_noise_strength(t: float, w_std: float, factor: float = 0.05, ramp: float = 0.75) -> float:
    """Std of the noise added to the code at progress t: w_std * factor * max(0, 1 - t / ramp)^2."""
    return w_std * factor * max(0.0, 1.0 - t / ramp) ** 2


# ------------------------------------------------------------------------------------------------ noise maps


def noise_regularizer(noises: List[torch.Tensor]) -> torch.Tensor:
    """Per-image multi-scale autocorrelation penalty [N]: the squared one-pixel-shift autocorrelation (both axes)
    of each map, at its resolution and at every 2x average-pooled level down to 8x8."""
    total = noises[0].new_zeros(noises[0].shape[0])
    for noise in noises:
        v = noise
        while True:
            total = total + (v * torch.roll(v, 1, dims=3)).mean(dim=(1, 2, 3)).pow(2)
            total = total + (v * torch.roll(v, 1, dims=2)).mean(dim=(1, 2, 3)).pow(2)
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return total


@torch.no_grad()
def normalize_noise_(noises: List[torch.Tensor]) -> None:
    """Zero mean, unit variance per image and map, in place."""
    for noise in noises:
        mean = noise.mean(dim=(1, 2, 3), keepdim=True)
        std = noise.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-8)
        noise.sub_(mean).div_(std)


# ----------------------------------------------------------------------------------------------------- losses


def downsample_to(images: torch.Tensor, max_size: int = 256) -> torch.Tensor:
    """Average-pool images larger than ``max_size`` down to it (the projectors feed LPIPS at most 256 px)."""
    size = images.shape[-1]
    if size <= max_size:
        return images
    return F.avg_pool2d(images, size // max_size)


def pyramid_mse(x: torch.Tensor, y: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Per-image MSE averaged over a 3-level 2x pyramid [N]: the weight-free loss (coarse levels keep the
    gradient informative when the images are still far apart)."""
    total = x.new_zeros(x.shape[0])
    for level in range(levels):
        total = total + (x - y).pow(2).mean(dim=(1, 2, 3))
        if level + 1 < levels and x.shape[-1] >= 8:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return total / levels


def perceptual_loss(lpips: Any = None, net: str = "vgg", device: "torch.device | str" = "cpu") -> tuple:
    """(loss_fn, name): LPIPS from a model, a weights path, or the cache folder; None/False -> weight-free.

    ``lpips`` may be an LPIPS module, a path (file or folder), None (look in $GANEDIT_CACHE) or False (do not
    look). Nothing found in the cache falls back to :func:`pyramid_mse` with a warning; a named path that lacks
    the files is an error (MissingWeightsError)."""
    from ganedit.metrics.lpips_net import LPIPS, load_lpips
    from ganedit.metrics.weights import MissingWeightsError

    if isinstance(lpips, torch.nn.Module):
        model: Optional[LPIPS] = lpips
    elif lpips is False:
        model = None
    else:
        try:
            model = load_lpips(net, lpips)
        except MissingWeightsError as exc:
            if lpips is not None:
                raise  # weights the user named explicitly must be there: no silent fallback
            log.warning("projection: LPIPS-%s weights not found (%s); using a loss that needs no weights "
                        "(multi-scale pixel MSE), so the result will be blurrier than with LPIPS",
                        net, str(exc).splitlines()[0])
            model = None
    if model is None:
        return pyramid_mse, "pyramid-mse"
    model = model.to(device)
    return (lambda x, y: model(downsample_to(x), downsample_to(y))), f"lpips-{getattr(model, 'net_name', net)}"


# ------------------------------------------------------------------------------------------------ projection


@torch.no_grad()
def w_statistics(G: Any, n: int = 10000, seed: int = 0) -> tuple:
    """(mean w [dim], scalar spread sqrt(E|w - mean|^2)) over n mapped z ~ N(0, I), as the projectors do."""
    g = stylegan_generator(G)
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.style_dim, generator=gen).to(device)
    w = torch.cat([g.mapping(chunk) for chunk in z.split(2048)])
    mean = w.mean(0)
    std = ((w - mean).pow(2).sum() / n).sqrt()
    return mean, float(std)


def _initial_codes(G: Any, init: Any, n: int, space: str, w_mean: torch.Tensor) -> torch.Tensor:
    g = stylegan_generator(G)
    if init is None or (isinstance(init, str) and init == "mean"):
        start = w_mean.reshape(1, -1).expand(n, -1)
    elif isinstance(init, torch.Tensor):
        start = init.detach().to(w_mean.device, torch.float32)
        if start.dim() == 3 and start.shape[1:] != (g.n_latent, g.style_dim):
            raise ConfigError(f"init codes have shape {tuple(start.shape)}, this generator needs [N, {g.n_latent}, {g.style_dim}]")
        if start.shape[0] != n or start.shape[-1] != g.style_dim or start.dim() not in (2, 3):
            raise ConfigError(f"init codes have shape {tuple(start.shape)} for {n} images of a generator with style_dim {g.style_dim}")
        if space == "w" and start.dim() == 3:
            start = start.mean(1)  # one w that is closest (in L2) to the encoder's rows
    else:
        raise ConfigError(f"init must be 'mean' or a tensor of codes, got {type(init).__name__}")
    if space == "w+" and start.dim() == 2:
        start = start.unsqueeze(1).expand(-1, g.n_latent, -1)
    return start.clone().contiguous()


def project(
    G: Any,
    images: torch.Tensor,
    space: str = "w+",
    steps: int = 1000,
    noise: bool = True,
    init: Any = None,
    *,
    noise_init: str = "random",
    lr: float = 0.1,
    lpips: Any = None,
    lpips_net: str = "vgg",
    mse: float = 0.0,
    noise_regularize: float = 1e5,
    initial_noise_factor: float = 0.05,
    noise_ramp: float = 0.75,
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    n_mean_latent: int = 10000,
    seed: int = 0,
    progress: Optional[ProgressFn] = None,
    cancel: Optional[CancelFn] = None,
    loss_fn: Optional[LossFn] = None,
) -> ProjectionResult:
    """Find codes for ``images`` [N, 3, size, size] in [-1, 1]. See the module docstring for the method.

    ``space``: "w" (one w per image) or "w+". ``noise``: optimise the noise maps (else the generator's stored
    maps are used). ``init``: "mean"/None, or codes [N, dim] / [N, n_latent, dim] (an encoder's output) to refine.
    ``lpips``: an LPIPS module, a weights path, None (search the cache) or False (weight-free loss); ``loss_fn``
    overrides it with any per-image loss ``f(x, y) -> [N]``. ``mse``: weight of an extra pixel MSE.
    ``progress(step, steps, {"loss": ...})`` is called after each step; when ``cancel()`` returns True the run
    stops and returns what it has (``cancelled`` = True).
    """
    if space not in ("w", "w+"):
        raise ConfigError(f"space must be 'w' or 'w+', got {space!r}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    g = stylegan_generator(G)
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[-2:] != (g.size, g.size):
        raise ConfigError(f"images must be [N, 3, {g.size}, {g.size}] for this generator, got {tuple(images.shape)}")
    device = next(g.parameters()).device
    target = images.detach().to(device, torch.float32)
    n = target.shape[0]
    if loss_fn is not None:
        criterion, loss_name = loss_fn, getattr(loss_fn, "__name__", "custom")
    else:
        criterion, loss_name = perceptual_loss(lpips, lpips_net, device)

    w_mean, w_std = w_statistics(g, n_mean_latent, seed)
    code = _initial_codes(g, init, n, space, w_mean).requires_grad_(True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noises: Optional[List[torch.Tensor]] = None
    params = [code]
    if noise_init not in ("random", "const"):
        raise ConfigError(f"noise_init must be 'random' or 'const', got {noise_init!r}")
    if noise:
        stored = [getattr(g.noises, f"noise_{k}") for k in range(g.num_layers)]
        noises = [(torch.randn(n, 1, m.shape[-2], m.shape[-1], generator=gen).to(device) if noise_init == "random"
                   else m.detach().expand(n, -1, -1, -1).clone()).requires_grad_(True) for m in stored]
        params += noises
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))

    saved_flags = [p.requires_grad for p in g.parameters()]
    g.requires_grad_(False)  # gradients only for the code and the noise maps
    history: List[float] = []
    per_image = torch.zeros(n)
    cancelled, done = False, 0
    try:
        for step in range(steps):
            if cancel is not None and cancel():
                cancelled = True
                break
            t = step / steps
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(t, lr, lr_rampdown, lr_rampup)
            strength = latent_noise_strength(t, w_std, initial_noise_factor, noise_ramp)
            jitter = torch.randn(code.shape, generator=gen).to(device) * strength
            noisy = code + jitter
            wplus = noisy.unsqueeze(1).expand(-1, g.n_latent, -1) if space == "w" else noisy
            generated = g.synthesis(wplus, noise=noises if noises is not None else "const")
            losses = criterion(generated, target)
            if mse > 0:
                losses = losses + mse * (generated - target).pow(2).mean(dim=(1, 2, 3))
            total = losses
            if noises is not None and noise_regularize > 0:
                total = total + noise_regularize * noise_regularizer(noises)
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
            optimizer.step()
            if noises is not None:
                normalize_noise_(noises)
            per_image = losses.detach().cpu()
            history.append(float(per_image.mean()))
            done = step + 1
            if progress is not None:
                progress(done, steps, {"loss": history[-1], "lr": optimizer.param_groups[0]["lr"], "latent_noise": strength})
    finally:
        for p, flag in zip(g.parameters(), saved_flags):
            p.requires_grad_(flag)

    with torch.no_grad():
        final = code.detach()
        wplus = final.unsqueeze(1).expand(-1, g.n_latent, -1).contiguous() if space == "w" else final.clone()
        kept_noise = None if noises is None else [nz.detach().clone() for nz in noises]
        images_out = g.synthesis(wplus, noise=kept_noise if kept_noise is not None else "const")
    return ProjectionResult(wplus=wplus, noise=kept_noise, images=images_out, space=space, steps=done, history=history,
                            final_loss=per_image, cancelled=cancelled, loss_name=loss_name)


def project_batches(G: Any, images: torch.Tensor, batch_size: int = 8, progress: Optional[ProgressFn] = None,
                    **kwargs: Any) -> ProjectionResult:
    """:func:`project` over batches of ``batch_size`` images (memory stays bounded); results concatenated.
    ``progress`` receives (images done + step fraction, total images, stats)."""
    parts: List[ProjectionResult] = []
    total = images.shape[0]
    for start in range(0, total, batch_size):
        chunk = images[start:start + batch_size]

        def relay(step: int, steps: int, stats: Dict[str, float], _start: int = start, _n: int = chunk.shape[0]) -> None:
            if progress is not None:
                progress(_start + _n * step // steps, total, stats)

        parts.append(project(G, chunk, progress=relay, **kwargs))
        if parts[-1].cancelled:
            break
    noise = None
    if parts[0].noise is not None:
        noise = [torch.cat([p.noise[k] for p in parts]) for k in range(len(parts[0].noise))]
    return ProjectionResult(wplus=torch.cat([p.wplus for p in parts]), noise=noise,
                            images=torch.cat([p.images for p in parts]), space=parts[0].space, steps=parts[-1].steps,
                            history=parts[-1].history, final_loss=torch.cat([p.final_loss for p in parts]),
                            cancelled=parts[-1].cancelled, loss_name=parts[0].loss_name)
