"""What each tab computes, as plain functions (no Gradio): model names in, uint8 [H, W, 3] images out.

Models are loaded the way the CLI loads them (the same public loaders) and kept in a small cache, so a click
after the first does not reread the weights.
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ganedit.app.catalog import Catalog
from ganedit.app.uploads import read_upload
from ganedit.data.io import make_grid, to_uint8_hwc
from ganedit.errors import ConfigError

MAX_SEEDS = 64  # images per Sample click: bounds the work one request can ask for
_load_lock = threading.Lock()


def pick_device(name: str = "auto") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return name


@lru_cache(maxsize=4)
def _load(path: str, kind: str, device: str) -> Any:
    from ganedit.cli.sample import load_stylegan2
    from ganedit.cli.swap import load_swapae
    from ganedit.cli.translate import load_translation_model

    import ganedit

    loader = {"swapae": load_swapae, "stylegan2": load_stylegan2, "translation": load_translation_model,
              "encoder": ganedit.load}[kind]
    return loader(path).to(device).eval()


def load(catalog: Catalog, name: Optional[str], kind: str, device: str) -> Any:
    entry = catalog.get(name, kind)
    with _load_lock:
        return _load(str(entry.path), kind, device)


def image_size(model: Any) -> int:
    return int(getattr(model, "config", {}).get("image_size", 256))


def preview(catalog: Catalog, device: str, name: str, kind: str, upload: object) -> np.ndarray:
    """An upload as the model will read it (checked, cropped and resized to the model's size)."""
    return to_uint8_hwc(read_upload(upload, "image", image_size(load(catalog, name, kind, device)))[0])


def swap(catalog: Catalog, device: str, name: str, structure: object, texture: object, alpha: float,
         mode: str = "swap", box: Tuple[float, float, float, float] = (0.25, 0.25, 0.75, 0.75), seed: int = 0,
         mask: Optional[torch.Tensor] = None) -> np.ndarray:
    """Swapping Autoencoder: ``mode`` swap (texture mixed in by ``alpha``, as `ganedit swap`), or blend / copy:
    the texture image's structure inside the region put into the structure image (as `ganedit swapae region`).
    The region is ``mask`` (1, 1, size, size) in [0, 1] (a brushed mask, see ganedit.app.masks) when given,
    else ``box`` (fractions x0, y0, x1, y1 of the image)."""
    from ganedit.edit import swapae as E

    model = load(catalog, name, "swapae", device)
    size = image_size(model)
    a = read_upload(structure, "structure image", size).to(device)
    b = read_upload(texture, "texture image", size).to(device)
    if mode == "swap":
        y = E.swap(model, a, b, [float(alpha)], seed=seed)[0]
    elif mode in ("blend", "copy"):
        if mask is None:  # the rectangle: the same mask `ganedit swapae region --box` builds
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise ConfigError(f"region: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {box}")
            mask = E.rect_mask(size, size, (round(x0 * size), round(y0 * size), round(x1 * size), round(y1 * size)))
        if tuple(mask.shape[-2:]) != (size, size):
            raise ConfigError(f"the region mask is {tuple(mask.shape[-2:])}, the model reads {size} x {size} images")
        edit = E.blend_structure if mode == "blend" else E.copy_structure_region
        y = edit(model, a, b, mask.to(device), seed=seed)
    else:
        raise ConfigError(f"unknown swap mode {mode!r}: swap, blend or copy")
    return to_uint8_hwc(y[0])


def translate(catalog: Catalog, device: str, name: str, image: object, direction: str, size: int) -> np.ndarray:
    """pix2pix / CycleGAN as `ganedit translate --size N` in its default eval test mode."""
    from ganedit.models.cyclegan import select_generator
    from ganedit.models.pix2pix import set_test_mode

    generator = select_generator(load(catalog, name, "translation", device), direction)
    set_test_mode(generator, "eval")
    multiple = int(generator.size_multiple)
    if size < multiple or size % multiple:
        raise ConfigError(f"size {size}: this generator needs a multiple of {multiple}")
    x = read_upload(image, "input image", int(size), crop=False).to(device)
    in_nc = int(generator.config["input_nc"])
    if in_nc == 1:  # official single-channel nets read grayscale (PIL "L" weights), as the CLI does
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    elif in_nc != 3:
        raise ConfigError(f"the generator takes {in_nc} input channels; only 1- or 3-channel generators translate images")
    # channels_last as `ganedit translate` runs it: the same kernels, so the same pixels as the CLI
    generator.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = generator(x.contiguous(memory_format=torch.channels_last))
    return to_uint8_hwc(y[0].contiguous())


def _check_seeds(seeds: Sequence[int], what: str) -> List[int]:
    if not seeds:
        raise ConfigError(f"{what}: give at least one seed")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"{what}: {len(seeds)} seeds, the limit is {MAX_SEEDS} per click")
    return list(seeds)


def sample(catalog: Catalog, device: str, name: str, seeds: str, truncation: float) -> np.ndarray:
    """One image per seed (image i = `ganedit sample --n 1 --seed s_i`), tiled with make_grid's padding."""
    from ganedit.cli.sample import parse_seeds

    model = load(catalog, name, "stylegan2", device)
    seed_list = _check_seeds(parse_seeds(seeds), "seeds")
    with torch.inference_mode():
        images = torch.cat([model.sample(1, truncation=float(truncation), seed=s) for s in seed_list])
    return to_uint8_hwc(make_grid(images, nrow=math.ceil(math.sqrt(len(seed_list)))))


def mix(catalog: Catalog, device: str, name: str, rows: str, cols: str, layers: str, truncation: float) -> np.ndarray:
    """Style-mixing grid laid out as `ganedit mix`: column images on top, row images on the left, cell (r, c) =
    row seed r with the ``layers`` w+ rows of column seed c."""
    from ganedit.cli.sample import layer_range, parse_seeds

    model = load(catalog, name, "stylegan2", device)
    row_seeds = _check_seeds(parse_seeds(rows), "row seeds")
    col_seeds = _check_seeds(parse_seeds(cols), "column seeds")
    start, stop = layer_range(layers, model.n_latent)
    with torch.inference_mode():
        def wplus(seeds: List[int]) -> torch.Tensor:
            z = torch.cat([model.seed_z(s) for s in seeds])
            return model.mapping(z, float(truncation)).unsqueeze(1).repeat(1, model.n_latent, 1)

        w_rows, w_cols = wplus(row_seeds), wplus(col_seeds)
        mixed = w_rows.unsqueeze(1).repeat(1, len(col_seeds), 1, 1)
        mixed[:, :, start:stop] = w_cols[None, :, start:stop]
        row_images, col_images = model.synthesis(w_rows), model.synthesis(w_cols)
        cells = model.synthesis(mixed.reshape(-1, model.n_latent, model.style_dim))
        tiles = [torch.ones_like(col_images[:1]), col_images]
        for r in range(len(row_seeds)):
            tiles += [row_images[r:r + 1], cells[r * len(col_seeds):(r + 1) * len(col_seeds)]]
    return to_uint8_hwc(make_grid(torch.cat(tiles), nrow=len(col_seeds) + 1))
