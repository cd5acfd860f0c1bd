"""The work behind ``ganedit data prepare`` (a folder -> an NVlabs-layout zip at one resolution) and
``ganedit data info`` (what a dataset holds, and which of its files are bad)."""
from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ganedit.data.io import DEFAULT_MAX_PIXELS, WHITE, Colour, centre_crop_box, image_size, load_rgb, pil_filter
from ganedit.data.sources import LABELS_FILE, FolderSource, ImageSource, open_source
from ganedit.errors import DataError, ImageError

__all__ = ["PrepareResult", "prepare_zip", "PartInfo", "DatasetInfo", "dataset_info", "detect_layout"]


def _progress(iterable, total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # disable=None: a bar on a terminal, silence in logs and pipes.
    return tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, disable=None if enabled else True)


@dataclass
class PrepareResult:
    dest: Path
    written: int
    bad_files: Dict[str, str] = field(default_factory=dict)
    labels: bool = False


def prepare_zip(
    src: "str | os.PathLike[str]",
    dest: "str | os.PathLike[str]",
    size: int,
    *,
    skip_bad: bool = False,
    resize_filter: str = "bicubic",
    allow_upscale: bool = False,
    background: Colour = WHITE,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    png_level: int = 0,
    progress: bool = True,
) -> PrepareResult:
    """Write every image of ``src`` (folder or zip) as a size x size PNG (centre crop to square, then resize)
    into ``dest`` in the NVlabs layout (``00000/img00000000.png``, 1000 per folder) with a ``dataset.json``
    carrying the source's labels. The zip appears only when complete (temporary file, then rename).
    ``png_level`` 0 (as the NVlabs tool) makes the largest files but decodes about twice as fast as level 1+,
    which is what a training loop waits on; 9 makes the smallest."""
    if size < 1:
        raise DataError(f"--size must be positive, got {size}")
    flt = pil_filter(resize_filter)
    source = open_source(src)
    if not source.names:
        raise DataError(f"{source.location}: no image files found")
    dest = Path(dest)
    if dest.suffix.lower() != ".zip":
        raise DataError(f"{dest}: the destination must be a .zip file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    result = PrepareResult(dest=dest, written=0, labels=source.labels is not None)
    labels: List[List[Any]] = []
    try:
        # Stored, not deflated: PNG data does not compress further, and readers seek straight to members.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for name in _progress(source.names, len(source.names), f"prepare {size}px", progress):
                display = source.display(name)
                try:
                    image = load_rgb(source.fetch(name), name=display, background=background, max_pixels=max_pixels)
                    box = centre_crop_box(*image.size, 1.0)
                    if not allow_upscale and box[2] - box[0] < size:
                        raise ImageError(display, f"image is {image.size[0]}x{image.size[1]}, smaller than --size {size}")
                    image = image.crop(box)
                    if image.size != (size, size):
                        image = image.resize((size, size), flt)
                except ImageError as exc:
                    if not skip_bad:
                        raise
                    result.bad_files[display] = exc.problem
                    continue
                idx = result.written
                arcname = f"{idx // 1000:05d}/img{idx:08d}.png"
                buf = io.BytesIO()
                image.save(buf, "PNG", compress_level=png_level)
                z.writestr(arcname, buf.getvalue())
                if source.labels is not None:
                    if name not in source.labels:
                        raise DataError(f"{source.location}: {LABELS_FILE} has no label for {name}")
                    labels.append([arcname, source.labels[name]])
                result.written += 1
            if result.written == 0:
                raise DataError(f"{source.location}: no readable image ({len(result.bad_files)} bad files)")
            z.writestr(LABELS_FILE, json.dumps({"labels": labels if source.labels is not None else None}))
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


# --------------------------------------------------------------------------------------------------- info


@dataclass
class PartInfo:
    """What one image collection (a folder, a zip, one side of a paired layout) holds."""

    name: str
    location: str
    count: int = 0
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> count
    modes: Counter = field(default_factory=Counter)
    labels: Optional[int] = None  # number of labelled images, None without dataset.json
    label_kinds: Counter = field(default_factory=Counter)
    bad_files: Dict[str, str] = field(default_factory=dict)

    def size_summary(self) -> Tuple[Optional[Tuple[int, int]], Optional[Tuple[int, int]], List[Tuple[Tuple[int, int], int]]]:
        """(smallest by area, largest by area, most common three)."""
        if not self.sizes:
            return None, None, []
        by_area = sorted(self.sizes, key=lambda wh: (wh[0] * wh[1], wh))
        return by_area[0], by_area[-1], self.sizes.most_common(3)


@dataclass
class DatasetInfo:
    path: str
    layout: str
    parts: List[PartInfo]
    notes: List[str] = field(default_factory=list)

    @property
    def bad_count(self) -> int:
        return sum(len(p.bad_files) for p in self.parts)

    def format(self, max_bad: int = 20) -> str:
        lines = [f"{self.path}: {self.layout}"]
        for p in self.parts:
            lines.append(f"[{p.name}] {p.location}")
            lines.append(f"  images: {p.count} ({p.count - len(p.bad_files)} readable)")
            smallest, largest, common = p.size_summary()
            if smallest is not None:
                fmt = lambda wh: f"{wh[0]}x{wh[1]}"  # noqa: E731
                lines.append(
                    f"  sizes: min {fmt(smallest)}, max {fmt(largest)}, most common "
                    + ", ".join(f"{fmt(wh)} ({n})" for wh, n in common)
                )
            if p.modes:
                lines.append("  modes: " + ", ".join(f"{m} ({n})" for m, n in p.modes.most_common()))
            if p.labels is None:
                lines.append("  labels: none")
            else:
                kinds = ", ".join(f"{k} ({n})" for k, n in p.label_kinds.most_common(5))
                lines.append(f"  labels: {p.labels} in {LABELS_FILE} ({kinds})")
            lines.append(f"  bad files: {len(p.bad_files)}")
            for i, (path, problem) in enumerate(sorted(p.bad_files.items())):
                if i == max_bad:
                    lines.append(f"    ... and {len(p.bad_files) - max_bad} more")
                    break
                lines.append(f"    {path}: {problem}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def detect_layout(path: "str | os.PathLike[str]") -> Tuple[str, List[Tuple[str, ImageSource]]]:
    """(layout description, [(part name, source)]) for a zip, a plain folder, A/ + B/ paired folders or
    <phase>A/ + <phase>B/ unaligned domains."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_file():
        return "zip of images", [("zip", open_source(p))]
    subdirs = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    domains = [d for d in subdirs if len(d) > 1 and d[-1] in "AB" and d[:-1] + ("B" if d[-1] == "A" else "A") in subdirs]
    if domains:
        return "unaligned domains", [(d, FolderSource(p / d)) for d in domains]
    if "A" in subdirs and "B" in subdirs:
        return "paired folders", [("A", FolderSource(p / "A")), ("B", FolderSource(p / "B"))]
    return "folder of images", [("images", FolderSource(p))]


def _label_kind(label: Any) -> str:
    if isinstance(label, bool) or label is None:
        return type(label).__name__
    if isinstance(label, int):
        return "class"
    if isinstance(label, (list, tuple)):
        return f"vector[{len(label)}]"
    return type(label).__name__


def dataset_info(
    path: "str | os.PathLike[str]", *, decode: bool = True, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, progress: bool = True
) -> DatasetInfo:
    """Count, sizes, modes, labels and bad files of every part of a dataset. ``decode=False`` reads headers only
    (fast, but truncated pixel data is then not found)."""
    layout, parts = detect_layout(path)
    info = DatasetInfo(str(path), layout, [])
    for part_name, source in parts:
        part = PartInfo(part_name, source.location, count=len(source.names))
        if source.labels is not None:
            part.labels = sum(1 for n in source.names if n in source.labels)
            part.label_kinds.update(_label_kind(source.labels[n]) for n in source.names if n in source.labels)
            if part.labels < part.count:
                info.notes.append(f"{source.location}: {part.count - part.labels} image(s) have no label in {LABELS_FILE}")
        for name in _progress(source.names, len(source.names), f"info {part_name}", progress):
            display = source.display(name)
            try:
                w, h, mode = image_size(source.fetch(name), name=display, max_pixels=max_pixels, decode=decode)
            except ImageError as exc:
                part.bad_files[display] = exc.problem
                continue
            part.sizes[(w, h)] += 1
            part.modes[mode] += 1
        info.parts.append(part)
    if layout == "paired folders":
        a, b = (Path(s.location) for _, s in parts)
        stems = [{os.path.splitext(n)[0] for n in s.names} for _, s in parts]
        only_a, only_b = stems[0] - stems[1], stems[1] - stems[0]
        if only_a or only_b:
            info.notes.append(f"unmatched names: {len(only_a)} only in {a}, {len(only_b)} only in {b}")
    if layout == "folder of images" and info.parts[0].sizes:
        if all(w == 2 * h for (w, h) in info.parts[0].sizes):
            info.notes.append("every image is twice as wide as high: possibly aligned A|B pairs (pix2pix)")
    if all(p.count == 0 for p in info.parts):
        info.notes.append("no image files found")
    return info
