"""`ganedit train psp` on the engine: the task data of the synthetic world, the frozen decoder, losses that fall
over a few steps, ReStyle training, Ranger, and an exported model that ganedit.load rebuilds."""
from __future__ import annotations

import json
import math

import pytest
import torch

import ganedit
from ganedit.errors import ConfigError
from ganedit.data.degrade import edge_sketch
from ganedit.methods.psp import PSPMethod, task_condition, warm_start
from ganedit.models.psp import PSP
from ganedit.nn.global_batch import GlobalBatchNorm2d
from ganedit.train.loop import train
from ganedit.train.ranger import Ranger

FAST = {"workers": 0, "device": "cpu", "tensorboard": False, "quiet": True, "log_every": 1, "snapshot_every": 0,
        "checkpoint_every": 0, "data": "synthetic:8", "size": 32, "input_size": 32, "batch": 4, "units": [1, 1, 1, 1],
        "depths": [4, 6, 8, 10], "input_width": 4, "se_reduction": 2, "lpips_lambda": 0.0}


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_encode_task_trains_and_exports(tmp_path, decoder):
    run = tmp_path / "run"
    trainer = train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 12, "optim": "adam", "lr": 3e-3,
                            "data": "synthetic:4", "w_norm_lambda": 0.01})
    rows = [r for r in _rows(run) if "loss/l2" in r]
    assert len(rows) == 12 and all(math.isfinite(r["loss/total"]) for r in rows)
    assert rows[-1]["loss/l2"] < rows[0]["loss/l2"]  # one batch of 4 images, seen every step: the fit improves
    model = ganedit.load(run / "model")
    assert isinstance(model, PSP) and model.encoder.input_nc == 3 and model.input_size == 32
    # the decoder stayed frozen: identical to the file it came from
    frozen = ganedit.load(decoder)
    for k, v in frozen.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[k], v), k
    assert isinstance(trainer.method.opts["E"], torch.optim.Adam)
    # trained with global-batch BatchNorm (N processes = 1), exported with plain BatchNorm and the same weights
    live, exported = trainer.method.nets["psp"], trainer.method.export()
    assert any(isinstance(m, GlobalBatchNorm2d) for m in live.encoder.modules())
    kinds = {type(m) for m in exported.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert kinds == {torch.nn.BatchNorm2d} and exported is not live and not exported.training
    for k, v in live.state_dict().items():
        assert torch.equal(exported.state_dict()[k], v), k


@pytest.mark.parametrize("task,channels", [("sketch", 1), ("segmentation", 7), ("inpaint", 4), ("frontalize", 3), ("super_resolution", 3)])
def test_task_data_and_a_step(tmp_path, decoder, task, channels):
    run = tmp_path / task
    trainer = train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 1, "task": task})
    data = trainer.method.build_data()
    item = data[0]
    assert item["input"].shape == (channels, 32, 32) and item["target"].shape == (3, 32, 32)
    if task == "frontalize":
        assert not torch.equal(item["input"], item["target"])
    model = ganedit.load(run / "model")
    assert model.task == task and model.encoder.input_nc == channels
    assert isinstance(trainer.method.opts["E"], Ranger)


def test_image_derived_conditions():
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    inp = task_condition(images, "inpaint", [1], seed=0)
    hole = inp[:, 3:] > 0.5
    assert 0 < hole.float().mean() < 0.5
    assert torch.all(inp[:, :3][hole.expand(-1, 3, -1, -1)] == 0)  # masked pixels are mid-grey
    torch.testing.assert_close(inp[:, :3][~hole.expand(-1, 3, -1, -1)], images[~hole.expand(-1, 3, -1, -1)])
    sr = task_condition(images, "super_resolution", [1, 4], seed=0)  # the factor goes by image index
    low = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(images[1:2], 4), size=16, mode="bilinear", align_corners=False)
    torch.testing.assert_close(sr[1:2], low)
    assert torch.equal(sr[0], images[0]) and torch.equal(sr[2], images[2])
    sk = task_condition(images, "sketch", [1], seed=0)  # the in-domain set's edge rule, dark lines on white
    torch.testing.assert_close(sk, edge_sketch(images))
    flat = task_condition(torch.zeros(1, 3, 16, 16), "sketch", [1], seed=0)
    assert sk.shape == (3, 1, 16, 16) and torch.all(flat == 1)
    with pytest.raises(ConfigError, match="synthetic"):
        task_condition(images, "segmentation", [1], seed=0)


def test_restyle_training_runs_each_iteration(tmp_path, decoder):
    run = tmp_path / "rs"
    trainer = train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 2, "restyle": True, "restyle_iters": 2,
                            "optim": "adam"})
    rows = [r for r in _rows(run) if "loss/l2_iter1" in r]
    assert len(rows) == 2 and "loss/l2_iter0" in rows[0]
    # as the official Coach: every refinement step back-propagates its loss, one optimiser step per batch
    opt = trainer.method.opts["E"]
    assert {int(opt.state[p]["step"]) for group in opt.param_groups for p in group["params"] if p in opt.state} == {2}
    model = ganedit.load(run / "model")
    assert model.restyle and model.encoder.input_nc == 6 and model.restyle_iters == 2  # encode() runs what it trained with
    with torch.no_grad():
        assert len(model.restyle_steps(torch.zeros(1, 3, 16, 16), 3)) == 3


def test_missing_decoder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="decoder"):
        train("psp", {**FAST, "out": str(tmp_path / "x"), "steps": 1})


def test_ranger_minimises_a_quadratic():
    torch.manual_seed(0)
    target = torch.randn(4, 3)
    for use_gc in (False, True):
        p = torch.nn.Parameter(torch.zeros(4, 3))
        opt = Ranger([p], lr=0.1, use_gc=use_gc)
        for _ in range(300):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
        q = p.detach()
        if use_gc:  # centralised gradients only move each row around its mean: the centred target is reached
            assert (q - q.mean(1, keepdim=True) - (target - target.mean(1, keepdim=True))).abs().max() < 0.01
        else:
            assert (q - target).abs().max() < 0.01
        assert opt.state[p]["step"] == 300 and "slow_buffer" in opt.state[p]


def test_warm_start_adapts_the_stem_and_starts_where_the_source_was(tmp_path, decoder):
    """An encode model starts an inpaint, a sketch and a ReStyle model: tensors of the same shape are copied, the
    stem conv is adapted, so the warm-started encoder computes what the source did on the same picture."""
    src_run = tmp_path / "enc"
    train("psp", {**FAST, "decoder": decoder, "out": str(src_run), "steps": 2})
    source = ganedit.load(src_run / "model").eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want = source.encoder(x)
    stem = "input_layer.0.weight"
    for task, extra in (("inpaint", {}), ("sketch", {}), ("encode", {"restyle": True})):
        method = PSPMethod({**PSPMethod.defaults, **FAST, "decoder": decoder, "task": task, **extra})
        model = method.make_model(source.decoder.config).eval()
        copied, adapted, skipped = warm_start(model.encoder, source.encoder.state_dict())
        assert adapted == [stem] and skipped == [] and copied == len(model.encoder.state_dict()) - 1
        w = model.encoder.state_dict()[stem]
        with torch.no_grad():
            if task == "sketch":
                torch.testing.assert_close(w, source.encoder.state_dict()[stem].sum(1, keepdim=True))
                grey = x[:, :1].expand(-1, 3, -1, -1)
                torch.testing.assert_close(model.encoder(x[:, :1]), source.encoder(grey), rtol=1e-4, atol=1e-5)
            else:  # the extra channels (mask, current reconstruction) start at zero
                assert torch.all(w[:, 3:] == 0)
                got = model.encoder(torch.cat([x, torch.randn(2, w.shape[1] - 3, 32, 32)], 1))
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_init_encoder_option_warm_starts_training_and_refuses_a_non_encoder(tmp_path, decoder, caplog):
    src_run = tmp_path / "enc"
    train("psp", {**FAST, "decoder": decoder, "out": str(src_run), "steps": 1})
    with caplog.at_level("INFO", logger="ganedit.methods.psp"):
        train("psp", {**FAST, "decoder": decoder, "out": str(tmp_path / "inp"), "steps": 1, "task": "inpaint",
                      "init_encoder": str(src_run / "model"), "lr": 1e-12})
    assert any("warm-started" in r.getMessage() and "input_layer.0.weight" in r.getMessage() for r in caplog.records)
    src = ganedit.load(src_run / "model").encoder.state_dict()
    got = ganedit.load(tmp_path / "inp" / "model").encoder.state_dict()
    name = "body.0.res_layer.1.weight" if "body.0.res_layer.1.weight" in src else next(k for k in src if k.startswith("body") and k.endswith("weight"))
    torch.testing.assert_close(got[name], src[name])  # lr ~0: the copied weight survives the step
    with pytest.raises(ConfigError, match="not a pSp / e4e encoder"):
        train("psp", {**FAST, "decoder": decoder, "out": str(tmp_path / "bad"), "steps": 1, "init_encoder": decoder})


def _decoder_samples(decoder: str, folder, n: int = 16) -> torch.Tensor:
    """n images G(w) of the decoder written as PNGs (the in-domain case: the exact answer exists); returns them
    as the decoder drew them ([n, 3, 16, 16], quantised to 8 bits as the files are)."""
    from PIL import Image

    from ganedit.data.io import to_uint8_hwc

    G = ganedit.load(decoder).eval()
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(0)))
        images = G.synthesis(w, "const").clamp(-1, 1)
    folder.mkdir(parents=True)
    arrays = to_uint8_hwc(images)
    for i in range(n):
        Image.fromarray(arrays[i]).save(folder / f"{i:03d}.png")
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1


def _mse(a: torch.Tensor, b: torch.Tensor, where: "torch.Tensor | None" = None) -> float:
    d = (a - b).pow(2)
    return float(d.mean() if where is None else d[where.expand_as(d)].mean())


def test_trained_inpainting_fills_the_hole_from_what_it_sees(tmp_path, decoder):
    """Inpainting judged on its output: after a short fit on G(w) images, the hole holds the truth better than the
    grey the input had, and the visible part better than the decoder's mean image does."""
    truth = _decoder_samples(decoder, tmp_path / "images")
    run = tmp_path / "inp"
    train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 20, "optim": "adam", "lr": 3e-3,
                  "data": str(tmp_path / "images"), "size": 16, "input_size": 32, "task": "inpaint"})
    model = ganedit.load(run / "model").eval()
    inputs = task_condition(truth, "inpaint", [1], seed=0)
    hole = inputs[:, 3:] > 0.5
    with torch.no_grad():
        out = model.decode(model.encode(inputs))
        mean = model.decode(model.latent_avg.expand(len(truth), -1, -1))
    assert _mse(out, truth, hole) < 0.7 * _mse(inputs[:, :3], truth, hole)
    assert _mse(out, truth, ~hole) < 0.7 * _mse(mean, truth, ~hole)


def test_trained_restyle_refines_its_own_output_step_by_step(tmp_path, decoder):
    """ReStyle judged on its output: after a short fit (two refinement steps per update), each step brings the
    image closer to the truth, starting from the average image."""
    truth = _decoder_samples(decoder, tmp_path / "images")
    run = tmp_path / "rs"
    train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 60, "optim": "adam", "lr": 1e-3,
                  "data": str(tmp_path / "images"), "size": 16, "input_size": 32, "restyle": True, "restyle_iters": 2})
    model = ganedit.load(run / "model").eval()
    with torch.no_grad():
        steps = model.restyle_steps(truth, 2)
        start = model.decode(model.latent_avg.expand(len(truth), -1, -1))
    errors = [_mse(start, truth)] + [_mse(img, truth) for _, img in steps]
    assert errors[1] < errors[0] and errors[2] < errors[1], errors


def test_cycle_term_is_the_round_trip_of_the_encoder(tmp_path, decoder):
    """cycle_lambda (not in the official recipes) adds lambda * ||E(G(E(x))) - E(x)|| per w+ row to the loss, with
    both sides detached (the encoder is trained to read its own reconstruction back, not to shrink its codes)."""
    run = tmp_path / "c"
    train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 2, "cycle_lambda": 0.5, "w_norm_lambda": 0.0})
    rows = [r for r in _rows(run) if "loss/cycle" in r]
    assert len(rows) == 2 and all(r["loss/cycle"] > 0 for r in rows)
    for r in rows:
        assert r["loss/total"] == pytest.approx(r["loss/l2"] + 0.5 * r["loss/cycle"], rel=1e-5)
    with pytest.raises(ConfigError, match="cycle_lambda needs task=encode"):
        train("psp", {**FAST, "decoder": decoder, "out": str(tmp_path / "s"), "steps": 1, "task": "sketch", "cycle_lambda": 0.1})
