"""What the Invert & edit tab computes, as plain functions (no Gradio): an image inverted into a StyleGAN2
generator (projection, PTI or a pSp / e4e encoder), the direction sets offered for that generator, and the
edited code decoded.

Inversion reports progress and can be cancelled through the hooks of ganedit.edit.projection / pti. Direction
sets that need no data (SeFa, closed form; GANSpace, a PCA of sampled w) are computed on first use and cached per
generator (by its weights hash); direction files under the models folders are offered when they fit the
generator (ganedit.edit.latents.check_fits, the check `ganedit edit` applies).
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ganedit.app.catalog import Catalog
from ganedit.edit.directions import Directions, ganspace, load_direction, projection_std, sefa
from ganedit.edit.latents import FingerprintWarning, apply, generator_fingerprint, mix, save_latents, stylegan_generator
from ganedit.errors import ConfigError, GaneditError

ProgressFn = Callable[[int, int, Dict[str, float]], None]
CancelFn = Callable[[], bool]

INVERTERS = ("projection", "PTI")
ENCODER_PREFIX = "encoder: "
GANSPACE_SAMPLES = 5000  # mapping-network passes only: about a second at 64 px on one CPU core
SCALE_SAMPLES = 5000  # samples measuring a SeFa vector's spread, so its slider counts standard deviations
N_COMPONENTS = 16
BUILTIN_SETS = {"sefa": "SeFa (closed form)", "ganspace": f"GANSpace (PCA of {GANSPACE_SAMPLES} sampled w)"}
FILE_PREFIX = "file:"
CACHE_SIZE = 8

_cache: "OrderedDict[Tuple[str, str], Directions]" = OrderedDict()
_cache_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------- directions


def computed_directions(G: Any, method: str) -> Directions:
    """SeFa or GANSpace directions of ``G``: computed once per generator (weights hash) and method, then cached."""
    if method not in BUILTIN_SETS:
        raise ConfigError(f"unknown direction method {method!r}: {', '.join(BUILTIN_SETS)}")
    key = (generator_fingerprint(G)["hash"], method)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _compute(G, method)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        return _cache[key]


def _compute(G: Any, method: str) -> Directions:
    k = min(N_COMPONENTS, int(stylegan_generator(G).style_dim))
    if method == "ganspace":
        return ganspace(G, n_samples=GANSPACE_SAMPLES, n_components=k)
    found = sefa(G, n_components=k)
    return replace(found, scales=projection_std(G, found.vectors, SCALE_SAMPLES, seed=0))


def fitting_direction_files(catalog: Catalog, G: Any) -> Dict[str, str]:
    """{catalog name: label} of the direction files under the models folders that fit ``G``: another shape is
    left out; the same shape with other weights is offered with a note (as `ganedit edit` warns and goes on)."""
    fitting: Dict[str, str] = {}
    for name, path in catalog.directions.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FingerprintWarning)
            try:
                load_direction(path, G)
            except GaneditError:
                continue
        other = any(issubclass(w.category, FingerprintWarning) for w in caught)
        fitting[name] = f"file {name}" + (" (made with other weights of this generator shape)" if other else "")
    return fitting


def direction_choices(catalog: Catalog, G: Any) -> List[Tuple[str, str]]:
    """(label, key) of every direction set offered for ``G``: the computed ones, then the fitting files."""
    files = fitting_direction_files(catalog, G)
    return [(label, key) for key, label in BUILTIN_SETS.items()] + [(label, FILE_PREFIX + n) for n, label in files.items()]


def directions_for(catalog: Catalog, G: Any, key: str) -> Directions:
    """The direction set named by a key of :func:`direction_choices` (a file is looked up in the catalog)."""
    if key.startswith(FILE_PREFIX):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FingerprintWarning)  # said in the picker's label
            return load_direction(catalog.direction_file(key[len(FILE_PREFIX):]), G)
    return computed_directions(G, key)


def layers_text(directions: Directions) -> str:
    """The layer-range text of a direction set's own rows ("all" when it has none)."""
    rows = directions.layers
    return "all" if rows is None else f"{rows.start}-{rows.stop - 1}"


# ----------------------------------------------------------------------------------------------- encoders


def fitting_encoders(catalog: Catalog, G: Any, load: Callable[[str], Any]) -> List[str]:
    """Catalog names of the pSp / e4e encoders whose decoder fits ``G`` and that read photos (task "encode")."""
    from ganedit.edit.latents import check_fits

    found = []
    for name in catalog.names("encoder"):
        try:
            encoder = load(name)
            if getattr(encoder, "task", "encode") != "encode":
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FingerprintWarning)
                check_fits(generator_fingerprint(encoder.generator), G)
        except (GaneditError, AttributeError):
            continue
        found.append(name)
    return found


# ----------------------------------------------------------------------------------------------- inversion


@dataclass
class Inverted:
    """One inverted image: its code ``wplus`` [1, n_latent, dim] (CPU), the noise and generator that decode it
    (a PTI result brings its tuned generator), the target and its reconstruction [1, 3, H, W] in [-1, 1]."""

    wplus: torch.Tensor
    noise: Union[str, List[torch.Tensor]]
    generator: torch.nn.Module
    target: torch.Tensor
    reconstruction: torch.Tensor
    method: str
    steps: int
    cancelled: bool = False
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        from ganedit.cli.project import psnr

        return psnr(self.reconstruction, self.target)[0]

    def decode(self, wplus: torch.Tensor) -> torch.Tensor:
        """Images of codes [N, n_latent, dim] with this inversion's generator and noise."""
        device = next(self.generator.parameters()).device
        noise = self.noise if isinstance(self.noise, str) else [m.to(device).expand(wplus.shape[0], -1, -1, -1) for m in self.noise]
        with torch.no_grad():
            return self.generator.synthesis(wplus.to(device), noise=noise).cpu()


def invert(G: Any, target: torch.Tensor, method: str, *, steps: int = 100, tune_steps: int = 50, space: str = "w",
           seed: int = 0, encoder_path: Optional[str] = None, progress: Optional[ProgressFn] = None,
           cancel: Optional[CancelFn] = None) -> Inverted:
    """Invert ``target`` [1, 3, size, size] with "projection" (`ganedit project`: ``steps`` Adam steps in ``space``,
    noise maps optimised), "PTI" (`ganedit pti`: a W pivot of ``steps`` steps, then at most ``tune_steps`` of
    tuning), or "encoder" (``encoder_path``, one pass). ``progress(step, total, stats)`` counts both PTI phases."""
    from ganedit.edit.projection import project
    from ganedit.edit.pti import pivotal_tuning

    g = stylegan_generator(G)
    device = next(g.parameters()).device
    target = target.to(device)
    stopped = (lambda: False) if cancel is None else cancel
    if method == "projection":
        result = project(G, target, space=space, steps=int(steps), noise=True, seed=int(seed), progress=progress, cancel=cancel)
        return Inverted(result.wplus.cpu(), [m.cpu() for m in result.noise], g, target.cpu(), result.images.cpu(),
                        method, result.steps, result.cancelled, {**result.meta(G), "seed": int(seed)})
    if method == "PTI":
        total = int(steps) + int(tune_steps)

        def pivot_step(k: int, n: int, stats: Dict[str, float]) -> None:
            if progress is not None:
                progress(k, total, stats)

        def tune_step(k: int, n: int, stats: Dict[str, float]) -> None:
            if progress is not None:
                progress(int(steps) + k, total, stats)

        result = pivotal_tuning(G, target, "image", pivot_steps=int(steps), steps=int(tune_steps), seed=int(seed),
                                progress=tune_step, pivot_progress=pivot_step, cancel=cancel)
        tuned = result.generator(G)
        pivot = result.pivot.to(device)
        with torch.no_grad():
            recon = tuned.synthesis(pivot, noise="const").cpu()
        meta = {"space": "w", "source": "pti", "generator": generator_fingerprint(G), "pivot_steps": int(steps),
                "tune_steps": result.steps, "seed": int(seed)}
        return Inverted(result.pivot.cpu(), "const", tuned, target.cpu(), recon, method, result.steps, stopped(), meta)
    if method == "encoder":
        from ganedit.cli.project import encoder_codes

        if encoder_path is None:
            raise ConfigError("inversion with an encoder needs the encoder")
        wplus = encoder_codes(encoder_path, G, target)
        if wplus.dim() == 2:
            wplus = wplus.unsqueeze(1).repeat(1, g.n_latent, 1)
        with torch.no_grad():
            recon = g.synthesis(wplus.to(device), noise="const").cpu()
        meta = {"space": "w+", "source": "encoder", "generator": generator_fingerprint(G), "encoder": Path(encoder_path).name}
        return Inverted(wplus, "const", g, target.cpu(), recon, method, 1, False, meta)
    raise ConfigError(f"unknown inverter {method!r}: projection, PTI or an encoder")


# ----------------------------------------------------------------------------------------------- editing


def edited_code(inverted: Inverted, directions: Optional[Directions], strengths: Sequence[float],
                rows: Optional[range] = None, other: Optional[Inverted] = None, mix_rows: Optional[range] = None) -> torch.Tensor:
    """The inverted code with ``mix_rows`` taken from ``other`` (style mixing, when both are given), then moved by
    ``strengths[i]`` along vector i of ``directions`` on ``rows`` (None = all). A strength counts standard
    deviations of sampled w along the vector when the set records them, else units of w."""
    w = inverted.wplus
    if other is not None and mix_rows is not None:
        w = mix(w, other.wplus, mix_rows)
    if directions is None:
        return w
    if len(strengths) > len(directions):
        raise ConfigError(f"{len(strengths)} strengths for a set of {len(directions)} directions")
    for i, s in enumerate(strengths):
        if s:
            scale = 1.0 if directions.scales is None else float(directions.scales[i])
            w = apply(w, directions.vector(i), float(s) * scale, rows)
    return w


def save_downloads(folder: Path, image: np.ndarray, inverted: Inverted, code: torch.Tensor) -> List[str]:
    """The result PNG and a latents file (rows "inverted" and "edited", the format `ganedit edit` reads)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "edited.png"
    Image.fromarray(image).save(png)
    noise = None if isinstance(inverted.noise, str) else inverted.noise
    meta = {**inverted.meta, "space": "w+", "rows": "inverted code, then the edited code"}
    latents = save_latents(folder / "latents.safetensors", torch.cat([inverted.wplus, code.cpu()]),
                           ["inverted", "edited"], meta, noise=noise)
    return [str(png), str(latents)]
