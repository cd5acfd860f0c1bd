"""ganedit: edit real images with GANs.

The public Python API is small: ``ganedit.load(path)`` rebuilds any model saved in the native format (or converts
a known official checkpoint on the fly), ``ganedit.swap`` and ``ganedit.translate`` do the common jobs in one
call; everything else lives in the sub-packages (``ganedit.data``, ``ganedit.models``, ``ganedit.edit``,
``ganedit.metrics``, ...). Images are float32 tensors in [-1, 1], NCHW RGB, everywhere.

ganedit never prints diagnostics from library code: it logs to the ``"ganedit"`` logger (see ``ganedit.log``).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence, Union

__version__ = "0.1.0"

__all__ = ["__version__", "load", "save", "swap", "translate", "GaneditError"]

from ganedit.errors import GaneditError

if TYPE_CHECKING:  # torch loads only when a function is called: `import ganedit` stays fast
    import torch

    from ganedit.api import ImageInput, ModelInput


def load(path: "Union[str, os.PathLike[str]]", *, map_location: "Union[str, torch.device]" = "cpu") -> "torch.nn.Module":
    """Load a model, with no flags.

    Accepts:
        a shipped model's name (``ganedit.load("swapae-synth64")``; ``ganedit models`` lists them); a native
        folder written by :func:`ganedit.save` or by training (``config.json`` + ``model.safetensors``), or that
        folder's ``config.json``; a training run folder or training checkpoint (its EMA networks where there are
        any); or an official checkpoint file, detected by its layout and converted on the fly: rosinality
        StyleGAN2 ``*.pt``, NVlabs stylegan2-ada ``*.pkl`` (read without running the code it embeds), the
        Swapping Autoencoder's ``latest_checkpoint.pth``, junyanz pix2pix/CycleGAN ``latest_net_G*.pth``.
        Foreign files are read with ``torch.load(weights_only=True)`` or a restricted unpickler: nothing in a
        file can run code.

    Returns:
        the registered ``torch.nn.Module`` (e.g. ``SwappingAutoencoder``, ``stylegan2.StyleGAN2``,
        ``pix2pix.UnetGenerator``, ``cyclegan.GeneratorPair``) in eval mode on ``map_location``; a native
        model's free-form metadata is in ``model.checkpoint_meta``.

    Raises:
        CheckpointError: the path does not exist, the file is corrupt, unsafe or of an unknown layout, or its
            config is invalid (the message names the file and the key with its allowed range). A config is
            compared with the weights file's header before anything is built, so a bad config never allocates
            more than the weights imply.
    """
    from ganedit.formats.named import resolve_model_ref
    from ganedit.formats.native import load_model

    path = resolve_model_ref(path)
    return load_model(path, map_location=map_location)


def save(model: "torch.nn.Module", path: "Union[str, os.PathLike[str]]") -> None:
    """Save a registered model in the native format (a folder with config.json + model.safetensors)."""
    from ganedit.formats.native import save_model

    save_model(model, path)


def swap(structure: "ImageInput | Sequence[ImageInput]", texture: "ImageInput | Sequence[ImageInput]", *, model: "ModelInput",
         alpha: float = 1.0, size: Optional[int] = None, seed: int = 0) -> "torch.Tensor":
    """Structure of ``structure`` with the texture of ``texture`` (Swapping Autoencoder) -> [N, 3, H, W] in
    [-1, 1]. Images: paths, PIL images or tensors; model: a path or a loaded model. See :func:`ganedit.api.swap`."""
    from ganedit.api import swap as run

    return run(structure, texture, model=model, alpha=alpha, size=size, seed=seed)


def translate(image: "ImageInput | Sequence[ImageInput]", *, model: "ModelInput", direction: str = "AtoB",
              size: Optional[int] = None, test_mode: str = "eval") -> "torch.Tensor":
    """pix2pix / CycleGAN translation -> [N, C, H, W] in [-1, 1]. Images: paths, PIL images or tensors; model: a
    path or a loaded model. See :func:`ganedit.api.translate`."""
    from ganedit.api import translate as run

    return run(image, model=model, direction=direction, size=size, test_mode=test_mode)
