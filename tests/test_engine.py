"""Training engine, in-process checks: configuration, registry, data order, schedules, EMA, NaN/Inf guard,
atomic checkpoints, signals, logs and export. (Subprocess checks: test_engine_resume.py, test_engine_ddp.py;
they import the helpers at the top of this file.)"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

import ganedit
from ganedit.errors import CheckpointError, ConfigError
from ganedit.methods import available_methods, get_method
from ganedit.methods.tinygan import TinyGAN
from ganedit.train import checkpoint as ckpt
from ganedit.train.config import parse_sets, resolve, resume_config
from ganedit.train.data import SeededItems, ShardedBatchSampler, make_loader
from ganedit.train.ema import EMA
from ganedit.train.loop import Trainer, TrainingDiverged, train
from ganedit.train.schedules import lr_factor

REPO = Path(__file__).resolve().parents[1]

# Small and fast: 32 px, 16 channels (a few ms per step).
TINY_SETS = {"channels": 16, "z_dim": 16, "tensorboard": False, "workers": 0, "device": "cpu", "quiet": True}
TINY_ARGS = ["--set", "channels=16", "--set", "z_dim=16", "--set", "tensorboard=false", "--workers", "0", "--device", "cpu", "--quiet"]


def make_folder(path: Path, n: int = 32, size: int = 32, seed: int = 0) -> Path:
    """n PNGs of smooth random colour gradients (a learnable distribution, unlike white noise)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        a, b, c = rng.random((3, 3))
        img = np.stack([a[k] * xx + b[k] * yy + c[k] * (1 - xx) for k in range(3)], -1)
        Image.fromarray((np.clip(img / 2, 0, 1) * 255).astype(np.uint8)).save(path / f"{i:03d}.png")
    return path


def sub_env() -> Dict[str, str]:
    """Environment of training subprocesses: one thread each, ganedit importable, no torchrun variables."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "imgs")


def run_trainer(cls, out: Path, data: Path, **overrides) -> Trainer:
    cfg = resolve(cls, {**TINY_SETS, "data": str(data), "out": str(out), **overrides})
    return Trainer(cls, cfg).run()


# -- configuration and registry -----------------------------------------------------------------------------------
def test_registry_finds_tinygan_and_lists_known_names():
    assert get_method("tinygan") is TinyGAN
    assert "tinygan" in available_methods()
    with pytest.raises(ConfigError, match="unknown method 'nope'.*tinygan"):
        get_method("nope")


def test_config_merges_and_type_checks():
    cfg = resolve(TinyGAN, {**parse_sets(["r1_gamma=5", "betas=[0.5, 0.9]", "size=64"]), "batch": 4})
    assert cfg["r1_gamma"] == 5.0 and isinstance(cfg["r1_gamma"], float)  # int given, float default
    assert cfg["betas"] == [0.5, 0.9] and cfg["size"] == 64 and cfg["batch"] == 4
    assert cfg["steps"] == TinyGAN.defaults["steps"]  # recipe default wins over the engine's
    assert cfg["out"] == "runs/tinygan"
    with pytest.raises(ConfigError, match="unknown option 'r2_gamma'"):
        resolve(TinyGAN, parse_sets(["r2_gamma=1"]))
    with pytest.raises(ConfigError, match="size"):
        resolve(TinyGAN, parse_sets(["size=big"]))
    with pytest.raises(ConfigError, match="precision"):
        resolve(TinyGAN, {"precision": "fp8"})
    json.dumps(cfg)  # one serialisable record


def test_resume_config_keeps_saved_values_and_reports_changes():
    saved = resolve(TinyGAN, {"lr": 0.01, "steps": 10})
    cfg, changed = resume_config(TinyGAN, saved, {"steps": 20})
    assert cfg["lr"] == 0.01 and cfg["steps"] == 20 and changed == []  # steps may change freely
    cfg, changed = resume_config(TinyGAN, saved, {"lr": 0.02})
    assert cfg["lr"] == 0.02 and changed == ["lr"]


def test_cli_dry_run_prints_resolved_config(capsys):
    from ganedit.cli.main import main

    main(["train", "--help"])
    assert "GLOBAL batch" in capsys.readouterr().out

    main(["train", "tinygan", "--data", "x", "--batch", "8", "--set", "r1_every=2", "--dry-run"])
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["batch"] == 8 and cfg["r1_every"] == 2 and cfg["method"] == "tinygan" and cfg["data"] == "x"


# -- data order -----------------------------------------------------------------------------------------------
def _take(sampler: ShardedBatchSampler, n: int) -> List[List[tuple]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_shards_are_world_size_invariant_and_resumable():
    one = _take(ShardedBatchSampler(10, 4, 0, 1, seed=3, shuffle=True), 7)  # 2 batches per epoch
    r0 = _take(ShardedBatchSampler(10, 4, 0, 2, seed=3, shuffle=True), 7)
    r1 = _take(ShardedBatchSampler(10, 4, 1, 2, seed=3, shuffle=True), 7)
    assert all(a + b == c for a, b, c in zip(r0, r1, one))  # ranks' slices concatenate to the global batch
    assert _take(ShardedBatchSampler(10, 4, 0, 1, seed=3, shuffle=True, start_step=3), 4) == one[3:]
    epochs = [sorted(i for b in one[e * 2 : e * 2 + 2] for i, _ in b) for e in range(3)]
    assert all(len(set(e)) == 8 for e in epochs)  # no repeats within an epoch
    assert [i for i, _ in one[0]] != [i for i, _ in one[2]]  # reshuffled per epoch
    with pytest.raises(ganedit.errors.DataError, match="fewer than one global batch"):
        ShardedBatchSampler(3, 4, 0, 1, seed=0, shuffle=True)


def test_seeded_items_are_reproducible_and_leave_global_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(1) + float(np.random.rand()) + i

    ds = SeededItems(Noisy())
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = ds.__getitems__([(0, 11), (1, 12)])
    assert torch.equal(torch.get_rng_state(), before)
    b = ds.__getitems__([(1, 12)])
    assert torch.equal(a[1], b[0])  # same (index, seed): same draws, whatever came before
    assert not torch.equal(a[0], a[1] - 1)  # another seed: other draws


def test_loader_workers_give_the_same_batches_as_the_main_process():
    class Augmented(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            import random

            return torch.full((2,), float(i)) + random.random() + torch.rand(2)

    def batches(workers):
        sampler = ShardedBatchSampler(12, 4, 0, 1, seed=5, shuffle=True)
        it = iter(make_loader(Augmented(), sampler, workers, pin=False))
        return [next(it) for _ in range(5)]

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x, y)


# -- schedules and EMA ----------------------------------------------------------------------------------------------
def test_lr_schedules():
    cfg = {"steps": 100, "lr_schedule": "linear", "lr_decay_start": 50, "lr_warmup": 10}
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 30) == 1.0 and lr_factor(cfg, 75) == pytest.approx(0.5)
    assert lr_factor({**cfg, "lr_schedule": "cosine", "lr_warmup": 0}, 75) == pytest.approx(0.5)
    assert lr_factor({**cfg, "lr_schedule": "constant", "lr_warmup": 0}, 99) == 1.0


def test_ema_half_life_in_images():
    net = torch.nn.Linear(2, 2)
    ema = EMA({"G": net}, ["G"], ema_kimg=0.01)  # half-life 10 images
    with torch.no_grad():
        target = [p + 1 for p in net.parameters()]
        for p, t in zip(net.parameters(), target):
            p.copy_(t)
    ema.update(batch=10, images_seen=10)  # one half-life: half way to the new weights
    for s, p in zip(ema.copies["G"].parameters(), net.parameters()):
        torch.testing.assert_close(s, p - 0.5)
    assert not ema.copies["G"].weight.requires_grad


def test_ema_buffers_copied_or_averaged():
    """Running statistics are copied by default (StyleGAN2-ADA); with average_buffers they follow the same average
    as the weights. The integer batch counter is copied either way."""
    for average, expected in ((False, 2.0), (True, 1.0)):  # one half-life from 0 towards 2: half way when averaged
        net = torch.nn.BatchNorm1d(3)
        ema = EMA({"G": net}, ["G"], ema_kimg=0.01, average_buffers=average)
        with torch.no_grad():
            net.running_mean.fill_(2.0)
            net.num_batches_tracked.fill_(7)
        ema.update(batch=10, images_seen=10)
        shadow = ema.copies["G"]
        torch.testing.assert_close(shadow.running_mean, torch.full((3,), expected))
        assert int(shadow.num_batches_tracked) == 7


# -- NaN/Inf guard ------------------------------------------------------------------------------------------------
class PoisonedGAN(TinyGAN):
    """tinygan whose G loss becomes NaN from step `poison_from` on."""

    name = ""  # not discoverable
    poison_from = 2

    def train_step(self, batch, ctx):
        if ctx.step >= self.poison_from:
            D, G = self.nets["D"], self.nets["G"]
            loss = D(G(ctx.randn(4, self.cfg["z_dim"]))).mean() * float("nan")
            ctx.optimize("G", loss)
            return {"loss/G": loss.detach()}
        return super().train_step(batch, ctx)


def test_nonfinite_steps_are_skipped_then_stop_with_checkpoint(images, tmp_path):
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4, "steps": 20, "nan_patience": 3, "checkpoint_every": 0})
    cfg["method"] = "tinygan"
    trainer = Trainer(PoisonedGAN, cfg)
    with pytest.raises(TrainingDiverged, match="3 steps in a row"):
        trainer.run()
    good = {k: v.clone() for k, v in trainer.nets["G"].state_dict().items()}
    state = load_ckpt(tmp_path / "checkpoints" / ckpt.checkpoint_name(2 + 3))
    for k, v in state["nets"]["G"].items():
        assert torch.isfinite(v).all()
        assert torch.equal(v, good[k])
    events = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "nonfinite"] == [3, 4, 5]


# -- checkpoints ----------------------------------------------------------------------------------------------------
def test_kill_during_checkpoint_write_never_leaves_a_bad_latest(images, tmp_path, monkeypatch):
    trainer = run_trainer(TinyGAN, tmp_path, images, batch=4, steps=4, checkpoint_every=2)
    folder = tmp_path / "checkpoints"
    assert [s for s, _ in ckpt.list_checkpoints(folder)] == [4, 2]

    # A writer dies half way through the file: the step-6 name never appears, the temporary is cleaned up.
    real_save = torch.save

    def dying_save(obj, handle, *a, **k):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # stands in for a kill arriving mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    trainer.step = 6
    with pytest.raises(KeyboardInterrupt):
        trainer.checkpoint()
    monkeypatch.setattr(torch, "save", real_save)
    assert [s for s, _ in ckpt.list_checkpoints(folder)] == [4, 2]
    assert not list(folder.glob(".*tmp*"))

    # A file that is not atomic (copied by hand, truncated disk) is skipped by --resume auto.
    data = (folder / ckpt.checkpoint_name(4)).read_bytes()
    (folder / ckpt.checkpoint_name(8)).write_bytes(data[: len(data) // 2])
    (folder / ".step-000000010.pt.tmp-123").write_bytes(data[:100])
    path, state = ckpt.find_latest(folder, warn=False)
    assert path.name == ckpt.checkpoint_name(4) and state["step"] == 4
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ckpt.load(folder / ckpt.checkpoint_name(8))
    ckpt.remove_temporaries(folder)
    assert not (folder / ".step-000000010.pt.tmp-123").exists()


def test_checkpoint_is_complete_and_weights_only(images, tmp_path):
    trainer = run_trainer(TinyGAN, tmp_path, images, batch=4, steps=3, keep=2, checkpoint_every=1)
    files = ckpt.list_checkpoints(tmp_path / "checkpoints")
    assert [s for s, _ in files] == [3, 2]  # keep=2
    state = ckpt.load(files[0][1])  # weights_only=True inside
    assert state["step"] == 3 and state["images_seen"] == 12 and state["config"]["batch"] == 4
    assert set(state["nets"]) == {"G", "D"} and set(state["ema"]) == {"G"} and set(state["opts"]) == {"G", "D"}
    assert state["epoch"] == 0 and state["batch_in_epoch"] == 3 and len(state["ranks"]) == 1
    assert {"python", "numpy", "torch"} <= set(state["ranks"][0]["rng"])
    for k, v in trainer.ema.copies["G"].state_dict().items():
        assert torch.equal(state["ema"]["G"][k], v)


def test_resume_continues_exactly_in_process(images, tmp_path):
    straight = run_trainer(TinyGAN, tmp_path / "a", images, batch=4, steps=6, checkpoint_every=3)
    first = run_trainer(TinyGAN, tmp_path / "b", images, batch=4, steps=3)
    assert first.step == 3
    with pytest.raises(ConfigError, match="already holds training checkpoints"):  # no silent mixing of two runs
        train("tinygan", {**TINY_SETS, "data": str(images), "out": str(tmp_path / "b"), "batch": 4, "steps": 6})
    resumed = train("tinygan", {**TINY_SETS, "data": str(images), "out": str(tmp_path / "b"), "batch": 4, "steps": 6}, resume="auto")
    assert resumed.step == 6 and resumed.resumed_from.name == ckpt.checkpoint_name(3)
    for name in ("G", "D"):
        for (k, a), b in zip(straight.nets[name].state_dict().items(), resumed.nets[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"


# -- signals, logs, export ------------------------------------------------------------------------------------------
class SelfTerminating(TinyGAN):
    name = ""

    def train_step(self, batch, ctx):
        out = super().train_step(batch, ctx)
        if ctx.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step; the step must still finish
        return out


def test_sigterm_finishes_the_step_and_writes_a_checkpoint(images, tmp_path):
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4, "steps": 50, "checkpoint_every": 0})
    cfg["method"] = "tinygan"
    previous = signal.getsignal(signal.SIGTERM)
    trainer = Trainer(SelfTerminating, cfg).run()
    assert trainer.stopped_by == "SIGTERM" and trainer.step == 3
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "checkpoints")] == [3]
    assert ganedit.load(tmp_path / "model").checkpoint_meta["step"] == 3  # every stop exports model/


def test_end_of_run_exports_model_logs_and_snapshots(images, tmp_path):
    trainer = run_trainer(TinyGAN, tmp_path, images, batch=4, steps=4, log_every=2, snapshot_every=2, snapshot_n=4, tensorboard=True)
    model = ganedit.load(tmp_path / "model")
    z = torch.randn(2, 16)
    torch.testing.assert_close(model(z), trainer.ema.copies["G"](z), rtol=0, atol=0)
    assert model.checkpoint_meta["method"] == "tinygan" and model.checkpoint_meta["step"] == 4
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scalars = [r for r in records if "loss/G" in r]
    assert [r["step"] for r in scalars] == [2, 4] and all(r["speed/img_per_s"] > 0 for r in scalars)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [f"step-{s:09d}.png" for s in (0, 2, 4)]
    grid = Image.open(tmp_path / "snapshots" / "step-000000004.png")
    assert grid.size[0] > 4 * 32 and len(list((tmp_path / "tb").iterdir())) == 1
    assert json.loads((tmp_path / "train_config.json").read_text())["steps"] == 4


def test_global_batch_must_divide_over_processes(images, tmp_path, monkeypatch):
    from ganedit.train import distributed

    monkeypatch.setattr(distributed, "init", lambda device: distributed.DistInfo(rank=0, world_size=3))
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4})
    with pytest.raises(ConfigError, match="global batch.*divisible"):
        Trainer(TinyGAN, cfg)


def test_fp16_on_cpu_is_a_clear_error(images, tmp_path):
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4, "precision": "fp16"})
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        Trainer(TinyGAN, cfg)


def test_bf16_autocast_trains_on_cpu(images, tmp_path):
    trainer = run_trainer(TinyGAN, tmp_path, images, batch=4, steps=2, precision="bf16")
    assert trainer.step == 2 and all(torch.isfinite(p).all() for p in trainer.nets["G"].parameters())


def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog):
    from ganedit.train import context

    monkeypatch.setattr(context, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="ganedit.train.context"):
        assert context.autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert "no native bf16" in caplog.text
    monkeypatch.setattr(context, "cpu_has_native_bf16", lambda: True)
    caplog.clear()
    with caplog.at_level("WARNING", logger="ganedit.train.context"):
        context.autocast_dtype("bf16", torch.device("cpu"))
    assert "no native bf16" not in caplog.text
