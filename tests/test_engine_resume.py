"""Resume after `kill -9`: 2N steps straight equal N steps, a SIGKILL, then `--resume auto` for N more,
bit for bit on CPU (weights, EMA and optimiser state)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import torch

from test_engine import TINY_ARGS, load_ckpt, make_folder, sub_env

N = 4

# Runs the real CLI, but step N+1 (one step past the step-N checkpoint) blocks after announcing itself,
# so the test can SIGKILL the process at a known point: mid-run, with work done since the last checkpoint.
BLOCKING = textwrap.dedent(
    """
    import os, sys, time
    from ganedit.methods.tinygan import TinyGAN
    original = TinyGAN.train_step
    def train_step(self, batch, ctx):
        if ctx.step == int(os.environ["BLOCK_AT"]):
            open(os.environ["MARKER"], "w").close()
            time.sleep(600)
        return original(self, batch, ctx)
    TinyGAN.train_step = train_step
    from ganedit.cli.main import main
    main(sys.argv[1:])
    """
)


def test_kill_9_then_resume_auto_is_bit_exact(tmp_path):
    data = make_folder(tmp_path / "imgs", n=24)
    common = ["train", "tinygan", "--data", str(data), "--batch", "4", "--steps", str(2 * N), "--checkpoint-every", str(N), "--snapshot-every", "3", "--log-every", "1", *TINY_ARGS]
    env = sub_env()
    straight = subprocess.Popen([sys.executable, "-m", "ganedit", *common, "--out", str(tmp_path / "straight")], env=env, stderr=subprocess.PIPE, text=True)

    marker = tmp_path / "blocked"
    killed = subprocess.Popen(
        [sys.executable, "-c", BLOCKING, *common, "--out", str(tmp_path / "killed")],
        env={**env, "BLOCK_AT": str(N + 1), "MARKER": str(marker)}, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 90
    while not marker.exists():
        assert killed.poll() is None, killed.stderr.read()
        assert time.time() < deadline, "the training subprocess never reached step N+1"
        time.sleep(0.05)
    killed.kill()  # SIGKILL: no handler runs, nothing is flushed
    killed.wait()
    ckpts = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("step-*.pt"))
    assert ckpts == [f"step-{N:09d}.pt"] and not (tmp_path / "killed" / "model").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "ganedit", *common, "--out", str(tmp_path / "killed"), "--resume", "auto"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert straight.wait(timeout=120) == 0, straight.stderr.read()

    a = load_ckpt(tmp_path / "straight" / "checkpoints" / f"step-{2 * N:09d}.pt")
    b = load_ckpt(tmp_path / "killed" / "checkpoints" / f"step-{2 * N:09d}.pt")
    assert a["step"] == b["step"] == 2 * N and a["images_seen"] == b["images_seen"]
    for group in ("nets", "ema"):
        for name in a[group]:
            for key, value in a[group][name].items():
                assert torch.equal(value, b[group][name][key]), f"{group}.{name}.{key} differs"
    for name in a["opts"]:
        for pid, st in a["opts"][name]["state"].items():
            for key, value in st.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["opts"][name]["state"][pid][key])), f"opt {name} {key}"
    # The killed run logged step N+1 before dying; resuming dropped it: one record per step, in order.
    records = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss/G" in r] == list(range(1, 2 * N + 1))
    assert [r["step"] for r in records if r.get("event") == "resume"] == [N]
