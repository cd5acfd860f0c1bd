"""Recipe of the attribute regressor (``ganedit.models.attributes``): supervised training on the synthetic world,
rendered on the fly (every step sees fresh images, so there is no dataset and no over-fitting to one).

This is a focused training function, not an engine method: the world is an endless labelled stream and the
only state is one network and one optimiser. ``ganedit attributes train`` runs it.

Choices, and why:
- A quarter of the images are in domain Y (``to_domain_y``: blue skin, dark rooms, dots), so the regressor
  also reads translated and edited images whose colours leave domain X.
- Images are degraded at random (a blur of random strength, a little Gaussian noise), because generator
  samples are softer than rendered ones and the judge must not score a sharpness difference as a factor.
- Cosine learning-rate decay over the run's budget (steps, minutes or CPU minutes, whichever ends first: on a
  shared core the CPU time, not the wall clock, is what the network got).
- The face-detail branch (``detail``) is trained on windows placed by the *true* face box, jittered by a little
  more than the global head's own box error (MAE 0.007 image units, ~2 % of the size), so that at inference it
  tolerates the box the global head predicts. Added to a trained one-stage regressor (``init``), the branch's
  head starts as a copy of the global head's rows, and ``freeze_global`` keeps the first stage as it was (its
  factors and the box stay exactly as accurate) while all the compute goes to the fine factors.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ganedit.data.synthetic import Appearance, render, sample_appearance, sample_structure, to_domain_y
from ganedit.models.attributes import AttributeRegressor, detail_settings, factor_losses, factor_targets

DEFAULTS: Dict[str, Any] = {
    "batch": 32,
    "lr": 2e-3,
    "warmup_steps": 100,
    "domain_y_every": 4,  # every 4th image of the stream is in domain Y
    "blur_probability": 0.5,
    "noise_probability": 0.5,
    "max_noise": 0.04,
    "channels": [8, 16, 32, 64, 128],
    "feature_dim": 256,
    "size": 64,
    "detail": None,  # face-detail branch settings (ganedit.models.attributes.DETAIL_DEFAULTS), None: one stage
    "freeze_global": False,  # train only the detail branch and its head
    "box_jitter": 0.015,  # std of the window centre's jitter, image units
    "box_scale_jitter": 0.03,  # std of the log window size's jitter
    "parts_weight": 1.0,  # weight of the detail branch's auxiliary part-segmentation loss
    # std of the detail head's branch block when a branch is added to a trained regressor: large enough that the
    # regression loss reaches the branch at once, small enough not to swamp what the global block reads
    "branch_init_std": 0.01,
}


def _mix_appearance(x: Appearance, y: Appearance, take_y: torch.Tensor) -> Appearance:
    fields = {}
    for name, vx in x.tensors().items():
        vy = y.tensors()[name]
        fields[name] = torch.where(take_y.view(-1, *[1] * (vx.dim() - 1)), vy, vx)
    return Appearance(**fields)


def world_batch(n: int, seed: int, start: int, size: int = 64, domain_y_every: int = 4, segmentation: bool = False
                ) -> Tuple[torch.Tensor, ...]:
    """Images ``start .. start+n-1`` of the world under ``seed`` with their targets and visibility masks
    (see :func:`ganedit.models.attributes.factor_targets`); every ``domain_y_every``-th image is in domain Y.
    With ``segmentation``, the class map [N, H, W] (ids of the renderer's CLASSES) comes fourth."""
    structure = sample_structure(n, seed, start)
    appearance = sample_appearance(n, seed, start)
    if domain_y_every > 0:
        take_y = torch.arange(start, start + n) % domain_y_every == domain_y_every - 1
        appearance = _mix_appearance(appearance, to_domain_y(appearance), take_y)
    rendered = render(structure, appearance, size)
    targets, visible = factor_targets(structure, appearance)
    if segmentation:
        return rendered.image, targets, visible, rendered.segmentation
    return rendered.image, targets, visible


_BLUR = torch.tensor([1.0, 2.0, 1.0])


def degrade(images: torch.Tensor, generator: torch.Generator, blur_probability: float = 0.5,
            noise_probability: float = 0.5, max_noise: float = 0.04) -> torch.Tensor:
    """Random per-image blur ([1, 2, 1] filter applied up to twice, blended by a random strength) and noise."""
    n, c = images.shape[:2]
    kernel = (_BLUR[:, None] * _BLUR[None, :] / 16.0).expand(c, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    twice = F.conv2d(F.pad(blurred, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    u = torch.rand(n, 4, generator=generator)
    # strength in [0, 2]: 0 = sharp, 1 = one blur pass, 2 = two passes (piecewise-linear blend)
    strength = torch.where(u[:, 0] < blur_probability, 2.0 * u[:, 1], torch.zeros(n)).view(n, 1, 1, 1)
    out = torch.where(strength <= 1.0, images + strength * (blurred - images), blurred + (strength - 1.0) * (twice - blurred))
    sigma = torch.where(u[:, 2] < noise_probability, max_noise * u[:, 3], torch.zeros(n)).view(n, 1, 1, 1)
    return out + sigma * torch.randn(images.shape, generator=generator)


def learning_rate(base: float, progress: float, step: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at progress 1."""
    ramp = min(1.0, (step + 1) / max(1, warmup))
    return base * ramp * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_regressor(
    out: Optional[str] = None,
    steps: int = 10_000,
    minutes: Optional[float] = None,
    cpu_minutes: Optional[float] = None,
    seed: int = 0,
    log_every: int = 100,
    echo: Callable[[str], None] = print,
    init: Optional[str] = None,
    **overrides: Any,
) -> Tuple[AttributeRegressor, Dict[str, Any]]:
    """Train a regressor for ``steps`` steps, ``minutes`` minutes or ``cpu_minutes`` of this process's CPU time,
    whichever ends first; save it to ``out``
    (a native folder) when given. ``init``: a regressor folder to continue from (its architecture is kept, a
    fresh learning-rate cycle starts, and the stream continues after the images it saw).
    Returns (model in eval mode, info: config, steps, images, seconds, CPU seconds, losses, earlier runs)."""
    from ganedit.errors import ConfigError

    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"attributes train: unknown option(s) {sorted(unknown)} (known: {', '.join(DEFAULTS)})")
    cfg = {**DEFAULTS, **overrides, "steps": steps, "minutes": minutes, "seed": seed}
    if cpu_minutes is not None:
        cfg["cpu_minutes"] = cpu_minutes
    torch.manual_seed(seed)
    earlier: list = []
    offset = 0  # images of the stream already seen (by the run continued from)
    if init is not None:
        from ganedit.formats.native import read_config
        from ganedit.models.attributes import load_regressor

        model = load_regressor(init)
        before = read_config(init).get("meta", {}).get("train", {})
        earlier = before.get("earlier_runs", []) + [{k: v for k, v in before.items() if k not in ("history", "earlier_runs")}]
        offset = sum(int(r.get("images_seen", 0)) for r in earlier)
        cfg["channels"], cfg["feature_dim"] = model.config["channels"], model.config["feature_dim"]
        cfg["init"] = str(init)
        if cfg["detail"] is not None and model.detail is None:
            model = add_detail_branch(model, cfg["detail"], cfg["branch_init_std"])
        cfg["detail"] = model.config.get("detail")
    else:
        detail = None if cfg["detail"] is None else detail_settings(cfg["detail"])
        model = AttributeRegressor(channels=cfg["channels"], feature_dim=cfg["feature_dim"], detail=detail)
    if cfg["freeze_global"]:
        if model.detail is None:
            raise ConfigError("attributes train: freeze_global needs a detail branch (set detail)")
        for p in model.global_parameters():
            p.requires_grad_(False)
    trained = [name for name, _ in model.detail_slices.items()] if cfg["freeze_global"] else None
    _train_mode(model, cfg["freeze_global"])
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"], betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(seed)
    budget = None if minutes is None else minutes * 60.0
    cpu_budget = None if cpu_minutes is None else cpu_minutes * 60.0
    start, cpu_start = time.perf_counter(), time.process_time()
    history: list = []
    running = 0.0
    per_factor: Dict[str, float] = {}
    step = 0
    for step in range(steps):
        progress = step / steps
        if budget is not None:
            progress = max(progress, (time.perf_counter() - start) / budget)
        if cpu_budget is not None:
            progress = max(progress, (time.process_time() - cpu_start) / cpu_budget)
        if progress >= 1.0:
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg["lr"], progress, step, cfg["warmup_steps"])
        images, targets, visible, classes = world_batch(cfg["batch"], seed, offset + step * cfg["batch"], cfg["size"],
                                                        cfg["domain_y_every"], segmentation=True)
        images = degrade(images, generator, cfg["blur_probability"], cfg["noise_probability"], cfg["max_noise"])
        specs = model.specs if trained is None else [s for s in model.specs if s.name in trained]
        if model.detail is None:
            losses = factor_losses(specs, model(images), targets, visible)
            loss = torch.stack(list(losses.values())).mean()
        else:
            box = jittered_box(targets, generator, cfg["box_jitter"], cfg["box_scale_jitter"])
            raw, part_logits = model.forward_with_parts(images, box)
            losses = factor_losses(specs, raw, targets, visible)
            losses["parts"] = parts_loss(part_logits, classes, box)
            loss = torch.stack([v for k, v in losses.items() if k != "parts"]).mean() + cfg["parts_weight"] * losses["parts"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running += float(loss.detach())
        for name, value in losses.items():
            per_factor[name] = per_factor.get(name, 0.0) + float(value.detach())
        if (step + 1) % log_every == 0:
            history.append({"step": step + 1, "loss": running / log_every, "seconds": round(time.perf_counter() - start, 1)})
            rate = (step + 1) * cfg["batch"] / (time.perf_counter() - start)
            # the hardest factors (highest loss; 1 is a constant guess of a uniform factor) show what is learned
            hardest = sorted(per_factor.items(), key=lambda kv: -kv[1])[:4]
            echo(f"step {step + 1}: loss {running / log_every:.4f}  ({rate:.0f} img/s); hardest: "
                 + ", ".join(f"{k} {v / log_every:.3f}" for k, v in hardest))
            running = 0.0
            per_factor = {}
    else:
        step = steps
    model.eval()
    seconds = time.perf_counter() - start
    info = {"config": cfg, "steps_done": step, "images_seen": step * cfg["batch"], "seconds": round(seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1), "history": history, "earlier_runs": earlier}
    if out is not None:
        from ganedit.formats.native import save_model

        save_model(model, Path(out), meta={"train": info})
    return model, info


def add_detail_branch(model: AttributeRegressor, detail: Dict[str, Any], branch_init_std: float = 0.01) -> AttributeRegressor:
    """A two-stage copy of a one-stage regressor: the same first stage (weights copied), a fresh face-detail
    branch, and a detail head whose global block is the global head (its branch block: std ``branch_init_std``)."""
    config = {**model.config, "detail": detail_settings(detail)}
    two = AttributeRegressor(**config)
    two.load_state_dict(model.state_dict(), strict=False)  # everything but the new branch and head
    two.init_detail_head_from_global(branch_init_std)
    return two


def parts_loss(logits: torch.Tensor, classes: torch.Tensor, box: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the branch's part logits against the class map cropped by the same window (one-hot
    resampled like the image, so boundary pixels get soft targets)."""
    from ganedit.models.attributes import crop_faces

    one_hot = F.one_hot(classes, logits.shape[1]).permute(0, 3, 1, 2).float()
    soft = crop_faces(one_hot, box[0], box[1], box[2], logits.shape[-1])
    return -(soft * F.log_softmax(logits, 1)).sum(1).mean()


def jittered_box(targets: Dict[str, torch.Tensor], generator: torch.Generator, jitter: float,
                 scale_jitter: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The true (face_x, face_y, face_size), moved and scaled at random (normal, std ``jitter`` image units and
    ``scale_jitter`` in log size)."""
    n = len(targets["face_x"])
    z = torch.randn(3, n, generator=generator)
    return (targets["face_x"] + jitter * z[0], targets["face_y"] + jitter * z[1],
            targets["face_size"] * torch.exp(scale_jitter * z[2]))


def _train_mode(model: AttributeRegressor, freeze_global: bool) -> None:
    """Training mode, except a frozen first stage, whose batch norms keep their running statistics."""
    model.train()
    if freeze_global:
        for m in model.global_modules():
            m.eval()


def heldout_batches(n: int, seed: int = 0, size: int = 64, domain_y_every: int = 0, batch: int = 500,
                    start: int = 0) -> Sequence[Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]]:
    """Held-out world images ``start .. start+n-1`` (seed ``heldout_seed(seed)``: never seen in training)."""
    from ganedit.data.synthetic import heldout_seed

    held = heldout_seed(seed)
    return [world_batch(min(batch, n - i), held, start + i, size, domain_y_every) for i in range(0, n, batch)]
