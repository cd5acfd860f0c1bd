"""Image transforms on Pillow images, split into *draw the random parameters* and *apply them*, so that the two
halves of a pair get the SAME crop and flip (pix2pix) while unpaired images draw their own (CycleGAN).

Order, as in the official pix2pix/CycleGAN ``get_transform``: optional grayscale, resize (explicit filter),
crop (random or centred), round to a multiple, horizontal flip, then ``pixel / 127.5 - 1`` to a [3, H, W]
float tensor. Random draws use Python's ``random`` (the module, or a ``random.Random`` given per item) in the
official order: crop x, crop y, flip.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ganedit.data.io import centre_crop_box, pil_filter, pil_to_tensor
from ganedit.errors import ImageError

__all__ = ["Transform", "Params", "pix2pix_transform", "PREPROCESS_MODES"]

SizeLike = Union[int, Tuple[int, int], None]
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class Params:
    """The random part of one transform call: top-left corner of the crop (x, y) and whether to flip."""

    crop_pos: Optional[Tuple[int, int]] = None
    flip: bool = False


def _hw(size: SizeLike) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class Transform:
    """A deterministic-given-params image pipeline.

    resize / resize_kind:
      * ``exact``  — to (H, W) (an int N means N x N), ignoring the aspect ratio (pix2pix ``resize``);
      * ``cover``  — centre-crop to the target aspect ratio, then resize to (H, W) (no distortion);
      * ``shorter``— the shorter side to N, keeping the aspect ratio;
      * ``width``  — pix2pix ``scale_width``: width N, height ``max(N*h/w, crop height)``.
    crop: (H, W) or N; ``random_crop`` draws the position, otherwise it is centred. As in the official code a
      crop is skipped when the image already has the crop size; an image smaller than the crop is an error.
    multiple_of: round each side to the nearest multiple (pix2pix ``none`` uses 4).
    allow_upscale: when False, an image smaller than the resize target is an ImageError.
    """

    resize: SizeLike = None
    resize_kind: str = "exact"
    resize_filter: str = "bicubic"
    crop: SizeLike = None
    random_crop: bool = False
    flip: bool = False
    multiple_of: Optional[int] = None
    grayscale: bool = False  # one-channel output, as pix2pix with input_nc = 1
    allow_upscale: bool = True

    def __post_init__(self) -> None:
        if self.resize_kind not in ("exact", "cover", "shorter", "width"):
            raise ValueError(f"unknown resize_kind {self.resize_kind!r}")
        pil_filter(self.resize_filter)  # validates the name early

    # ------------------------------------------------------------------ geometry
    def resized_size(self, width: int, height: int) -> Tuple[int, int]:
        """(width, height) after the resize step."""
        if self.resize is None:
            return width, height
        if self.resize_kind in ("exact", "cover"):
            h, w = _hw(self.resize)
            return w, h
        n = self.resize if isinstance(self.resize, int) else self.resize[1]
        if self.resize_kind == "shorter":
            if width <= height:
                return n, max(1, int(round(height * n / width)))
            return max(1, int(round(width * n / height))), n
        # scale_width (official __scale_width): unchanged when the width already fits and the height is enough.
        crop_h = _hw(self.crop)[0] if self.crop is not None else 0
        if width == n and height >= crop_h:
            return width, height
        return n, int(max(n * height / width, crop_h))

    def draw(self, width: int, height: int, rng: "random.Random | None" = None) -> Params:
        """Draw crop position and flip for an image of this size, as the official get_params does."""
        r = rng if rng is not None else random
        pos = None
        if self.crop is not None:
            new_w, new_h = self.resized_size(width, height)
            ch, cw = _hw(self.crop)
            if self.random_crop:
                pos = (r.randint(0, max(0, new_w - cw)), r.randint(0, max(0, new_h - ch)))
            else:
                pos = (max(0, (new_w - cw) // 2), max(0, (new_h - ch) // 2))
        flip = bool(self.flip and r.random() > 0.5)
        return Params(pos, flip)

    # ------------------------------------------------------------------ apply
    def apply_pil(self, image: Image.Image, params: Params, name: Optional[str] = None) -> Image.Image:
        """The transformed Pillow image (before conversion to a tensor)."""
        if self.grayscale:
            image = image.convert("L")
        width, height = image.size
        if self.resize is not None:
            new_w, new_h = self.resized_size(width, height)
            box = (0, 0, width, height)
            if self.resize_kind == "cover":
                box = centre_crop_box(width, height, new_w / new_h)
            if not self.allow_upscale and (box[2] - box[0] < new_w or box[3] - box[1] < new_h):
                raise ImageError(name, f"image is {width}x{height}, smaller than the requested {new_w}x{new_h}")
            if box != (0, 0, width, height):
                image = image.crop(box)
            if image.size != (new_w, new_h):
                image = image.resize((new_w, new_h), pil_filter(self.resize_filter))
        if self.crop is not None:
            ch, cw = _hw(self.crop)
            width, height = image.size
            if width < cw or height < ch:
                raise ImageError(name, f"image is {width}x{height} after resizing, smaller than the crop {cw}x{ch}")
            if width > cw or height > ch:
                x, y = params.crop_pos if params.crop_pos is not None else ((width - cw) // 2, (height - ch) // 2)
                image = image.crop((x, y, x + cw, y + ch))
        if self.multiple_of:
            m = self.multiple_of
            width, height = image.size
            w, h = max(m, int(round(width / m) * m)), max(m, int(round(height / m) * m))
            if (w, h) != (width, height):
                image = image.resize((w, h), pil_filter(self.resize_filter))
        if params.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image

    def apply(self, image: Image.Image, params: Params, name: Optional[str] = None) -> torch.Tensor:
        """Transformed float32 [3, H, W] in [-1, 1] ([1, H, W] with ``grayscale``)."""
        out = self.apply_pil(image, params, name)
        if out.mode == "L":
            return torch.from_numpy(np.array(out, dtype=np.uint8))[None].float().div_(127.5).sub_(1.0)
        return pil_to_tensor(out)

    def __call__(self, image: Image.Image, rng: "random.Random | None" = None, name: Optional[str] = None) -> torch.Tensor:
        return self.apply(image, self.draw(*image.size, rng=rng), name)

    def for_test(self) -> "Transform":
        """The same pipeline with nothing random: centred crop, no flip."""
        return replace(self, random_crop=False, flip=False)


def pix2pix_transform(
    load_size: int = 286,
    crop_size: int = 256,
    preprocess: str = "resize_and_crop",
    *,
    flip: bool = True,
    train: bool = True,
    grayscale: bool = False,
    resize_filter: str = "bicubic",
) -> Transform:
    """The official pix2pix/CycleGAN ``get_transform`` as a Transform. At test time (``train=False``) the
    official test script forces load_size = crop_size and no flip; do the same here.

    Example: ``t = pix2pix_transform(286, 256); p = t.draw(*a.size); A, B = t.apply(a, p), t.apply(b, p)``.
    """
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess {preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}")
    if not train:
        load_size, flip = crop_size, False
    resize, kind = None, "exact"
    if preprocess.startswith("resize"):
        resize = load_size
    elif preprocess.startswith("scale_width"):
        resize, kind = load_size, "width"
    crop = crop_size if preprocess.endswith("crop") else None
    return Transform(
        resize=resize,
        resize_kind=kind,
        resize_filter=resize_filter,
        crop=crop,
        random_crop=True,
        flip=flip,
        multiple_of=4 if preprocess == "none" else None,
        grayscale=grayscale,
    )
