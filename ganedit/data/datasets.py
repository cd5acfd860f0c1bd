"""Datasets: a folder or zip of images (with optional labels), aligned A|B pairs, paired folders, unaligned
domains. Every item is a dict of tensors and strings, so the default DataLoader collation works.

Bad files: by default the first unreadable image raises its ImageError (naming the file and problem), so
nothing trains on garbage. With ``skip_bad=True`` a bad file is replaced by the next readable one; the item
then carries ``"skipped"`` (how many bad files were passed over to produce it, summed by the DataLoader's
collation so a training loop can report the total even with worker processes) and the dataset's
``bad_files`` lists the files seen bad in this process.

Randomness (crop, flip, the unaligned B index): with ``seed=None`` Python's ``random`` module is used, as in
the official pix2pix/CycleGAN code (DataLoader seeds it per worker); with an int seed every item draws from
its own ``random.Random(seed, epoch, index)``, so results do not depend on the number of workers. Call
``set_epoch(e)`` between epochs for fresh draws.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from PIL import Image
from torch.utils.data import Dataset

from ganedit.data.io import DEFAULT_MAX_PIXELS, WHITE, Colour, load_rgb
from ganedit.data.sources import FolderSource, ImageSource, ZipSource, open_source
from ganedit.data.transforms import Transform, pix2pix_transform
from ganedit.errors import ConfigError, DataError, ImageError

__all__ = [
    "ImageDataset",
    "ImageFolderDataset",
    "ZipDataset",
    "open_image_dataset",
    "open_dataset",
    "AlignedDataset",
    "PairedFolderDataset",
    "UnalignedDataset",
    "split_aligned",
]


class _Base(Dataset):
    """Shared machinery: reading with the bad-file policy and per-item random generators."""

    def __init__(self, *, skip_bad: bool, seed: Optional[int], background: Colour, max_pixels: Optional[int]) -> None:
        self.skip_bad = skip_bad
        self.seed = seed
        self.epoch = 0
        self.background = tuple(background)
        self.max_pixels = max_pixels
        self.bad_files: Dict[str, str] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, index: int) -> "random.Random | None":
        return None if self.seed is None else random.Random(f"{self.seed}:{self.epoch}:{index}")

    def _read(self, source: ImageSource, name: str) -> Image.Image:
        return load_rgb(source.fetch(name), name=source.display(name), background=self.background, max_pixels=self.max_pixels)

    def _first_good(self, count: int, start: int, load: Callable[[int], Any]) -> Tuple[Any, int, int]:
        """load(start), or with skip_bad the first of start, start+1, ... (cyclic) that loads.
        Returns (result, index used, number of bad files passed over)."""
        skipped = 0
        for k in range(count):
            j = (start + k) % count
            try:
                return load(j), j, skipped
            except ImageError as exc:
                if not self.skip_bad:
                    raise
                self.bad_files[exc.path or f"#{j}"] = exc.problem
                skipped += 1
        raise DataError(f"{self._where()}: no readable image left ({skipped} bad files)")

    def _where(self) -> str:
        return type(self).__name__


class ImageDataset(_Base):
    """Images from a folder or zip source: ``{"image": [3,H,W], "path": str, "skipped": int}`` plus
    ``"label"`` when the source has a dataset.json (an int class becomes an int64 scalar, a vector float32).

    Give ``size`` to get size x size images (centre crop to square, then resize with ``resize_filter``; a
    smaller image is an error unless ``allow_upscale``), or a full ``transform``.
    """

    def __init__(
        self,
        source: ImageSource,
        *,
        size: Optional[int] = None,
        transform: Optional[Transform] = None,
        flip: bool = False,
        resize_filter: str = "bicubic",
        allow_upscale: bool = False,
        skip_bad: bool = False,
        seed: Optional[int] = None,
        background: Colour = WHITE,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        max_items: Optional[int] = None,
    ) -> None:
        super().__init__(skip_bad=skip_bad, seed=seed, background=background, max_pixels=max_pixels)
        self.source = source
        self.names: List[str] = source.names[:max_items] if max_items else list(source.names)
        if not self.names:
            raise DataError(f"{source.location}: no image files found")
        if transform is not None and size is not None:
            raise ConfigError("give either size or transform to an image dataset, not both")
        if transform is None:
            transform = Transform(
                resize=size, resize_kind="cover", resize_filter=resize_filter, flip=flip, allow_upscale=allow_upscale
            )
        self.transform = transform
        self.labels = None
        if source.labels is not None:
            missing = [n for n in self.names if n not in source.labels]
            if missing:
                raise DataError(f"{source.location}: dataset.json has no label for {len(missing)} image(s), e.g. {missing[0]}")
            self.labels = [source.labels[n] for n in self.names]

    def _where(self) -> str:
        return self.source.location

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self._rng(index)

        def load(j: int):
            name = self.names[j]
            image = self._read(self.source, name)
            return self.transform(image, rng, name=self.source.display(name))

        image, j, skipped = self._first_good(len(self.names), index, load)
        item: Dict[str, Any] = {"image": image, "path": self.source.display(self.names[j]), "skipped": skipped}
        if self.labels is not None:
            label = self.labels[j]
            item["label"] = torch.tensor(label, dtype=torch.int64 if isinstance(label, int) else torch.float32)
        return item


class ImageFolderDataset(ImageDataset):
    """All images under a folder, recursively, in sorted order. Example: ``ImageFolderDataset("faces", size=256)``."""

    def __init__(self, root: "str | os.PathLike[str]", **kwargs: Any) -> None:
        super().__init__(FolderSource(root), **kwargs)


class ZipDataset(ImageDataset):
    """Images in a zip (NVlabs layout, optional dataset.json). Example: ``ZipDataset("ffhq-256.zip")``."""

    def __init__(self, path: "str | os.PathLike[str]", **kwargs: Any) -> None:
        super().__init__(ZipSource(path), **kwargs)


def open_image_dataset(path: "str | os.PathLike[str]", **kwargs: Any) -> ImageDataset:
    """An image dataset over a folder (recursive) or a zip; keyword arguments as ImageDataset.
    Example: ``open_image_dataset("faces-256.zip", size=256, flip=True)``."""
    return ImageDataset(open_source(path), **kwargs)


open_dataset = open_image_dataset  # the name used in ganedit.methods.base's recipe example


class TensorImages(Dataset):
    """Images held in memory as one [N, 3, H, W] tensor (e.g. the synthetic world, rendered once)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def open_training_images(spec: str, size: int, seed: int = 0, default_count: int = 4000, who: str = "train", skip_bad: bool = False) -> Dataset:
    """The unconditional training data of a recipe: ``synthetic[:N]`` is the first N training images of the built-in
    world for ``seed`` (what ``ganedit data synth --seed`` writes; disjoint from the held-out pairs of
    ganedit.metrics.groundtruth), rendered into memory; anything else is a folder or zip resized to ``size`` (``skip_bad``: see the module docstring)."""
    if not spec:
        raise DataError(f"{who}: no training data given (use --data FOLDER|ZIP|synthetic:N)")
    if spec.split(":")[0] == "synthetic":
        try:
            count = int(spec.split(":")[1]) if ":" in spec else default_count
        except ValueError:
            raise DataError(f"{who}: bad synthetic spec {spec!r} (expected synthetic:N)") from None
        from ganedit.checks import Range, check_value
        from ganedit.data.synthetic.render import MAX_SIZE, MIN_SIZE
        from ganedit.metrics.groundtruth import training_images

        check_value("size", size, Range(MIN_SIZE, MAX_SIZE, integer=True), f"{who}: synthetic data: ")
        check_value("N", count, Range(1, 10**7, integer=True), f"{who}: {spec}: ")
        return TensorImages(training_images(count, size, seed))
    return open_image_dataset(spec, size=size, skip_bad=skip_bad)


# ------------------------------------------------------------------------------------------- paired / unaligned


def split_aligned(image: Image.Image) -> Tuple[Image.Image, Image.Image]:
    """A|B side by side -> (A, B): A is the left ``int(w/2)`` columns, B the rest (one wider for odd w)."""
    width, height = image.size
    w2 = int(width / 2)
    if w2 == 0:
        raise ImageError(None, f"image is {width}x{height}: too narrow to hold an A|B pair")
    return image.crop((0, 0, w2, height)), image.crop((w2, 0, width, height))


def _phase_dir(root: Path, phase: Optional[str]) -> Path:
    if phase and (root / phase).is_dir():
        return root / phase
    return root


def _check_direction(direction: str) -> bool:
    if direction not in ("AtoB", "BtoA"):
        raise DataError(f"direction must be AtoB or BtoA, got {direction!r}")
    return direction == "BtoA"


class AlignedDataset(_Base):
    """pix2pix aligned pairs: each file holds A|B side by side. Items ``{"A", "B", "A_path", "B_path", "skipped"}``.
    ``direction="BtoA"`` swaps the halves (A is then the right half). Crop and flip are drawn once per pair
    and applied to both halves. ``root`` may contain ``phase`` (train/val/test) or be the image folder itself.

    Example: ``AlignedDataset("facades", phase="train", direction="BtoA")``.
    """

    def __init__(
        self,
        root: "str | os.PathLike[str]",
        *,
        phase: Optional[str] = "train",
        direction: str = "AtoB",
        transform: Optional[Transform] = None,
        skip_bad: bool = False,
        seed: Optional[int] = None,
        background: Colour = WHITE,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(skip_bad=skip_bad, seed=seed, background=background, max_pixels=max_pixels)
        self.swap = _check_direction(direction)
        self.source = FolderSource(_phase_dir(Path(root), phase))
        if not self.source.names:
            raise DataError(f"{self.source.location}: no image files found")
        self.transform = transform if transform is not None else pix2pix_transform()

    def _where(self) -> str:
        return self.source.location

    def __len__(self) -> int:
        return len(self.source.names)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self._rng(index)

        def load(j: int):
            name = self.source.names[j]
            display = self.source.display(name)
            try:
                a, b = split_aligned(self._read(self.source, name))
            except ImageError as exc:
                raise ImageError(display, exc.problem) if exc.path is None else exc
            params = self.transform.draw(*a.size, rng=rng)  # drawn from A's size, as the official get_params
            return self.transform.apply(a, params, display), self.transform.apply(b, params, display), display

        (a, b, path), _, skipped = self._first_good(len(self), index, load)
        if self.swap:
            a, b = b, a
        return {"A": a, "B": b, "A_path": path, "B_path": path, "skipped": skipped}


def _stem_key(name: str) -> str:
    return os.path.splitext(name)[0]


class PairedFolderDataset(_Base):
    """Pairs from two folders with matching file names (relative path, extension ignored): ``root/A`` and
    ``root/B`` (or ``dir_b`` given explicitly). Same items and shared transform parameters as AlignedDataset.

    Example: ``PairedFolderDataset("edges2shoes_split")`` with ``A/x.png`` and ``B/x.jpg``.
    """

    def __init__(
        self,
        root: "str | os.PathLike[str]",
        dir_b: "str | os.PathLike[str] | None" = None,
        *,
        phase: Optional[str] = None,
        direction: str = "AtoB",
        transform: Optional[Transform] = None,
        skip_bad: bool = False,
        seed: Optional[int] = None,
        background: Colour = WHITE,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(skip_bad=skip_bad, seed=seed, background=background, max_pixels=max_pixels)
        self.swap = _check_direction(direction)
        if dir_b is None:
            dir_a, dir_b = Path(root) / "A", Path(root) / "B"
        else:
            dir_a = Path(root)
        self.source_a = FolderSource(_phase_dir(Path(dir_a), phase))
        self.source_b = FolderSource(_phase_dir(Path(dir_b), phase))
        keys_b = {_stem_key(n): n for n in self.source_b.names}
        keys_a = {_stem_key(n): n for n in self.source_a.names}
        only_a = sorted(set(keys_a) - set(keys_b))
        only_b = sorted(set(keys_b) - set(keys_a))
        if only_a or only_b:
            parts = []
            if only_a:
                parts.append(f"{len(only_a)} in {self.source_a.location} without a partner (e.g. {keys_a[only_a[0]]})")
            if only_b:
                parts.append(f"{len(only_b)} in {self.source_b.location} without a partner (e.g. {keys_b[only_b[0]]})")
            raise DataError("paired folders do not match: " + "; ".join(parts))
        if not keys_a:
            raise DataError(f"{self.source_a.location}: no image files found")
        self.pairs = [(keys_a[k], keys_b[k]) for k in sorted(keys_a)]
        self.transform = transform if transform is not None else pix2pix_transform()

    def _where(self) -> str:
        return self.source_a.location

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self._rng(index)

        def load(j: int):
            name_a, name_b = self.pairs[j]
            a, b = self._read(self.source_a, name_a), self._read(self.source_b, name_b)
            params = self.transform.draw(*a.size, rng=rng)
            pa, pb = self.source_a.display(name_a), self.source_b.display(name_b)
            return self.transform.apply(a, params, pa), self.transform.apply(b, params, pb), pa, pb

        (a, b, pa, pb), _, skipped = self._first_good(len(self), index, load)
        if self.swap:
            a, b, pa, pb = b, a, pb, pa
        return {"A": a, "B": b, "A_path": pa, "B_path": pb, "skipped": skipped}


class UnalignedDataset(_Base):
    """CycleGAN unaligned domains ``root/<phase>A`` and ``root/<phase>B``. Length max(|A|, |B|); item i uses
    A[i mod |A|] and a random B (``serial=True``: B[i mod |B|]); A and B get independent crop/flip draws.

    Example: ``UnalignedDataset("horse2zebra", phase="train", seed=0)``.
    """

    def __init__(
        self,
        root: "str | os.PathLike[str]",
        *,
        phase: str = "train",
        direction: str = "AtoB",
        serial: bool = False,
        transform: Optional[Transform] = None,
        transform_b: Optional[Transform] = None,
        skip_bad: bool = False,
        seed: Optional[int] = None,
        background: Colour = WHITE,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(skip_bad=skip_bad, seed=seed, background=background, max_pixels=max_pixels)
        self.swap = _check_direction(direction)
        root = Path(root)
        self.source_a = FolderSource(root / f"{phase}A")
        self.source_b = FolderSource(root / f"{phase}B")
        for s in (self.source_a, self.source_b):
            if not s.names:
                raise DataError(f"{s.location}: no image files found")
        self.serial = serial
        self.transform_a = transform if transform is not None else pix2pix_transform()
        self.transform_b = transform_b if transform_b is not None else self.transform_a

    def _where(self) -> str:
        return self.source_a.location

    def __len__(self) -> int:
        return max(len(self.source_a), len(self.source_b))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self._rng(index)
        r = rng if rng is not None else random
        n_a, n_b = len(self.source_a), len(self.source_b)
        start_b = index % n_b if self.serial else r.randint(0, n_b - 1)

        def loader(source: ImageSource, transform: Transform):
            def load(j: int):
                name = source.names[j]
                display = source.display(name)
                return transform(self._read(source, name), rng, name=display), display

            return load

        (a, pa), _, skip_a = self._first_good(n_a, index % n_a, loader(self.source_a, self.transform_a))
        (b, pb), _, skip_b = self._first_good(n_b, start_b, loader(self.source_b, self.transform_b))
        if self.swap:
            a, b, pa, pb = b, a, pb, pa
        return {"A": a, "B": b, "A_path": pa, "B_path": pb, "skipped": skip_a + skip_b}
