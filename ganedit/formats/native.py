"""Native checkpoint format: a folder with ``config.json`` (which registered model class, every constructor
argument, free-form metadata) and ``model.safetensors`` (the state dict). Loading needs no flags.

A model class joins the format with ``@register_model("name")``: the decorator records the constructor
arguments of every instance in ``self.config`` so that ``cls(**config)`` rebuilds it.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import torch

from ganedit.errors import CheckpointError, ConfigError

FORMAT_NAME = "ganedit"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

_REGISTRY: Dict[str, type] = {}
T = TypeVar("T", bound=type)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"constructor argument {value!r} of type {type(value).__name__} is not JSON-serialisable")


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: register ``cls`` under ``name`` and record its constructor arguments in ``self.config``."""

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is registered twice")
        original_init = cls.__init__
        signature = inspect.signature(original_init)

        @functools.wraps(original_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self", None)
            for param in signature.parameters.values():
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(arguments.pop(param.name, {}))
            original_init(self, *args, **kwargs)
            # A registered subclass calls its parent's wrapped __init__ too; the outermost class wins.
            if type(self) is cls:
                self.config = _jsonable(arguments)

        cls.__init__ = __init__  # type: ignore[assignment]
        cls.model_type = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return wrap


def registered_models() -> Dict[str, type]:
    return dict(_REGISTRY)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    from ganedit.formats.atomic import write_bytes_atomic  # temporaries removed; a full disk is a StorageError

    write_bytes_atomic(path, data)


def save_model(model: torch.nn.Module, path: "str | os.PathLike[str]", meta: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` to the folder ``path`` (created if needed). Each file is replaced atomically,
    weights first, so a crash never leaves a config that points at missing weights."""
    from safetensors.torch import save as safetensors_save

    model_type = getattr(model, "model_type", None)
    if model_type is None or not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} is not a registered model (use @register_model)")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    _atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_save(tensors, metadata={"format": FORMAT_NAME}))
    record = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "module": type(model).__module__,
        "config": model.config,
        "meta": _jsonable(meta or {}),
    }
    _atomic_write_bytes(folder / CONFIG_FILE, (json.dumps(record, indent=2) + "\n").encode())
    return folder


def read_config(path: "str | os.PathLike[str]") -> Dict[str, Any]:
    folder = Path(path)
    config_path = folder / CONFIG_FILE if folder.is_dir() else folder
    try:
        record = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(path, f"no {CONFIG_FILE} found: not a ganedit native checkpoint folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(config_path, f"config is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise CheckpointError(config_path, "not a ganedit config (missing \"format\": \"ganedit\")")
    version = record.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(config_path, f"format_version={version!r}: must be an integer from 0 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise CheckpointError(config_path, f"format version {version} is newer than this ganedit supports ({FORMAT_VERSION})")
    if not isinstance(record.get("config", {}), dict):
        raise CheckpointError(config_path, "\"config\" must be an object of constructor arguments")
    return record


def model_class(record: Dict[str, Any], where: "str | os.PathLike[str]") -> type:
    name = record.get("model_type")
    module = str(record.get("module", ""))
    if name not in _REGISTRY:
        # Only ganedit's own modules are imported to find a class: a config file never names code to run.
        if module == "ganedit" or module.startswith("ganedit."):
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    if name not in _REGISTRY:
        raise CheckpointError(where, f"unknown model type {name!r} (known: {', '.join(sorted(_REGISTRY)) or 'none'})")
    return _REGISTRY[name]


def load_model(path: "str | os.PathLike[str]", map_location: str = "cpu") -> torch.nn.Module:
    """Rebuild a model from a native folder; foreign official checkpoints are detected and converted; a training
    run folder or training checkpoint gives the model its recipe exports (ganedit/formats/training_run.py)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(path, "no such file or folder")
    from ganedit.formats.training_run import load_training_run  # a run folder or a training checkpoint

    trained = load_training_run(p, map_location)
    if trained is not None:
        return trained
    if p.is_file() and p.name != CONFIG_FILE:
        from ganedit.formats.foreign import convert_foreign

        return convert_foreign(p)
    folder = p if p.is_dir() else p.parent
    record = read_config(folder)
    cls = model_class(record, folder)
    config, config_path, weights = record.get("config", {}), folder / CONFIG_FILE, folder / WEIGHTS_FILE
    # A config is checked against the weights' header before anything real is built: a config that asks for a
    # bigger (or different) network than the file holds is refused without allocating it. The models shipped
    # inside the package are exempt: they are part of the code, and the check's meta-device build costs seconds
    # (torch imports its compiler stack for meta kernels) on every first load in a process.
    if not _is_shipped(folder):
        check_config_fits_weights(cls, config, config_path, weights)
    model = build_from_config(cls, config, config_path)
    state = load_safetensors(weights, map_location)
    load_state_dict_checked(model, state, weights)
    model.eval()
    model.checkpoint_meta = record.get("meta", {})  # type: ignore[attr-defined]
    return model


def _is_shipped(folder: Path) -> bool:
    from ganedit.formats.named import ASSETS_DIR

    try:
        return folder.resolve().is_relative_to(ASSETS_DIR)
    except OSError:
        return False


def build_from_config(cls: type, config: Dict[str, Any], config_path: Path, device: Optional[str] = None) -> torch.nn.Module:
    """``cls(**config)`` (on ``device``, e.g. "meta" to allocate nothing); any failure is a CheckpointError naming
    the config file: the model's own range checks (ConfigError) first, torch's complaints as a fallback."""
    try:
        if device is None:
            return cls(**config)
        with torch.device(device):
            return cls(**config)
    except ConfigError as exc:
        raise CheckpointError(config_path, f"bad config for {cls.__name__}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(config_path, f"config does not fit {cls.__name__}: {exc}") from None
    except (ValueError, RuntimeError, RecursionError, OverflowError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(config_path, f"cannot build {cls.__name__} from this config ({type(exc).__name__}: {text})") from None


def weights_header(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Tensor shapes of a safetensors file, read from its header only (no tensor data is loaded)."""
    from safetensors import safe_open

    if not path.exists():
        raise CheckpointError(path, "weights file is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
        raise CheckpointError(path, f"cannot read safetensors weights ({exc})") from None


def check_config_fits_weights(cls: type, config: Dict[str, Any], config_path: Path, weights: Path) -> None:
    """Build ``cls(**config)`` on the meta device (shapes only, no memory) and compare its state dict with the
    shapes in the weights file's header; a mismatch is a CheckpointError naming both files."""
    shapes = weights_header(weights)
    probe = build_from_config(cls, config, config_path, device="meta")
    header = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    problem = state_dict_mismatch(probe.state_dict(), header)
    if problem:
        raise CheckpointError(config_path, f"this config does not describe the network stored in {weights.name}: {problem}")


def load_safetensors(path: Path, map_location: str = "cpu") -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise CheckpointError(path, "weights file is missing")
    try:
        return load_file(str(path), device=map_location)
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
        raise CheckpointError(path, f"cannot read safetensors weights ({exc})") from None


def state_dict_mismatch(own: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor],
                        optional: Callable[[str], bool] = lambda key: False) -> Optional[str]:
    """One readable line on how ``state`` fails to fit a module whose state dict is ``own`` (None if it fits):
    missing, unexpected and mis-shaped keys. Keys for which ``optional`` is true may be absent."""
    missing = [k for k in own if k not in state and not optional(k)]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
    return "; ".join(parts) or None


def load_state_dict_checked(model: torch.nn.Module, state: Dict[str, torch.Tensor], where: "str | os.PathLike[str]") -> None:
    """load_state_dict with a readable report of missing, unexpected and mis-shaped keys."""
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(where, f"weights do not match {type(model).__name__}: {problem}")
    model.load_state_dict(state, strict=True)
