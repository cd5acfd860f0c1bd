"""Shared pieces of the benchmark scripts: timing with min/median of repeats, the machine's fp32 peak
measured in the same run (DESIGN.md §7), and writing one section of BENCHMARKS.md without touching the others.

Run a benchmark as a module from the repository root, e.g. ``python -m benchmarks.bench_synthetic``."""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def time_repeats(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Dict[str, float]:
    """Seconds per call of fn: min and median over `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min": min(times), "median": statistics.median(times), "repeats": repeats}


@torch.no_grad()
def fp32_peak_gflops(repeats: int = 5) -> Dict[str, float]:
    """The machine's fp32 peak as DESIGN.md §7 defines it: the better of a 2048^3 matmul and a dense 3x3 conv
    (batch 8, 256->256 channels, 32x32, channels_last). Returns GFLOP/s from the best repeat of each."""
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    mm = time_repeats(lambda: torch.mm(a, b), repeats=repeats)
    mm_gflops = 2 * 2048**3 / mm["min"] / 1e9
    x = torch.randn(8, 256, 32, 32).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    conv = time_repeats(lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats=repeats)
    conv_gflops = 2 * 8 * 256 * 256 * 9 * 32 * 32 / conv["min"] / 1e9
    return {"matmul_gflops": mm_gflops, "conv_gflops": conv_gflops, "peak_gflops": max(mm_gflops, conv_gflops)}


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; torch {torch.__version__}; {torch.get_num_threads()} thread(s); {os.cpu_count()} cores visible"


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section of BENCHMARKS.md between the markers for `name`; other sections stay."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEvery figure below was printed by the command shown with it; ratios are measured within one run.\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_events(run: Path) -> List[Dict[str, object]]:
    """The rows of a training run's metrics.jsonl (``ganedit train`` writes one per log step and event)."""
    import json

    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.jsonl (not a ganedit training run folder?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_clock(run: Path) -> Callable[[int], float]:
    """step -> minutes of training at that step, from the time stamps in metrics.jsonl. The first rows come a few
    steps in, so the start is extrapolated back from the first two time-stamped steps. A resumed run's pause (from
    its last row before a ``resume`` event to that event) does not count."""
    stamped: Dict[int, float] = {}
    offset, last = 0.0, None
    for r in run_events(run):
        if "time" not in r or "step" not in r:
            continue
        if r.get("event") == "resume":
            if last is not None:
                offset = last - float(r["time"])  # type: ignore[arg-type]
            continue
        last = float(r["time"]) + offset  # type: ignore[arg-type]
        stamped[int(r["step"])] = last  # type: ignore[arg-type]
    rows = sorted(stamped.items())
    if len(rows) < 2:
        raise ValueError(f"{run}: fewer than two time-stamped steps in metrics.jsonl")
    (s0, t0), (s1, t1) = rows[0], rows[1]
    start = t0 - s0 * (t1 - t0) / max(1, s1 - s0)
    times = dict(rows)

    def minutes(step: int) -> float:
        if step in times:
            return (times[step] - start) / 60.0
        before = max((s for s in times if s <= step), default=rows[0][0])
        after = min((s for s in times if s >= step), default=rows[-1][0])
        if after == before:
            return (times[before] - start) / 60.0
        t = times[before] + (times[after] - times[before]) * (step - before) / (after - before)
        return (t - start) / 60.0

    return minutes


def run_checkpoints(run: Path) -> List[Path]:
    """The training checkpoints a run kept (``checkpoints/step-*.pt``), oldest first."""
    return sorted((Path(run) / "checkpoints").glob("step-*.pt"))


def checkpoint_step(path: Path) -> int:
    return int(Path(path).stem.split("-")[1])
