"""Pivotal tuning inversion (PTI, Roich et al. 2021): invert an image to a pivot code, then fine-tune the
generator so that G(pivot) reproduces the image, and keep the tuned weights compactly.

Recipe (the official hyper-parameters as defaults): the pivot is a W projection (450 steps, lr 5e-3, noise maps
optimised and then dropped); tuning trains the synthesis network with Adam lr 3e-4 for at most 350 steps on
L2 + LPIPS (weights 1 and 1) with the generator's stored noise, and stops as soon as the LPIPS term is below 0.06.
The optional locality regulariser keeps the tuned generator equal to the original one on codes 30 units away from
the pivot towards random (psi 0.5) codes (L2 0.1 + LPIPS 0.1). Without LPIPS weights the weight-free loss of
``ganedit.edit.projection`` is used instead, with its own stop threshold (1e-3).

Storage: the official code pickles a whole generator per image; here a file holds only the pivot and the
difference tuned - base of the parameters that changed, in fp16 (or, with ``rank``, as a truncated SVD
u @ v per weight matrix), plus the base generator's fingerprint, so a result loads only onto its exact base.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from ganedit.edit.latents import generator_fingerprint, stylegan_generator, weights_hash
from ganedit.edit.projection import CancelFn, ProgressFn, perceptual_loss, project
from ganedit.errors import CheckpointError, ConfigError
from ganedit.formats.tagged import save_tagged

log = logging.getLogger(__name__)

FORMAT_NAME = "ganedit.pti"
FORMAT_VERSION = 1
DELTA_PREFIX = "delta."


@dataclass
class PTIResult:
    """One tuned image: ``pivot`` [1, n_latent, dim], ``delta`` {parameter name: tuned - base} of the
    generator's changed parameters, the base fingerprint, and the loss history of the tuning."""

    name: str
    pivot: torch.Tensor
    delta: Dict[str, torch.Tensor]
    base: Dict[str, Any]
    steps: int = 0
    history: List[float] = field(default_factory=list)
    pivot_loss: Optional[float] = None
    final_loss: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def generator(self, G: Any) -> torch.nn.Module:
        """A copy of ``G``'s generator with the tuned weights (``G`` is checked against the base first)."""
        return apply_delta(G, self.delta, self.base)


def _tunable(g: torch.nn.Module) -> List[str]:
    """Names of the synthesis parameters (the mapping network never sees a gradient when the pivot is fixed)."""
    return [name for name, _ in g.named_parameters() if not name.startswith("style.")]


def locality_codes(g: torch.nn.Module, pivot: torch.Tensor, n: int, alpha: float, gen: torch.Generator,
                   w_avg: torch.Tensor) -> torch.Tensor:
    """Codes ``alpha`` units from the pivot towards random psi-0.5 codes (PTI's locality "territory" samples)."""
    with torch.no_grad():
        z = torch.randn(n, g.style_dim, generator=gen).to(pivot.device)
        w = g.mapping(z, 0.5, w_avg).unsqueeze(1).expand(-1, g.n_latent, -1)
        direction = w - pivot
        norm = direction.flatten(1).norm(dim=1).clamp_min(1e-8).reshape(-1, 1, 1)
        return pivot + alpha * direction / norm


def pivotal_tuning(
    G: Any,
    image: torch.Tensor,
    name: str = "image",
    pivot: Optional[torch.Tensor] = None,
    *,
    pivot_steps: int = 450,
    pivot_lr: float = 5e-3,
    pivot_space: str = "w",
    steps: int = 350,
    lr: float = 3e-4,
    l2_weight: float = 1.0,
    lpips_weight: float = 1.0,
    lpips: Any = None,
    lpips_net: str = "alex",
    stop_loss: Optional[float] = None,
    locality: bool = False,
    locality_weight: float = 0.1,
    locality_alpha: float = 30.0,
    locality_every: int = 1,
    seed: int = 0,
    progress: Optional[ProgressFn] = None,
    cancel: Optional[CancelFn] = None,
    pivot_progress: Optional[ProgressFn] = None,
) -> PTIResult:
    """Tune ``G`` (left unchanged) around the pivot of one ``image`` [1, 3, size, size]; see the module docstring.

    ``pivot``: codes [1, n_latent, dim] to start from (skips the projection). ``stop_loss``: stop once the
    perceptual term is below it (default 0.06 with LPIPS, 1e-3 with the weight-free loss); 0 disables it.
    ``lpips``: as in :func:`ganedit.edit.projection.project` (PTI's official metric is LPIPS-AlexNet).
    ``progress`` follows the tuning steps, ``pivot_progress`` the pivot projection's (both ``f(step, steps, stats)``);
    ``cancel()`` returning True stops either phase.
    """
    g = stylegan_generator(G)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.shape[0] != 1:
        raise ConfigError(f"pivotal tuning works on one image at a time, got a batch of {image.shape[0]}")
    device = next(g.parameters()).device
    target = image.detach().to(device, torch.float32)
    perceptual, loss_name = perceptual_loss(lpips, lpips_net, device)
    if stop_loss is None:
        stop_loss = 0.06 if loss_name.startswith("lpips") else 1e-3
    base = generator_fingerprint(g)

    if pivot is None:
        found = project(g, target, space=pivot_space, steps=pivot_steps, noise=True, lr=pivot_lr,
                        loss_fn=perceptual, seed=seed, cancel=cancel, progress=pivot_progress)
        pivot = found.wplus
    pivot = pivot.detach().to(device, torch.float32)
    if pivot.dim() == 2:
        pivot = pivot.unsqueeze(1).expand(-1, g.n_latent, -1)
    if pivot.shape != (1, g.n_latent, g.style_dim):
        raise ConfigError(f"pivot must be [1, {g.n_latent}, {g.style_dim}], got {tuple(pivot.shape)}")

    tuned = copy.deepcopy(g)
    names = set(_tunable(tuned))
    tuned.requires_grad_(False)
    params = [p for n, p in tuned.named_parameters() if n in names]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    w_avg = g.mean_latent(4096, seed=0) if locality else None
    history: List[float] = []
    pivot_loss: Optional[float] = None
    done = 0
    for step in range(steps):
        if cancel is not None and cancel():
            break
        generated = tuned.synthesis(pivot, noise="const")
        term = perceptual(generated, target).sum()
        loss = l2_weight * F.mse_loss(generated, target) + lpips_weight * term
        if step == 0:
            pivot_loss = float(loss.detach())
        if term.item() <= stop_loss:
            break  # PTI's early stop: the pivot already reproduces the image well enough
        if locality and step % max(1, locality_every) == 0:
            codes = locality_codes(g, pivot, 1, locality_alpha, gen, w_avg)
            with torch.no_grad():
                reference = g.synthesis(codes, noise="const")
            moved = tuned.synthesis(codes, noise="const")
            loss = loss + locality_weight * (F.mse_loss(moved, reference) + perceptual(moved, reference).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        done = step + 1
        if progress is not None:
            progress(done, steps, {"loss": history[-1], "perceptual": float(term.detach())})
    with torch.no_grad():
        final = tuned.synthesis(pivot, noise="const")
        final_loss = float(l2_weight * F.mse_loss(final, target) + lpips_weight * perceptual(final, target).sum())
        base_params = dict(g.named_parameters())
        delta = {n: (p.detach() - base_params[n].detach()).cpu() for n, p in tuned.named_parameters() if n in names}
        delta = {n: d for n, d in delta.items() if bool(d.abs().max() > 0)}
    return PTIResult(name=name, pivot=pivot.cpu(), delta=delta, base=base, steps=done, history=history,
                     pivot_loss=pivot_loss, final_loss=final_loss, meta={"loss": loss_name, "locality": locality})


# --------------------------------------------------------------------------------------------------- storage


def _low_rank(d: torch.Tensor, rank: int) -> Optional[tuple]:
    """(u [out, r], v [r, rest]) with u @ v the best rank-r approximation of d seen as a matrix (rows = output
    channels; a modulated conv weight [1, out, in, k, k] drops its leading 1); None when it would not save space."""
    if d.dim() < 2:
        return None
    rows = d.shape[1] if d.dim() == 5 and d.shape[0] == 1 else d.shape[0]
    matrix = d.reshape(rows, -1).float()
    out, rest = matrix.shape
    if rank * (out + rest) >= out * rest:
        return None
    U, S, Vh = torch.linalg.svd(matrix, full_matrices=False)
    return (U[:, :rank] * S[:rank]).contiguous(), Vh[:rank].contiguous()


def save_pti(path: "str | os.PathLike[str]", result: PTIResult, rank: Optional[int] = None) -> Path:
    """Write ``result`` (pivot fp32, parameter differences fp16 or rank-``rank`` factors) atomically; the file's
    size is what a tuned image costs (``Path(path).stat().st_size``)."""

    tensors: Dict[str, torch.Tensor] = {"pivot": result.pivot.detach().cpu().float().contiguous()}
    shapes: Dict[str, List[int]] = {}
    for name, d in result.delta.items():
        factors = _low_rank(d, rank) if rank else None
        if factors is None:
            tensors[f"{DELTA_PREFIX}{name}"] = d.detach().cpu().half().contiguous()
        else:
            tensors[f"{DELTA_PREFIX}{name}.u"] = factors[0].half()
            tensors[f"{DELTA_PREFIX}{name}.v"] = factors[1].half()
            shapes[name] = list(d.shape)
    record = {"name": result.name, "base": result.base, "steps": result.steps, "pivot_loss": result.pivot_loss,
              "final_loss": result.final_loss, "rank": rank, "low_rank_shapes": shapes, **result.meta}
    return save_tagged(path, tensors, FORMAT_NAME, FORMAT_VERSION, record)


def is_pti_file(path: "str | os.PathLike[str]") -> bool:
    """True when ``path`` is a safetensors file written by :func:`save_pti`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT_NAME
    except Exception:  # not safetensors at all
        return False


def load_pti(path: "str | os.PathLike[str]") -> PTIResult:
    """Read a file written by :func:`save_pti` (differences back in fp32). Clear CheckpointErrors otherwise."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such PTI file")
    try:
        with safe_open(str(p), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors' own errors for corrupt or truncated files
        raise CheckpointError(p, f"not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if header.get("format") != FORMAT_NAME:
        raise CheckpointError(p, f"not a ganedit PTI file (format {header.get('format')!r}, expected {FORMAT_NAME!r})")
    try:
        record = json.loads(header.get("meta", "{}"))
        version = int(header.get("format_version", "0"))
    except (ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(p, f"PTI metadata is corrupt ({exc})") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(p, f"PTI format version {version} is newer than this ganedit supports ({FORMAT_VERSION})")
    if "pivot" not in tensors or not record.get("base"):
        raise CheckpointError(p, "PTI file lacks its pivot or its base generator's fingerprint")
    shapes = record.get("low_rank_shapes") or {}
    delta: Dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not key.startswith(DELTA_PREFIX):
            continue
        name = key[len(DELTA_PREFIX):]
        if name in shapes or (name.endswith((".u", ".v")) and name[:-2] in shapes):
            base_name = name[:-2] if name.endswith((".u", ".v")) else name
            if base_name in delta:
                continue
            u, v = tensors.get(f"{DELTA_PREFIX}{base_name}.u"), tensors.get(f"{DELTA_PREFIX}{base_name}.v")
            if u is None or v is None:
                raise CheckpointError(p, f"low-rank difference of {base_name!r} lacks a factor")
            delta[base_name] = (u.float() @ v.float()).reshape(shapes[base_name])
        else:
            delta[name] = value.float()
    extra = {k: v for k, v in record.items() if k not in ("name", "base", "steps", "pivot_loss", "final_loss")}
    return PTIResult(name=str(record.get("name", p.stem)), pivot=tensors["pivot"].float(), delta=delta,
                     base=record["base"], steps=int(record.get("steps", 0)), pivot_loss=record.get("pivot_loss"),
                     final_loss=record.get("final_loss"), meta={**extra, "path": str(p)})


def apply_delta(G: Any, delta: Dict[str, torch.Tensor], base: Optional[Dict[str, Any]] = None,
                where: "str | os.PathLike[str] | None" = None) -> torch.nn.Module:
    """A copy of ``G``'s generator plus ``delta``. With ``base`` (a fingerprint) the generator must be exactly that
    base: differences added to other weights would give a meaningless generator, so any mismatch is refused."""
    g = stylegan_generator(G)
    if base:
        ours = generator_fingerprint(g)
        wrong = [f"{k} {base.get(k)} (this generator: {ours[k]})" for k in ("size", "style_dim", "n_latent", "hash")
                 if k in base and str(base[k]) != str(ours[k] if k != "hash" else weights_hash(g, len(str(base[k]))))]
        if wrong:
            problem = "was tuned from another generator: " + ", ".join(wrong)
            if where is None:
                raise ConfigError(f"PTI result {problem}")
            raise CheckpointError(where, problem)
    tuned = copy.deepcopy(g)
    own = dict(tuned.named_parameters())
    with torch.no_grad():
        for name, d in delta.items():
            if name not in own or own[name].shape != d.shape:
                found = "missing" if name not in own else f"shape {tuple(own[name].shape)}"
                raise CheckpointError(where or "PTI result", f"difference for {name!r} {tuple(d.shape)} does not fit the generator ({found})")
            own[name].add_(d.to(own[name].device, own[name].dtype))
    return tuned.eval()


def load_tuned(path: "str | os.PathLike[str]", G: Any) -> tuple:
    """(tuned generator, PTIResult) for a PTI file and its base generator ``G``."""
    result = load_pti(path)
    return apply_delta(G, result.delta, result.base, where=path), result
