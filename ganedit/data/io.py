"""Image files <-> tensors: float32 NCHW RGB in [-1, 1] (``pixel / 127.5 - 1``).

Reading accepts PNG, JPEG, WebP, BMP, TIFF (8 and 16 bit), GIF and PPM in any of the common pixel modes
(grayscale, palette, RGBA composited on a background, CMYK, 16-bit grayscale) and applies the EXIF
orientation. Every way a file can be unusable (missing, empty, not an image, truncated, corrupt, an unsupported
mode, a declared size over the pixel limit, smaller than asked for) ends in one ``ImageError(path, problem)``;
the decoders' own mixed bag of exceptions never escapes.

Writing clamps to [-1, 1], rounds to 8 bits and replaces the destination atomically (temporary file, rename).
"""
from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from ganedit.errors import ConfigError, ImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "RESIZE_FILTERS",
    "read_image",
    "load_rgb",
    "image_size",
    "write_image",
    "make_grid",
    "write_grid",
    "to_uint8_hwc",
    "from_uint8_hwc",
    "pil_to_tensor",
    "pil_filter",
    "centre_crop_box",
    "is_image_name",
]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]
Size = Union[int, Tuple[int, int], None]
Colour = Tuple[int, int, int]

# 8192 x 8192: far above any GAN resolution, below Pillow's own warning threshold (~89 MP), so our check is
# the one that fires and its message names the limit the user can change. Pillow's hard limit (twice
# PIL.Image.MAX_IMAGE_PIXELS, ~179 MP) still applies on top and also ends in an ImageError.
DEFAULT_MAX_PIXELS = 8192 * 8192
WHITE: Colour = (255, 255, 255)

# Decoders we allow Image.open to try: restricting the list stops Pillow from guessing exotic formats
# (e.g. reading random bytes as some raw format) and keeps the error for non-images clear.
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}
)

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_DIRECT_MODES = {"RGB", "RGBX", "L", "1", "CMYK", "YCbCr", "P"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def is_image_name(name: str) -> bool:
    """True when the file name has one of the image extensions ganedit reads."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def pil_filter(name: str) -> "Image.Resampling":
    """The Pillow filter for a name ('nearest', 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos')."""
    try:
        return RESIZE_FILTERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown resize filter {name!r}; choose one of {', '.join(RESIZE_FILTERS)}") from None


# ----------------------------------------------------------------------------------------------------- reading


def _source_name(source: Source, name: Optional[str]) -> Optional[str]:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) if not isinstance(source, (bytes, bytearray, memoryview)) else None


def _read_bytes(source: Source, name: Optional[str]) -> bytes:
    """All bytes of the source; a missing, unreadable or empty file is an ImageError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(name, "file not found")
        if path.is_dir():
            raise ImageError(name, "is a directory, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(name, f"cannot read file: {exc.strerror or exc}") from None
    else:
        try:
            data = source.read()
        except OSError as exc:
            raise ImageError(name, f"cannot read: {exc}") from None
    if len(data) == 0:
        raise ImageError(name, "empty file (0 bytes)")
    return data


def _open_checked(data: bytes, name: Optional[str], max_pixels: Optional[int]) -> Image.Image:
    """Identify the image and check its DECLARED size against the limit before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Our own limit is enforced below (Pillow's bomb warning would only duplicate it), and header
            # warnings such as "Corrupt EXIF data" are noise: a broken file fails below with an ImageError.
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"declared size is over Pillow's hard pixel limit (decompression bomb?): {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageError(name, "not an image, or a format ganedit does not read (PNG, JPEG, WebP, BMP, TIFF, GIF, PPM)") from None
    except Exception as exc:  # header parsers raise SyntaxError, struct.error, ValueError, ... on garbage
        raise ImageError(name, f"corrupt image header: {type(exc).__name__}: {exc}") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageError(name, f"declared size {width}x{height} is empty")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            name,
            f"declared size {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} "
            "(possible decompression bomb; raise max_pixels if the image is genuine)",
        )
    return im


def _decode(im: Image.Image, name: Optional[str]) -> Image.Image:
    """Decode all pixels (first frame) and apply the EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Truncated File Read", "Corrupt EXIF data": we decide below
            im.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"over Pillow's hard pixel limit (decompression bomb?): {exc}") from None
    except Exception as exc:  # truncated data, bad checksums, broken compressed streams, ...
        fmt = im.format or "image"
        raise ImageError(name, f"truncated or corrupt {fmt} data: {type(exc).__name__}: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oriented = ImageOps.exif_transpose(im)
    except Exception:
        # Broken EXIF on otherwise intact pixels: the pixels are still usable, only the rotation hint is lost.
        oriented = im
    return oriented if oriented is not None else im


def _sixteen_bit_scale(im: Image.Image) -> float:
    if im.mode != "I":
        return 65535.0
    bits = 16
    tags = getattr(im, "tag_v2", None)
    if tags is not None and 258 in tags:
        value = tags[258]
        bits = int(value[0] if isinstance(value, tuple) else value)
    if bits > 16:
        raise ImageError(None, f"unsupported pixel mode I with {bits}-bit samples")
    return float(2**bits - 1)


def _to_rgb(im: Image.Image, name: Optional[str], background: Colour) -> Union[Image.Image, np.ndarray]:
    """An 8-bit RGB Pillow image, or for 16-bit grayscale a float32 HxWx3 array in [0, 1] (keeps the precision)."""
    mode = im.mode
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if mode == "RGB":
        return im
    if mode in _DIRECT_MODES:
        return im.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        try:
            scale = _sixteen_bit_scale(im)
        except ImageError as exc:
            raise ImageError(name, exc.problem) from None
        gray = np.asarray(im, dtype=np.float32) / scale
        return np.repeat(gray[:, :, None], 3, axis=2)
    raise ImageError(name, f"unsupported pixel mode {mode!r} (ganedit reads RGB, RGBA, grayscale, palette, CMYK, 16-bit grayscale)")


def load_rgb(
    source: Source,
    *,
    name: Optional[str] = None,
    background: Colour = WHITE,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    min_size: Optional[int] = None,
) -> Image.Image:
    """Read an image file (or bytes) as an 8-bit RGB Pillow image, alpha composited on ``background``,
    EXIF orientation applied. ``min_size``: the shorter side must be at least this many pixels."""
    image = _load(source, name, background, max_pixels, min_size)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.rint(image * 255.0).astype(np.uint8), "RGB")
    return image


def _load(source: Source, name: Optional[str], background: Colour, max_pixels: Optional[int], min_size: Optional[int]):
    name = _source_name(source, name)
    data = _read_bytes(source, name)
    im = _open_checked(data, name, max_pixels)
    if min_size is not None and min(im.size) < min_size:
        raise ImageError(name, f"image is {im.size[0]}x{im.size[1]}, smaller than the required {min_size} px on the shorter side")
    return _to_rgb_checked(_decode(im, name), name, background)


def _to_rgb_checked(im: Image.Image, name: Optional[str], background: Colour) -> Union[Image.Image, np.ndarray]:
    try:
        return _to_rgb(im, name, background)
    except ImageError:
        raise
    except Exception as exc:  # a mode conversion Pillow cannot do for this particular file
        raise ImageError(name, f"cannot convert pixel mode {im.mode!r} to RGB: {type(exc).__name__}: {exc}") from None


def image_size(
    source: Source, *, name: Optional[str] = None, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, decode: bool = False
) -> Tuple[int, int, str]:
    """(width, height, mode) of the file. By default from the header only; with ``decode`` every pixel is
    decoded too (finds truncated or corrupt data) and the size is the one after EXIF orientation.
    Raises ImageError like read_image."""
    name = _source_name(source, name)
    im = _open_checked(_read_bytes(source, name), name, max_pixels)
    mode = im.mode
    if decode:
        im = _decode(im, name)
        _to_rgb_checked(im, name, WHITE)  # an unsupported mode is a bad file too
    return im.size[0], im.size[1], mode


def _target_hw(size: Size) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    if h * w > DEFAULT_MAX_PIXELS:
        # A resize target is allocated in full: refuse it here rather than with a MemoryError deep in Pillow.
        raise ConfigError(f"resize target {w}x{h} is larger than ganedit resizes to ({DEFAULT_MAX_PIXELS} pixels, e.g. 8192x8192)")
    return h, w


def centre_crop_box(width: int, height: int, aspect: float) -> Tuple[int, int, int, int]:
    """The largest centred (left, top, right, bottom) box of the given width/height aspect ratio."""
    if width / height > aspect:
        new_w = max(1, round(height * aspect))
        left = (width - new_w) // 2
        return left, 0, left + new_w, height
    new_h = max(1, round(width / aspect))
    top = (height - new_h) // 2
    return 0, top, width, top + new_h


def _resize_float(array: np.ndarray, hw: Tuple[int, int], flt) -> np.ndarray:
    # Pillow resizes 32-bit float ("F") images with every filter: one channel at a time, full precision.
    chans = [Image.fromarray(np.ascontiguousarray(array[:, :, c]), "F").resize((hw[1], hw[0]), flt) for c in range(3)]
    return np.stack([np.asarray(c, dtype=np.float32) for c in chans], axis=2)


def read_image(
    path: Source,
    size: Size = None,
    *,
    background: Colour = WHITE,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    resize_filter: str = "bicubic",
    crop: bool = True,
    allow_upscale: bool = False,
    min_size: Optional[int] = None,
    name: Optional[str] = None,
) -> torch.Tensor:
    """Read one image as a float32 tensor [1, 3, H, W] in [-1, 1].

    ``size``: None keeps the file's size; an int N gives N x N; a tuple is (H, W). With ``crop`` (default) the
    largest centred box of the target aspect ratio is taken first, so nothing is stretched. An image smaller
    than the requested size is an ImageError unless ``allow_upscale``. ``path`` may also be bytes or a binary
    file object (``name`` is then used in error messages).

    Example: ``x = read_image("face.jpg", 256)``.
    """
    flt = pil_filter(resize_filter)
    name = _source_name(path, name)
    image = _load(path, name, background, max_pixels, min_size)
    hw = _target_hw(size)
    if isinstance(image, np.ndarray):
        height, width = image.shape[:2]
    else:
        width, height = image.size
    if hw is not None and (height, width) != hw:
        box = centre_crop_box(width, height, hw[1] / hw[0]) if crop else (0, 0, width, height)
        if not allow_upscale and (box[2] - box[0] < hw[1] or box[3] - box[1] < hw[0]):
            raise ImageError(
                name,
                f"image is {width}x{height}, smaller than the requested {hw[1]}x{hw[0]} (allow upscaling to use it anyway)",
            )
        # Crop, then resize: pixels outside the box never leak in through the filter's support.
        if isinstance(image, np.ndarray):
            image = _resize_float(image[box[1] : box[3], box[0] : box[2]], hw, flt)
        else:
            image = image.crop(box).resize((hw[1], hw[0]), flt)
    if isinstance(image, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None] * 2.0 - 1.0
    return pil_to_tensor(image)[None]


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB Pillow image -> float32 [3, H, W] in [-1, 1] (``pixel / 127.5 - 1``)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


# ---------------------------------------------------------------------------------------------- conversions


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """[C, H, W] -> uint8 [H, W, C]; [N, C, H, W] -> uint8 [N, H, W, C]. Values in [-1, 1] are clamped first."""
    if images.dim() not in (3, 4):
        raise ValueError(f"expected a [C,H,W] or [N,C,H,W] tensor, got shape {tuple(images.shape)}")
    x = images.detach().to("cpu", torch.float32)
    x = x.clamp(-1.0, 1.0).add(1.0).mul(127.5).round_().to(torch.uint8)
    x = x.permute(1, 2, 0) if x.dim() == 3 else x.permute(0, 2, 3, 1)
    return np.ascontiguousarray(x.numpy())


def from_uint8_hwc(array: np.ndarray) -> torch.Tensor:
    """uint8 [H, W], [H, W, C] -> float32 [1, 3, H, W]; [N, H, W, C] -> [N, 3, H, W]; in [-1, 1].
    Grayscale is repeated to RGB; a 4th (alpha) channel is dropped."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"expected [H,W], [H,W,C] or [N,H,W,C], got shape {a.shape}")
    if a.shape[3] == 1:
        a = np.repeat(a, 3, axis=3)
    elif a.shape[3] == 4:
        a = a[..., :3]
    elif a.shape[3] != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {a.shape[3]}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


# ----------------------------------------------------------------------------------------------------- writing


def _atomic_save(image: Image.Image, path: Path, fmt: str, **params) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, fmt, **params)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_image(tensor: torch.Tensor, path: "str | os.PathLike[str]", *, quality: int = 95) -> None:
    """Write [3, H, W] or [1, 3, H, W] (also 1 channel) in [-1, 1] to PNG/JPEG/WebP/BMP/TIFF by extension.
    Values are clamped; the file is replaced atomically. Example: ``write_image(x, "out/edit.png")``."""
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"cannot write extension {path.suffix or '(none)'!r}; use one of {', '.join(sorted(_WRITE_FORMATS))}")
    x = tensor
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"write_image takes one image; got a batch of {x.shape[0]} (use write_grid)")
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected [3,H,W], [1,3,H,W] or [1,H,W], got shape {tuple(tensor.shape)}")
    hwc = to_uint8_hwc(x)
    image = Image.fromarray(hwc[:, :, 0], "L") if hwc.shape[2] == 1 else Image.fromarray(hwc, "RGB")
    params = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    try:
        _atomic_save(image, path, fmt, **params)
    except OSError as exc:
        raise ImageError(path, f"cannot write image: {exc.strerror or exc}") from None


def make_grid(
    images: "torch.Tensor | Sequence[torch.Tensor]", nrow: int = 8, padding: int = 2, pad_value: float = 1.0
) -> torch.Tensor:
    """Tile [N, C, H, W] into one [C, H', W'] image with ``nrow`` images per row and ``padding`` pixels of
    ``pad_value`` (1.0 = white in [-1, 1]) around and between them."""
    if not isinstance(images, torch.Tensor):
        images = torch.cat([im if im.dim() == 4 else im[None] for im in images], 0)
    if images.dim() == 3:
        images = images[None]
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    cols = max(1, min(nrow, n))
    rows = math.ceil(n / cols)
    x = images.detach().float()
    if rows * cols > n:  # fill the last row with blank cells
        x = torch.cat([x, x.new_full((rows * cols - n, c, h, w), pad_value)], 0)
    p = padding
    # Pad each cell on its top/left, lay the cells out by one reshape, then close the bottom/right border.
    x = torch.nn.functional.pad(x, (p, 0, p, 0), value=pad_value)
    x = x.reshape(rows, cols, c, h + p, w + p).permute(2, 0, 3, 1, 4).reshape(c, rows * (h + p), cols * (w + p))
    return torch.nn.functional.pad(x, (0, p, 0, p), value=pad_value)


def write_grid(
    images: "torch.Tensor | Sequence[torch.Tensor]",
    path: "str | os.PathLike[str]",
    nrow: int = 8,
    *,
    padding: int = 2,
    pad_value: float = 1.0,
    quality: int = 95,
) -> None:
    """make_grid + write_image. Example: ``write_grid(samples, "grid.png", nrow=8)``."""
    write_image(make_grid(images, nrow, padding, pad_value), path, quality=quality)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
