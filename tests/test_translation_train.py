"""pix2pix and CycleGAN training recipes on the engine: official optimiser settings and losses, the image pool,
the constant-then-linear schedule and its position across a resume, exported models that ganedit.load rebuilds."""
from __future__ import annotations

import json
import math

import pytest
import torch

import ganedit
from ganedit.methods.cyclegan import ImagePool
from ganedit.methods.pix2pix import gan_loss
from ganedit.models.cyclegan import GeneratorPair
from ganedit.models.pix2pix import UnetGenerator
from ganedit.train.loop import train

FAST = {"workers": 0, "device": "cpu", "tensorboard": False, "quiet": True, "log_every": 1, "snapshot_every": 0,
        "checkpoint_every": 2, "data": "synthetic:8", "crop_size": 32, "batch": 2, "ngf": 4, "ndf": 4}




def test_gan_losses_match_the_official_values(conformance):
    for folder in ("patchgan_basic_ndf8_pix2pix", "patchgan_basic_ndf8_cyclegan"):
        io = torch.load(conformance / "translation" / "vectors" / folder / "io.pt", weights_only=True)
        logits, expected = io["output_eval"], io["gan_losses"]
        for mode in ("vanilla", "lsgan"):
            for real in (True, False):
                key = f"{mode}_{'real' if real else 'fake'}_on_output_eval"
                assert gan_loss(logits, real, mode).item() == pytest.approx(expected[key], abs=1e-5), key


def test_image_pool_semantics():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: images pass through and are stored
    new = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(new)
    swapped = out != new
    assert 60 < swapped.sum().item() < 140  # about half are exchanged for stored images
    # an exchanged image is an older one: a first image or an earlier image of this batch
    assert all(v < 4 or v < n for v, n in zip(out[swapped].tolist(), new[swapped].tolist()))
    assert len(pool.images) == 4
    state = pool.state()
    other = ImagePool(4)
    other.load(state, torch.device("cpu"))
    assert torch.equal(torch.cat(other.images), torch.cat(pool.images))
    assert torch.equal(ImagePool(0).query(first), first)


def test_pix2pix_recipe_trains_and_exports(tmp_path):
    trainer = train("pix2pix", {**FAST, "out": str(tmp_path / "run"), "steps": 4, "netG": "unet_32"})
    opt_g, opt_d = trainer.method.opts["G"], trainer.method.opts["D"]
    assert tuple(opt_g.param_groups[0]["betas"]) == (0.5, 0.999) and tuple(opt_d.param_groups[0]["betas"]) == (0.5, 0.999)
    # constant for the first half, then linear to 0: at the last step (3) the factor is 1 - (3 - 2) / (4 - 2)
    assert trainer.cfg["lr_decay_start"] == 2
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)
    D = trainer.method.nets["D"]
    assert D.config["input_nc"] == 6  # conditional D on cat(A, B)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "G/G_L1" in r]
    assert len(steps) == 4 and all(math.isfinite(r[k]) for r in steps for k in ("D/D_real", "D/D_fake", "G/G_GAN", "G/G_L1"))
    assert [r["lr_factor"] for r in steps] == pytest.approx([1.0, 1.0, 1.0, 0.5])
    model = ganedit.load(tmp_path / "run" / "model")
    assert isinstance(model, UnetGenerator) and model.config["num_downs"] == 5 and model.config["ngf"] == 4


def test_pix2pix_exports_the_average_of_g_when_asked(tmp_path):
    """ema_kimg 0 (official) exports the live G itself; ema_kimg > 0 exports an average that differs from the live G
    in its weights and in its BatchNorm statistics."""
    live = train("pix2pix", {**FAST, "out": str(tmp_path / "live"), "steps": 3, "netG": "unet_32"})
    live_g = live.method.nets["G"].state_dict()
    exported = ganedit.load(tmp_path / "live" / "model").state_dict()
    assert exported.keys() == live_g.keys() and all(torch.equal(exported[k], live_g[k]) for k in live_g)

    averaged = train("pix2pix", {**FAST, "out": str(tmp_path / "ema"), "steps": 3, "netG": "unet_32", "ema_kimg": 0.004})
    net = averaged.method.nets["G"].state_dict()
    for key, value in live_g.items():  # same seed and data: the live nets agree, the difference is the averaging
        torch.testing.assert_close(net[key], value)
    model = ganedit.load(tmp_path / "ema" / "model").state_dict()
    weights = [k for k in model if k.endswith("weight")]
    stats = [k for k in model if k.endswith("running_mean")]
    assert weights and stats
    assert all(not torch.equal(model[k], net[k]) for k in weights)
    assert all(not torch.equal(model[k], net[k]) for k in stats)


def test_cyclegan_exports_averaged_generators_when_asked(tmp_path):
    cyc = {**FAST, "netG": "resnet_6blocks", "steps": 3, "data": "synthetic:8", "load_size": 36}
    live = train("cyclegan", {**cyc, "out": str(tmp_path / "live")})
    pair = ganedit.load(tmp_path / "live" / "model")
    for name in ("G_A", "G_B"):  # ema_kimg 0 (official): the live generators themselves
        net = live.method.nets[name].state_dict()
        assert all(torch.equal(getattr(pair, name).state_dict()[k], v) for k, v in net.items())
    averaged = train("cyclegan", {**cyc, "out": str(tmp_path / "ema"), "ema_kimg": 0.004})
    pair = ganedit.load(tmp_path / "ema" / "model")
    for name in ("G_A", "G_B"):
        net, exported = averaged.method.nets[name].state_dict(), getattr(pair, name).state_dict()
        assert all(torch.equal(v, live.method.nets[name].state_dict()[k]) for k, v in net.items())  # same training
        assert all(not torch.equal(exported[k], v) for k, v in net.items() if k.endswith("weight"))


def test_pix2pix_l1_only_ablation_skips_the_discriminator(tmp_path):
    """lambda_GAN=0: no D step (its optimiser never steps, no D or GAN values logged), G still learns from L1;
    the exported generator keeps the resize upsampling asked for."""
    trainer = train("pix2pix", {**FAST, "out": str(tmp_path / "run"), "steps": 2, "netG": "unet_32", "lambda_GAN": 0.0, "upsample": "resize"})
    assert not trainer.method.opts["D"].state and trainer.method.opts["G"].state
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*(r.keys() for r in rows if "G/G_L1" in r))
    assert not any(k.startswith("D/") or k == "G/G_GAN" for k in logged)
    assert ganedit.load(tmp_path / "run" / "model").config["upsample"] == "resize"


def test_cyclegan_resume_continues_schedule_and_pool_exactly(tmp_path):
    cfg = {**FAST, "netG": "resnet_1blocks", "pool_size": 3, "steps": 4}
    straight = train("cyclegan", {**cfg, "out": str(tmp_path / "a")})
    train("cyclegan", {**cfg, "out": str(tmp_path / "b"), "steps": 2})
    resumed = train("cyclegan", {**cfg, "out": str(tmp_path / "b")}, resume="auto")
    assert resumed.step == 4
    for name in ("G_A", "G_B", "D_A", "D_B"):
        for (k, a), b in zip(straight.method.nets[name].state_dict().items(), resumed.method.nets[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    assert torch.equal(torch.cat(straight.method.pool_A.images), torch.cat(resumed.method.pool_A.images))
    assert resumed.method.opts["G"].param_groups[0]["lr"] == straight.method.opts["G"].param_groups[0]["lr"] == pytest.approx(1e-4)
    pair = ganedit.load(tmp_path / "b" / "model")
    assert isinstance(pair, GeneratorPair) and pair.G_A.config["n_blocks"] == 1 and pair.G_B.config["norm"] == "instance"
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("G/cycle_A" in r and "G/idt_B" in r and "D/D_A" in r for r in rows)
