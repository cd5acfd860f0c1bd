"""Which models the web UI offers: the shipped ones (ganedit/assets) and the native folders under --models, and
the direction files (`ganedit directions ...`) found there.

Only config.json and safetensors headers are read here (no weights), so listing is cheap. A model is named in the UI by its catalog name;
the handlers look that name up here and never open a path a browser sent, so nothing outside the models folders
can be reached.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ganedit.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "assets"
CONFIG = "config.json"
MAX_DEPTH = 4  # how deep under --models a model folder may sit

# tab kind <- prefix of the registered model_type in config.json
KIND_OF_TYPE = {"swapae.": "swapae", "stylegan2.": "stylegan2", "pix2pix.": "translation", "cyclegan.": "translation",
                "psp.": "encoder", "e4e.": "encoder"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    kind: str
    model_type: str
    trained_on: str


def describe_training(meta: Dict) -> str:
    """One line saying what a model was trained on, from the meta block of its config.json."""
    if meta.get("trained_on"):
        return str(meta["trained_on"])
    train = meta.get("train_config") or {}
    if not train.get("data"):
        return "unknown (config.json has no training record)"
    parts = [f"data `{train['data']}`"]
    if train.get("size"):
        parts.append(f"{train['size']} px")
    if meta.get("step"):
        parts.append(f"{meta['step']} steps")
    if meta.get("train_seconds"):
        parts.append(f"{float(meta['train_seconds']) / 60:.0f} min on {train.get('device', '?')}")
    return ", ".join(parts)


def _entry(folder: Path, name: str) -> Optional[ModelEntry]:
    try:
        record = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    model_type = str(record.get("model_type", ""))
    kind = next((k for prefix, k in KIND_OF_TYPE.items() if model_type.startswith(prefix)), None)
    if kind is None:
        return None
    return ModelEntry(name, folder, kind, model_type, describe_training(record.get("meta") or {}))


def _is_direction_file(path: Path) -> bool:
    """True for a safetensors file tagged as a direction file (reads only its header)."""
    from safetensors import safe_open

    from ganedit.edit.directions import FORMAT_NAME

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT_NAME
    except Exception:  # not safetensors, or unreadable: not offered
        return False


def _files(root: Path, pattern: str) -> List[Path]:
    """Files matching pattern at most MAX_DEPTH folders under root, not following links out of it."""
    base = root.resolve()
    found = []
    for depth in range(MAX_DEPTH + 1):
        for path in sorted(root.glob("/".join(["*"] * depth + [pattern]))):
            if path.is_file() and path.resolve().is_relative_to(base):
                found.append(path)
    return found


def _folders(root: Path) -> List[Path]:
    """Model folders under root (root itself included), not following links out of it."""
    return [cfg.parent for cfg in _files(root, CONFIG)]


class Catalog:
    """The models the app may load, by kind; ``get`` is the only way a handler turns a name into a path."""

    def __init__(self, models_dir: "str | Path | None" = None, shipped: Path = SHIPPED) -> None:
        self.roots = [shipped] + ([Path(models_dir)] if models_dir else [])
        if models_dir and not Path(models_dir).is_dir():
            raise ConfigError(f"--models {models_dir}: no such folder")
        self.entries: Dict[str, ModelEntry] = {}
        # direction files (``ganedit directions ...``) by name: the Invert & edit tab offers those that fit
        self.directions: Dict[str, Path] = {}
        for root in self.roots:
            for path in _files(root, "*.safetensors"):
                if _is_direction_file(path):
                    rel = path.relative_to(root).as_posix()
                    self.directions.setdefault(f"{rel} (shipped)" if root == shipped else rel, path)
            for folder in _folders(root):
                rel = folder.relative_to(root).as_posix()
                name = f"{rel} (shipped)" if root == shipped else (rel if rel != "." else root.name)
                entry = _entry(folder, name)
                if entry is not None and name not in self.entries:
                    self.entries[name] = entry

    def names(self, kind: str) -> List[str]:
        return [n for n, e in self.entries.items() if e.kind == kind]

    def get(self, name: Optional[str], kind: str) -> ModelEntry:
        entry = self.entries.get(name or "")
        if entry is None or entry.kind != kind:
            raise ConfigError(f"unknown model {name!r}: pick one of {', '.join(self.names(kind)) or 'none'}")
        return entry

    def direction_file(self, name: str) -> Path:
        """The path of a listed direction file (never a path the browser sent)."""
        if name not in self.directions:
            raise ConfigError(f"unknown direction file {name!r}: pick one of {', '.join(self.directions) or 'none'}")
        return self.directions[name]

    def info(self, name: Optional[str], kind: str) -> str:
        """Markdown line for the model picker: what it is and what it was trained on."""
        if not name:
            return ""
        entry = self.get(name, kind)
        return f"**{entry.name}** (`{entry.model_type}`): trained on {entry.trained_on}."
