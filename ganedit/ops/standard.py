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


class ThreadSwitch:
    """A per-thread flag, off by default, that a ``with switch.turned_on():`` block sets (nesting restores it)."""

    def __init__(self) -> None:
        self._state = threading.local()

    @property
    def on(self) -> bool:
        return getattr(self._state, "on", False)

    @contextlib.contextmanager
    def turned_on(self) -> Iterator[None]:
        previous = self.on
        self._state.on = True
        try:
            yield
        finally:
            self._state.on = previous


_STANDARD = ThreadSwitch()


def standard_kernels() -> "contextlib.AbstractContextManager[None]":
    """Inside this block (this thread) the ops use only PyTorch's standard convolution calls."""
    return _STANDARD.turned_on()


def rewrites_allowed() -> bool:
    """False inside :func:`standard_kernels`, under tracing (ONNX export) and under torch.compile."""
    return not (_STANDARD.on or torch.jit.is_tracing() or torch.compiler.is_compiling())
