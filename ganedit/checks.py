"""One small helper for validating configuration values before anything is built.

Each owner of a configuration (a model class, a training recipe, the engine) declares its limits next to its
own code as a mapping ``{key: Range(...) | OneOf(...) | Each(...)}`` and calls :func:`check_values`; the first
value outside its limits raises a :class:`~ganedit.errors.ConfigError` that names the key, the value and the
allowed range, so a bad value never reaches a constructor as a deep traceback (negative tensor sizes, terabyte
allocations, recursion limits). Limits are deliberately generous: they refuse nonsense, not unusual models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Union

from ganedit.errors import ConfigError

# The largest official models work at 1024 px; 8192 leaves room for anything real while refusing sizes whose
# buffers alone would not fit in memory.
MAX_IMAGE_SIDE = 8192
# Widest layer of any supported network (StyleGAN2 and the official Swapping Autoencoder top out at 2048).
MAX_CHANNELS = 16384
# Deepest stack of repeated blocks (U-Net levels, ResNet blocks, mapping layers): far beyond any published model,
# and far below Python's recursion limit for nested modules.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Range:
    """A number from ``low`` to ``high`` (either may be None = unbounded); ``integer`` requires an int;
    ``above`` makes ``low`` exclusive (a learning rate must be > 0), ``below`` makes ``high`` exclusive (an Adam
    beta must be < 1). Floats must always be finite."""

    low: Optional[float] = None
    high: Optional[float] = None
    integer: bool = False
    above: bool = False
    below: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None and not self.above and not self.below:
            return f"{kind} from {_num(self.low)} to {_num(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.above else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.below else '<='} {_num(self.high)}")
        return f"{kind} {' and '.join(parts)}".rstrip()

    def fits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or (value < self.high if self.below else value <= self.high)


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values (names such as 'batch', 'instance')."""

    choices: Tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def fits(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)


@dataclass(frozen=True)
class Each:
    """A list whose every element fits ``item``, with a length from ``min_len`` to ``max_len``."""

    item: Union[Range, OneOf]
    min_len: int = 0
    max_len: int = MAX_DEPTH

    def describe(self) -> str:
        count = str(self.min_len) if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"
        return f"a list of {count} values, each {self.item.describe()}"

    def fits(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            return False
        return all(self.item.fits(v) for v in value)


Limit = Union[Range, OneOf, Each, "_Optional"]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def check_value(key: str, value: Any, limit: Limit, where: str = "") -> None:
    """Raise ConfigError "``where``key=value: must be ..." when ``value`` does not fit ``limit``."""
    if not limit.fits(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(f"{where}{key}={shown}: must be {limit.describe()}")


def check_values(values: Mapping[str, Any], limits: Mapping[str, Limit], where: str = "") -> None:
    """Check every key of ``limits`` that ``values`` has (missing keys are the owner's business).
    ``where`` prefixes the message, e.g. ``"pix2pix: "``."""
    for key, limit in limits.items():
        if key in values:
            check_value(key, values[key], limit, where)


def channels(high: int = MAX_CHANNELS) -> Range:
    """A layer width: a positive integer up to ``high``."""
    return Range(1, high, integer=True)


def side(low: int = 1, high: int = MAX_IMAGE_SIDE) -> Range:
    """An image side in pixels."""
    return Range(low, high, integer=True)


def optional(limit: Limit) -> Limit:
    """``limit`` or None (for options whose None means 'the default rule')."""
    return _Optional(limit)


@dataclass(frozen=True)
class _Optional:
    inner: Limit

    def describe(self) -> str:
        return f"null or {self.inner.describe()}"

    def fits(self, value: Any) -> bool:
        return value is None or self.inner.fits(value)


def adam_betas() -> Each:
    """Adam's (beta1, beta2), each in [0, 1)."""
    return Each(Range(0, 1, below=True), 2, 2)


def probability() -> Range:
    return Range(0.0, 1.0)


def non_negative(integer: bool = False, high: Optional[float] = None) -> Range:
    return Range(0, high, integer=integer)


def positive(integer: bool = False, high: Optional[float] = None) -> Range:
    return Range(1, high, integer=True) if integer else Range(0, high, above=True)


__all__ = ["Range", "OneOf", "Each", "Limit", "check_value", "check_values", "channels", "side", "optional", "probability", "adam_betas",
           "non_negative", "positive", "MAX_IMAGE_SIDE", "MAX_CHANNELS", "MAX_DEPTH"]
