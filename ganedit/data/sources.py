"""Where dataset images come from: a folder (recursive) or a zip in the NVlabs layout, each with an optional
``dataset.json`` of labels. A source lists image names (sorted, deterministic) and returns a file's bytes (or path).

A zip source opens its file lazily and once per process, so a dataset holding it can be pickled into
DataLoader workers (each worker gets its own handle; zipfile handles must not be shared across processes)."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from ganedit.data.io import is_image_name
from ganedit.errors import DataError, ImageError

__all__ = ["ImageSource", "FolderSource", "ZipSource", "open_source", "list_images", "parse_labels"]

LABELS_FILE = "dataset.json"


def _visible(rel: str) -> bool:
    # Hidden files and folders (".DS_Store", "._x.jpg" resource forks, ".ipynb_checkpoints") are never images.
    return not any(part.startswith(".") for part in rel.split("/"))


def list_images(root: "str | os.PathLike[str]") -> List[str]:
    """Image files under root, recursively, as sorted relative POSIX paths."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    names = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
            if _visible(rel) and is_image_name(f):
                names.append(rel)
    return sorted(names)


def parse_labels(text: "str | bytes", where: str) -> Optional[Dict[str, Any]]:
    """``{"labels": [[name, label], ...]}`` (or ``"labels": null``) -> {name: label} or None."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: {LABELS_FILE} is not valid JSON: {exc}") from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if labels is None:
        return None
    try:
        return {str(name).replace("\\", "/"): label for name, label in labels}
    except (TypeError, ValueError):
        raise DataError(f"{where}: {LABELS_FILE} 'labels' must be a list of [name, label] pairs") from None


class ImageSource:
    """Base: ``names`` (sorted), ``fetch(name) -> bytes | Path``, ``display(name)`` for messages, ``labels`` or None."""

    location: str
    names: List[str]
    labels: Optional[Dict[str, Any]]

    def fetch(self, name: str) -> "bytes | Path":
        """What read_image/load_rgb take for this image: its bytes (zip) or its path (folder)."""
        raise NotImplementedError

    def display(self, name: str) -> str:
        return f"{self.location}/{name}"

    def __len__(self) -> int:
        return len(self.names)


class FolderSource(ImageSource):
    def __init__(self, root: "str | os.PathLike[str]") -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.names = list_images(self.root)
        label_file = self.root / LABELS_FILE
        self.labels = parse_labels(label_file.read_bytes(), self.location) if label_file.is_file() else None

    def fetch(self, name: str) -> Path:
        # A path, so that read problems (vanished, empty, unreadable) get io.py's messages.
        return self.root / name


class ZipSource(ImageSource):
    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._zip: Optional[zipfile.ZipFile] = None
        self._pid: Optional[int] = None
        z = self._handle()
        infos = [i for i in z.infolist() if not i.is_dir()]
        self.names = sorted(i.filename for i in infos if _visible(i.filename) and is_image_name(i.filename))
        self.labels = None
        if LABELS_FILE in z.namelist():
            self.labels = parse_labels(z.read(LABELS_FILE), self.location)

    def _handle(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except FileNotFoundError:
                raise DataError(f"{self.path}: file not found") from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{self.path}: not a readable zip file: {exc}") from None
            self._pid = os.getpid()
        return self._zip

    def fetch(self, name: str) -> bytes:
        try:
            return self._handle().read(name)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
            # A damaged member (bad CRC, truncated archive) is that image's problem, reported like a bad file.
            raise ImageError(self.display(name), f"cannot read from the zip: {exc}") from None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"], state["_pid"] = None, None  # every process opens its own handle
        return state

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def open_source(path: "str | os.PathLike[str]") -> ImageSource:
    """A FolderSource for a folder, a ZipSource for a .zip file."""
    p = Path(path)
    if p.is_dir():
        return FolderSource(p)
    if p.is_file() and zipfile.is_zipfile(p):
        return ZipSource(p)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    raise DataError(f"{p}: neither a folder nor a zip file")
