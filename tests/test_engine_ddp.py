"""torchrun with 2 CPU processes (gloo) trains tinygan, lazy R1 included, to the same weights on both ranks,
and to the weights of 1 process on the same global batch (atol 1e-5).

The comparison with 1 process uses SGD: Adam's first updates are lr * sign(g), which turns the last-bit
differences of a sum over 8 samples versus two sums over 4 into lr-sized jumps wherever a gradient element
is near zero; with SGD any engine error (wrong sharding, noise, averaging) would show, rounding does not."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from ganedit.methods.tinygan import TinyGAN
from ganedit.train.config import resolve
from ganedit.train.loop import seed_all
from test_engine import load_ckpt, make_folder, sub_env

OPTIONS = {"batch": 8, "steps": 4, "r1_every": 2, "lr": 0.05, "optimizer": "sgd", "betas": [0.5, 0.99], "channels": 16, "z_dim": 16,
           "workers": 0, "device": "cpu", "quiet": True, "tensorboard": False, "snapshot_every": 0}

# Launched by torchrun (2 ranks) and by plain python (1 process): trains, then each rank saves its weights.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    from ganedit.train import train
    out, data, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    trainer = train("tinygan", {"data": data, "out": out, **options})
    rank = int(os.environ.get("RANK", "0"))
    if os.path.isdir("/proc/self/task"):  # the native threads still running once train() returned (Linux)
        names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
        with open(os.path.join(out, f"threads{rank}.json"), "w") as f:
            json.dump(names, f)
    weights = {f"{n}.{k}": v for n, net in trainer.nets.items() for k, v in net.state_dict().items()}
    torch.save(weights, os.path.join(out, f"rank{rank}.pt"))
    """
)


def test_two_gloo_processes_match_each_other_and_one_process(tmp_path):
    import json

    data = make_folder(tmp_path / "imgs", n=24)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = sub_env()
    args = [str(data), json.dumps(OPTIONS)]
    two = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(tmp_path / "two"), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), *args], env=env, capture_output=True, text=True, timeout=180)
    assert one.returncode == 0, one.stderr
    out, _ = two.communicate(timeout=180)
    assert two.returncode == 0, out

    # The process group is gone when train() returns: no gloo thread may outlive it into interpreter exit,
    # where one freeing a finished collective's tensors aborts the process (see distributed.init).
    for rank in (0, 1):
        threads = tmp_path / "two" / f"threads{rank}.json"
        if threads.exists():
            left = [name for name in json.loads(threads.read_text()) if "gloo" in name]
            assert not left, f"rank {rank}: gloo threads still running after train(): {left}"

    r0, r1 = load_ckpt(tmp_path / "two" / "rank0.pt"), load_ckpt(tmp_path / "two" / "rank1.pt")
    single = load_ckpt(tmp_path / "one" / "rank0.pt")
    for key in single:
        assert torch.equal(r0[key], r1[key]), f"{key} differs between ranks"
        torch.testing.assert_close(r0[key], single[key], rtol=0, atol=1e-5, msg=lambda m: f"{key}, 2 processes vs 1: {m}")

    # Training moved the weights well beyond the tolerance (the engine seeds the build with cfg["seed"]).
    seed_all(0)
    nets, _ = TinyGAN(resolve(TinyGAN, OPTIONS)).build(torch.device("cpu"))
    initial = {f"{n}.{k}": v for n, net in nets.items() for k, v in net.state_dict().items()}
    moved = max((single[k] - initial[k]).abs().max().item() for k in single)
    assert 1e-3 < moved < 0.05  # 100x the tolerance; far below init scale (~0.1), so `initial` is the real start

    # Rank 0's checkpoint holds these weights and every rank's random state.
    final = load_ckpt(tmp_path / "two" / "checkpoints" / "step-000000004.pt")
    assert final["world_size"] == 2 and len(final["ranks"]) == 2
    assert not torch.equal(final["ranks"][0]["rng"]["torch"], final["ranks"][1]["rng"]["torch"])
    for name, state in final["nets"].items():
        for k, v in state.items():
            assert torch.equal(v, r0[f"{name}.{k}"])
