"""Swapping Autoencoder editing: swap and texture interpolation, global texture edits (PCA directions of texture
codes, mean-difference vectors between two image sets) and region edits of the structure code.

Two layers, so the maths can be used and tested without a network:

* pure functions on codes -- ``lerp_textures``, ``shift_textures``, ``TextureMoments`` / ``pca_from_moments``,
  ``mask_to_code``, ``rect_mask``, ``shift_code``, ``blend_structure_codes``, ``copy_structure_codes``;
* thin wrappers that take a model with ``encode(images) -> (structure, texture)``, ``decode(structure, texture,
  noise)`` and ``make_noise(structure, generator)`` (``ganedit.models.swapae.SwappingAutoencoder``) -- ``swap``,
  ``swap_grid``, ``encode_textures``, ``texture_pca``, ``mean_difference``, ``edit_texture``, ``blend_structure``,
  ``copy_structure_region``. They run without gradients and return images in [-1, 1] (not clamped).

Codes follow the official conventions (conformance/swapae/README §3): the texture code is one unit vector per
image, the structure code a unit vector per spatial position. Every edited code is renormalised the same way
(``v / sqrt(sum v^2 + 1e-8)``), which is also what the generator does to whatever it is given.

Noise: the official ``simple_swapping`` tool fixes the generator's noise once per structure image so that every
alpha shows the same stochastic detail. Here the wrappers take ``noise=None`` to mean *fixed noise drawn from
``seed``*: a function of the seed and the structure code's size only, so every output decoded from the same
structure -- any texture, alpha, strength or region edit, in this call or a later one -- uses the same noise.
``noise="random"`` draws fresh noise per call (the official ``swapping_grid``), ``"zero"`` switches it off, and a
dict of tensors (keyed like ``model.make_noise``) is used as given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ganedit.errors import CheckpointError, ConfigError, DataError
from ganedit.models.swapae.layers import normalize

__all__ = [
    "NoiseArg", "structure_noise", "lerp_textures", "shift_textures",
    "TextureMoments", "PCAResult", "pca_from_moments", "pca_of_codes", "MeanDifference", "mean_difference_of_codes",
    "save_directions", "read_direction_file", "direction_vector",
    "mask_to_code", "image_to_mask", "rect_mask", "shift_code", "blend_structure_codes", "copy_structure_codes",
    "swap", "swap_grid", "encode_textures", "texture_pca", "mean_difference", "edit_texture",
    "blend_structure", "copy_structure_region",
]

NoiseArg = Union[None, str, Mapping[str, torch.Tensor]]
Box = Tuple[int, int, int, int]


# ============================================================================================ noise and batching


def structure_noise(model: Any, structure: torch.Tensor, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Fixed N(0,1) noise for decoding from ``structure`` (B, C, h, w): one map per generator layer with batch 1,
    so every image of a batch shares it. It depends on ``seed`` and the code's size only (drawn on the CPU so
    the values do not depend on the device either)."""
    gen = torch.Generator().manual_seed(int(seed))
    probe = torch.empty(1, 1, *structure.shape[-2:])  # make_noise reads the batch and spatial size only
    return {k: v.to(structure.device, structure.dtype) for k, v in model.make_noise(probe, gen).items()}


def _resolve_noise(model: Any, structure: torch.Tensor, noise: NoiseArg, seed: int) -> NoiseArg:
    if noise is None:
        return structure_noise(model, structure, seed)
    if isinstance(noise, str):
        if noise == "random":
            return None
        if noise == "zero":
            return "zero"
        raise ConfigError(f"noise must be None (fixed from the seed), 'random', 'zero' or a dict of tensors, got {noise!r}")
    return noise


def _device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _encode(model: Any, images: torch.Tensor, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    images = images.to(_device(model))
    parts = [model.encode(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _decode(model: Any, structure: torch.Tensor, texture: torch.Tensor, noise: NoiseArg, batch_size: int) -> torch.Tensor:
    """Decode in chunks (noise with batch 1 is shared; a per-image noise batch is sliced along)."""
    out = []
    n = structure.shape[0]
    for i in range(0, n, batch_size):
        nz = noise
        if isinstance(noise, Mapping):
            nz = {k: (v if v.shape[0] == 1 else v[i : i + batch_size]) for k, v in noise.items()}
        out.append(model.decode(structure[i : i + batch_size], texture[i : i + batch_size], nz))
    return torch.cat(out)


def _numbers(values: "float | Sequence[float]") -> list:
    return [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]


def _repeat_noise(noise: NoiseArg, batch: int, reps: int) -> NoiseArg:
    """Per-structure noise (batch B) for a decode batch where each structure is repeated ``reps`` times."""
    if not isinstance(noise, Mapping) or reps == 1:
        return noise
    return {k: (v.repeat_interleave(reps, 0) if v.shape[0] == batch and batch > 1 else v) for k, v in noise.items()}


def _check_batch(name: str, n: int, expected: int) -> None:
    if n not in (1, expected):
        raise ConfigError(f"{name} has a batch of {n}; expected 1 (shared) or {expected} (one per image)")


# ================================================================================================ texture codes


def lerp_textures(texture_a: torch.Tensor, texture_b: torch.Tensor, alphas: "float | Sequence[float]") -> torch.Tensor:
    """Normalised linear interpolation: (B, D), (B, D) -> (B, A, D) with row a = normalize(lerp(t_a, t_b, alpha_a)).

    This is what the official ``simple_swapping`` decodes (G renormalises the lerp): alpha 0 is t_a, alpha 1 is
    t_b, and alphas outside [0, 1] extrapolate."""
    al = torch.as_tensor(_numbers(alphas), dtype=texture_a.dtype, device=texture_a.device).view(1, -1, 1)
    mixed = torch.lerp(texture_a.unsqueeze(1), texture_b.unsqueeze(1), al)
    return normalize(mixed.transpose(1, 2)).transpose(1, 2)


def shift_textures(texture: torch.Tensor, direction: torch.Tensor, strengths: "float | Sequence[float]") -> torch.Tensor:
    """Global texture edit: (B, D) codes, a (D,) or (B, D) direction -> (B, S, D) with
    row s = normalize(t + strength_s * direction) (renormalised as the encoder normalises texture codes)."""
    if direction.shape[-1] != texture.shape[-1]:
        raise ConfigError(f"the direction has {direction.shape[-1]} entries but the model's texture code has {texture.shape[-1]}")
    d = direction.to(texture).reshape(-1, 1, texture.shape[-1])
    s = torch.as_tensor(_numbers(strengths), dtype=texture.dtype, device=texture.device).view(1, -1, 1)
    moved = texture.unsqueeze(1) + s * d
    return normalize(moved.transpose(1, 2)).transpose(1, 2)


class TextureMoments:
    """Running mean and scatter matrix of codes, for PCA and mean differences over datasets of any size.

    Accumulates in float64 around the first batch's mean (the shifted-data algorithm), so the covariance of
    unit vectors with a large common mean keeps its precision."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: Optional[torch.Tensor] = None
        self.sum: Optional[torch.Tensor] = None
        self.scatter: Optional[torch.Tensor] = None

    def add(self, codes: torch.Tensor, scatter: bool = True) -> None:
        c = codes.detach().to("cpu", torch.float64).reshape(codes.shape[0], -1)
        if c.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = c.mean(0)
            self.sum = torch.zeros_like(self.shift)
            self.scatter = torch.zeros(c.shape[1], c.shape[1], dtype=torch.float64) if scatter else None
        elif c.shape[1] != self.shift.shape[0]:
            raise ValueError(f"codes of size {c.shape[1]} added to moments of size {self.shift.shape[0]}")
        d = c - self.shift
        self.n += c.shape[0]
        self.sum += d.sum(0)
        if self.scatter is not None:
            self.scatter.addmm_(d.T, d)

    def mean(self) -> torch.Tensor:
        if self.n == 0:
            raise DataError("no codes were accumulated (empty image set?)")
        return self.shift + self.sum / self.n

    def covariance(self) -> torch.Tensor:
        """Unbiased covariance (D, D), float64."""
        if self.scatter is None:
            raise ValueError("these moments were accumulated without the scatter matrix")
        if self.n < 2:
            raise DataError(f"the covariance needs at least 2 images, got {self.n}")
        dm = self.sum / self.n
        cov = (self.scatter - self.n * torch.outer(dm, dm)) / (self.n - 1)
        return 0.5 * (cov + cov.T)


@dataclass
class PCAResult:
    """Principal directions of texture codes. ``components`` (K, D) has orthonormal rows sorted by decreasing
    ``explained_variance`` (K,); ``total_variance`` is the trace of the covariance (so the ratios need not add
    up to 1 when K < D). A component's sign is fixed so that its largest-magnitude entry is positive."""

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    total_variance: float
    n_samples: int

    KIND = "swapae.texture_pca"

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        return self.explained_variance / max(self.total_variance, 1e-30)

    def project(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, D) codes -> (N, K) coefficients."""
        return (codes - self.mean.to(codes)) @ self.components.to(codes).T

    def reconstruct(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(N, K) coefficients -> (N, D) codes (exact for codes in the span of the components)."""
        return self.mean.to(coefficients) + coefficients @ self.components.to(coefficients)

    def direction(self, k: int = 0, sigma: bool = False) -> torch.Tensor:
        """Component k as a (D,) direction; with ``sigma`` scaled by its standard deviation over the data, so
        that a strength of 1 is a one-standard-deviation edit (GANSpace's convention)."""
        if not 0 <= k < self.components.shape[0]:
            raise ConfigError(f"component {k} does not exist: this PCA has components 0..{self.components.shape[0] - 1}")
        d = self.components[k]
        return d * self.explained_variance[k].clamp_min(0).sqrt() if sigma else d

    def tensors(self) -> Dict[str, torch.Tensor]:
        return {"mean": self.mean, "components": self.components, "explained_variance": self.explained_variance,
                "explained_variance_ratio": self.explained_variance_ratio,
                "total_variance": torch.tensor(float(self.total_variance)), "n_samples": torch.tensor(int(self.n_samples))}


def pca_from_moments(moments: TextureMoments, n_components: Optional[int] = None) -> PCAResult:
    """PCA by eigen-decomposition of the covariance (float64). At most min(D, N-1) components: beyond that the
    data have no variance and the directions would be arbitrary."""
    cov = moments.covariance()
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    k = min(cov.shape[0], moments.n - 1)
    if n_components is not None:
        if n_components < 1:
            raise ConfigError(f"the number of components must be at least 1, got {n_components}")
        k = min(k, n_components)
    comps = evecs[:, :k].T.contiguous()
    # deterministic signs: eigh may return either sign for each vector
    idx = comps.abs().argmax(1)
    comps = comps * torch.sign(comps.gather(1, idx[:, None]))
    return PCAResult(mean=moments.mean().float(), components=comps.float(), explained_variance=evals[:k].float(),
                     total_variance=float(evals.sum()), n_samples=moments.n)


def pca_of_codes(codes: torch.Tensor, n_components: Optional[int] = None) -> PCAResult:
    """PCA of a (N, D) tensor of codes."""
    m = TextureMoments()
    m.add(codes)
    return pca_from_moments(m, n_components)


@dataclass
class MeanDifference:
    """``direction = mean_b - mean_a`` of two sets' texture codes: added at strength 1 to a code of set A it moves
    the set's mean onto set B's mean (before renormalisation)."""

    direction: torch.Tensor
    mean_a: torch.Tensor
    mean_b: torch.Tensor
    n_a: int
    n_b: int

    KIND = "swapae.mean_difference"

    def tensors(self) -> Dict[str, torch.Tensor]:
        return {"direction": self.direction, "mean_a": self.mean_a, "mean_b": self.mean_b,
                "n_a": torch.tensor(int(self.n_a)), "n_b": torch.tensor(int(self.n_b))}


def mean_difference_of_codes(codes_a: torch.Tensor, codes_b: torch.Tensor) -> MeanDifference:
    a, b = TextureMoments(), TextureMoments()
    a.add(codes_a, scatter=False)
    b.add(codes_b, scatter=False)
    return _mean_difference(a, b)


def _mean_difference(a: TextureMoments, b: TextureMoments) -> MeanDifference:
    mean_a, mean_b = a.mean().float(), b.mean().float()
    return MeanDifference(direction=mean_b - mean_a, mean_a=mean_a, mean_b=mean_b, n_a=a.n, n_b=b.n)


# ----------------------------------------------------------------------------------------- direction files


def save_directions(result: Union[PCAResult, MeanDifference], path: "str | os.PathLike[str]") -> Path:
    """Write a PCA or mean-difference result: ``.safetensors`` (kind in the metadata) or any other name as a
    plain ``torch.save`` dict of tensors plus ``"ganedit": kind`` (loads with ``weights_only=True``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in result.tensors().items()}
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(tmp), metadata={"ganedit": result.KIND})
        else:
            torch.save({"ganedit": result.KIND, **tensors}, tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def read_direction_file(path: "str | os.PathLike[str]") -> Union[PCAResult, MeanDifference, torch.Tensor]:
    """Read a file written by :func:`save_directions`, or a plain tensor file holding one (D,) direction or a
    dict with a ``"direction"`` tensor. Returns a PCAResult, a MeanDifference or a (D,) tensor."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such direction file")
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(p))
        except Exception as exc:  # safetensors' own error type for corrupt headers
            raise CheckpointError(p, f"cannot read safetensors file ({exc})") from None
    else:
        from ganedit.formats.foreign import safe_torch_load

        obj = safe_torch_load(p)
    if isinstance(obj, torch.Tensor):
        if obj.dim() != 1:
            raise CheckpointError(p, f"a plain direction tensor must be 1-D, got shape {tuple(obj.shape)}")
        return obj.float()
    if not isinstance(obj, Mapping):
        raise CheckpointError(p, f"expected a dict of tensors or one tensor, got {type(obj).__name__}")
    try:
        if "components" in obj:
            return PCAResult(mean=obj["mean"].float(), components=obj["components"].float(),
                             explained_variance=obj["explained_variance"].float(),
                             total_variance=float(obj.get("total_variance", obj["explained_variance"].sum())),
                             n_samples=int(obj.get("n_samples", 0)))
        if "direction" in obj:
            d = obj["direction"].float()
            if "mean_a" in obj and "mean_b" in obj:
                return MeanDifference(direction=d, mean_a=obj["mean_a"].float(), mean_b=obj["mean_b"].float(),
                                      n_a=int(obj.get("n_a", 0)), n_b=int(obj.get("n_b", 0)))
            return d.reshape(-1)
    except (KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(p, f"incomplete direction file ({type(exc).__name__}: {exc})") from None
    raise CheckpointError(p, f"not a direction file: expected 'components' (texture PCA) or 'direction' keys, found {sorted(map(str, obj))[:8]}")


def direction_vector(obj: Union[PCAResult, MeanDifference, torch.Tensor], component: Optional[int] = None, sigma: bool = False) -> torch.Tensor:
    """The (D,) direction of a loaded file: PCA component ``component`` (default 0), or the mean difference."""
    if isinstance(obj, PCAResult):
        return obj.direction(0 if component is None else component, sigma=sigma)
    if component is not None or sigma:
        raise ConfigError("--component and --sigma apply to PCA direction files only")
    return obj.direction if isinstance(obj, MeanDifference) else obj


# =============================================================================================== structure codes


def image_to_mask(image: torch.Tensor) -> torch.Tensor:
    """A mask image read in [-1, 1] (RGB or gray, (B, C, H, W)) -> (B, 1, H, W) in [0, 1]: white selects."""
    return image.mean(1, keepdim=True).add(1).mul(0.5).clamp(0, 1)


def rect_mask(height: int, width: int, box: Box, device: "torch.device | str | None" = None) -> torch.Tensor:
    """(1, 1, H, W) mask that is 1 inside the pixel rectangle (x0, y0, x1, y1), ends exclusive, clipped."""
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        raise ConfigError(f"rectangle {tuple(box)} is empty inside a {width}x{height} image (give x0 y0 x1 y1 with x0 < x1, y0 < y1)")
    m = torch.zeros(1, 1, height, width, device=device)
    m[..., y0:y1, x0:x1] = 1
    return m


def mask_to_code(mask: torch.Tensor, code_hw: Tuple[int, int]) -> torch.Tensor:
    """A mask over the whole image ((H, W), (B, 1|3, H, W) in [0, 1]) -> (B, 1, h, w) at the structure code's
    resolution by area averaging: each code cell gets the fraction of its pixels that is selected."""
    m = mask.float()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[None]
    if m.shape[1] != 1:
        m = m.mean(1, keepdim=True)
    return F.adaptive_avg_pool2d(m, tuple(code_hw)).clamp(0, 1)


def shift_code(code: torch.Tensor, dx: int, dy: int, out_hw: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Translate a (B, C, h, w) map by (dx, dy) cells onto an ``out_hw`` canvas (default: the same size).
    Returns (shifted, valid): cells that nothing lands on are zero and have ``valid`` False ((1, 1, H, W))."""
    b, c, h, w = code.shape
    H, W = out_hw or (h, w)
    out = code.new_zeros(b, c, H, W)
    valid = torch.zeros(1, 1, H, W, dtype=torch.bool, device=code.device)
    y0, y1 = max(0, -dy), min(h, H - dy)
    x0, x1 = max(0, -dx), min(w, W - dx)
    if y1 > y0 and x1 > x0:
        out[:, :, y0 + dy : y1 + dy, x0 + dx : x1 + dx] = code[:, :, y0:y1, x0:x1]
        valid[:, :, y0 + dy : y1 + dy, x0 + dx : x1 + dx] = True
    return out, valid


def blend_structure_codes(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, offset: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Soft blend of structure codes: where the (source-aligned) ``mask`` (B|1, 1, h_s, w_s) in [0, 1], moved
    by ``offset`` = (dx, dy) cells, is m > 0, the code becomes normalize((1 - m) * target + m * source), renormalised
    per position as the encoder does; elsewhere it is the target's code, unchanged."""
    dx, dy = (int(v) for v in offset)
    hw = tuple(target.shape[-2:])
    src, _ = shift_code(source, dx, dy, hw)
    m, _ = shift_code(mask.to(target), dx, dy, hw)  # zero where nothing lands
    mixed = normalize(torch.lerp(target, src, m))
    return torch.where(m > 0, mixed, target)


def copy_structure_codes(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, offset: Tuple[int, int] = (0, 0), threshold: float = 0.5) -> torch.Tensor:
    """Hard copy: the source cells whose mask is at least ``threshold`` replace the target's cells ``offset``
    = (dx, dy) away (cells pushed off the canvas are dropped). The source may be the target itself."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"the copy threshold must be in (0, 1], got {threshold}")
    dx, dy = (int(v) for v in offset)
    hw = tuple(target.shape[-2:])
    src, _ = shift_code(source, dx, dy, hw)
    m, _ = shift_code(mask.to(target), dx, dy, hw)
    return torch.where(m >= threshold, src, target)


def _cells(offset_px: Tuple[int, int], factor_xy: Tuple[float, float]) -> Tuple[int, int]:
    """Pixel offset -> structure-code cells (rounded to the nearest cell)."""
    return int(round(offset_px[0] / factor_xy[0])), int(round(offset_px[1] / factor_xy[1]))


# ==================================================================================================== wrappers


@torch.no_grad()
def swap(model: Any, structure_images: torch.Tensor, texture_images: torch.Tensor, alphas: "float | Sequence[float]" = (1.0,), *,
         noise: NoiseArg = None, seed: int = 0, batch_size: int = 8) -> torch.Tensor:
    """Structure of ``structure_images[i]`` with the texture interpolated from its own (alpha 0) to that of
    ``texture_images[i]`` (alpha 1; a batch-1 texture is shared) -> (B, A, 3, H, W). The official
    ``simple_swapping``: decode G(structure(A), lerp(texture(A), texture(B), alpha)) with noise fixed per
    structure (see the module notes). Texture images may have another size than the structure images."""
    n = structure_images.shape[0]
    if structure_images.shape[1:] == texture_images.shape[1:]:
        # one encoder pass over both sets: larger convolutions run closer to the machine's peak
        sp, gl = _encode(model, torch.cat([structure_images, texture_images]), batch_size)
        sp, gl_a, gl_b = sp[:n], gl[:n], gl[n:]
    else:
        sp, gl_a = _encode(model, structure_images, batch_size)
        _, gl_b = _encode(model, texture_images, batch_size)
    _check_batch("texture_images", gl_b.shape[0], n)
    gl = lerp_textures(gl_a, gl_b.expand_as(gl_a), alphas)  # (B, A, D)
    b, a = gl.shape[:2]
    nz = _repeat_noise(_resolve_noise(model, sp, noise, seed), b, a)
    out = _decode(model, sp.repeat_interleave(a, 0), gl.flatten(0, 1), nz, batch_size)
    return out.view(b, a, *out.shape[1:])


@torch.no_grad()
def swap_grid(model: Any, structure_images: torch.Tensor, texture_images: torch.Tensor, *, noise: NoiseArg = None,
              seed: int = 0, batch_size: int = 8) -> torch.Tensor:
    """Every pair: (S, T, 3, H, W) with entry [i, j] = G(structure(S_i), texture(T_j)); the noise is fixed per
    structure (row), so a row differs only by texture."""
    sp, _ = _encode(model, structure_images, batch_size)
    _, gl = _encode(model, texture_images, batch_size)
    s, t = sp.shape[0], gl.shape[0]
    nz = _repeat_noise(_resolve_noise(model, sp, noise, seed), s, t)
    out = _decode(model, sp.repeat_interleave(t, 0), gl.repeat(s, 1), nz, batch_size)
    return out.view(s, t, *out.shape[1:])


def _image_batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of images from a tensor, a map-style dataset (items: tensors or dicts with "image"), a DataLoader
    or any iterable of those."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(data, torch.Tensor):
        x = data if data.dim() == 4 else data[None]
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size]
        return
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    for item in data:
        if isinstance(item, Mapping):
            item = item["image"]
        if not isinstance(item, torch.Tensor):
            raise DataError(f"expected image tensors (or dicts with 'image'), got {type(item).__name__}")
        yield item if item.dim() == 4 else item[None]


@torch.no_grad()
def _accumulate(model: Any, data: Any, scatter: bool, batch_size: int, progress: Any = None) -> TextureMoments:
    moments = TextureMoments()
    device = _device(model)
    for x in _image_batches(data, batch_size):
        _, gl = model.encode(x.to(device))
        moments.add(gl, scatter=scatter)
        if progress is not None:
            progress(x.shape[0])
    return moments


@torch.no_grad()
def encode_textures(model: Any, data: Any, batch_size: int = 16) -> torch.Tensor:
    """Texture codes (N, D) of all images of ``data`` (tensor, dataset, DataLoader or iterable of batches)."""
    device = _device(model)
    codes = [model.encode(x.to(device))[1] for x in _image_batches(data, batch_size)]
    if not codes:
        raise DataError("no images to encode")
    return torch.cat(codes)


def texture_pca(model: Any, data: Any, n_components: Optional[int] = None, batch_size: int = 16, progress: Any = None) -> PCAResult:
    """PCA of the texture codes of a dataset, streamed batch by batch (memory O(D^2), not O(N D)).
    ``progress``: optional callable receiving the number of images of each batch."""
    return pca_from_moments(_accumulate(model, data, True, batch_size, progress), n_components)


def mean_difference(model: Any, set_a: Any, set_b: Any, batch_size: int = 16, progress: Any = None) -> MeanDifference:
    """Mean texture code of set B minus that of set A (e.g. one appearance domain to another)."""
    a = _accumulate(model, set_a, False, batch_size, progress)
    b = _accumulate(model, set_b, False, batch_size, progress)
    if a.n == 0 or b.n == 0:
        raise DataError(f"both image sets must be non-empty (got {a.n} and {b.n} images)")
    return _mean_difference(a, b)


@torch.no_grad()
def edit_texture(model: Any, images: torch.Tensor, direction: torch.Tensor, strengths: "float | Sequence[float]" = (1.0,), *,
                 noise: NoiseArg = None, seed: int = 0, batch_size: int = 8) -> torch.Tensor:
    """Global texture edit: decode each image's own structure with normalize(texture + strength * direction)
    for every strength -> (B, S, 3, H, W). Strength 0 is the reconstruction."""
    sp, gl = _encode(model, images, batch_size)
    codes = shift_textures(gl, direction.to(gl), strengths)
    b, s = codes.shape[:2]
    nz = _repeat_noise(_resolve_noise(model, sp, noise, seed), b, s)
    out = _decode(model, sp.repeat_interleave(s, 0), codes.flatten(0, 1), nz, batch_size)
    return out.view(b, s, *out.shape[1:])


def _region_codes(model: Any, target: torch.Tensor, source: Optional[torch.Tensor], batch_size: int):
    sp_t, gl_t = _encode(model, target, batch_size)
    sp_s = sp_t if source is None else _encode(model, source, batch_size)[0]
    _check_batch("source", sp_s.shape[0], sp_t.shape[0])
    src_img = target if source is None else source
    factor = (src_img.shape[-1] / sp_s.shape[-1], src_img.shape[-2] / sp_s.shape[-2])
    return sp_t, gl_t, sp_s, src_img, factor


@torch.no_grad()
def blend_structure(model: Any, target: torch.Tensor, source: Optional[torch.Tensor], mask: torch.Tensor, *,
                    offset: Tuple[int, int] = (0, 0), noise: NoiseArg = None, seed: int = 0, batch_size: int = 8) -> torch.Tensor:
    """Blend the source's structure code into the target's under ``mask`` (over the source image, (B|1, 1|3, H, W)
    in [0, 1], area-averaged to the code grid; soft), moved by ``offset`` = (dx, dy) pixels (rounded to whole code
    cells), and decode with the target's texture and noise -> (B, 3, H, W). ``source=None`` uses the target.
    An all-zero mask gives the target's reconstruction; an all-one mask the source's structure."""
    sp_t, gl_t, sp_s, _, factor = _region_codes(model, target, source, batch_size)
    m = mask_to_code(mask.to(sp_s.device), tuple(sp_s.shape[-2:]))
    sp = blend_structure_codes(sp_t, sp_s, m, _cells(offset, factor))
    return _decode(model, sp, gl_t, _resolve_noise(model, sp_t, noise, seed), batch_size)


@torch.no_grad()
def copy_structure_region(model: Any, target: torch.Tensor, source: Optional[torch.Tensor], region: Union[torch.Tensor, Box], *,
                          offset: Tuple[int, int] = (0, 0), threshold: float = 0.5, noise: NoiseArg = None, seed: int = 0,
                          batch_size: int = 8) -> torch.Tensor:
    """Copy a structure-code region -- a pixel rectangle (x0, y0, x1, y1) or a mask over the source image -- from
    the source (or, with ``source=None``, from the target itself) to the target, ``offset`` = (dx, dy) pixels
    away (rounded to whole code cells), then decode with the target's texture -> (B, 3, H, W). A code cell is
    copied when at least ``threshold`` of its pixels are in the region."""
    sp_t, gl_t, sp_s, src_img, factor = _region_codes(model, target, source, batch_size)
    if isinstance(region, torch.Tensor):
        mask = region.to(sp_s.device)
    else:
        mask = rect_mask(src_img.shape[-2], src_img.shape[-1], region, sp_s.device)
    m = mask_to_code(mask, tuple(sp_s.shape[-2:]))
    sp = copy_structure_codes(sp_t, sp_s, m, _cells(offset, factor), threshold)
    return _decode(model, sp, gl_t, _resolve_noise(model, sp_t, noise, seed), batch_size)
