"""Where a StyleGAN2 synthesis forward spends its time: seconds, GFLOP and bytes per (resolution, part).

A TorchDispatchMode times every aten call of one forward (CPU, synchronous, so wall time per call is its cost)
and counts its FLOPs with torch.utils.flop_counter's formulas; forward hooks tell which layer issued it. The
part is named from the layer and the op: the 3x3 modulated conv, the up-sampling (transposed) conv and its FIR
blur, the elementwise passes of modulation, demodulation, noise and bias, the leaky ReLU, toRGB, the skip image's
up-sampling and sum.
Bytes are the sizes of every tensor read and written (a lower bound on memory traffic), so memory-bound parts
show as a high GB/s and a low GFLOP/s.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Callable, Dict, List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

# rows of the table, in the order a layer runs them
PARTS = ("styles (affine)", "modulate, demodulate, noise, bias", "3x3 conv", "up conv (transposed 3x3)", "up-conv phase interleave",
         "up-conv FIR blur", "leaky ReLU", "toRGB (1x1 conv + bias)", "skip upsample (FIR)", "skip add", "other")


def _layer_resolution(name: str) -> int:
    """convs.{k} run at 2**(k//2 + 3) px, to_rgbs.{j} at 2**(j + 3), conv1/to_rgb1/input at 4."""
    m = re.match(r"convs\.(\d+)", name)
    if m:
        return 2 ** (int(m.group(1)) // 2 + 3)
    m = re.match(r"to_rgbs\.(\d+)", name)
    if m:
        return 2 ** (int(m.group(1)) + 3)
    return 4


def _part(names: List[str], leaf_module: object, func, args) -> str:
    """The part of the synthesis this aten call belongs to, from the enclosing layers and the op."""
    leaf = names[-1] if names else ""
    op = func._overloadpacket.__name__
    in_rgb = any(n.startswith("to_rgb") for n in names)
    if leaf.endswith("modulation"):
        return "styles (affine)"
    if leaf.endswith(".activate") or op in ("leaky_relu", "leaky_relu_"):
        return "leaky ReLU"
    if leaf.endswith(".upsample") and in_rgb:
        return "skip upsample (FIR)"
    if in_rgb:
        return "skip add" if (op in ("add", "add_") and leaf.count(".") == 1 and args[0].shape[1] == 3
                              and args[1].dim() == 4 and args[1].shape[2] > 1) else "toRGB (1x1 conv + bias)"
    upsampling = getattr(leaf_module, "upsample", False) is True
    if op == "convolution":
        transposed, groups = args[6], args[8]
        if groups > 1 and groups == args[0].shape[1] and args[1].shape[1] == 1:
            return "up-conv FIR blur"
        # the up conv's four phase convolutions (ganedit.ops.transposed_conv) count as the up conv
        return "up conv (transposed 3x3)" if (transposed or upsampling) else "3x3 conv"
    if upsampling and op in ("copy_", "empty", "empty_strided", "flip", "clone"):
        return "up-conv phase interleave"
    if leaf.endswith(".conv") or leaf.endswith(".noise") or re.fullmatch(r"(convs\.\d+|conv1)", leaf):
        return "modulate, demodulate, noise, bias"
    return "other"


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _OpTimer(TorchDispatchMode):
    def __init__(self, stack: List[Tuple[str, object]]) -> None:
        super().__init__()
        self.stack = stack
        self.rows: Dict[Tuple[int, str], List[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # s, flop, bytes, calls

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        start = time.perf_counter()
        out = func(*args, **kwargs)
        seconds = time.perf_counter() - start
        packet = func._overloadpacket
        flops = flop_registry[packet](*args, **kwargs, out_val=out) if packet in flop_registry else 0
        tensors = {id(t): t for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)}
        moved = sum(_nbytes(t) for t in tensors.values())
        names = [n for n, _ in self.stack]
        res = max((_layer_resolution(n) for n in names), default=4)
        row = self.rows[(res, _part(names, self.stack[-1][1] if self.stack else None, func, args))]
        row[0] += seconds
        row[1] += flops
        row[2] += moved
        row[3] += 1
        return out


def profile_synthesis(generator: torch.nn.Module, forward: Callable[[], object]) -> Dict[Tuple[int, str], List[float]]:
    """Run ``forward`` once under the op timer; {(resolution, part): [seconds, flops, bytes, calls]}."""
    stack: List[Tuple[str, object]] = []
    handles = []
    for name, module in generator.named_modules():
        if not name:
            continue
        # (a hook that returned a value would replace the input or output)
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: stack.append((n, m)) and None))
        handles.append(module.register_forward_hook(lambda m, a, o: stack.pop() and None))
    try:
        with torch.no_grad(), _OpTimer(stack) as timer:
            forward()
    finally:
        for h in handles:
            h.remove()
    return dict(timer.rows)


def parts_table(rows: Dict[Tuple[int, str], List[float]], peak_gflops: float) -> List[str]:
    """Markdown: per part, per resolution seconds (and GFLOP/s ÷ peak where it computes), then totals."""
    resolutions = sorted({r for r, _ in rows})
    lines = ["| part | " + " | ".join(f"{r} px" for r in resolutions) + " | total s | GFLOP | ÷ peak | GB/s |",
             "|---|" + "---|" * (len(resolutions) + 4)]
    total = [0.0, 0.0, 0.0]
    for part in PARTS:
        cells = [rows.get((r, part)) for r in resolutions]
        if not any(cells):
            continue
        s = sum(c[0] for c in cells if c)
        f = sum(c[1] for c in cells if c)
        b = sum(c[2] for c in cells if c)
        total = [total[0] + s, total[1] + f, total[2] + b]
        shown = []
        for c in cells:
            if not c:
                shown.append("")
            elif c[1] > 0:
                shown.append(f"{c[0]:.3f} ({c[1] / c[0] / 1e9 / peak_gflops:.2f})")
            else:
                shown.append(f"{c[0]:.3f}")
        ratio = f"{f / s / 1e9 / peak_gflops:.2f}" if f else "-"
        lines.append(f"| {part} | " + " | ".join(shown) + f" | {s:.3f} | {f / 1e9:.1f} | {ratio} | {b / s / 1e9:.1f} |")
    per_res = []
    for r in resolutions:
        s = sum(v[0] for (rr, _), v in rows.items() if rr == r)
        f = sum(v[1] for (rr, _), v in rows.items() if rr == r)
        per_res.append(f"{s:.3f} ({f / s / 1e9 / peak_gflops:.2f})" if f else f"{s:.3f}")
    lines.append("| **all** | " + " | ".join(per_res) + f" | {total[0]:.3f} | {total[1] / 1e9:.1f} | "
                 f"{total[1] / total[0] / 1e9 / peak_gflops:.2f} | {total[2] / total[0] / 1e9:.1f} |")
    return lines
