"""Training checkpoints: ``<out>/checkpoints/step-<9 digits>.pt``, written atomically and read back with
``torch.load(weights_only=True)`` (they hold only tensors and plain containers, so loading runs no code).

Atomic write: the state goes to a hidden temporary file in the same folder, is flushed and fsync'ed, then
renamed over the final name (and the folder entry fsync'ed). A process killed at any moment leaves either
the previous checkpoints untouched or the new one complete; stray temporary files are removed at the next
start and never considered by ``--resume auto``, which also skips any file that fails to load.

Integrity: every checkpoint stores ``sha256``, a digest of its whole content (every tensor's dtype, shape and
bytes, every key and plain value) computed before writing and checked after reading. torch's zip reader does
not check its records, so without it a flipped byte inside a tensor would load silently; with it the file is
refused like a truncated one and ``--resume auto`` falls back to the previous checkpoint.

Health: a checkpoint is ``healthy`` when no step since the previous checkpoint skipped an update for a
non-finite loss or gradient, and ``confirmed`` once the next checkpoint is healthy too (the weights were still
fine a whole interval later). Each checkpoint records the newest healthy (``last_healthy``) and confirmed
(``confirmed``) steps, and pruning never deletes those two, however many unhealthy checkpoints follow. After a
divergence, resuming starts from the confirmed one (the last healthy one if none is confirmed)."""
from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ganedit.errors import CheckpointError
from ganedit.formats.atomic import write_atomic

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

FORMAT = "ganedit-train"
VERSION = 2  # 2: sha256 content digest (required), healthy / last_healthy; version 1 files still load
_NAME = re.compile(r"^step-(\d+)\.pt$")
REQUIRED = ("format", "version", "step", "images_seen", "config", "nets", "opts", "ranks")


def checkpoint_dir(out: "str | os.PathLike[str]") -> Path:
    return Path(out) / "checkpoints"


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.pt"


def _digest_into(h: "hashlib._Hash", value: Any) -> None:
    """Feed ``value`` into ``h`` unambiguously (type tags, lengths, keys in order)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's own buffer: no copy
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _digest_into(h, key)
            _digest_into(h, item)
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}".encode())
        for item in value:
            _digest_into(h, item)
    elif isinstance(value, (bytes, bytearray)):
        h.update(b"B%d:" % len(value) + bytes(value))
    else:  # str, int, float, bool, None, numpy scalars
        text = repr(value).encode()
        h.update(f"S{type(value).__name__}{len(text)}:".encode() + text)


def content_digest(state: Dict[str, Any]) -> str:
    """sha256 of everything in ``state`` except its own ``sha256`` entry."""
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def save_atomic(state: Dict[str, Any], path: Path) -> Path:
    """Store the content digest in ``state``, then torch.save it to a temporary file, fsync, rename over
    ``path``. A full disk is one StorageError line (path, bytes needed and free), with no temporary left."""
    state["sha256"] = content_digest(state)
    return write_atomic(path, lambda handle: torch.save(state, handle), _tensor_bytes(state) + (1 << 16))


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
    if int(state["version"]) >= 2 or "sha256" in state:
        if state.get("sha256") != content_digest(state):
            raise CheckpointError(p, "checksum mismatch: the content differs from what was written (corrupt file)")
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
        found = find_latest(checkpoint_dir(out))
        return _healthy_instead_of_diverged(found) if found else None
    p = Path(spec)
    if p.is_dir():
        for folder in (checkpoint_dir(p), p):
            found = find_latest(folder)
            if found:
                return found
        raise CheckpointError(p, "no usable training checkpoint (step-*.pt) in this folder")
    return p, load(p)


def _healthy_instead_of_diverged(found: Tuple[Path, Dict[str, Any]]) -> Tuple[Path, Dict[str, Any]]:
    """``--resume auto`` after a divergence: continuing the diverged weights and bad-step streak would stop again
    at once, so the last healthy checkpoint is taken instead (an explicit ``--resume PATH`` takes any)."""
    path, state = found
    healthy = state.get("confirmed") if state.get("confirmed") is not None else state.get("last_healthy")
    if not state.get("diverged") or healthy is None:
        return found
    candidate = path.with_name(checkpoint_name(int(healthy)))
    try:
        better = candidate, load(candidate)
    except CheckpointError as exc:
        log.warning(f"{path.name} ended in divergence, and its last healthy checkpoint is unusable ({exc}); resuming the diverged one")
        return found
    log.warning(f"{path.name} ended in divergence: resuming from the last healthy checkpoint, {candidate.name} "
                f"(give --resume {path} to continue the diverged one)")
    return better


def prune(folder: "str | os.PathLike[str]", keep: int, protect: Sequence[Path] = ()) -> None:
    """Delete all but the newest ``keep`` checkpoints, never those in ``protect`` (the last healthy ones)."""
    spared = {p.name for p in protect}
    for _, path in list_checkpoints(folder)[keep:]:
        if path.name in spared:
            continue
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
