"""A switch that sends the ops back to PyTorch's standard convolution calls.

Some ops rewrite a convolution for the CPU (a 1x1 modulated conv as a matrix product, a stride-2 transposed conv as
four phase convolutions). The rewrites compute the same sums in another order; inside :func:`standard_kernels` they
are off, which is what the tests compare against and what the benchmarks count FLOPs on (the official
formulation's FLOPs, not the rewrite's). Tracing and compiling always see the standard calls.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

_STATE = threading.local()


@contextlib.contextmanager
def standard_kernels() -> Iterator[None]:
    """Inside this block (this thread) the ops use only PyTorch's standard convolution calls."""
    previous = getattr(_STATE, "on", False)
    _STATE.on = True
    try:
        yield
    finally:
        _STATE.on = previous


def rewrites_allowed() -> bool:
    """False inside :func:`standard_kernels`, under tracing (ONNX export) and under torch.compile."""
    return not (getattr(_STATE, "on", False) or torch.jit.is_tracing() or torch.compiler.is_compiling())
