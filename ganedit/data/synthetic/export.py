"""Writing the synthetic world to disk in the layouts the methods read (``ganedit data synth``).

Layout of OUT (every folder uses the same file names, ``00000000.png`` ..., so files pair up by name)::

    images/            training images (domain X) + dataset.json ({"labels": [[name, glasses 0/1], ...]})
    images_test/       held-out images (held-out seed) + dataset.json
    conditions/{segmentation,sketch,lowres,masked}/        condition maps of images/ (pSp tasks)
    conditions_test/{segmentation,sketch,lowres,masked}/   the same for images_test/
    aligned/train/, aligned/test/      A|B side by side: A = domain X, B = domain Y, same structure (pix2pix)
    unaligned/trainA/, trainB/, testA/, testB/   domain X and domain Y of *different* images (CycleGAN)
    factors.json       every image's structure and appearance factors, attribute vectors, masks, conventions

Condition maps: ``segmentation`` is an 8-bit grey PNG whose values are class ids (see ``CLASSES``);
``sketch`` is grey, dark lines on white; ``lowres`` is the image box-downsampled by ``lowres_factor``
(a smaller PNG); ``masked`` is the image with one rectangle filled with mid-grey (its box is in factors.json).

Seeds: training images are images 0..n-1 of ``seed``; held-out images are images 0..n_test-1 of
``heldout_seed(seed) = 2**31 + seed``. Domain B of the unaligned layout uses images ``2**31 + i`` of the same
seed (another index range), so no trainB image shares its structure with a trainA image.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ganedit.data.synthetic import factors as F
from ganedit.data.synthetic.random import uniform
from ganedit.data.synthetic.render import CLASSES, render
from ganedit.errors import DataError

LAYOUTS = ("images", "aligned", "unaligned", "conditions")
CONDITIONS = ("segmentation", "sketch", "lowres", "masked")
UNPAIRED_OFFSET = 1 << 31  # index offset of the domain-B images of the unaligned layout


def image_name(i: int) -> str:
    return f"{i:08d}.png"


def _uint8(images: torch.Tensor) -> np.ndarray:
    """[N,C,H,W] in [-1, 1] -> uint8 [N,H,W,C] (C = 3) or [N,H,W] (C = 1)."""
    x = images.clamp(-1.0, 1.0).add(1.0).mul(127.5).round_().to(torch.uint8)
    x = x.permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def _save_png(job: Tuple[str, np.ndarray]) -> None:
    # Compression level 1: about 3x faster than the default for a few percent more bytes on these images.
    from PIL import Image

    path, pixels = job
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)


def mask_boxes(seed: int, start: int, n: int, size: int) -> torch.Tensor:
    """[n, 4] int64 (top, left, height, width) of the inpainting rectangle of each image: a quarter to a
    half of the side in each direction, placed uniformly; a pure function of (seed, image index)."""
    idx = torch.arange(start, start + n)
    h = (size * (0.25 + 0.25 * uniform(seed, idx, "mask.h"))).floor()
    w = (size * (0.25 + 0.25 * uniform(seed, idx, "mask.w"))).floor()
    top = ((size - h + 1) * uniform(seed, idx, "mask.top")).floor()
    left = ((size - w + 1) * uniform(seed, idx, "mask.left")).floor()
    return torch.stack([top, left, h, w], 1).to(torch.int64)


def apply_masks(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Fill each image's box with mid-grey (0 in [-1, 1]); vectorised with a coordinate comparison."""
    n, _, h, w = images.shape
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    top, left, bh, bw = (boxes[:, k].view(n, 1, 1) for k in range(4))
    inside = (ys >= top) & (ys < top + bh) & (xs >= left) & (xs < left + bw)
    return images.masked_fill(inside[:, None], 0.0)


def downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The low-resolution condition: box-filter downsampling by `factor`."""
    return torch.nn.functional.avg_pool2d(images, factor) if factor > 1 else images


class _Writer:
    """Collects (path, pixels) jobs and writes them with a process pool (PNG encoding dominates)."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers >= 1:
            # fork: the workers only run PIL, and a forked child starts at once (spawn would re-import torch).
            methods = multiprocessing.get_all_start_methods()
            self.pool = multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(workers)

    def write(self, jobs: List[Tuple[str, np.ndarray]]) -> None:
        if self.pool is None:
            for job in jobs:
                _save_png(job)
        else:
            for _ in self.pool.imap_unordered(_save_png, jobs, chunksize=64):
                pass

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def _split_jobs(
    out: Path, split: str, seed: int, start: int, n: int, size: int, layouts: Sequence[str], lowres_factor: int
) -> Tuple[List[Tuple[str, np.ndarray]], Dict[str, torch.Tensor]]:
    """Render images start..start+n-1 of one split and return the files to write plus their masks."""
    test = split == "test"
    st, ap = F.sample_structure(n, seed, start), F.sample_appearance(n, seed, start)
    names = [image_name(i) for i in range(start, start + n)]
    jobs: List[Tuple[str, np.ndarray]] = []
    extra: Dict[str, torch.Tensor] = {}
    need_x = bool({"images", "aligned", "unaligned", "conditions"} & set(layouts))
    rx = render(st, ap, size) if need_x else None
    if "images" in layouts:
        folder = out / ("images_test" if test else "images")
        jobs += [(str(folder / nm), px) for nm, px in zip(names, _uint8(rx.image))]
    if "conditions" in layouts:
        base = out / ("conditions_test" if test else "conditions")
        boxes = mask_boxes(seed, start, n, size)
        extra["mask_boxes"] = boxes
        maps = {
            "segmentation": rx.segmentation.to(torch.uint8).numpy(),
            "sketch": _uint8(rx.sketch),
            "lowres": _uint8(downsample(rx.image, lowres_factor)),
            "masked": _uint8(apply_masks(rx.image, boxes)),
        }
        for kind, pixels in maps.items():
            jobs += [(str(base / kind / nm), px) for nm, px in zip(names, pixels)]
    if "aligned" in layouts:
        ry = render(st, F.to_domain_y(ap), size)
        pair = torch.cat([rx.image, ry.image], 3)  # A|B: A is the left int(w/2) columns
        folder = out / "aligned" / ("test" if test else "train")
        jobs += [(str(folder / nm), px) for nm, px in zip(names, _uint8(pair))]
    if "unaligned" in layouts:
        a_dir, b_dir = ("testA", "testB") if test else ("trainA", "trainB")
        jobs += [(str(out / "unaligned" / a_dir / nm), px) for nm, px in zip(names, _uint8(rx.image))]
        st_b = F.sample_structure(n, seed, UNPAIRED_OFFSET + start)
        ap_b = F.to_domain_y(F.sample_appearance(n, seed, UNPAIRED_OFFSET + start))
        jobs += [(str(out / "unaligned" / b_dir / nm), px) for nm, px in zip(names, _uint8(render(st_b, ap_b, size).image))]
    return jobs, {"structure": st, "appearance": ap, **extra}


def _folders(out: Path, layouts: Sequence[str]) -> List[Path]:
    dirs: List[Path] = []
    if "images" in layouts:
        dirs += [out / "images", out / "images_test"]
    if "conditions" in layouts:
        dirs += [out / base / kind for base in ("conditions", "conditions_test") for kind in CONDITIONS]
    if "aligned" in layouts:
        dirs += [out / "aligned" / "train", out / "aligned" / "test"]
    if "unaligned" in layouts:
        dirs += [out / "unaligned" / d for d in ("trainA", "trainB", "testA", "testB")]
    return dirs


def _concat(parts: List[Dict[str, object]]) -> Dict[str, object]:
    st = F.Structure.cat([p["structure"] for p in parts])  # type: ignore[misc]
    ap = F.Appearance.cat([p["appearance"] for p in parts])  # type: ignore[misc]
    out: Dict[str, object] = {"structure": st, "appearance": ap}
    if "mask_boxes" in parts[0]:
        out["mask_boxes"] = torch.cat([p["mask_boxes"] for p in parts], 0)  # type: ignore[misc]
    return out


def _factor_record(names: List[str], seed: int, data: Dict[str, object]) -> Dict[str, object]:
    st, ap = data["structure"], data["appearance"]
    rec: Dict[str, object] = {
        "seed": seed,
        "names": names,
        "structure": st.to_dict(),  # type: ignore[union-attr]
        "appearance": ap.to_dict(),  # type: ignore[union-attr]
        "attributes": F.attribute_vector(st, ap).tolist(),  # type: ignore[arg-type]
    }
    if "mask_boxes" in data:
        rec["mask_boxes"] = data["mask_boxes"].tolist()  # type: ignore[union-attr]
    return rec


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


def write_dataset(
    out: "str | os.PathLike[str]",
    n: int,
    size: int = 64,
    *,
    seed: int = 0,
    n_test: Optional[int] = None,
    layouts: Iterable[str] = LAYOUTS,
    lowres_factor: int = 4,
    workers: Optional[int] = None,
    chunk: int = 512,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict[str, int]:
    """Render and write the dataset (see the module docstring). Returns the number of files per folder.
    ``progress(k)`` is called after every k training/test images; ``workers``: PNG-writing processes, 0 = none (write in this process), None = one per CPU core."""
    layouts = tuple(dict.fromkeys(layouts))
    bad = [x for x in layouts if x not in LAYOUTS]
    if bad:
        raise DataError(f"unknown layout(s) {bad}; choose from {', '.join(LAYOUTS)} or all")
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if not 32 <= size <= 1024:
        raise DataError(f"--size must be from 32 to 1024 px, got {size}")
    if size % lowres_factor:
        raise DataError(f"--size {size} is not a multiple of the low-res factor {lowres_factor}")
    n_test = max(1, n // 10) if n_test is None else n_test
    out = Path(out)
    test_seed = F.heldout_seed(seed)
    for d in _folders(out, layouts):
        d.mkdir(parents=True, exist_ok=True)
    # A pool pays off only beyond a few hundred images.
    if workers is None:
        workers = 0 if n + n_test < 256 else (os.cpu_count() or 1)
    writer = _Writer(workers)
    record: Dict[str, object] = {}
    try:
        for split, split_seed, count in (("train", seed, n), ("test", test_seed, n_test)):
            parts = []
            for start in range(0, count, chunk):
                m = min(chunk, count - start)
                jobs, data = _split_jobs(out, split, split_seed, start, m, size, layouts, lowres_factor)
                writer.write(jobs)
                parts.append(data)
                if progress is not None:
                    progress(m)
            names = [image_name(i) for i in range(count)]
            if parts:
                record[split] = _factor_record(names, split_seed, _concat(parts))
    finally:
        writer.close()
    if "images" in layouts:
        for split, folder in (("train", "images"), ("test", "images_test")):
            rec = record[split]
            labels = [[nm, int(g)] for nm, g in zip(rec["names"], rec["structure"]["glasses"])]  # type: ignore[index]
            _write_json(out / folder / "dataset.json", {"labels": labels})
    _write_json(
        out / "factors.json",
        {
            "format": "ganedit-synthetic-1",
            "size": size,
            "layouts": list(layouts),
            "heldout_seed_rule": "test seed = 2**31 + train seed; unaligned domain B uses image indices 2**31 + i",
            "lowres_factor": lowres_factor,
            "classes": list(CLASSES),
            "color_slots": list(F.COLOR_SLOTS),
            "hair_kinds": list(F.HAIR_KINDS),
            "bg_layouts": list(F.BG_LAYOUTS),
            "bg_patterns": list(F.BG_PATTERNS),
            "clothes_patterns": list(F.CLOTHES_PATTERNS),
            "attribute_names": list(F.ATTRIBUTES),
            "dataset_json_label": "glasses (0/1)",
            "domain_y": {"hue_shift": F.Y_HUE_SHIFT, "value_scale": F.Y_VALUE_SCALE, "pattern_map": list(F.Y_PATTERN_MAP)},
            "splits": record,
        },
    )
    return {str(d.relative_to(out)): sum(1 for f in d.iterdir() if f.suffix == ".png") for d in _folders(out, layouts)}


def load_factors(path: "str | os.PathLike[str]", split: str = "train") -> Tuple[F.Structure, F.Appearance]:
    """Read one split's factors back from factors.json (or the folder that holds it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "factors.json"
    try:
        data = json.loads(p.read_text())
        rec = data["splits"][split]
        return F.Structure.from_dict(rec["structure"]), F.Appearance.from_dict(rec["appearance"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{p}: cannot read the {split!r} factors ({exc})") from None
