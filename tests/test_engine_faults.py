"""Training engine under faults (issue 11, sections 1 and 2): signals to the whole process group with DataLoader
workers, a model/ after every stop and loadable run folders / training checkpoints, the --minutes budget and the
schedules fitted to it, checksummed checkpoints, a full disk, divergence advice that works when followed,
rotation that keeps the last healthy checkpoints, and a clear message when an env:// peer dies."""
from __future__ import annotations

import errno
import json
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ganedit
from ganedit.errors import CheckpointError, StorageError
from ganedit.methods.tinygan import TinyGAN
from ganedit.train import checkpoint as ckpt
from ganedit.train.config import resolve
from ganedit.train.loop import Trainer, TrainingDiverged, train
from test_engine import TINY_ARGS, TINY_SETS, PoisonedGAN, load_ckpt, make_folder, run_trainer, sub_env


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "imgs", n=16)


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.stderr.read() if proc.stderr else ''}")
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _logged_steps(out: Path) -> int:
    try:
        return sum('"loss/G"' in line for line in (out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


# -- 1. stopping always leaves something usable ---------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_process_group_with_workers_checkpoints_exports_and_exits_0(tmp_path, images, sig):
    """Ctrl-C in a terminal (SIGINT) and `kill -- -PGID` (SIGTERM) reach the DataLoader workers too."""
    out = tmp_path / "run"
    args = ["train", "tinygan", "--data", str(images), "--out", str(out), "--batch", "4", "--steps", "100000",
            "--log-every", "1", "--snapshot-every", "0", "--checkpoint-every", "0", *TINY_ARGS, "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "ganedit", *args], env=sub_env(), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a shell job
    try:
        _wait_for(lambda: _logged_steps(out) >= 3, proc, "training started")
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and f"stopped by {sig.name}" in err
    files = ckpt.list_checkpoints(out / "checkpoints")
    assert len(files) == 1
    state = ckpt.load(files[0][1])
    model = ganedit.load(out / "model")
    assert model.checkpoint_meta["step"] == state["step"] >= 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["ema"]["G"][key])


def _sigterm_two_rank_run(launcher, out, images):
    """Start a 2-rank tinygan run (DataLoader workers on) with ``launcher`` + the train command, SIGTERM the
    launcher after 3 logged steps; (return code, stderr), after checking both ranks' checkpoint and model/."""
    train = ["train", "tinygan", "--data", str(images), "--out", str(out), "--batch", "4", "--steps", "100000",
             "--log-every", "1", "--snapshot-every", "0", "--checkpoint-every", "0", *TINY_ARGS, "--workers", "1"]
    proc = subprocess.Popen([sys.executable, *launcher(train)], env=sub_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _logged_steps(out) >= 3, proc, "training started", timeout=240)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = ckpt.load(ckpt.list_checkpoints(out / "checkpoints")[0][1])
    assert state["world_size"] == 2 and ganedit.load(out / "model").checkpoint_meta["step"] == state["step"]
    return proc.returncode, err


def test_sigterm_to_torchrun_with_workers_checkpoints_and_exports(tmp_path, images):
    torchrun = lambda train: ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ganedit", *train]  # noqa: E731
    _, err = _sigterm_two_rank_run(torchrun, tmp_path / "run", images)
    assert "stopped by SIGTERM" in err and "DataLoader worker" not in err, err
    assert 'File "' + str(Path(ganedit.__file__).parent) not in err  # no traceback from ganedit (torchrun prints its own)


def test_sigterm_to_ganedit_torchrun_exits_zero_after_a_clean_stop(tmp_path, images):
    """`ganedit torchrun` is torchrun's agent with an honest exit status: 0 and one line after the ranks stopped
    cleanly (plain torchrun exits 1 with a traceback after the same stop)."""
    launcher = lambda train: ["-m", "ganedit", "torchrun", "--standalone", "--nproc_per_node=2", *train]  # noqa: E731
    rc, err = _sigterm_two_rank_run(launcher, tmp_path / "run", images)
    assert rc == 0, err
    assert "Traceback" not in err and "ganedit torchrun: stopped by SIGTERM at step" in err, err


def test_ganedit_torchrun_reports_a_failed_rank_with_a_nonzero_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ganedit", "torchrun", "--standalone", "--nproc_per_node=2", "train",
                           "tinygan", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")],
                          env=sub_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1
    assert "ganedit torchrun: a training process failed (rank 0: exit" in proc.stderr, proc.stderr


def test_ganedit_torchrun_needs_the_train_command():
    proc = subprocess.run([sys.executable, "-m", "ganedit", "torchrun", "--nproc_per_node=2"], env=sub_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "name the command to run" in proc.stderr and "Traceback" not in proc.stderr


def test_load_accepts_run_folders_and_training_checkpoints(tmp_path, images):
    out = tmp_path / "run"
    run_trainer(TinyGAN, out, images, batch=4, steps=3, checkpoint_every=2, snapshot_every=0)
    final = out / "checkpoints" / ckpt.checkpoint_name(3)
    state = ckpt.load(final)
    from_model = ganedit.load(out)  # model/ is as new as the newest checkpoint
    assert from_model.checkpoint_meta["step"] == 3 and "from_training_checkpoint" not in from_model.checkpoint_meta

    for source in (final, out / "checkpoints" / ckpt.checkpoint_name(2)):
        model = ganedit.load(source)  # a checkpoint file: the EMA generator, as the recipe exports it
        expected = ckpt.load(source)["ema"]["G"]
        assert model.checkpoint_meta["step"] == int(source.stem.split("-")[1]) and not model.training
        for key, value in model.state_dict().items():
            assert torch.equal(value, expected[key]), key

    renamed = tmp_path / "my_run.pt"  # under any name (found by the converter that recognises the layout)
    renamed.write_bytes(final.read_bytes())
    assert torch.equal(ganedit.load(renamed).state_dict()["fc.weight"], state["ema"]["G"]["fc.weight"])

    # As after kill -9: no model/ and a newer checkpoint; the run folder gives the newest checkpoint's EMA model.
    import shutil

    shutil.rmtree(out / "model")
    model = ganedit.load(out)
    assert model.checkpoint_meta["step"] == 3
    assert torch.equal(model.state_dict()["fc.weight"], state["ema"]["G"]["fc.weight"])

    from ganedit.cli.main import main

    main(["convert", str(out), str(tmp_path / "native")])
    assert torch.equal(ganedit.load(tmp_path / "native").state_dict()["fc.weight"], state["ema"]["G"]["fc.weight"])
    with pytest.raises(CheckpointError, match="without model/ and without a usable checkpoint"):
        (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
        ganedit.load(tmp_path / "empty")


def test_translate_and_swap_loaders_accept_run_folders(tmp_path):
    from ganedit.cli.swap import load_swapae
    from ganedit.cli.translate import load_translation_model
    from ganedit.models.pix2pix import UnetGenerator
    from ganedit.models.swapae import SwappingAutoencoder

    fast = {"workers": 0, "device": "cpu", "tensorboard": False, "quiet": True, "snapshot_every": 0, "checkpoint_every": 0}
    p2p = train("pix2pix", {**fast, "data": "synthetic:4", "out": str(tmp_path / "p2p"), "steps": 1, "crop_size": 32,
                            "batch": 2, "ngf": 4, "ndf": 4, "netG": "unet_32"})
    model = load_translation_model(str(tmp_path / "p2p"))
    assert isinstance(model, UnetGenerator)
    for key, value in model.state_dict().items():
        assert torch.equal(value, p2p.nets["G"].state_dict()[key])
    model = load_translation_model(str(tmp_path / "p2p" / "checkpoints" / ckpt.checkpoint_name(1)))
    assert isinstance(model, UnetGenerator)

    train("swapae", {**fast, "data": "synthetic:8", "out": str(tmp_path / "sae"), "steps": 1, "size": 32, "width": 4,
                     "texture_channels": 8, "batch": 4})
    (tmp_path / "sae" / "model" / "config.json").unlink()  # leaves only the checkpoint usable
    (tmp_path / "sae" / "model" / "model.safetensors").unlink()
    (tmp_path / "sae" / "model").rmdir()
    assert isinstance(load_swapae(str(tmp_path / "sae")), SwappingAutoencoder)


def test_minutes_budget_stops_with_model_and_fits_the_linear_decay(tmp_path, images):
    out = tmp_path / "run"
    trainer = run_trainer(TinyGAN, out, images, batch=4, steps=100000, minutes=0.04, lr_schedule="linear",
                          lr_decay_start=50000, log_every=1, snapshot_every=0, checkpoint_every=0)
    fitted = trainer.cfg["steps"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = [r for r in rows if r.get("event") == "budget"][0]["steps"]  # measured again at the decay start, maybe fewer
    assert fitted <= first < 100000 and trainer.cfg["lr_decay_start"] == round(50000 * first / 100000)
    # Whichever comes first: the budget, or the fitted steps (when later steps ran faster than the measured ones).
    if trainer.stopped_by is None:
        # (measured again at the decay start, the fit can end the steps at the budget itself: train_seconds then
        # also counts the last checkpoint and the export after the final step)
        assert trainer.step == fitted and trainer.train_seconds < 2.4 + 5
    else:
        assert trainer.stopped_by == "time budget (0.04 min)" and 2.4 <= trainer.train_seconds < 60
    assert trainer.train_seconds > 0.6 and 3 < trainer.step <= fitted  # the fit landed near the budget
    factors = [r["lr_factor"] for r in rows if "lr_factor" in r]
    assert factors[0] == 1.0 and factors[-1] < 0.9  # the decay ran within the budget (unfitted: 1.0 until step 50000)
    assert [r for r in rows if r.get("event") == "budget"][-1]["steps"] == fitted  # the last fit (see the refit test)
    state = ckpt.load(ckpt.list_checkpoints(out / "checkpoints")[0][1])
    assert state["config"]["steps"] == fitted and state["budget_minutes"] == 0.04
    assert json.loads((out / "train_config.json").read_text())["steps"] == fitted
    assert ganedit.load(out / "model").checkpoint_meta["step"] == trainer.step

    # Resuming continues the same budget (training time is summed over sessions): it is spent, one step more at most.
    resumed = train("tinygan", {**TINY_SETS, "data": str(images), "out": str(out)}, resume="auto")
    assert resumed.cfg["steps"] == fitted and resumed.step <= trainer.step + 1


def test_budget_refits_the_recipes_own_step_tied_schedule(tmp_path):
    """pix2pix derives lr_decay_start = decay_from * steps; the budget's fit keeps that rule."""
    from ganedit.methods.pix2pix import Pix2Pix, decay_start

    cfg = resolve(Pix2Pix, {"data": "synthetic:4", "out": str(tmp_path), "steps": 1000, "crop_size": 32, "batch": 2,
                            "ngf": 4, "ndf": 4, "netG": "unet_32", "device": "cpu", "workers": 0, "minutes": 1.0})
    trainer = Trainer(Pix2Pix, cfg)
    assert trainer.cfg["lr_decay_start"] == 500
    trainer.fit_steps_to_budget(301)
    assert trainer.steps == trainer.cfg["steps"] == 301
    assert trainer.cfg["lr_decay_start"] == decay_start({"steps": 301, "decay_from": 0.5}) == 150
    assert trainer.schedule.cfg["lr_decay_start"] == 150  # the schedule reads the fitted values


class FakeClock:
    """The engine's clock (``loop.time.perf_counter``), advanced only by the steps of ``SlowingGAN``."""

    now = 0.0

    @classmethod
    def perf_counter(cls) -> float:
        return cls.now


class SlowingGAN(TinyGAN):
    """tinygan whose steps take 10 ms of the fake clock until step 100, then 30 ms: a machine that gets busy after
    the budget's first measurement (after 5% of it, step 16)."""

    name = ""  # not discoverable

    def train_step(self, batch, ctx):
        FakeClock.now += 0.01 if ctx.step < 100 else 0.03
        return super().train_step(batch, ctx)


def test_budget_measures_again_where_the_decay_starts(tmp_path, images, monkeypatch):
    """The first fit (after 5% of the budget) expects fast steps; they slow down from step 100. Measured again
    where the decay starts, the decay ends when the budget does (lr near 0), instead of being cut off by the clock
    at about two thirds of the base rate."""
    from ganedit.train import loop

    monkeypatch.setattr(loop, "time", FakeClock)
    out = tmp_path / "run"
    trainer = run_trainer(SlowingGAN, out, images, batch=4, steps=100000, minutes=0.05, lr_schedule="linear",
                          lr_decay_start=50000, log_every=1, snapshot_every=0, checkpoint_every=0)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fits = [r for r in rows if r.get("event") == "budget"]
    # the first fit: 300 steps of 10 ms (decay from 150); at step 150 (2.5 s): 0.5 s left at 30 ms a step, 16 steps
    assert [(r["step"], r["steps"], r.get("refit")) for r in fits] == [(16, 300, None), (150, 166, "decay")]
    assert trainer.cfg["lr_decay_start"] == 150 and trainer.cfg["steps"] == 166 and trainer.step == 166
    # (a row of step k logs the factor step k - 1 trained with)
    factors = [r["lr_factor"] for r in sorted((r for r in rows if "lr_factor" in r), key=lambda r: r["step"])]
    assert set(factors[:151]) == {1.0} and factors[151] < 1.0  # the decay starts where it was due
    assert all(b <= a for a, b in zip(factors, factors[1:]))  # and never jumps back up
    assert factors[-1] == pytest.approx(1 / 16)  # it ran to its end within the budget (unrefitted: 2/3 at the stop)


def test_decay_refit_only_shortens_and_a_resume_derives_the_same_schedule(tmp_path):
    from ganedit.methods.pix2pix import Pix2Pix
    from ganedit.train.schedules import lr_factor

    cfg = resolve(Pix2Pix, {"data": "synthetic:4", "out": str(tmp_path), "steps": 1000, "crop_size": 32, "batch": 2,
                            "ngf": 4, "ndf": 4, "netG": "unet_32", "device": "cpu", "workers": 0, "minutes": 1.0})
    trainer = Trainer(Pix2Pix, cfg)
    trainer.step = 500  # the decay start
    trainer.refit_decay_to_budget(5000)  # more than steps: nothing changes
    assert trainer.cfg["steps"] == 1000 and trainer.cfg["lr_decay_start"] == 500
    trainer.refit_decay_to_budget(700)
    assert trainer.steps == trainer.cfg["steps"] == 700 and trainer.cfg["lr_decay_start"] == 500
    assert lr_factor(trainer.cfg, 500) == 1.0 and lr_factor(trainer.cfg, 699) == pytest.approx(1 / 200)
    rebuilt = dict(trainer.cfg)
    Pix2Pix(rebuilt)  # what a resume does with the stored configuration
    assert rebuilt["lr_decay_start"] == 500


# -- 2. checkpoints and disks -----------------------------------------------------------------------------------------
def test_flipped_byte_is_detected_and_resume_falls_back(tmp_path, images, capsys, caplog):
    out = tmp_path / "run"
    run_trainer(TinyGAN, out, images, batch=4, steps=4, checkpoint_every=2, snapshot_every=0)
    newest = out / "checkpoints" / ckpt.checkpoint_name(4)
    data = bytearray(newest.read_bytes())
    weight = load_ckpt(newest)["nets"]["G"]["fc.weight"].numpy().tobytes()
    at = bytes(data).find(weight)
    assert at > 0
    data[at + len(weight) // 2] ^= 0x10  # one bit of one weight: torch.load alone does not notice
    newest.write_bytes(bytes(data))
    assert load_ckpt(newest)["nets"]["G"]["fc.weight"].numpy().tobytes() != weight  # loads, silently changed
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        ckpt.load(newest)
    capsys.readouterr()
    resumed = train("tinygan", {**TINY_SETS, "data": str(images), "out": str(out), "steps": 5}, resume="auto")
    assert resumed.resumed_from.name == ckpt.checkpoint_name(2)
    assert "checksum mismatch" in capsys.readouterr().err + caplog.text  # a warning (printed, or logged)


def test_disk_full_during_checkpoint_and_export_is_one_clear_error(tmp_path, images, monkeypatch):
    out = tmp_path / "run"
    trainer = run_trainer(TinyGAN, out, images, batch=4, steps=2, snapshot_every=0)
    good = ckpt.load(out / "checkpoints" / ckpt.checkpoint_name(2))

    def full(fd):  # many file systems report a full disk only when the data is flushed
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    trainer.step = 3
    with pytest.raises(StorageError, match=r"step-000000003\.pt: cannot write: No space left on device \(about [\d,]+ bytes needed, [\d,]+ free\)") as info:
        trainer.checkpoint()
    assert "\n" not in str(info.value)
    with pytest.raises(StorageError, match=r"model\.safetensors: cannot write: No space left"):
        trainer.export()
    monkeypatch.undo()
    assert [p.name for p in (out / "checkpoints").iterdir()] == [ckpt.checkpoint_name(2)]
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "model.safetensors"]  # no .tmp
    assert ckpt.load(out / "checkpoints" / ckpt.checkpoint_name(2))["sha256"] == good["sha256"]


def test_a_real_failing_write_inside_torch_save_is_reported_the_same_way(tmp_path, images):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG) inside torch.save, which on its own surfaces as
    torch's opaque 'unexpected pos' RuntimeError."""
    out = tmp_path / "run"
    trainer = run_trainer(TinyGAN, out, images, batch=4, steps=2, snapshot_every=0)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    trainer.step = 3
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, hard))  # checkpoints are ~200 kB
        with pytest.raises(StorageError, match=r"step-000000003\.pt: cannot write: File too large \(about [\d,]+ bytes needed"):
            trainer.checkpoint()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert [p.name for p in (out / "checkpoints").iterdir()] == [ckpt.checkpoint_name(2)]


def test_cli_reports_a_full_disk_in_one_line(tmp_path, images, monkeypatch, capsys):
    from ganedit.cli.main import main

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SystemExit) as info:
        main(["train", "tinygan", "--data", str(images), "--out", str(tmp_path / "run"), "--batch", "4", "--steps", "1",
              "--snapshot-every", "0", *TINY_ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert re.match(r"error: \S+step-000000001\.pt: cannot write: No space left on device \(about [\d,]+ bytes needed", err[0])
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


def test_keep_never_rotates_away_the_last_healthy_checkpoints(tmp_path, images):
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4, "steps": 20,
                            "nan_patience": 3, "checkpoint_every": 1, "keep": 2, "snapshot_every": 0})
    cfg["method"] = "tinygan"
    with pytest.raises(TrainingDiverged):
        Trainer(PoisonedGAN, cfg).run()  # steps 1, 2 fine; 3, 4, 5 non-finite
    steps = [s for s, _ in ckpt.list_checkpoints(tmp_path / "checkpoints")]
    assert steps == [5, 4, 2, 1]  # the newest 2, plus the last healthy (2) and the confirmed one before it (1)
    assert [ckpt.load(tmp_path / "checkpoints" / ckpt.checkpoint_name(s))["healthy"] for s in steps] == [False, False, True, True]
    newest = ckpt.load(tmp_path / "checkpoints" / ckpt.checkpoint_name(5))
    assert newest["diverged"] and newest["last_healthy"] == 2 and newest["confirmed"] == 1


def test_divergence_advice_works_when_followed(tmp_path, images):
    """Adam with a learning rate warming up to 1000 blows up; the printed command, run as printed, trains on."""
    out = tmp_path / "run"
    options = {**TINY_SETS, "data": str(images), "out": str(out), "batch": 4, "steps": 24, "lr": 1000.0, "lr_warmup": 10,
               "checkpoint_every": 2, "nan_patience": 2, "snapshot_every": 0}
    with pytest.raises(TrainingDiverged) as info:
        train("tinygan", options)
    message = str(info.value)
    command = re.search(r"(ganedit train .*?)  \(", message).group(1)
    start = int(re.search(r"\(step (\d+)\)", message).group(1))
    assert "--lr 100 " in command + " " and f"step-{start:09d}.pt" in command
    from ganedit.cli.main import main

    main([*shlex.split(command)[1:], "--quiet"])  # exactly as printed (minus the program name)
    final = ckpt.load(ckpt.list_checkpoints(out / "checkpoints")[0][1])
    assert final["step"] == 24 and final["config"]["lr"] == 100.0 and not final["diverged"]
    assert ganedit.load(out / "model").checkpoint_meta["step"] == 24
    aside = [p.name for p in (out / "checkpoints").iterdir() if p.is_dir()]
    assert aside == [f"abandoned-after-{start:09d}"]  # the diverged continuation is kept apart, not mixed in


def test_resume_auto_after_divergence_starts_from_the_confirmed_checkpoint(tmp_path, images, capsys, caplog):
    cfg = resolve(TinyGAN, {**TINY_SETS, "data": str(images), "out": str(tmp_path), "batch": 4, "steps": 8,
                            "nan_patience": 3, "checkpoint_every": 1, "keep": 2, "snapshot_every": 0})
    cfg["method"] = "tinygan"
    with pytest.raises(TrainingDiverged, match=r"before it \(step 1\)"):
        Trainer(PoisonedGAN, cfg).run()
    path, state = ckpt.resolve_resume("auto", tmp_path)
    assert path.name == ckpt.checkpoint_name(1) and state["bad_streak"] == 0
    assert "ended in divergence" in capsys.readouterr().err + caplog.text


# -- env:// ranks started by hand ---------------------------------------------------------------------------------------
PEER = textwrap.dedent(
    """
    import os, sys, time
    from ganedit.methods.tinygan import TinyGAN
    original = TinyGAN.train_step
    def train_step(self, batch, ctx):
        if os.environ["RANK"] == "1" and ctx.step == 3:
            open(os.environ["MARKER"], "w").close()
            time.sleep(600)
        return original(self, batch, ctx)
    TinyGAN.train_step = train_step
    from ganedit.cli.main import main
    main(sys.argv[1:])
    """
)


def test_env_ranks_report_a_dead_peer_clearly(tmp_path, images):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    marker = tmp_path / "blocked"
    args = ["train", "tinygan", "--data", str(images), "--out", str(tmp_path / "run"), "--batch", "4", "--steps", "50",
            "--snapshot-every", "0", "--checkpoint-every", "2", *TINY_ARGS]
    procs = []
    for rank in (0, 1):
        env = {**sub_env(), "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "MARKER": str(marker)}
        procs.append(subprocess.Popen([sys.executable, "-c", PEER, *args], env=env, stderr=subprocess.PIPE, text=True))
    try:
        _wait_for(marker.exists, procs[1], "rank 1 blocked")
        procs[1].kill()  # a peer dies (no torchrun agent to tear the group down)
        _, err = procs[0].communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 2, err
    assert "Traceback" not in err
    assert re.search(r"error: process 0 of 2: another training process died or its connection broke at step \d+", err)
    assert "--resume auto" in err


def test_a_budget_that_fits_more_than_steps_says_so(tmp_path, images, caplog, monkeypatch):
    """--minutes with a smaller --steps (or a recipe default): the run ends at `steps`, and the log says how many
    steps the budget would have fitted and how to use them, instead of leaving the budget unused in silence.
    On the fake clock (10 ms a step), so that a fast machine cannot finish the 40 steps before the budget's first
    measurement (after 5% of it), as real tinygan steps once did."""
    import logging

    from ganedit.train import loop

    monkeypatch.setattr(loop, "time", FakeClock)
    with caplog.at_level(logging.WARNING):
        trainer = run_trainer(SlowingGAN, tmp_path / "run", images, batch=4, steps=40, minutes=0.05, log_every=1,
                              snapshot_every=0, checkpoint_every=0)
    assert trainer.step == 40 and trainer.cfg["steps"] == 40
    warned = [r.getMessage() for r in caplog.records if "fits about" in r.getMessage()]
    assert len(warned) == 1 and "steps = 40 ends the run first" in warned[0] and "pass --steps" in warned[0]
    # measured at step 16 (0.15 s, 5% of 3 s): 3 s of 10 ms steps
    assert int(warned[0].split("fits about ")[1].split()[0]) == 300
