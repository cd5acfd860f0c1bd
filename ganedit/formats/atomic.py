"""Atomic file writes shared by training checkpoints and native model folders.

The content goes to a hidden temporary file in the destination folder, is flushed and fsync'ed, then
renamed over the final name (and the folder entry fsync'ed): a reader sees the old file or the complete new
one, never a part. Whatever stops the write (a full disk, a kill, an exception), the temporary file is
removed before the error propagates. A full disk becomes one ``StorageError`` line naming the file, the bytes
needed and the bytes free, instead of torch's or Python's traceback."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

from ganedit.errors import StorageError

# errno values that mean "there is no room for these bytes" (disk, quota, RLIMIT_FSIZE).
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class _RecordingWriter:
    """A file wrapper that remembers the first OSError of a write: torch.save turns it into an opaque
    RuntimeError ("unexpected pos ..."), so the real cause must be caught on the way through."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: Optional[OSError] = None
        self.written = 0

    def write(self, data: Any) -> int:
        try:
            n = self.handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        self.written += len(data) if n is None else n
        return len(data) if n is None else n

    def flush(self) -> None:
        self.handle.flush()


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_temporaries(folder: Path) -> None:
    """Remove the temporary files (``.NAME.tmp-PID``) that a killed writer left in ``folder``."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and ".tmp-" in entry.name and entry.is_file():
                try:
                    entry.unlink()
                except OSError:
                    pass


def fsync_dir(folder: Path) -> None:
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


def free_bytes(folder: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _no_space(exc: BaseException, recorded: Optional[OSError]) -> Optional[OSError]:
    for candidate in (exc, recorded):
        if isinstance(candidate, OSError) and candidate.errno in NO_SPACE:
            return candidate
    return None


def write_atomic(path: Path, write: Callable[[Any], None], size_hint: int) -> Path:
    """Call ``write(handle)`` on a temporary file, fsync it and rename it to ``path``. ``size_hint`` (bytes,
    an estimate) is quoted when the disk is full."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    writer: Optional[_RecordingWriter] = None
    try:
        with open(tmp, "wb") as handle:
            writer = _RecordingWriter(handle)
            write(writer)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        full = _no_space(exc, writer.error if writer else None)
        if full is not None:
            free = free_bytes(path.parent)
            needed = max(size_hint, writer.written if writer else 0)
            room = f", {free:,} free" if free is not None else ""
            raise StorageError(path, f"cannot write: {os.strerror(full.errno)} (about {needed:,} bytes needed{room}); "
                                     "nothing was replaced") from None
        raise
    fsync_dir(path.parent)
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return write_atomic(path, lambda handle: handle.write(data), len(data))
