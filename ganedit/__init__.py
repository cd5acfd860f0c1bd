"""ganedit: edit real images with GANs.

The public Python API is small: ``ganedit.load(path)`` rebuilds any model saved in the native format
(or converts a known official checkpoint on the fly); everything else lives in the sub-packages
(``ganedit.data``, ``ganedit.models``, ``ganedit.edit``, ``ganedit.metrics``, ...).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load", "save", "GaneditError"]

from ganedit.errors import GaneditError


def load(path: Any, *, map_location: str = "cpu") -> Any:
    """Load a model saved with :func:`ganedit.save` (config.json + safetensors) with no flags, or a shipped
    model by name (``ganedit.load("swapae-synth64")``; ``ganedit models`` lists them)."""
    from ganedit.formats.named import resolve_model_ref
    from ganedit.formats.native import load_model

    path = resolve_model_ref(path)
    return load_model(path, map_location=map_location)


def save(model: Any, path: Any) -> None:
    """Save a registered model in the native format (a folder with config.json + model.safetensors)."""
    from ganedit.formats.native import save_model

    save_model(model, path)
