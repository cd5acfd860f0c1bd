"""Engine overhead: the time the training loop adds around a recipe's step (issue 3 §6; target < 5 %).

tinygan (16 channels: a tiny model makes the fixed per-step costs weigh the most) at 64 px, global batch 16,
CPU, fp32, one torch thread by default. In each step of an engine run, a twin recipe's step is first run bare and timed:
  * engine: ``Trainer.run()`` with its default intervals (logging every 50 steps to JSONL + TensorBoard, progress
    bar, EMA every step, NaN/Inf guard and gradient checks every phase, data order/seeding/collation through
    the DataLoader); the loop's time for the step minus the twin's, plus checkpoint and snapshot writing
    amortised over their default interval (1000 steps);
  * bare: the twin's ``method.train_step`` on a pre-loaded batch with a minimal context (zero_grad / backward /
    optimizer.step, noise from torch.randn), written here as the reference.
Measuring both in the same step makes load from other processes on a shared machine hit them alike; min and
median over all timed steps are reported.

Run: ``python -m benchmarks.bench_engine [--steps 60] [--repeats 3] [--threads 1]``
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import machine_line, write_section
from ganedit.methods.base import StepContext
from ganedit.data.datasets import TensorImages
from ganedit.methods.tinygan import TinyGAN
from ganedit.train.config import resolve
from ganedit.train.loop import Trainer

SIZE, BATCH, CHANNELS, N_IMAGES = 64, 16, 16, 512


def make_images(n: int = N_IMAGES, size: int = SIZE) -> torch.Tensor:
    """Smooth random colour fields in [-1, 1] (kept in memory: the benchmark times the loop, not decoding)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).contiguous()


IMAGES = make_images()


class BenchGAN(TinyGAN):
    """tinygan reading the in-memory images."""

    name = ""

    def build_data(self) -> torch.utils.data.Dataset:
        return TensorImages(IMAGES)


class PlainContext(StepContext):
    """The least a recipe's step needs: no ranks, no guards, no scaling."""

    def __init__(self, opts: Dict[str, torch.optim.Optimizer], batch: int) -> None:
        self.opts = opts
        self.step, self.images_seen, self.rank, self.world_size = 0, 0, 0, 1
        self.device = torch.device("cpu")
        self.batch = self.global_batch = batch

    def autocast(self) -> Any:
        return contextlib.nullcontext()

    def zero_grad(self, opt_name: str) -> None:
        self.opts[opt_name].zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, opt_name: str) -> None:
        loss.backward()

    def apply(self, opt_name: str) -> bool:
        self.opts[opt_name].step()
        return True

    def randn(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype)

    def rand(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        return torch.rand(*shape, dtype=dtype)


def config(out: Path, steps: int) -> Dict[str, Any]:
    cfg = resolve(TinyGAN, {"data": "memory", "out": str(out), "size": SIZE, "channels": CHANNELS, "batch": BATCH, "steps": steps, "device": "cpu", "workers": 0})
    cfg["method"] = "tinygan"
    return cfg


class PairedGAN(BenchGAN):
    """Runs, inside each engine step, the same step of a twin recipe bare (plain context, pre-loaded batch)
    and times it: both are measured at the same moment, so load from other processes hits them alike."""

    name = ""

    def build(self, device: torch.device):
        nets, opts = super().build(device)
        twin = BenchGAN(self.cfg)
        twin.nets, twin.opts = super().build(device)
        twin.ema = {}
        order = torch.randperm(N_IMAGES, generator=torch.Generator().manual_seed(1))
        steps = int(self.cfg["steps"])
        self.batches = [IMAGES[order[(i * BATCH) % (N_IMAGES - BATCH) :][:BATCH]].clone() for i in range(steps)]
        self.twin, self.plain, self.bare_times = twin, PlainContext(twin.opts, BATCH), []
        return nets, opts

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        self.plain.step = ctx.step
        t0 = time.perf_counter()
        self.twin.train_step(self.batches[ctx.step], self.plain)
        self.bare_times.append(time.perf_counter() - t0)
        return super().train_step(batch, ctx)


def paired_run(steps: int, warmup: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(PairedGAN, config(Path(tmp), steps)).run()
        bare = trainer.method.bare_times  # type: ignore[attr-defined]
        engine = [total - b for total, b in zip(trainer.step_times, bare)]
        # Checkpoint and snapshot writing happen every 1000 steps by default: amortise one of each.
        ckpt = trainer.timings["checkpoint"][-1]
        snap = trainer.timings["snapshot"][0] if trainer.timings["snapshot"] else 0.0
        every = trainer.cfg["checkpoint_every"], trainer.cfg["snapshot_every"]
        logged = sum(1 for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines() if "loss/G" in line)
        return {"bare": bare[warmup:], "engine": engine[warmup:], "amortised": ckpt / every[0] + snap / every[1],
                "ckpt": ckpt, "snap": snap, "logged": logged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per repeat (>= 50 so that a log flush is included)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bare: List[float] = []
    engine: List[float] = []
    ratios: List[float] = []
    amortised, ckpts, snaps = [], [], []
    for r in range(args.repeats):
        run = paired_run(args.steps, args.warmup)
        bare += run["bare"]
        engine += run["engine"]
        ratios += [e / b - 1 for e, b in zip(run["engine"], run["bare"])]
        amortised.append(run["amortised"])
        ckpts.append(run["ckpt"])
        snaps.append(run["snap"])
        print(f"repeat {r + 1}: bare median {statistics.median(run['bare']) * 1e3:.2f} ms/step, engine median "
              f"{statistics.median(run['engine']) * 1e3:.2f} ms/step + {run['amortised'] * 1e3:.3f} ms amortised "
              f"checkpoint/snapshot; {run['logged']} log flush(es)", flush=True)
    extra = statistics.median(amortised)
    b_min, b_med = min(bare), statistics.median(bare)
    e_min, e_med = min(engine) + extra, statistics.median(engine) + extra
    over_min, over_med = e_min / b_min - 1, e_med / b_med - 1
    paired_med = statistics.median(ratios) + extra / b_med
    command = f"python -m benchmarks.bench_engine --steps {args.steps} --repeats {args.repeats} --threads {args.threads}"
    table = "\n".join(
        [
            "| ms/step | min | median |",
            "|---|---|---|",
            f"| bare `train_step` (plain context, pre-loaded batch) | {b_min * 1e3:.2f} | {b_med * 1e3:.2f} |",
            f"| engine step (incl. amortised checkpoint + snapshot) | {e_min * 1e3:.2f} | {e_med * 1e3:.2f} |",
            f"| **overhead** (engine / bare - 1) | **{over_min * 100:+.1f} %** | **{over_med * 100:+.1f} %** |",
        ]
    )
    markdown = f"""## Training engine overhead

tinygan ({CHANNELS} channels), {SIZE} px, global batch {BATCH}, CPU fp32, {args.threads} thread(s); {args.repeats} runs of
{args.steps} steps (the first {args.warmup} of each not timed). In every step of an engine run (`Trainer.run()` with its
default intervals: JSONL + TensorBoard logging every 50 steps, progress bar, EMA, NaN/Inf guard, data through the
DataLoader with per-sample seeding in the training process, `workers=0`) the same step of a twin recipe is first
run bare (`method.train_step` with a minimal context on a pre-loaded batch) and timed; the engine step is the loop's
time for the step minus the twin's. Pairing them step by step makes the load of other processes hit both alike.
One checkpoint ({statistics.median(ckpts) * 1e3:.1f} ms) and one snapshot grid ({statistics.median(snaps) * 1e3:.1f} ms)
are amortised over their default 1000-step interval. Target: overhead < 5 %.

{table}

Median of the per-step paired ratios: **{paired_med * 100:+.1f} %**.

Command: `{command}`. Machine: {machine_line()}.
"""
    print(markdown)
    write_section("engine", markdown)


if __name__ == "__main__":
    main()
