"""Models shipped inside the package (``ganedit/assets/<folder>/``), addressable by a short name.

Every folder under ``ganedit/assets`` that holds a native ``config.json`` is a shipped model. Its name is the
folder name with ``_`` turned into ``-`` (``swapae_synth64`` -> ``swapae-synth64``); ``assets/index.json``
adds one line per model saying what it was trained on. Shipping another model is therefore one folder (and
one line of index.json); nothing here changes.

A name is only used when no file or folder of that name exists, so a local path always wins.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
INDEX_FILE = ASSETS_DIR / "index.json"

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ShippedModel:
    name: str
    path: Path
    method: str  # the model type, e.g. "swapae.SwappingAutoencoder"
    trained_on: str
    size_bytes: int
    image_size: Optional[int]


def _index() -> Dict[str, Dict[str, Any]]:
    if not INDEX_FILE.is_file():
        return {}
    with open(INDEX_FILE) as handle:
        return json.load(handle)


def folder_to_name(folder: str) -> str:
    return folder.replace("_", "-")


def shipped_models(root: Optional[Path] = None) -> Dict[str, ShippedModel]:
    """All shipped models by name, in name order."""
    root = ASSETS_DIR if root is None else Path(root)
    index = _index() if root == ASSETS_DIR else {}
    found: Dict[str, ShippedModel] = {}
    for folder in sorted(p for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []:
        with open(folder / "config.json") as handle:
            record = json.load(handle)
        entry = index.get(folder.name, {})
        name = folder_to_name(folder.name)
        config = record.get("config") or {}
        found[name] = ShippedModel(
            name=name,
            path=folder,
            method=str(record.get("model_type", "?")),
            trained_on=str(entry.get("trained_on", "(not described in ganedit/assets/index.json)")),
            size_bytes=sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            image_size=config.get("image_size"),
        )
    return found


def resolve_model_ref(ref: Any) -> Any:
    """``ref`` unchanged when it is a path that exists (or not a string at all); the shipped model's folder
    when it is the name of one. Anything else is returned unchanged for the loader to report."""
    if not isinstance(ref, (str, os.PathLike)):
        return ref
    text = os.fspath(ref)
    if os.path.exists(text) or os.sep in text or "/" in text:
        return ref
    model = shipped_models().get(text)
    return model.path if model is not None else ref


def is_model_name(ref: str) -> bool:
    return ref in shipped_models()
