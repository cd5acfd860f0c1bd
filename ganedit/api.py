"""One-call functions for the common jobs: ``ganedit.swap`` and ``ganedit.translate``.

Images may be given as file paths, Pillow images or tensors; models as anything :func:`ganedit.load` accepts or
an already loaded model (load once and pass it in when calling many times). Results are float32 tensors in
[-1, 1], NCHW RGB (the project-wide convention), on the model's device; ``ganedit.data.io.write_image`` writes
them to files. The command-line tools (``ganedit swap``, ``ganedit translate``) do the same work on files.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from PIL import Image
from torch import nn

from ganedit.errors import ConfigError, ImageError

ImageInput = Union[str, "os.PathLike[str]", Image.Image, torch.Tensor]
ModelInput = Union[str, "os.PathLike[str]", nn.Module]

__all__ = ["ImageInput", "ModelInput", "as_images", "swap", "translate"]


def as_images(images: "ImageInput | Sequence[ImageInput]", size: Optional[int] = None) -> torch.Tensor:
    """Images as one float32 batch [N, 3, H, W] in [-1, 1].

    - a path (str / PathLike) or a Pillow image is read like an image file (EXIF orientation, alpha on white,
      16-bit, ...); with ``size`` it is centre-cropped to a square and resized to ``size`` x ``size``;
    - a tensor [3, H, W] or [N, 3, H, W] is used as it is (float in [-1, 1]; uint8 pixels are converted) and
      ``size`` is not applied: resize tensors yourself;
    - a list or tuple of any of these is stacked (all must end up the same size).
    """
    from ganedit.data.io import read_image

    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError(None, "no images given")
        batch = [as_images(item, size) for item in images]
        shapes = {tuple(b.shape[1:]) for b in batch}
        if len(shapes) > 1:
            raise ImageError(None, f"images have different sizes {sorted(shapes)}; give size=N to resize them")
        return torch.cat(batch)
    if isinstance(images, torch.Tensor):
        x = images.unsqueeze(0) if images.dim() == 3 else images
        if x.dim() != 4 or x.shape[1] != 3:
            raise ImageError(None, f"expected an image tensor [3, H, W] or [N, 3, H, W], got shape {tuple(images.shape)}")
        if x.dtype == torch.uint8:
            return x.float().div(127.5).sub(1.0)
        if not x.is_floating_point():
            raise ImageError(None, f"expected float pixels in [-1, 1] or uint8, got {x.dtype}")
        return x.float()
    if isinstance(images, Image.Image):
        # Through PNG bytes so that a Pillow image gets exactly the treatment of a file (modes, alpha, 16 bit).
        buffer = io.BytesIO()
        images.save(buffer, format="PNG")
        return read_image(buffer.getvalue(), size, allow_upscale=True, name="<PIL image>")
    if isinstance(images, (str, os.PathLike)):
        return read_image(Path(images), size, allow_upscale=True)
    raise ImageError(None, f"cannot use a {type(images).__name__} as an image (give a path, a PIL image or a tensor)")


def _swapae(model: ModelInput) -> nn.Module:
    import ganedit
    from ganedit.formats.native import CONFIG_FILE
    from ganedit.models.swapae import SwappingAutoencoder

    if not isinstance(model, nn.Module):
        path = Path(model)
        # an official run folder checkpoints/<name>/ holds latest_checkpoint.pth
        if path.is_dir() and not (path / CONFIG_FILE).exists() and (path / "latest_checkpoint.pth").exists():
            path = path / "latest_checkpoint.pth"
        model = ganedit.load(path if path.exists() else str(model))
    if not isinstance(model, SwappingAutoencoder):
        raise ConfigError(f"swap needs a Swapping Autoencoder, got a {type(model).__name__} model")
    return model.eval()


def _device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def swap(structure: "ImageInput | Sequence[ImageInput]", texture: "ImageInput | Sequence[ImageInput]", *, model: ModelInput,
         alpha: float = 1.0, size: Optional[int] = None, seed: int = 0) -> torch.Tensor:
    """The structure (layout, geometry) of ``structure`` with the texture (colours, materials) of ``texture``,
    with a Swapping Autoencoder.

    Args:
        structure, texture: images (see :func:`as_images`); N structure images take the textures of N texture
            images pairwise, or all take the texture of a single texture image.
        model: a Swapping Autoencoder, or what :func:`ganedit.load` reads (a native folder, an official
            ``latest_checkpoint.pth`` or its ``checkpoints/<name>/`` folder, a shipped model's name).
        alpha: texture mix, 0 reconstructs ``structure`` and 1 is the full swap (the official simple_swapping).
        size: paths and Pillow images are resized to ``size`` x ``size`` (default: the model's training size).
        seed: seed of the noise, fixed per structure image, so equal inputs give equal outputs.

    Returns:
        float32 tensor [N, 3, H, W] in [-1, 1] (not clamped: networks may overshoot slightly), on the model's device.

    Raises:
        CheckpointError: the model cannot be loaded. ConfigError: it is not a Swapping Autoencoder.
        ImageError: an image cannot be read or does not fit the model (sides must be multiples of its downsampling).
    """
    from ganedit.edit import swapae as edit

    net = _swapae(model)
    if size is None:
        size = int(getattr(net, "config", {}).get("image_size", 256))
    device = _device(net)
    a, b = as_images(structure, size).to(device), as_images(texture, size).to(device)
    return edit.swap(net, a, b, (float(alpha),), seed=seed)[:, 0]


def _translator(model: ModelInput, direction: str) -> nn.Module:
    import ganedit
    from ganedit.formats.native import CONFIG_FILE
    from ganedit.models.cyclegan import select_generator

    if not isinstance(model, nn.Module):
        path = Path(model)
        if path.is_dir() and not (path / CONFIG_FILE).exists():  # an official checkpoints/<name>/ folder
            from ganedit.formats.convert_translation import load_experiment

            model = load_experiment(path)
        else:
            model = ganedit.load(path if path.exists() else str(model))
    return select_generator(model, direction)


@torch.no_grad()
def translate(image: "ImageInput | Sequence[ImageInput]", *, model: ModelInput, direction: str = "AtoB",
              size: Optional[int] = None, test_mode: str = "eval") -> torch.Tensor:
    """Translate images with a pix2pix or CycleGAN generator.

    Args:
        image: images (see :func:`as_images`); sides must be multiples of the generator's factor (256 for
            unet_256, 4 for ResNet generators) after resizing.
        model: a generator or CycleGAN pair, or what :func:`ganedit.load` reads (a native folder, an official
            ``latest_net_G*.pth`` file or ``checkpoints/<name>/`` folder, a shipped model's name).
        direction: ``"AtoB"`` or ``"BtoA"`` (CycleGAN pairs; a single generator maps A to B only).
        size: paths and Pillow images are resized to ``size`` x ``size`` (default: kept as they are).
        test_mode: ``"eval"`` (running BatchNorm statistics, no dropout) or ``"official"`` (the official test
            default: batch statistics and dropout on). The model's train/eval mode is restored afterwards.

    Returns:
        float32 tensor [N, C, H, W] in [-1, 1] (C = the generator's output channels, 3 for RGB), on the model's device.

    Raises:
        CheckpointError: the model cannot be loaded. ConfigError: not a translation generator, a bad direction or
        test mode, or sides that do not fit. ImageError: an image cannot be read.
    """
    from ganedit.models.pix2pix import set_test_mode

    generator = _translator(model, direction)
    was_training = generator.training
    x = as_images(image, size).to(_device(generator))
    in_nc = int(getattr(generator, "config", {}).get("input_nc", 3))
    if in_nc == 1:  # official single-channel nets read grayscale (PIL "L" weights)
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    elif in_nc != 3:
        raise ConfigError(f"the generator takes {in_nc} input channels; only 1- or 3-channel generators translate images")
    try:
        set_test_mode(generator, test_mode)
        return generator(x)
    finally:
        generator.train(was_training)
