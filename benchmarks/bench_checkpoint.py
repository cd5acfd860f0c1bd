"""Cost of checkpoint integrity: writing and reading a training checkpoint with the sha256 content digest
(``ganedit.train.checkpoint.save_atomic`` / ``load``) against the same atomic write and ``torch.load`` without it.

The state is a stand-in of a given size: float32 tensors in the proportions of a GAN checkpoint (networks, an
EMA copy, two Adam moments), plus the plain values a real one holds. Each variant is timed over ``--repeats``
calls (min and median) in the same run, so the ratios compare like with like on a shared machine.

Run: ``python -m benchmarks.bench_checkpoint [--mb 64] [--repeats 5]``
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from benchmarks.common import machine_line, time_repeats, write_section
from ganedit.formats.atomic import write_atomic
from ganedit.train import checkpoint as ckpt


def make_state(megabytes: float) -> Dict[str, Any]:
    """About ``megabytes`` MB of float32 tensors in 4 groups of 50 layers, plus counters and a configuration."""
    per_tensor = max(1, int(megabytes * 2**20 / 4 / 200))
    g = torch.Generator().manual_seed(0)
    groups = {name: {f"layer{i}.weight": torch.randn(per_tensor, generator=g) for i in range(50)}
              for name in ("G", "EMA", "adam_m", "adam_v")}
    return {"format": ckpt.FORMAT, "version": ckpt.VERSION, "step": 1000, "images_seen": 16000, "config": {"lr": 0.002},
            "nets": {"G": groups["G"]}, "ema": {"G": groups["EMA"]}, "opts": {"G": {"m": groups["adam_m"], "v": groups["adam_v"]}},
            "ranks": [{"rng": {"torch": torch.get_rng_state()}}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=64.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    state = make_state(args.mb)
    with tempfile.TemporaryDirectory() as tmp:
        plain, checked = Path(tmp) / "plain.pt", Path(tmp) / "step-000001000.pt"
        results = {
            "write, no digest": time_repeats(lambda: write_atomic(plain, lambda h: torch.save(state, h), 0), args.repeats),
            "write + digest (save_atomic)": time_repeats(lambda: ckpt.save_atomic(dict(state), checked), args.repeats),
            "torch.load, no check": time_repeats(lambda: torch.load(plain, weights_only=True), args.repeats),
            "load + verify (checkpoint.load)": time_repeats(lambda: ckpt.load(checked), args.repeats),
            "digest alone": time_repeats(lambda: ckpt.content_digest(state), args.repeats),
        }
        size = checked.stat().st_size
    rows = [f"| {name} | {r['min']:.3f} | {r['median']:.3f} |" for name, r in results.items()]
    w = results["write + digest (save_atomic)"]["median"] / results["write, no digest"]["median"]
    r = results["load + verify (checkpoint.load)"]["median"] / results["torch.load, no check"]["median"]
    digest_rate = size / 2**20 / results["digest alone"]["min"]
    text = "\n".join([
        "## Checkpoint integrity (sha256 content digest)",
        "",
        f"Command: `python -m benchmarks.bench_checkpoint --mb {args.mb:g} --repeats {args.repeats}`. {machine_line()}. "
        f"A {size / 2**20:.1f} MB checkpoint (float32 tensors in 4 groups of 50, written with fsync to the temp folder).",
        "",
        "| operation | s (min) | s (median) |",
        "|---|---|---|",
        *rows,
        "",
        f"Median ratios in this run: writing with the digest {w:.2f}x, reading and verifying {r:.2f}x; the digest "
        f"alone runs at {digest_rate:.0f} MB/s (best repeat).",
    ])
    print(text)
    if not args.no_write:
        write_section("checkpoint", text)


if __name__ == "__main__":
    main()
