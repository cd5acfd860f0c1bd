"""Error types. Every error a user can cause is a GaneditError with a message that names the file and the problem;
the CLI prints it without a traceback and exits with status 2."""
from __future__ import annotations

import os
from typing import Optional


class GaneditError(Exception):
    """Base class of all user-facing errors."""


class PathError(GaneditError):
    """An error about one file: the message is "<path>: <problem>"."""

    def __init__(self, path: "os.PathLike[str] | str | None", problem: Optional[str] = None) -> None:
        if problem is None:
            # Rebuilt from one message string: torch's DataLoader does this when a worker raised the error
            # (it calls type(exc)(text) with the worker's traceback); keep the original error's last line.
            path, problem = None, _original_message(str(path), type(self).__name__)
        self.path = None if path is None else str(path)
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")


def _original_message(text: str, type_name: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    last = lines[-1]
    marker = f"{type_name}: "
    return last.split(marker, 1)[1] if marker in last else last


class ImageError(PathError):
    """An image file cannot be used: corrupt, truncated, unsupported, too large or too small."""


class CheckpointError(PathError):
    """A checkpoint cannot be read, is unsafe, or does not match the model."""


class DataError(GaneditError):
    """A dataset (folder, zip, pair layout) cannot be used."""


class ConfigError(GaneditError):
    """Options that do not fit together or do not fit the model."""


class PeerLost(GaneditError):
    """Another training process of the group died (or its connection broke) during a collective."""


class StorageError(PathError):
    """A file cannot be written: the disk (or quota, or file-size limit) is full."""
