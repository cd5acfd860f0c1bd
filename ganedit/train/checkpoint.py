"""Training checkpoints: ``<out>/checkpoints/step-<9 digits>.pt``, written atomically and read back with
``torch.load(weights_only=True)`` (they hold only tensors and plain containers, so loading runs no code).

Atomic write: the state goes to a hidden temporary file in the same folder, is flushed and fsync'ed, then
renamed over the final name (and the folder entry fsync'ed). A process killed at any moment leaves either
the previous checkpoints untouched or the new one complete; stray temporary files are removed at the next
start and never considered by ``--resume auto``, which also skips any file that fails to load."""
from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ganedit.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "ganedit-train"
VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")
REQUIRED = ("format", "version", "step", "images_seen", "config", "nets", "opts", "ranks")


def checkpoint_dir(out: "str | os.PathLike[str]") -> Path:
    return Path(out) / "checkpoints"


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.pt"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(state: Dict[str, Any], path: Path) -> Path:
    """torch.save to a temporary file, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def load(path: "str | os.PathLike[str]", map_location: "str | torch.device" = "cpu") -> Dict[str, Any]:
    """Read and validate a training checkpoint; any problem is a CheckpointError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such checkpoint file")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, refused global: all mean "unusable"
        raise CheckpointError(p, f"cannot read training checkpoint (truncated or corrupt?): {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(p, "not a ganedit training checkpoint (for inference models use ganedit.load)")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(p, f"training checkpoint lacks {', '.join(missing)}")
    if int(state["version"]) > VERSION:
        raise CheckpointError(p, f"checkpoint version {state['version']} is newer than this ganedit supports ({VERSION})")
    return state


def list_checkpoints(folder: "str | os.PathLike[str]") -> List[Tuple[int, Path]]:
    """(step, path) of the checkpoint files in ``folder``, newest first (temporary files excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m and entry.is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found, reverse=True)


def find_latest(folder: "str | os.PathLike[str]", warn: bool = True) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """The newest checkpoint in ``folder`` that loads, with its state; unreadable ones are reported and skipped."""
    for _, path in list_checkpoints(folder):
        try:
            return path, load(path)
        except CheckpointError as exc:
            if warn:
                log.warning(f"skipping unusable checkpoint {exc}")
    return None


def resolve_resume(spec: str, out: "str | os.PathLike[str]") -> Optional[Tuple[Path, Dict[str, Any]]]:
    """``auto``: the newest valid checkpoint of the run folder ``out`` (None: start fresh). A file: that
    checkpoint. A folder: the newest valid checkpoint in it (or in its checkpoints/ subfolder)."""
    if spec == "auto":
        return find_latest(checkpoint_dir(out))
    p = Path(spec)
    if p.is_dir():
        for folder in (checkpoint_dir(p), p):
            found = find_latest(folder)
            if found:
                return found
        raise CheckpointError(p, "no usable training checkpoint (step-*.pt) in this folder")
    return p, load(p)


def prune(folder: "str | os.PathLike[str]", keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in list_checkpoints(folder)[keep:]:
        try:
            path.unlink()
        except OSError:
            pass


def remove_temporaries(folder: "str | os.PathLike[str]") -> None:
    """Remove temporary files that a killed writer left behind."""
    folder = Path(folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".step-") and ".tmp-" in entry.name:
                try:
                    entry.unlink()
                except OSError:
                    pass


# -- random generator states as tensors and plain containers (loadable with weights_only=True) -------------------
def rng_state() -> Dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
