"""StyleGAN2 latent codes: the latents file format and the arithmetic of edits on codes.

A latents file is one safetensors file holding
  * ``wplus``  [N, n_latent, style_dim] float32 (a W code is stored repeated over the rows, ``space`` = "w"),
  * optionally ``noise.<k>`` [N, 1, H, W] for each of the generator's noise layers (projection optimises them),
and string metadata ``format`` / ``format_version`` plus ``meta``: JSON with ``names`` (one per row),
``space`` ("w" | "w+"), ``source`` (projection | pti | psp | e4e | ...), ``generator`` (the fingerprint of the
generator the codes belong to, see :func:`generator_fingerprint`) and any free-form entries of the writer.

Every tool that produces codes (``ganedit project``, ``pti``, ``invert``) writes this file and every tool that
consumes codes (``ganedit edit``, the web UI) reads it, so a code is never decoded with a generator it does
not fit: :func:`check_fits` refuses shapes that differ and warns when only the weights differ.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch

from ganedit.errors import CheckpointError, ConfigError
from ganedit.formats.tagged import save_tagged

FORMAT_NAME = "ganedit.latents"
FORMAT_VERSION = 1
SPACES = ("w", "w+")
NOISE_PREFIX = "noise."

Rows = Union[None, int, slice, range, Sequence[int]]


class FingerprintWarning(UserWarning):
    """The codes were made with a generator of the same shape but different weights."""


# ----------------------------------------------------------------------------------------------- generator


def stylegan_generator(G: Any) -> torch.nn.Module:
    """The synthesis-capable generator inside ``G`` (a StyleGAN2 wrapper holds it as ``g_ema``)."""
    inner = getattr(G, "g_ema", G)
    for attr in ("n_latent", "style_dim", "size"):
        if not hasattr(inner, attr):
            raise ConfigError(f"{type(G).__name__} is not a StyleGAN2 generator (no {attr!r})")
    return inner


def weights_hash(module: torch.nn.Module, length: int = 16) -> str:
    """Short SHA-256 of a module's parameters and buffers (names, shapes, dtypes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # bytes through a uint8 view: works for every dtype, including bfloat16 that numpy lacks
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:length]


def generator_fingerprint(G: Any) -> Dict[str, Any]:
    """What a code needs of its generator: size, style_dim, n_latent, num_layers and a short weights hash."""
    g = stylegan_generator(G)
    return {
        "size": int(g.size),
        "style_dim": int(g.style_dim),
        "n_latent": int(g.n_latent),
        "num_layers": int(getattr(g, "num_layers", 2 * g.n_latent - 3)),
        "hash": weights_hash(g),
    }


def check_fits(fingerprint: Optional[Mapping[str, Any]], G: Any, where: "str | os.PathLike[str] | None" = None) -> None:
    """Refuse (CheckpointError naming ``where``) codes whose generator has another shape; warn
    (:class:`FingerprintWarning`) when only the weights hash differs; accept a file without a fingerprint."""
    if not fingerprint:
        return
    g = stylegan_generator(G)
    ours = {"size": int(g.size), "style_dim": int(g.style_dim), "n_latent": int(g.n_latent)}
    wrong = [f"{k} {fingerprint[k]} (this generator: {v})" for k, v in ours.items() if k in fingerprint and int(fingerprint[k]) != v]
    if wrong:
        problem = "made for another generator: " + ", ".join(wrong)
        if where is None:
            raise ConfigError(f"codes {problem}")
        raise CheckpointError(where, problem)
    theirs = fingerprint.get("hash")
    if theirs and theirs != weights_hash(g, len(str(theirs))):
        label = f"{where}: " if where is not None else ""
        warnings.warn(f"{label}codes were made with a generator of the same shape but other weights "
                      f"(hash {theirs}, this one {weights_hash(g, len(str(theirs)))}); edits may not look as intended",
                      FingerprintWarning, stacklevel=2)


# ----------------------------------------------------------------------------------------------- file format


@dataclass
class Latents:
    """The content of a latents file. ``wplus`` is always [N, n_latent, style_dim]; ``w`` gives [N, style_dim]."""

    wplus: torch.Tensor
    names: List[str]
    space: str = "w+"
    source: str = "unknown"
    generator: Optional[Dict[str, Any]] = None
    noise: Optional[List[torch.Tensor]] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None

    def __len__(self) -> int:
        return int(self.wplus.shape[0])

    @property
    def w(self) -> torch.Tensor:
        """The W code of each row: row 0 of w+ (all rows are equal when ``space`` is "w")."""
        return self.wplus[:, 0]

    def check_fits(self, G: Any) -> None:
        check_fits(self.generator, G, self.path)

    def select(self, index: Sequence[int]) -> "Latents":
        """The given rows (codes, names and noise)."""
        idx = list(index)
        noise = None if self.noise is None else [n[idx] for n in self.noise]
        return Latents(self.wplus[idx], [self.names[i] for i in idx], self.space, self.source, self.generator, noise,
                       dict(self.meta), self.path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def save_latents(
    path: "str | os.PathLike[str]",
    wplus: torch.Tensor,
    names: Optional[Sequence[str]] = None,
    meta: Optional[Mapping[str, Any]] = None,
    noise: Optional[Sequence[torch.Tensor]] = None,
) -> Path:
    """Write codes to ``path`` (safetensors, replaced atomically).

    ``wplus`` is [N, n_latent, dim] or a W code [N, dim] (then stored repeated; ``space`` defaults to "w").
    ``meta`` may hold ``space``, ``source``, ``generator`` (a fingerprint; pass ``generator_fingerprint(G)``) and
    free-form JSON-able entries. ``noise`` is an optional list of per-layer maps [N, 1, H, W].
    """

    meta = dict(meta or {})
    if wplus.dim() == 2:
        n_latent = (meta.get("generator") or {}).get("n_latent")
        if n_latent is None:
            raise ConfigError("saving W codes [N, dim] needs meta['generator'] (its n_latent) to store them as w+")
        wplus = to_wplus(wplus, int(n_latent))
        meta.setdefault("space", "w")
    if wplus.dim() != 3:
        raise ConfigError(f"codes must be [N, n_latent, dim] or [N, dim], got shape {tuple(wplus.shape)}")
    n = int(wplus.shape[0])
    names = [str(x) for x in names] if names is not None else [f"{i:04d}" for i in range(n)]
    if len(names) != n:
        raise ConfigError(f"{len(names)} names for {n} codes")
    space = meta.pop("space", "w+")
    if space not in SPACES:
        raise ConfigError(f"space must be one of {SPACES}, got {space!r}")
    record = {"names": names, "space": space, "source": str(meta.pop("source", "unknown")),
              "generator": _jsonable(meta.pop("generator", None)), **_jsonable(meta)}
    tensors = {"wplus": wplus.detach().to("cpu", torch.float32).contiguous()}
    for k, nz in enumerate(noise or []):
        if nz.dim() != 4 or nz.shape[0] not in (1, n):
            raise ConfigError(f"noise map {k} must be [N or 1, 1, H, W], got shape {tuple(nz.shape)}")
        tensors[f"{NOISE_PREFIX}{k:02d}"] = nz.detach().to("cpu", torch.float32).expand(n, -1, -1, -1).contiguous()
    return save_tagged(path, tensors, FORMAT_NAME, FORMAT_VERSION, record)


def load_latents(path: "str | os.PathLike[str]", G: Any = None) -> Latents:
    """Read a latents file; with ``G``, also :func:`check_fits` it. Clear CheckpointErrors for a missing,
    corrupt or foreign file."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such latents file" if not p.exists() else "is a folder, expected a latents .safetensors file")
    if p.stat().st_size == 0:
        raise CheckpointError(p, "latents file is empty (0 bytes)")
    try:
        with safe_open(str(p), framework="pt") as handle:
            header = handle.metadata() or {}
            keys = list(handle.keys())
            tensors = {k: handle.get_tensor(k) for k in keys}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers and truncation
        raise CheckpointError(p, f"not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if header.get("format") != FORMAT_NAME:
        raise CheckpointError(p, f"not a ganedit latents file (format {header.get('format')!r}, expected {FORMAT_NAME!r})")
    try:
        version = int(header.get("format_version", "0"))
        record = json.loads(header.get("meta", "{}"))
    except (ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(p, f"latents metadata is corrupt ({exc})") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(p, f"latents format version {version} is newer than this ganedit supports ({FORMAT_VERSION})")
    wplus = tensors.get("wplus")
    if wplus is None or wplus.dim() != 3:
        raise CheckpointError(p, "latents file has no 'wplus' tensor [N, n_latent, dim]"
                              if wplus is None else f"'wplus' must be [N, n_latent, dim], got {tuple(wplus.shape)}")
    n = int(wplus.shape[0])
    names = record.get("names") or [f"{i:04d}" for i in range(n)]
    if not isinstance(names, list) or len(names) != n:
        raise CheckpointError(p, f"metadata lists {len(names) if isinstance(names, list) else 'no'} names for {n} codes")
    noise_keys = sorted(k for k in keys if k.startswith(NOISE_PREFIX))
    noise = [tensors[k].float() for k in noise_keys] or None
    if noise is not None and any(nz.shape[0] != n for nz in noise):
        raise CheckpointError(p, "noise maps do not have one row per code")
    space = record.get("space", "w+")
    if space not in SPACES:
        raise CheckpointError(p, f"unknown latent space {space!r} (expected one of {SPACES})")
    extra = {k: v for k, v in record.items() if k not in ("names", "space", "source", "generator")}
    result = Latents(wplus=wplus.float(), names=[str(x) for x in names], space=space,
                     source=str(record.get("source", "unknown")), generator=record.get("generator"),
                     noise=noise, meta=extra, path=str(p))
    if G is not None:
        result.check_fits(G)
    return result


# ------------------------------------------------------------------------------------------ edits on codes


def to_wplus(w: torch.Tensor, n_latent: int) -> torch.Tensor:
    """[N, dim] -> [N, n_latent, dim] (a copy, so rows can be edited independently); w+ passes through."""
    if w.dim() == 3:
        if w.shape[1] != n_latent:
            raise ConfigError(f"w+ has {w.shape[1]} rows, expected {n_latent}")
        return w
    if w.dim() != 2:
        raise ConfigError(f"a code must be [N, dim] or [N, n_latent, dim], got shape {tuple(w.shape)}")
    return w.unsqueeze(1).repeat(1, n_latent, 1)


def parse_layers(text: Optional[str], n_latent: Optional[int] = None) -> Optional[range]:
    """"a-b" (inclusive), "a" or "a-" (to the end; needs n_latent) -> range of w+ rows; None/"" -> None (all)."""
    if text is None or str(text).strip() in ("", "all"):
        return None
    s = str(text).strip()
    try:
        if "-" in s:
            lo, hi = s.split("-", 1)
            a = int(lo)
            if hi.strip() == "":
                if n_latent is None:
                    raise ConfigError(f"layers {s!r}: an open range needs the generator's n_latent")
                b = n_latent - 1
            else:
                b = int(hi)
        else:
            a = b = int(s)
    except ValueError:
        raise ConfigError(f"layers must look like 'a-b' (inclusive rows of w+), got {s!r}") from None
    if a < 0 or b < a or (n_latent is not None and b >= n_latent):
        limit = f" (this generator has rows 0-{n_latent - 1})" if n_latent is not None else ""
        raise ConfigError(f"layers {s!r} is not a valid row range{limit}")
    return range(a, b + 1)


def _row_index(rows: Rows, n_latent: int) -> List[int]:
    if rows is None:
        return list(range(n_latent))
    if isinstance(rows, int):
        rows = [rows]
    elif isinstance(rows, slice):
        rows = range(n_latent)[rows]
    idx = [int(r) for r in rows]
    bad = [r for r in idx if not 0 <= r < n_latent]
    if bad:
        raise ConfigError(f"rows {bad} are outside 0-{n_latent - 1}")
    return idx


def apply(w: torch.Tensor, direction: torch.Tensor, strength: "float | torch.Tensor", layers: Rows = None) -> torch.Tensor:
    """``w + strength * direction`` on the rows ``layers`` of w+ (all rows when None); a new tensor.

    ``w``: [N, dim] (W; ``layers`` must then be None) or [N, n_latent, dim]. ``direction``: [dim] or
    [n_latent, dim] (one vector per row). ``strength``: a number or one per code ([N]).
    """
    direction = direction.to(w.device, w.dtype)
    strength_t = torch.as_tensor(strength, dtype=w.dtype, device=w.device)
    if strength_t.dim() > 1 or (strength_t.dim() == 1 and strength_t.numel() != w.shape[0]):
        raise ConfigError(f"strength must be a number or one per code ({w.shape[0]}), got shape {tuple(strength_t.shape)}")
    if w.dim() == 2:
        if layers is not None:
            raise ConfigError("editing chosen layers needs w+ codes [N, n_latent, dim]: convert with to_wplus first")
        if direction.dim() != 1 or direction.shape[0] != w.shape[1]:
            raise ConfigError(f"direction of shape {tuple(direction.shape)} does not fit W codes of dim {w.shape[1]}")
        return w + strength_t.reshape(-1, 1) * direction if strength_t.dim() else w + strength_t * direction
    if w.dim() != 3:
        raise ConfigError(f"codes must be [N, dim] or [N, n_latent, dim], got shape {tuple(w.shape)}")
    n_latent, dim = w.shape[1], w.shape[2]
    if direction.shape not in (torch.Size([dim]), torch.Size([n_latent, dim])):
        raise ConfigError(f"direction of shape {tuple(direction.shape)} fits neither [{dim}] nor [{n_latent}, {dim}]")
    mask = torch.zeros(n_latent, 1, dtype=w.dtype, device=w.device)
    mask[_row_index(layers, n_latent)] = 1
    step = mask * direction  # [n_latent, dim] either way
    scale = strength_t.reshape(-1, 1, 1) if strength_t.dim() else strength_t
    return w + scale * step


def strip(w: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float], layers: Rows = None) -> torch.Tensor:
    """Codes edited at each strength: [len(strengths), *w.shape]."""
    return torch.stack([apply(w, direction, float(s), layers) for s in strengths])


def interpolate(w1: torch.Tensor, w2: torch.Tensor, alphas: "Sequence[float] | torch.Tensor") -> torch.Tensor:
    """Linear interpolation ``(1 - a) w1 + a w2`` for each alpha: [len(alphas), *w1.shape]."""
    if w1.shape != w2.shape:
        raise ConfigError(f"cannot interpolate codes of shapes {tuple(w1.shape)} and {tuple(w2.shape)}")
    a = torch.as_tensor(alphas, dtype=w1.dtype, device=w1.device).reshape(-1, *([1] * w1.dim()))
    return w1.unsqueeze(0) + a * (w2 - w1).unsqueeze(0)


def mix(w_a: torch.Tensor, w_b: torch.Tensor, rows: Rows) -> torch.Tensor:
    """Style mixing: the w+ of ``w_a`` with ``rows`` taken from ``w_b`` (both [N, n_latent, dim]; a [1, ...]
    side is broadcast over the other's batch). E.g. rows=range(0, 4) takes the coarse styles from b."""
    if w_a.dim() != 3 or w_b.dim() != 3:
        raise ConfigError("style mixing needs w+ codes [N, n_latent, dim]: convert W codes with to_wplus first")
    if w_a.shape[1:] != w_b.shape[1:]:
        raise ConfigError(f"cannot mix codes of shapes {tuple(w_a.shape)} and {tuple(w_b.shape)}")
    n = max(w_a.shape[0], w_b.shape[0])
    if w_a.shape[0] not in (1, n) or w_b.shape[0] not in (1, n):
        raise ConfigError(f"cannot mix batches of {w_a.shape[0]} and {w_b.shape[0]} codes")
    out = w_a.expand(n, -1, -1).clone()
    idx = _row_index(rows, w_a.shape[1])
    out[:, idx] = w_b.expand(n, -1, -1)[:, idx]
    return out
