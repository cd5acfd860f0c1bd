"""Reading foreign checkpoints safely, and dispatching them to the converter that recognises them.

Every foreign file goes through ``safe_torch_load``: ``torch.load(weights_only=True)`` with a minimal
allow-list, so unpickling can never run code. Converters live in ``ganedit/formats/convert_<family>.py`` and
define ``detect(obj) -> bool`` and ``convert(obj, path) -> torch.nn.Module``; they are found by name.
NVlabs ``.pkl`` pickles are not torch.save files: ``nvlabs_pickle`` reads them with its own restricted unpickler.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pickle
import pkgutil
import zipfile
from pathlib import Path
from typing import Any, List

import torch

from ganedit.errors import CheckpointError

# Plain containers that official checkpoints are known to pickle (rosinality's train.py stores its args).
SAFE_GLOBALS: List[Any] = [argparse.Namespace]


def safe_torch_load(path: "str | os.PathLike[str]") -> Any:
    """torch.load with weights_only=True and a minimal allow-list; clear errors for unsafe or corrupt files."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(p, "no such file")
    if p.is_dir():
        raise CheckpointError(p, "is a folder, expected a .pt/.pth file")
    if p.stat().st_size == 0:
        raise CheckpointError(p, "file is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            p,
            "refused to load: unpickling this file would call code outside the allow-list "
            f"of plain tensors and containers ({first[:300]}). ganedit never runs code from checkpoint files; "
            "if this is a file you made, re-save its state_dict only.",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError, IndexError) as exc:
        raise CheckpointError(p, f"not a readable PyTorch checkpoint (truncated or corrupt?): {type(exc).__name__}: {str(exc)[:300]}") from None


def converter_modules() -> List[Any]:
    import ganedit.formats as pkg

    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("convert_"):
            found.append(importlib.import_module(f"ganedit.formats.{info.name}"))
    return found


def convert_foreign(path: "str | os.PathLike[str]") -> torch.nn.Module:
    """Load an official checkpoint of any supported project and return the equivalent ganedit model."""
    from ganedit.formats import nvlabs_pickle

    # NVlabs .pkl files are plain pickles of code-carrying objects, not torch.save files: their own restricted reader
    if nvlabs_pickle.looks_like_nvlabs_pickle(path):
        return nvlabs_pickle.convert_file(path)
    obj = safe_torch_load(path)
    for module in converter_modules():
        if module.detect(obj):
            return module.convert(obj, Path(path))
    top = list(obj.keys())[:8] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(path, f"no converter recognises this checkpoint layout (top level: {top})")
