"""Validation on the engine (val_data, val_every, val_n, keep_best): the recipe's losses on held-out data in
the logs, the best model kept in model_best/ with the weights that scored it, a run that trains the same weights
whether it validates or not, the best carried exactly across a resume, and the refusals."""
from __future__ import annotations

import json

import pytest
import torch

import ganedit
import test_e4e_train
import test_psp_train
from ganedit.errors import ConfigError
from ganedit.train.config import resolve
from ganedit.train.context import EvalContext
from ganedit.methods import get_method
from ganedit.train.loop import train

VAL = {"val_data": "synthetic:6", "val_every": 2, "val_n": 5}


def _val_rows(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val/loss/total" in r]


def _options(method, decoder):
    if method == "psp":
        return {**test_psp_train.FAST, "decoder": decoder, "optim": "adam", "lr": 3e-3, "data": "synthetic:4"}
    return {**test_e4e_train.FAST, "decoder": decoder}


@pytest.mark.parametrize("method", ["psp", "e4e"])
def test_validation_is_logged_keeps_the_best_and_changes_nothing(tmp_path, decoder, method):
    options = {**_options(method, decoder), "steps": 6}
    plain = train(method, {**options, "out": str(tmp_path / "plain")})
    run = tmp_path / "val"
    checked = train(method, {**options, **VAL, "out": str(run)})

    # validating trains the same weights (eval mode, no_grad, its own noise, the generators restored)
    for key, value in plain.nets["psp"].state_dict().items():
        assert torch.equal(checked.nets["psp"].state_dict()[key], value), key
    if method == "e4e":
        assert torch.equal(torch.cat(plain.method.fake_pool.images), torch.cat(checked.method.fake_pool.images))

    rows = _val_rows(run)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(r["val/loss/l2"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["val/loss/total"])
    assert checked.best_val == {"step": best["step"], "value": pytest.approx(best["val/loss/total"], rel=1e-12)}

    # model_best holds the weights that scored the best value: validating it again gives that value
    meta = json.loads((run / "model_best" / "config.json").read_text())
    assert meta["meta"]["step"] == best["step"]
    checked.cfg["keep_best"] = False
    checked.method.nets = {"psp": ganedit.load(run / "model_best")}
    again = checked.validate()
    assert again is not None and again["loss/total"] == pytest.approx(best["val/loss/total"], rel=1e-5, abs=1e-7)


def test_the_best_survives_a_resume_exactly(tmp_path, decoder):
    options = {**_options("psp", decoder), **VAL, "val_every": 1, "checkpoint_every": 2}
    straight = train("psp", {**options, "out": str(tmp_path / "a"), "steps": 4})
    first = train("psp", {**options, "out": str(tmp_path / "b"), "steps": 2}).best_val
    assert first is not None and first["step"] in (1, 2)
    # the checkpoint carries it: a resume with nothing left to train starts from it
    assert train("psp", {**options, "out": str(tmp_path / "b"), "steps": 2}, resume="auto").best_val == first
    resumed = train("psp", {**options, "out": str(tmp_path / "b"), "steps": 4}, resume="auto")
    assert resumed.best_val == straight.best_val
    assert [r["val/loss/total"] for r in _val_rows(tmp_path / "a")] == [r["val/loss/total"] for r in _val_rows(tmp_path / "b")]


def test_the_mean_is_over_items_whatever_the_batch(tmp_path, decoder):
    """val_n items in batches of the global batch (the last one short): the mean weighs every item once."""
    run = train("psp", {**_options("psp", decoder), **VAL, "val_n": 6, "keep_best": False, "out": str(tmp_path / "r"), "steps": 1})
    by_four = run.validate()
    run.global_batch = 6
    by_six = run.validate()
    assert by_four is not None and by_six is not None
    assert by_four["loss/l2"] == pytest.approx(by_six["loss/l2"], rel=1e-5)
    assert not (tmp_path / "r" / "model_best").exists()  # keep_best false: nothing written


def test_refusals(tmp_path, decoder):
    with pytest.raises(ConfigError, match="has no validation loss"):
        train("tinygan", {"data": "synthetic:8", "size": 32, "channels": 8, "workers": 0, "device": "cpu", "quiet": True,
                          "tensorboard": False, "out": str(tmp_path / "t"), "steps": 1, **VAL})
    with pytest.raises(ConfigError, match="needs held-out data"):
        resolve(get_method("psp"), {"val_every": 10})
    with pytest.raises(ConfigError, match="val_n must be >= 0"):
        resolve(get_method("psp"), {"val_n": -1})
    with pytest.raises(ganedit.errors.DataError, match="val_data .*nope"):
        train("psp", {**_options("psp", decoder), "val_data": str(tmp_path / "nope"), "val_every": 2, "out": str(tmp_path / "p")})
    # a bad held-out file stops the run before it trains (not at its first validation, losing the steps since a checkpoint)
    from ganedit.data.io import write_image

    folder = tmp_path / "heldout"
    folder.mkdir()
    for i in range(3):
        write_image(torch.zeros(3, 32, 32), folder / f"{i}.png")
    (folder / "3.png").write_bytes(b"not a png")
    with pytest.raises(ganedit.errors.DataError, match="val_data .*3.png"):
        train("psp", {**_options("psp", decoder), "val_data": str(folder), "val_every": 5, "steps": 10,
                      "checkpoint_every": 2, "out": str(tmp_path / "bad")})
    assert not (tmp_path / "bad" / "checkpoints").exists()
    # a file that goes bad during the run: that validation is skipped with a warning, training goes on
    (folder / "3.png").unlink()
    run = train("psp", {**_options("psp", decoder), "val_data": str(folder), "val_every": 1, "steps": 1, "out": str(tmp_path / "ok")})
    (folder / "1.png").write_bytes(b"broken since")
    assert run.validate() is None and run.best_val is not None and run.best_val["step"] == 1
    ctx = EvalContext({"batch": 2, "precision": "fp32", "seed": 0}, torch.device("cpu"), 0, 0)
    with pytest.raises(RuntimeError, match="validation cannot train"):
        ctx.optimize("E", torch.zeros(()))
    ctx.begin_batch(3, 2)
    first = ctx.randn(2, 4)
    ctx.begin_batch(3, 2)
    assert torch.equal(first, ctx.randn(2, 4))  # the same noise at every pass
