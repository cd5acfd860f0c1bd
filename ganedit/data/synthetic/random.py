"""Counter-based random numbers for the synthetic world.

Every factor of image ``index`` drawn under ``seed`` is a pure function of (seed, index, field name): a
32-bit integer hash, evaluated in int64 so that no multiplication can overflow. This is what makes the world
deterministic regardless of batch chunking: image 7 of seed 3 is the same whether it is drawn alone, in a
batch of 10 or in a batch of 10,000, and drawing field B never shifts the stream of field A.
"""
from __future__ import annotations

import functools
import zlib
from typing import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) without int64 overflow: split c into 16-bit halves."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A bijective avalanche hash of 32-bit values held in int64 (the 'lowbias32' xorshift-multiply chain)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def stream_id(name: str) -> int:
    """A stable 32-bit id for a field name (CRC-32; Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8")) & _MASK32


def check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed <= _MASK32:
        raise ValueError(f"synthetic world seeds are integers in [0, 2**32), got {seed}")
    return seed


@functools.lru_cache(maxsize=4096)
def _base(seed: int, name: str) -> int:
    """hash32(seed ^ stream_id(name)) in plain Python (the same function as the tensor version)."""
    x = check_seed(seed) ^ stream_id(name)
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = ((x ^ (x >> shift)) * mult) & _MASK32
    return x ^ (x >> 16)


def uniform_table(seed: int, index: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """[n, len(names)] float32 uniforms in [0, 1), one column per field name, exactly representable
    (24-bit mantissa). All fields in one batch of integer ops: drawing is cheap even for small batches."""
    bases = torch.tensor([_base(seed, name) for name in names], dtype=torch.int64)
    h = hash32((hash32(index.to(torch.int64) & _MASK32)[:, None] ^ bases[None, :]) & _MASK32)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def uniform(seed: int, index: torch.Tensor, name: str) -> torch.Tensor:
    """float32 uniform in [0, 1) for each image index (one column of :func:`uniform_table`)."""
    return uniform_table(seed, index, (name,))[:, 0]


def indices(n: int, start: int = 0) -> torch.Tensor:
    if n < 0 or start < 0:
        raise ValueError(f"need n >= 0 and start >= 0, got n={n}, start={start}")
    return torch.arange(start, start + n, dtype=torch.int64)
