"""Inference models from training runs: ``ganedit.load`` of a run folder (``runs/NAME``) or of a training
checkpoint file (``runs/NAME/checkpoints/step-*.pt``).

A run folder gives its ``model/`` when that is at least as new as its newest checkpoint (every normal stop
writes both), otherwise the newest usable checkpoint (a run killed with ``kill -9`` has only checkpoints; after
a divergence, the last healthy one). A checkpoint is turned into the model its recipe exports at the end of
training: the recipe builds its networks from the stored configuration, loads the stored weights, and its EMA
networks take the EMA weights where the checkpoint has them."""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ganedit.errors import CheckpointError

_STEP_FILE = re.compile(r"^step-\d+\.pt$")
TRAIN_FORMAT = "ganedit-train"  # ganedit.train.checkpoint.FORMAT


def is_run_folder(path: Path) -> bool:
    """A folder written by ``ganedit train`` (and not itself a native model folder)."""
    return path.is_dir() and not (path / "config.json").exists() and (
        (path / "checkpoints").is_dir() or (path / "train_config.json").is_file())


def detect(obj: Any) -> bool:
    """Converter hook (``ganedit.formats.foreign``): a training checkpoint under any file name."""
    return isinstance(obj, dict) and obj.get("format") == TRAIN_FORMAT


def convert(obj: Dict[str, Any], path: Path) -> torch.nn.Module:
    from ganedit.train.checkpoint import VERSION, content_digest

    if int(obj.get("version", 0)) > VERSION:
        raise CheckpointError(path, f"checkpoint version {obj['version']} is newer than this ganedit supports ({VERSION})")
    if ("sha256" in obj or int(obj.get("version", 0)) >= 2) and obj.get("sha256") != content_digest(obj):
        raise CheckpointError(path, "checksum mismatch: the content differs from what was written (corrupt file)")
    return model_from_checkpoint(obj, path)


def load_training_run(path: Path, map_location: str = "cpu") -> Optional[torch.nn.Module]:
    """The model of a run folder or of a ``step-*.pt`` checkpoint; None when ``path`` is neither."""
    from ganedit.train import checkpoint as ckpt

    if path.is_file() and _STEP_FILE.match(path.name):
        return model_from_checkpoint(ckpt.load(path), path, map_location)
    if not is_run_folder(path):
        return None
    model_dir = path / "model"
    newest = ckpt.list_checkpoints(ckpt.checkpoint_dir(path))
    model_step = _model_step(model_dir)
    if model_step is not None and (not newest or model_step >= newest[0][0]):
        from ganedit.formats.native import load_model

        return load_model(model_dir, map_location=map_location)
    found = ckpt.resolve_resume("auto", path)  # newest usable one (the last healthy one after a divergence)
    if found is None:
        raise CheckpointError(path, "training run folder without model/ and without a usable checkpoint in checkpoints/")
    return model_from_checkpoint(found[1], found[0], map_location)


def _model_step(model_dir: Path) -> Optional[int]:
    try:
        record = json.loads((model_dir / "config.json").read_text())
        return int(record.get("meta", {}).get("step", -1))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def model_from_checkpoint(state: Dict[str, Any], path: "str | os.PathLike[str]", map_location: str = "cpu") -> torch.nn.Module:
    """Rebuild the recipe's networks from ``state`` and return what the recipe exports (EMA weights preferred)."""
    from ganedit.methods import get_method
    from ganedit.train.config import resume_config

    try:
        method_cls = get_method(str(state.get("method")))
        cfg, _ = resume_config(method_cls, state["config"], {})
    except (KeyError, TypeError) as exc:
        raise CheckpointError(path, f"training checkpoint has no usable method or configuration ({exc})") from None
    device = torch.device(map_location)
    method = method_cls(cfg)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's generator alone
        nets, _ = method.build(device)
    for name, net in nets.items():
        if name not in state["nets"]:
            raise CheckpointError(path, f"has no weights for network {name!r}")
        _load(net, state["nets"][name], path, name)
    ema: Dict[str, torch.nn.Module] = {}
    for name in method_cls.ema_networks:
        if name in state.get("ema", {}):
            ema[name] = copy.deepcopy(nets[name])
            _load(ema[name], state["ema"][name], path, f"EMA {name}")
        else:
            ema[name] = nets[name]
    method.device, method.nets, method.ema = device, nets, ema
    model = method.export().eval()
    model.checkpoint_meta = {  # type: ignore[attr-defined]
        "method": method_cls.name, "step": int(state.get("step", 0)), "images_seen": int(state.get("images_seen", 0)),
        "train_config": dict(cfg), "from_training_checkpoint": str(path),
    }
    return model


def _load(net: torch.nn.Module, weights: Dict[str, torch.Tensor], path: "str | os.PathLike[str]", what: str) -> None:
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(path, f"network {what} does not match its configuration: {str(exc)[:300]}") from None
