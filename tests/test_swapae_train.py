"""The swapae training recipe on the engine: a few steps on the synthetic world, the official optimiser settings,
lazy R1, every loss term logged and finite, and an exported model that ganedit.load rebuilds."""
from __future__ import annotations

import json
import math

import pytest
import torch

import ganedit
from ganedit.errors import ConfigError
from ganedit.methods import get_method
from ganedit.models.swapae import SwappingAutoencoder
from ganedit.train.loop import train

FAST = {"size": 64, "width": 8, "texture_channels": 32, "batch": 8, "workers": 0, "device": "cpu", "tensorboard": False,
        "quiet": True, "log_every": 1, "snapshot_every": 3, "checkpoint_every": 3,
        # the official optimiser and GAN schedule (the CPU defaults start the GAN after 150k images)
        "betas": [0.0, 0.99], "gan_start_kimg": 0, "gan_ramp_kimg": 0}




@pytest.mark.parametrize("size, requested, code", [(64, 0, 16), (128, 0, 16), (256, 0, 16), (64, 3, 8)])
def test_recipe_structure_code_is_16x16_unless_asked(size, requested, code):
    from ganedit.methods.swapae import SwapAE
    from ganedit.train.config import resolve

    method = SwapAE(resolve(get_method("swapae"), {**FAST, "data": "synthetic:8", "out": "unused", "size": size,
                                                   "structure_downsampling": requested}))
    sp, gl = method.make_model().E(torch.zeros(1, 3, size, size))
    assert sp.shape[-2:] == (code, code) and gl.shape == (1, 32)


def test_recipe_trains_logs_and_exports(tmp_path):
    trainer = train("swapae", {**FAST, "data": "synthetic:16", "out": str(tmp_path / "run"), "steps": 3, "r1_every": 2})
    sae = trainer.method.nets["sae"]
    assert int(sae.num_discriminator_iters) == 3
    opt_d, opt_g = trainer.method.opts["D"], trainer.method.opts["G"]
    c = 2 / 3  # lazy R1 correction for r1_every = 2
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.002) and tuple(opt_g.param_groups[0]["betas"]) == (0.0, 0.99)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.002 * c) and opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99**c)
    g_params = {id(p) for p in opt_g.param_groups[0]["params"]}
    assert g_params == {id(p) for p in list(sae.E.parameters()) + list(sae.G.parameters())}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "G/G_L1" in r]
    assert len(steps) == 3
    for key in ("D/D_real", "D/D_rec", "D/D_mix", "D/PatchD_real", "D/PatchD_mix", "G/G_GAN_rec", "G/G_GAN_mix", "G/G_mix"):
        assert all(math.isfinite(r[key]) for r in steps), key
    assert [("D/R1" in r) for r in steps] == [True, False, True]  # steps 0 and 2
    model = ganedit.load(tmp_path / "run" / "model")
    assert isinstance(model, SwappingAutoencoder) and model.config["texture_channels"] == 32
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert model.swap(x[:1], x[1:], noise="zero").shape == (1, 3, 64, 64)
    assert sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())[-1].endswith(".png")


def test_recipe_rejects_odd_batches():
    method = get_method("swapae")({**method_defaults(), "batch": 6, "data": "synthetic:8"})
    with pytest.raises(ConfigError, match="multiple of 4"):
        method.build(torch.device("cpu"))


def method_defaults():
    from ganedit.train.config import defaults_for

    return defaults_for(get_method("swapae"))


def test_resume_continues_exactly(tmp_path):
    """Crops, noise and flips come from RNGs the engine checkpoints; the recipe keeps no other state."""
    sets = {**FAST, "data": "synthetic:16", "r1_every": 2, "checkpoint_every": 2, "snapshot_every": 0}
    train("swapae", {**sets, "out": str(tmp_path / "straight"), "steps": 4})
    train("swapae", {**sets, "out": str(tmp_path / "resumed"), "steps": 2})
    train("swapae", {**sets, "out": str(tmp_path / "resumed"), "steps": 4}, resume="auto")
    a = ganedit.load(tmp_path / "straight" / "model").state_dict()
    b = ganedit.load(tmp_path / "resumed" / "model").state_dict()
    assert a.keys() == b.keys()
    assert int(b["num_discriminator_iters"]) == 4
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_recolor_keeps_edges_and_moves_colours():
    from ganedit.models.swapae.recolor import recolor

    x = torch.rand(3, 3, 16, 16) * 1.2 - 0.6  # inside [-1, 1] after any of the transforms below
    identity = torch.tensor([[0.0, 0.6, 0.5, 0.5]]).repeat(3, 1)  # no hue turn, saturation 1, contrast 1, brightness 0
    assert torch.allclose(recolor(x, identity), x, atol=1e-6)
    third_turn = identity.clone()
    third_turn[:, 0] = 1 / 3  # 120 degrees about the grey axis cycles the channels R -> G -> B -> R
    assert torch.allclose(recolor(x, third_turn), x[:, [2, 0, 1]], atol=1e-6)
    flat = torch.zeros(2, 3, 8, 8)
    flat[:, :, :, 4:] = torch.tensor([0.5, -0.3, 0.1]).view(1, 3, 1, 1)  # two flat regions, one vertical edge
    out = recolor(flat, torch.rand(2, 4))
    assert torch.equal(out[:, :, :, :4], out[:, :, :1, :1].expand(-1, -1, 8, 4))  # a flat region stays flat
    assert torch.equal(out[:, :, :, 4:], out[:, :, :1, 4:5].expand(-1, -1, 8, 4))
    with pytest.raises(ValueError, match="parameters"):
        recolor(x, torch.rand(3, 2))


def test_relight_is_a_brightness_ramp():
    """relight multiplies the [0, 1] brightness by 1 + s * ramp: no change at s = 0, a left-to-right ramp at
    direction 0 that spans exactly -s..+s, any direction reaching both ends, and a clear error for bad numbers."""
    from ganedit.models.swapae.recolor import LIGHT_PARAMS, relight

    x = torch.rand(3, 3, 8, 8) * 1.6 - 0.8
    assert torch.allclose(relight(x, torch.tensor([[0.3, 0.0]] * 3), 0.5), x, atol=1e-6)
    grey = torch.zeros(1, 3, 5, 7)  # 0.5 on the [0, 1] scale
    out = relight(grey, torch.tensor([[0.0, 0.8]]), 0.5)  # s = 0.4, light from the left to the right
    gain = (out + 1) / (grey + 1)
    assert torch.allclose(gain[0, :, :, 0], torch.full((3, 5), 0.6)) and torch.allclose(gain[0, :, :, -1], torch.full((3, 5), 1.4))
    assert torch.allclose(gain, gain[:, :, :1, :].expand_as(gain))  # constant down each column
    assert torch.allclose(gain[0, 0, 0], torch.linspace(0.6, 1.4, 7))
    for a in (0.1, 0.37, 0.6, 0.85):  # every direction spans the full ramp
        g = (relight(grey, torch.tensor([[a, 1.0]]), 0.3) + 1)
        assert abs(float(g.max()) - 1.3) < 1e-5 and abs(float(g.min()) - 0.7) < 1e-5
    assert relight(torch.ones(1, 3, 4, 4), torch.tensor([[0.0, 1.0]]), 1.0).max() <= 1.0
    with pytest.raises(ValueError, match=f"\\(1, {LIGHT_PARAMS}\\)"):
        relight(grey, torch.rand(1, 1), 0.5)


def test_recolor_warp_recolours_regions_differently():
    """With warp the hue turn depends on the pixel's hue: two regions of different hue are turned by different
    angles (a global turn keeps the angle between their chroma vectors), flat regions stay flat, and the
    warp terms vanish at u4 = u6 = 0.5."""
    from ganedit.models.swapae.recolor import PARAMS, recolor

    flat = torch.zeros(1, 3, 8, 8)
    flat[..., :4] = torch.tensor([0.4, -0.2, -0.2]).view(1, 3, 1, 1)  # reddish
    flat[..., 4:] = torch.tensor([-0.2, 0.4, -0.2]).view(1, 3, 1, 1)  # greenish: 120 degrees away
    u = torch.tensor([[0.1, 0.6, 0.5, 0.5, 0.5, 0.3, 0.5, 0.3]])
    assert torch.allclose(recolor(flat, u, warp=1.0), recolor(flat, u[:, :4]), atol=1e-6)

    def chroma_angle(img: torch.Tensor) -> float:
        c = img[0, :, 0, [0, 7]] - img[0, :, 0, [0, 7]].mean(0)  # chroma of the two regions
        return float(torch.arccos((c[:, 0] @ c[:, 1]) / (c[:, 0].norm() * c[:, 1].norm())))

    warped = u.clone()
    warped[0, 4] = 0.9
    out = recolor(flat, warped, warp=1.0)
    assert abs(chroma_angle(recolor(flat, u[:, :4])) - chroma_angle(flat)) < 1e-4
    assert abs(chroma_angle(out) - chroma_angle(flat)) > 0.3
    assert torch.equal(out[..., :4], out[..., :1, :1].expand(-1, -1, 8, 4))
    assert torch.equal(out[..., 4:], out[..., :1, 4:5].expand(-1, -1, 8, 4))
    assert out.abs().max() <= 1.0
    with pytest.raises(ValueError, match=f"\\(1, {PARAMS}\\)"):
        recolor(flat, u[:, :4], warp=1.0)


def test_color_swap_loss_is_reconstruction_when_nothing_is_recoloured():
    """The added term is L1(G(structure of the recoloured copy, texture of the original), original): with an
    unchanged copy it is the plain reconstruction L1, and a recoloured copy gives a different value."""
    from ganedit.models.swapae import losses as L
    from ganedit.models.swapae.recolor import recolor

    torch.manual_seed(0)
    model = SwappingAutoencoder.small(64, 4, 32, 8).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    sp, gl = model.E(x)
    with torch.no_grad():
        rec = model.G(sp, gl, "zero")
        same = L.color_swap_loss(model, x, x, gl, "zero")
        other = L.color_swap_loss(model, x, recolor(x, torch.tensor([[0.5, 0.9, 0.2, 0.1]] * 2)), gl, "zero")
    assert torch.allclose(same, (rec - x).abs().flatten(1).mean(1), atol=1e-6)
    assert (other - same).abs().max() > 1e-4


def test_recipe_with_color_swap_logs_the_term(tmp_path):
    trainer = train("swapae", {**FAST, "data": "synthetic:16", "out": str(tmp_path / "run"), "steps": 2, "lambda_color_swap": 10.0})
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    values = [r["G/G_color_swap"] for r in rows if "G/G_color_swap" in r]
    assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)
    assert trainer.method.weights().lambda_color_swap == 10.0


def test_recipe_color_swap_light_relights_the_copy(tmp_path):
    """color_swap_light > 0 relights the recoloured copy: the same first step's colour-swap term changes, stays
    finite, and a strength outside [0, 1] is refused before training."""
    def first_color_swap(light: float) -> float:
        out = tmp_path / f"run{light}"
        train("swapae", {**FAST, "data": "synthetic:16", "out": str(out), "steps": 1, "lambda_color_swap": 10.0, "color_swap_light": light})
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return next(r["G/G_color_swap"] for r in rows if "G/G_color_swap" in r)

    plain, lit = first_color_swap(0.0), first_color_swap(0.8)
    assert math.isfinite(lit) and lit > 0 and abs(lit - plain) > 1e-4
    assert get_method("swapae").defaults["color_swap_light"] == 0.0
    with pytest.raises(ConfigError, match="color_swap_light"):
        train("swapae", {**FAST, "data": "synthetic:16", "out": str(tmp_path / "bad"), "steps": 1, "color_swap_light": 1.5})


def test_gan_schedule_skips_the_discriminator_until_it_starts(tmp_path):
    """gan_start_kimg: no D step (D unchanged, no GAN terms logged) before the start; gan_ramp_kimg: the GAN weights
    then grow linearly (gan_factor), and the default (0, 0) is the official recipe (factor 1 from the first step)."""
    from ganedit.methods.swapae import gan_factor

    assert gan_factor(0, 0.0, 0.0) == 1.0
    assert gan_factor(7, 0.016, 0.0) == 0.0 and gan_factor(16, 0.016, 0.0) == 1.0
    assert gan_factor(24, 0.016, 0.016) == pytest.approx(0.5) and gan_factor(40, 0.016, 0.016) == 1.0
    trainer = train("swapae", {**FAST, "data": "synthetic:16", "out": str(tmp_path / "run"), "steps": 2, "gan_start_kimg": 0.016})
    assert get_method("swapae").defaults["gan_start_kimg"] > 0  # the CPU default: reconstruction first
    sae = trainer.method.nets["sae"]
    assert int(sae.num_discriminator_iters) == 0  # steps 0 and 1 saw 0 and 8 images: before the start
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*(r.keys() for r in rows if "G/G_L1" in r))
    assert not any(k.startswith("D/") or "GAN" in k for k in logged)
    trainer = train("swapae", {**FAST, "data": "synthetic:16", "out": str(tmp_path / "run"), "steps": 3, "gan_start_kimg": 0.016},
                    resume="auto")
    assert int(trainer.method.nets["sae"].num_discriminator_iters) == 1  # step 2 saw 16 images: the GAN is on


def test_integer_betas_from_the_command_line_train(tmp_path):
    """`--set betas=[0,0.99]` (the official value as typed) parses 0 as an int; the recipe must still build Adam."""
    trainer = train("swapae", {**FAST, "data": "synthetic:8", "out": str(tmp_path / "run"), "steps": 1, "betas": [0, 0.99]})
    assert tuple(trainer.method.opts["G"].param_groups[0]["betas"]) == (0.0, 0.99)
    assert all(type(b) is float for b in trainer.cfg["betas"])  # the config coerces a list of floats element-wise
