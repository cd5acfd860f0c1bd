"""Finding and reading the local weight files of the pretrained networks (LPIPS, Inception-v3, ArcFace, MoCo).

ganedit never downloads anything: the networks are defined here and filled from files the user provides,
either by an explicit path (a file or a folder) or from the cache folder ``$GANEDIT_CACHE`` (default
``~/.cache/ganedit``), where each family is looked for both in the folder itself and in a subfolder named after
it (``lpips/``, ``inception/``, ``identity/``, ``moco/``). When a file is missing, ``MissingWeightsError`` says which file, in what layout,
where we looked and how to provide it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ganedit.errors import CheckpointError, GaneditError



class MissingWeightsError(GaneditError):
    """A pretrained metric network was asked for but its weight file is not on this machine."""


def cache_dir() -> Path:
    """The folder searched for weight files: ``$GANEDIT_CACHE`` or ``~/.cache/ganedit``."""
    env = os.environ.get("GANEDIT_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/ganedit").expanduser()


def search_folders(family: str, explicit: Optional["str | os.PathLike[str]"] = None) -> List[Path]:
    """Folders searched, in order: an explicit folder, then the cache folder and its ``family`` subfolder."""
    folders: List[Path] = []
    if explicit is not None and Path(explicit).is_dir():
        folders += [Path(explicit), Path(explicit) / family]
    root = cache_dir()
    folders += [root / family, root]
    return folders


def find_file(folders: Sequence[Path], patterns: Sequence[str]) -> Optional[Path]:
    """First file matching one of ``patterns`` (glob) in the first folder that has one; None when none does."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for pattern in patterns:
            hits = sorted(p for p in folder.glob(pattern) if p.is_file())
            if hits:
                return hits[0]
    return None


def locate_weights(weights: Optional["str | os.PathLike[str]"], family: str, patterns: Sequence[str], needed: str,
                   how_to_pass: str, name: str) -> Path:
    """The weight file of a network that reads one file: ``weights`` itself when it is a file, else the first file
    matching ``patterns`` in ``weights`` (a folder), ``$GANEDIT_CACHE/family`` and ``$GANEDIT_CACHE``. A missing file
    raises MissingWeightsError saying what is needed (``needed``), where it looked and how to provide it."""
    def missing(looked: Sequence[Path], what: str) -> MissingWeightsError:
        folders = ", ".join(str(p) for p in dict.fromkeys(looked))
        return MissingWeightsError(
            f"{name} and ganedit never downloads any; {what}.\n  Needed: {needed}.\n  Looked in: {folders}.\n"
            f"  Provide it: copy the file into {cache_dir() / family} (the cache folder is $GANEDIT_CACHE, default "
            f"~/.cache/ganedit), or {how_to_pass}.")

    if weights is not None and Path(weights).is_file():
        return Path(weights)
    if weights is not None and not Path(weights).exists():
        raise missing([Path(weights)], f"the given path {weights} does not exist")
    folders = search_folders(family, weights)
    found = find_file(folders, patterns)
    if found is None:
        raise missing(folders, f"{patterns[0]} not found")
    return found


def read_state_dict(path: "str | os.PathLike[str]") -> Dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a ``.safetensors`` file or a ``.pt/.pth`` state dict (read safely).

    A ``.pt`` file holding ``{"state_dict": {...}}`` (a common wrapper) is unwrapped."""
    p = Path(path)
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise CheckpointError(p, "no such file")
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p)))
        except Exception as exc:  # safetensors raises its own error types on corrupt headers
            raise CheckpointError(p, f"not a readable safetensors file: {type(exc).__name__}: {str(exc)[:300]}") from None
    from ganedit.formats.foreign import safe_torch_load

    obj = safe_torch_load(p)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(p, f"expected a state dict (a dict of tensors), found {type(obj).__name__}")
    return dict(obj)


def load_checked(module: torch.nn.Module, state: Dict[str, torch.Tensor], path: "str | os.PathLike[str]",
                 ignore_prefixes: Sequence[str] = (), ignore_suffixes: Sequence[str] = ()) -> None:
    """Strict ``load_state_dict`` whose failures become one CheckpointError naming the file.

    Keys starting with ``ignore_prefixes`` or ending with ``ignore_suffixes`` may be present or absent (e.g. a
    classifier head we do not use, BatchNorm's ``num_batches_tracked``)."""

    def ignored(key: str) -> bool:
        return key.startswith(tuple(ignore_prefixes)) or key.endswith(tuple(ignore_suffixes))

    from ganedit.formats.native import state_dict_mismatch

    own = module.state_dict()
    state = {k: v for k, v in state.items() if not (ignored(k) and k not in own)}
    problem = state_dict_mismatch(own, state, optional=ignored)
    if problem:
        raise CheckpointError(path, f"does not fit {type(module).__name__}: {problem}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
