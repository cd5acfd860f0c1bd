"""Image I/O, datasets and transforms (and, in ``ganedit.data.synthetic``, the built-in synthetic world).

Common entry points are re-exported here: ``read_image``, ``write_image``, ``make_grid``, ``write_grid``,
``to_uint8_hwc``, ``from_uint8_hwc``, ``load_rgb``; the datasets (``ganedit.data.datasets``) and transforms
(``ganedit.data.transforms``)."""
from __future__ import annotations

from ganedit.data.datasets import (
    AlignedDataset,
    ImageDataset,
    ImageFolderDataset,
    PairedFolderDataset,
    UnalignedDataset,
    ZipDataset,
    open_image_dataset,
)
from ganedit.data.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    from_uint8_hwc,
    load_rgb,
    make_grid,
    read_image,
    to_uint8_hwc,
    write_grid,
    write_image,
)
from ganedit.data.transforms import Params, Transform, pix2pix_transform

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "AlignedDataset",
    "ImageDataset",
    "ImageFolderDataset",
    "PairedFolderDataset",
    "Params",
    "Transform",
    "UnalignedDataset",
    "ZipDataset",
    "from_uint8_hwc",
    "load_rgb",
    "make_grid",
    "open_image_dataset",
    "pix2pix_transform",
    "read_image",
    "to_uint8_hwc",
    "write_grid",
    "write_image",
]
