"""Single-file safetensors formats that name themselves: latents, directions and PTI results.

Each file's metadata holds ``format`` (the format's name), ``format_version`` and ``meta`` (a JSON record), so a
reader can refuse a file of another kind with a clear message before touching its tensors. Writes are atomic
(:func:`ganedit.formats.atomic.write_bytes_atomic`): a reader sees the old file or the whole new one."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

import torch

from ganedit.formats.atomic import write_bytes_atomic


def save_tagged(path: "str | os.PathLike[str]", tensors: Dict[str, torch.Tensor], format_name: str, format_version: int,
                record: Dict[str, Any]) -> Path:
    """Write ``tensors`` with the format's name, version and ``record`` (JSON-serialisable) to ``path``."""
    from safetensors.torch import save as safetensors_save

    data = safetensors_save(tensors, metadata={"format": format_name, "format_version": str(format_version),
                                                "meta": json.dumps(record)})
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(p, data)
