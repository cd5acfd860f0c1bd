"""pix2pix sizes that follow the data: ``load_size``, ``crop_size`` and ``netG`` when left at 0 / "auto".

The official recipe (load 286, crop 256, unet_256) is made for 256 px pairs. On 64 px pairs it would upscale
every image to 286 px and train a 256 px network: 16 times the work, on made-up pixels. Here the crop is the
data's own side (the largest power of two not above it, at most 256, so a U-Net fits it) and the load size
keeps the official jitter ratio 286 / 256 -- 256 px pairs get exactly the official 286 / 256, 64 px pairs
72 / 64. The generator is ``unet_<crop>`` (``unet_256`` from 256 px up).

An aligned file is A|B side by side, so its width should be twice its height; files that are not are
reported (a folder of plain photos, or of pairs stacked the other way, is a common mistake).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ganedit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

OFFICIAL_LOAD, OFFICIAL_CROP = 286, 256
SYNTHETIC_SIZE = 64  # synthetic:N pairs are rendered at this size unless crop_size is given
PROBE_FILES = 32  # files whose headers are read to find the data's size and check the 2:1 shape
ASPECT_TOLERANCE = 0.02


def _probe(cfg: Dict[str, Any]) -> Tuple[Optional[int], List[str]]:
    """(side of one half, names of probed aligned files that are not 2:1) for a folder dataset."""
    from ganedit.data.io import image_size
    from ganedit.data.sources import list_images

    spec = str(cfg["data"])
    root = Path(spec)
    if not root.is_dir():
        return None, []
    if (root / "A").is_dir() and (root / "B").is_dir():
        folder = root / "A"
        names = list_images(folder)[:1]
        if not names:
            raise DataError(f"{folder}: no image files found")
        width, height, _ = image_size(folder / names[0])
        return min(width, height), []
    phase = str(cfg.get("phase") or "")
    folder = root / phase if phase and (root / phase).is_dir() else root
    names = list_images(folder)[:PROBE_FILES]
    if not names:
        return None, []  # the dataset reports the empty folder itself
    sides, odd = [], []
    for name in names:
        width, height, _ = image_size(folder / name)
        if abs(width / (2.0 * height) - 1.0) > ASPECT_TOLERANCE:
            odd.append(f"{name} ({width}x{height})")
        sides.append(min(width // 2, height))
    return min(sides), odd


def _crop_for(side: int) -> int:
    if side < 32:
        raise ConfigError(f"pix2pix: the pairs are {side} px, smaller than the smallest U-Net (32 px); use larger images")
    crop = 1 << (min(side, OFFICIAL_CROP).bit_length() - 1)
    return crop


def resolve_pair_sizes(cfg: Dict[str, Any]) -> None:
    """Fill load_size / crop_size (0) and netG ("auto") in ``cfg`` from the data; warn about non-2:1 files."""
    side, odd = _probe(cfg)
    if odd:
        log.warning("pix2pix: %d of the first %d aligned file(s) are not 2:1 (A|B side by side, each half square), "
                    "e.g. %s; each is split at int(width/2) anyway", len(odd), PROBE_FILES, odd[0])
    if int(cfg["crop_size"]) <= 0:
        cfg["crop_size"] = _crop_for(side) if side is not None else SYNTHETIC_SIZE
    crop = int(cfg["crop_size"])
    if int(cfg["load_size"]) <= 0:
        cfg["load_size"] = max(crop, round(crop * OFFICIAL_LOAD / OFFICIAL_CROP))
    if cfg.get("netG") == "auto":
        if crop & (crop - 1) and crop < OFFICIAL_CROP:
            raise ConfigError(f"pix2pix: netG auto needs a power-of-two crop_size (got {crop}); set --set netG=unet_<size>")
        cfg["netG"] = f"unet_{min(crop, OFFICIAL_CROP)}"
    log.info("pix2pix sizes: load_size %s, crop_size %s, netG %s%s", cfg["load_size"], cfg["crop_size"], cfg["netG"],
             f" (data: {side} px pairs)" if side else "")
