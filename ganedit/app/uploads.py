"""Reading browser uploads safely: a size limit in bytes checked before decoding, then ganedit.data.io with a
pixel limit, so a bad file gets the same one-line ImageError the CLI prints."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ganedit.data.io import read_image
from ganedit.errors import ImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# 4096 x 4096: any photo a person would edit here; far below the io module's default (8192^2), since a web
# server decodes files strangers send.
MAX_UPLOAD_PIXELS = 4096 * 4096


def upload_path(value: object, what: str) -> Path:
    """The temp file Gradio wrote for an upload (a path string or an object with .name / .path)."""
    if value is None:
        raise ImageError(what, "no image given: upload one or click an example")
    raw = value if isinstance(value, (str, Path)) else getattr(value, "path", None) or getattr(value, "name", None)
    return Path(str(raw))


def read_upload(value: object, what: str, size: Optional[int], *, crop: bool = True) -> torch.Tensor:
    """An uploaded image as [1, 3, H, W] in [-1, 1], resized to ``size`` (None keeps it) as the CLI reads it."""
    path = upload_path(value, what)
    name = path.name
    try:
        n_bytes = path.stat().st_size
    except OSError:
        raise ImageError(name, "the upload is gone; upload it again") from None
    if n_bytes > MAX_UPLOAD_BYTES:
        raise ImageError(name, f"file is {n_bytes / 2**20:.1f} MiB, over the upload limit of {MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    return read_image(path.read_bytes(), size, max_pixels=MAX_UPLOAD_PIXELS, crop=crop, allow_upscale=True, name=name)
