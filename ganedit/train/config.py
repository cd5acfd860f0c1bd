"""The run's configuration: one flat, JSON-serialisable dict merged from the engine's defaults, the
method's recipe defaults (``Method.defaults``, which win over the engine's) and the user's options
(typed CLI options and ``--set key=value``, which win over both). It is stored in every checkpoint; on
resume the checkpoint's configuration is the base and only options given explicitly override it."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Type

from ganedit.checks import Range, check_values
from ganedit.errors import ConfigError
from ganedit.methods.base import Method

ENGINE_DEFAULTS: Dict[str, Any] = {
    "method": "",
    "data": "",
    "out": "",  # empty: runs/<method>
    "seed": 0,
    "steps": 10000,
    "minutes": 0.0,  # > 0: wall-clock training budget; the run and its step-tied schedules end when it is spent
    "batch": 32,  # GLOBAL batch: every rank takes batch / world_size samples per step
    "lr": 0.002,
    "lr_schedule": "constant",  # constant | linear | cosine (decay from lr_decay_start to the last step)
    "lr_decay_start": 0,  # step where linear/cosine decay begins
    "lr_warmup": 0,  # steps of linear warm-up from 0
    "ema_kimg": 10.0,  # EMA half-life in thousands of images (for the method's ema_networks)
    "ema_rampup": 0.0,  # > 0: half-life limited to images_seen * ema_rampup early on (StyleGAN2-ADA)
    "precision": "fp32",  # fp32 | bf16 | fp16 (fp16 and bf16 autocast need CUDA; bf16 also runs on CPU)
    "device": "auto",  # auto | cpu | cuda
    "tf32": True,  # on CUDA, let fp32 matmuls/convs use TF32 tensor cores
    "workers": 2,  # DataLoader worker processes per rank (0 = load in the training process)
    "shuffle": True,
    "checkpoint_every": 1000,
    "keep": 3,  # training checkpoints kept (the newest)
    "snapshot_every": 1000,
    "snapshot_n": 32,
    "log_every": 50,
    "nan_patience": 10,  # this many non-finite steps in a row stop the run
    "tensorboard": True,
    "quiet": False,
    "skip_bad": False,  # replace unreadable images by the next readable one (counted and reported) instead of stopping
    "val_data": "",  # held-out data of the same kind as `data`, for the recipe's validation losses (val/... in the logs)
    "val_every": 0,  # validate every this many steps and at the end (0: never; needs val_data)
    "val_n": 256,  # items of val_data per validation (its first val_n; 0: all of it)
    "keep_best": True,  # with validation: write the model with the lowest validation loss to <out>/model_best as well
}

# Options that may differ on resume without a warning: they do not change what is computed.
RUNTIME_KEYS = {
    "out", "data", "steps", "minutes", "device", "tf32", "workers", "checkpoint_every", "keep", "snapshot_every", "snapshot_n",
    "log_every", "nan_patience", "tensorboard", "quiet", "skip_bad", "val_data", "val_every", "val_n", "keep_best",
}
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("constant", "linear", "cosine")


def defaults_for(method: Type[Method]) -> Dict[str, Any]:
    cfg = dict(ENGINE_DEFAULTS)
    cfg.update(json.loads(json.dumps(method.defaults)))  # deep copy, and proves the recipe is serialisable
    cfg["method"] = method.name
    return cfg


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true/false, null, lists, objects), else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(key: str, value: Any, default: Any, raw: Any) -> Any:
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("yes", "no", "on", "off"):
            return value.lower() in ("yes", "on")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return raw if isinstance(raw, str) else str(value)
    elif isinstance(default, list):
        if isinstance(value, (list, tuple)):
            if default and all(isinstance(d, float) for d in default) and all(_is_number(v) for v in value):
                return [float(v) for v in value]  # a list of floats (Adam's betas): `--set betas=[0,0.99]` parses 0 as an int
            return list(value)
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ConfigError(f"option {key}={raw!r}: expected {type(default).__name__} (like the default {json.dumps(default)})")


def parse_sets(items: Iterable[str]) -> Dict[str, Tuple[Any, str]]:
    """['key=value', ...] -> {key: (parsed value, raw text)}."""
    out: Dict[str, Tuple[Any, str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        out[key] = (parse_value(raw), raw)
    return out


def apply_overrides(base: Dict[str, Any], defaults: Mapping[str, Any], overrides: Mapping[str, Any], method: str) -> Dict[str, Any]:
    """base updated with overrides, each checked against the default's type. Values may be (value, raw) pairs."""
    cfg = dict(base)
    for key, item in overrides.items():
        value, raw = item if isinstance(item, tuple) else (item, item)
        if key == "method":
            raise ConfigError("the method is chosen by name (`ganedit train METHOD`), not with an option")
        if key not in defaults:
            raise ConfigError(f"unknown option {key!r} for method {method} (known: {', '.join(sorted(defaults))})")
        cfg[key] = _coerce(key, value, defaults[key], raw)
    check(cfg)
    return cfg


# Numeric engine options; every float must also be finite (a NaN learning rate never makes sense).
ENGINE_LIMITS = {
    "lr": Range(0, None, above=True),
    "ema_kimg": Range(0, None),
    "ema_rampup": Range(0, None),
    "seed": Range(0, 2**63 - 1, integer=True),
}


def check(cfg: Mapping[str, Any]) -> None:
    """Problems that do not depend on the machine (device and world size are checked at start-up)."""
    check_values(cfg, ENGINE_LIMITS)
    for key, value in cfg.items():  # recipe floats without a declared limit must still be numbers
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value}: must be a finite number")
    if cfg["precision"] not in PRECISIONS:
        raise ConfigError(f"precision {cfg['precision']!r}: choose one of {', '.join(PRECISIONS)}")
    if cfg["lr_schedule"] not in SCHEDULES:
        raise ConfigError(f"lr_schedule {cfg['lr_schedule']!r}: choose one of {', '.join(SCHEDULES)}")
    for key in ("steps", "batch"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be at least 1, got {cfg[key]}")
    for key in ("checkpoint_every", "snapshot_every", "log_every", "lr_warmup", "lr_decay_start", "workers", "val_every", "val_n"):
        if int(cfg[key]) < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]}")
    if not float(cfg["minutes"]) >= 0:  # also refuses nan
        raise ConfigError(f"minutes must be >= 0 (0: no time budget), got {cfg['minutes']}")
    if int(cfg["keep"]) < 1:
        raise ConfigError(f"keep must be at least 1, got {cfg['keep']}")
    if int(cfg["val_every"]) > 0 and not str(cfg["val_data"]):
        raise ConfigError(f"val_every={cfg['val_every']} needs held-out data: pass --val-data PATH (--set val_data=PATH; a folder or a spec, like --data)")
    if int(cfg["nan_patience"]) < 1:
        raise ConfigError(f"nan_patience must be at least 1, got {cfg['nan_patience']}")


def resolve(method: Type[Method], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """The configuration of a fresh run."""
    defaults = defaults_for(method)
    cfg = apply_overrides(defaults, defaults, overrides, method.name)
    derived = method.option_defaults(cfg)
    if derived:  # defaults that follow a chosen option (e.g. pSp's task); the user's explicit options stay on top
        cfg = apply_overrides({**defaults, **derived}, defaults, overrides, method.name)
    method.check_config(cfg)
    if not cfg["out"]:
        cfg["out"] = f"runs/{method.name}"
    return cfg


def resume_config(method: Type[Method], saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """The configuration of a resumed run: the checkpoint's, with the explicitly given options on top.
    Returns it with the list of changed keys that make the continuation differ from an uninterrupted run."""
    defaults = defaults_for(method)
    base = dict(defaults)
    base.update({k: v for k, v in saved.items() if k in defaults})  # keys a newer recipe dropped are ignored
    cfg = apply_overrides(base, defaults, overrides, method.name)
    method.check_config(cfg)
    changed = [k for k in sorted(overrides) if k not in RUNTIME_KEYS and saved.get(k) != cfg[k]]
    return cfg, changed
