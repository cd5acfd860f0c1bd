"""Image I/O: every supported format and mode reads to the right pixels, writing round-trips, grids tile
correctly, and a fuzz corpus of broken files always ends in ImageError (never another exception)."""
from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganedit.data.io import (
    from_uint8_hwc,
    image_size,
    load_rgb,
    make_grid,
    read_image,
    to_uint8_hwc,
    write_grid,
    write_image,
)
from ganedit.errors import GaneditError, ImageError


def _pattern(h: int = 40, w: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 5, yy * 6, (xx * 3 + yy * 2) % 256], 2).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _as_float(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


# ------------------------------------------------------------------------------------------ formats and modes


@pytest.mark.parametrize(
    "fmt,kw,tol",
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("TIFF", {"compression": "tiff_lzw"}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("PPM", {}, 0),
        ("JPEG", {"quality": 95}, 12),
        ("WEBP", {"quality": 90}, 20),
    ],
)
def test_formats_read_back_the_pixels(tmp_path: Path, fmt: str, kw: dict, tol: int) -> None:
    arr = _pattern()
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_encode(Image.fromarray(arr), fmt, **kw))
    x = read_image(path)
    assert x.shape == (1, 3, 40, 48) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    err = (x - _as_float(arr)).abs().max().item() * 127.5
    assert err <= tol + 1e-3, f"{fmt} off by {err} levels"


def test_grayscale_palette_and_cmyk(tmp_path: Path) -> None:
    arr = _pattern()
    gray = Image.fromarray(arr[:, :, 0], "L")
    (tmp_path / "g.png").write_bytes(_encode(gray, "PNG"))
    x = read_image(tmp_path / "g.png")
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert torch.allclose(x[0, 0], torch.from_numpy(arr[:, :, 0]).float() / 127.5 - 1)

    pal = Image.fromarray(arr).quantize(16)
    (tmp_path / "p.png").write_bytes(_encode(pal, "PNG"))
    assert torch.allclose(read_image(tmp_path / "p.png"), _as_float(np.asarray(pal.convert("RGB"))))

    (tmp_path / "one.bmp").write_bytes(_encode(gray.convert("1"), "BMP"))
    x = read_image(tmp_path / "one.bmp")
    assert set(x.unique().tolist()) <= {-1.0, 1.0}

    cmyk = Image.fromarray(arr).convert("CMYK")
    (tmp_path / "c.jpg").write_bytes(_encode(cmyk, "JPEG", quality=98))
    x = read_image(tmp_path / "c.jpg")
    assert (x - _as_float(arr)).abs().mean() * 127.5 < 6


def test_alpha_is_composited_on_the_chosen_background(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # left half opaque red-ish, right half fully transparent
    rgba[:, 4:6, 3] = 128
    (tmp_path / "a.png").write_bytes(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    white = to_uint8_hwc(read_image(tmp_path / "a.png")[0])
    assert (white[:, :4] == [200, 0, 0]).all()
    assert (white[:, 6:] == [255, 255, 255]).all()
    green = to_uint8_hwc(read_image(tmp_path / "a.png", background=(0, 255, 0))[0])
    assert (green[:, 6:] == [0, 255, 0]).all()
    assert abs(int(green[0, 4, 0]) - 100) <= 2 and abs(int(green[0, 4, 1]) - 127) <= 2  # half-way blend

    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    (tmp_path / "la.png").write_bytes(_encode(la, "PNG"))
    assert (to_uint8_hwc(read_image(tmp_path / "la.png", background=(0, 0, 0))[0])[:, 6:] == 0).all()

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    (tmp_path / "pt.png").write_bytes(_encode(pal, "PNG", transparency=1))
    out = to_uint8_hwc(read_image(tmp_path / "pt.png", background=(10, 20, 30))[0])
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [10, 20, 30]


def test_sixteen_bit_keeps_precision(tmp_path: Path) -> None:
    a16 = (np.arange(32 * 32).reshape(32, 32) * 64 + 7).astype(np.uint16)
    for fmt in ("PNG", "TIFF"):
        (tmp_path / f"g16.{fmt}").write_bytes(_encode(Image.fromarray(a16), fmt))
        x = read_image(tmp_path / f"g16.{fmt}")
        expect = torch.from_numpy(a16.astype(np.float32)) / 65535 * 2 - 1
        assert torch.allclose(x[0, 1], expect, atol=1e-6), fmt  # finer than 8 bits allow
    x = read_image(tmp_path / "g16.PNG", 16)  # resizing keeps working on the float data
    assert x.shape == (1, 3, 16, 16)
    import tifffile  # a test dependency (pyproject [test])
    rgb16 = (np.random.default_rng(0).random((8, 8, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    x = read_image(tmp_path / "rgb16.tif")
    assert (x - _as_float((rgb16 >> 8).astype(np.uint8))).abs().max() * 127.5 <= 1.001


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = _pattern(20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    (tmp_path / "o.png").write_bytes(_encode(Image.fromarray(arr), "PNG", exif=exif))
    x = read_image(tmp_path / "o.png")
    assert x.shape == (1, 3, 30, 20)
    assert torch.equal(x, _as_float(np.ascontiguousarray(np.rot90(arr, -1))))


def test_unsupported_mode_is_a_clear_error(tmp_path: Path) -> None:
    f = Image.fromarray(np.random.default_rng(0).random((8, 8)).astype(np.float32), "F")
    (tmp_path / "f.tif").write_bytes(_encode(f, "TIFF"))
    with pytest.raises(ImageError, match="unsupported pixel mode 'F'") as info:
        read_image(tmp_path / "f.tif")
    assert "f.tif" in str(info.value)


def test_resize_crop_and_size_checks(tmp_path: Path) -> None:
    arr = _pattern(40, 60)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(Image.fromarray(arr), "PNG"))
    assert read_image(path, 32).shape == (1, 3, 32, 32)
    assert read_image(path, (20, 30)).shape == (1, 3, 20, 30)
    # crop=True takes the centred 40x40 box: same as cropping first
    centred = Image.fromarray(arr[:, 10:50]).resize((20, 20), Image.Resampling.BICUBIC)
    assert torch.equal(read_image(path, 20), _as_float(np.asarray(centred)))
    near = Image.fromarray(arr).resize((30, 20), Image.Resampling.NEAREST)
    assert torch.equal(read_image(path, (20, 30), resize_filter="nearest"), _as_float(np.asarray(near)))
    with pytest.raises(ImageError, match="smaller than the requested"):
        read_image(path, 64)
    assert read_image(path, 64, allow_upscale=True).shape == (1, 3, 64, 64)
    with pytest.raises(ImageError, match="smaller than the required 50"):
        read_image(path, min_size=50)
    with pytest.raises(ImageError, match="over the limit"):
        read_image(path, max_pixels=40 * 60 - 1)
    assert read_image(path, max_pixels=40 * 60).shape == (1, 3, 40, 60)
    assert image_size(path) == (60, 40, "RGB")
    with pytest.raises(ValueError, match="unknown resize filter"):
        read_image(path, 20, resize_filter="sinc")


def test_reads_bytes_and_file_objects() -> None:
    data = _encode(Image.fromarray(_pattern()), "PNG")
    assert torch.equal(read_image(data), read_image(io.BytesIO(data)))
    assert load_rgb(data).size == (48, 40)
    with pytest.raises(ImageError, match="^member.png: "):
        read_image(b"nope", name="member.png")


# ---------------------------------------------------------------------------------------------------- writing


def test_write_round_trip_clamp_and_atomic(tmp_path: Path) -> None:
    x = torch.rand(1, 3, 12, 10) * 2 - 1
    write_image(x, tmp_path / "sub" / "a.png")
    y = read_image(tmp_path / "sub" / "a.png")
    assert (y - x).abs().max() <= 1 / 127.5 + 1e-6
    smooth = from_uint8_hwc(_pattern(16, 16))
    write_image(smooth[0], tmp_path / "b.jpg", quality=100)
    assert (read_image(tmp_path / "b.jpg") - smooth).abs().mean() < 0.03
    big = torch.full((3, 4, 4), 5.0)
    big[0] = -7
    write_image(big, tmp_path / "c.png")
    assert to_uint8_hwc(read_image(tmp_path / "c.png")[0])[0, 0].tolist() == [0, 255, 255]
    write_image(torch.zeros(1, 4, 4), tmp_path / "gray.png")
    assert Image.open(tmp_path / "gray.png").mode == "L"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jpg", "c.png", "gray.png", "sub"]  # no temporaries
    with pytest.raises(ImageError, match="cannot write extension"):
        write_image(x, tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="batch of 2"):
        write_image(torch.zeros(2, 3, 4, 4), tmp_path / "d.png")


def test_make_grid_layout() -> None:
    imgs = torch.stack([torch.full((3, 4, 5), v) for v in (-1.0, -0.5, 0.0, 0.5, 0.9)])
    g = make_grid(imgs, nrow=3, padding=2, pad_value=1.0)
    assert g.shape == (3, 2 * (4 + 2) + 2, 3 * (5 + 2) + 2)
    for k, v in enumerate((-1.0, -0.5, 0.0, 0.5, 0.9)):
        r, c = divmod(k, 3)
        top, left = 2 + r * 6, 2 + c * 7
        assert torch.all(g[:, top : top + 4, left : left + 5] == v)
    assert torch.all(g[:, :2] == 1) and torch.all(g[:, :, -2:] == 1)
    assert torch.all(g[:, 8:12, 16:21] == 1)  # the empty sixth cell
    assert make_grid(imgs[:2], nrow=8, padding=0).shape == (3, 4, 10)


def test_write_grid(tmp_path: Path) -> None:
    write_grid(torch.zeros(4, 3, 6, 6), tmp_path / "g.png", nrow=2)
    assert Image.open(tmp_path / "g.png").size == (2 * 8 + 2, 2 * 8 + 2)


def test_uint8_conversions() -> None:
    arr = _pattern(6, 7)
    x = from_uint8_hwc(arr)
    assert x.shape == (1, 3, 6, 7)
    assert np.array_equal(to_uint8_hwc(x[0]), arr)
    assert to_uint8_hwc(x).shape == (1, 6, 7, 3)
    assert from_uint8_hwc(arr[:, :, 0]).shape == (1, 3, 6, 7)
    assert from_uint8_hwc(np.stack([arr, arr])).shape == (2, 3, 6, 7)


# ------------------------------------------------------------------------------------------------------ fuzz


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_with_declared_size(valid_png: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size, with a correct CRC, followed by the original IDAT/IEND."""
    ihdr_end = 8 + 8 + 13 + 4
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return valid_png[:8] + _chunk(b"IHDR", ihdr) + valid_png[ihdr_end:]


def _jpeg_with_declared_size(valid_jpeg: bytes, width: int, height: int) -> bytes:
    i = valid_jpeg.index(b"\xff\xc0")
    return valid_jpeg[: i + 5] + struct.pack(">HH", height, width) + valid_jpeg[i + 9 :]


def _valid_files() -> dict:
    im = Image.fromarray(_pattern())
    return {
        "png": _encode(im, "PNG"),
        "jpg": _encode(im, "JPEG", quality=90),
        "progressive.jpg": _encode(im, "JPEG", progressive=True),
        "webp": _encode(im, "WEBP", quality=80),
        "lossless.webp": _encode(im, "WEBP", lossless=True),
        "bmp": _encode(im, "BMP"),
        "tif": _encode(im, "TIFF"),
        "deflate.tif": _encode(im, "TIFF", compression="tiff_deflate"),
        "gif": _encode(im.quantize(64), "GIF"),
        "rgba.png": _encode(im.convert("RGBA"), "PNG"),
    }


def _fuzz_corpus(valid: dict) -> list:
    """(name, bytes, must_fail) cases. must_fail=False: a harmless case may also read as a valid image."""
    rng = random.Random(1234)
    cases = []
    for name, data in valid.items():
        n = len(data)
        cuts = sorted(set(range(0, min(n, 48))) | set(range(0, n, max(1, n // 40))))
        for cut in cuts:
            # Cutting away a large part of the pixel data must fail; the last bytes of some formats (PNG's
            # IEND, a zlib checksum) are not needed to rebuild every pixel.
            cases.append((f"trunc{cut}.{name}", data[:cut], cut < 0.8 * n))
        for k in range(15):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(n)] = rng.randrange(256)
            cases.append((f"flip{k}.{name}", bytes(mutated), False))
        cases.append((f"junk-after.{name}", data + bytes(rng.randrange(256) for _ in range(64)), False))
    magics = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"BM", b"II*\x00", b"MM\x00*", b"GIF89a", b"P6\n"]
    for k in range(60):
        body = bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 64, 500, 3000])))
        cases.append((f"random{k}.png", body, True))
        cases.append((f"magic{k}.png", magics[k % len(magics)] + body, True))
    cases.append(("text.png", b"this is not an image, just some text\n" * 20, True))
    cases.append(("html.jpg", b"<!doctype html><html><body>404</body></html>", True))
    png, jpg = valid["png"], valid["jpg"]
    cases.append(("huge-ihdr.png", _png_with_declared_size(png, 100_000, 100_000), True))
    cases.append(("max-ihdr.png", _png_with_declared_size(png, 2**31 - 1, 2**31 - 1), True))
    cases.append(("zero-ihdr.png", _png_with_declared_size(png, 0, 40), True))
    cases.append(("lying-ihdr.png", _png_with_declared_size(png, 1000, 900), True))  # plausible size, too little data
    cases.append(("huge-sof.jpg", _jpeg_with_declared_size(jpg, 65000, 65000), True))
    cases.append(("lying-sof.jpg", _jpeg_with_declared_size(jpg, 2000, 1500), False))  # libjpeg may pad with grey
    bmp = bytearray(valid["bmp"])
    bmp[18:26] = struct.pack("<ii", 1_000_000, 1_000_000)
    cases.append(("huge.bmp", bytes(bmp), True))
    gif = bytearray(valid["gif"])
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    cases.append(("huge-screen.gif", bytes(gif), False))  # the frame itself is still 48x40
    return cases


def test_fuzz_corpus_only_ever_raises_image_error(tmp_path: Path) -> None:
    valid = _valid_files()
    cases = _fuzz_corpus(valid)
    assert len(cases) > 800
    outcomes = {"error": 0, "image": 0}
    for name, data, must_fail in cases:
        path = tmp_path / name
        path.write_bytes(data)
        try:
            x = read_image(path)
        except ImageError as exc:
            assert name in str(exc) and exc.problem, name
            outcomes["error"] += 1
            continue
        except Exception as exc:  # anything else is a bug
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc}") from exc
        assert not must_fail, f"{name} read as an image of shape {tuple(x.shape)}"
        assert x.dtype == torch.float32 and x.dim() == 4 and x.shape[:2] == (1, 3) and torch.isfinite(x).all()
        outcomes["image"] += 1
    assert outcomes["error"] > 0.7 * len(cases)


def test_pillow_bomb_errors_become_image_errors(tmp_path: Path) -> None:
    png = _encode(Image.fromarray(_pattern()), "PNG")
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_declared_size(png, 30_000, 30_000))  # 900 MP: over Pillow's own hard limit
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(path, max_pixels=None)
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(path)
    path.write_bytes(_png_with_declared_size(png, 3000, 3000))  # 9 MP: under Pillow's limit, over ours
    with pytest.raises(ImageError, match="over the limit of 5,000,000"):
        read_image(path, max_pixels=5_000_000)
    with pytest.raises(ImageError, match="truncated or corrupt"):  # allowed, then the missing data is found
        read_image(path)


def test_wrong_extension_on_a_valid_file_still_reads(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_pattern()), "PNG")
    (tmp_path / "really-png.jpg").write_bytes(data)
    (tmp_path / "really-png.tif").write_bytes(data)
    assert torch.equal(read_image(tmp_path / "really-png.jpg"), read_image(tmp_path / "really-png.tif"))


def test_file_system_problems(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)
    assert issubclass(ImageError, GaneditError)
