"""Every method: a few steps on 2 gloo ranks equal the same steps on 1 process with the same global batch.

Each case runs 2 steps (the lazy regularisers, image pools and running means are all exercised), with tiny
networks and plain SGD (see tests/ddp_method_step.py). The comparison is relative to how far the step moved
the weights: 2 ranks vs 1 must agree to 1e-4 of the update, where float reduction order gives ~1e-6 and any
per-rank maths (a per-rank RNG stream, per-rank BatchNorm statistics, pairs or groups cut by the rank boundary)
gives differences of the order of the update itself."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganedit
from ganedit.models.stylegan2 import Generator
from test_engine import load_ckpt, sub_env

DECODER = "<tiny decoder>"  # replaced by the path of the StyleGAN2 the fixture saves
PSP_TINY = {"data": "synthetic:8", "batch": 4, "size": 32, "input_size": 32, "units": [1, 1, 1, 1], "depths": [4, 6, 8, 10],
            "input_width": 4, "se_reduction": 2, "lpips_lambda": 0.0, "decoder": DECODER, "lr": 0.05}
COMMON = {"steps": 2, "workers": 0, "device": "cpu", "quiet": True, "tensorboard": False, "snapshot_every": 0}
CASES = {
    "tinygan": {"data": "synthetic:16", "batch": 8, "size": 32, "channels": 8, "z_dim": 8, "r1_every": 2, "lr": 0.05},
    "stylegan2": {"data": "synthetic:16", "batch": 8, "size": 32, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 8,
                  "r1_every": 2, "pl_every": 2, "lr": 0.05},
    "swapae": {"data": "synthetic:16", "batch": 8, "size": 32, "width": 4, "texture_channels": 16, "r1_every": 2, "lr": 0.005,
               "gan_start_kimg": 0, "gan_ramp_kimg": 0},
    "pix2pix": {"data": "synthetic:8", "batch": 4, "crop_size": 32, "load_size": 32, "netG": "unet_32", "ngf": 4, "ndf": 4, "n_layers_D": 1, "lr": 0.005},
    "cyclegan": {"data": "synthetic:8", "batch": 4, "crop_size": 32, "load_size": 32, "netG": "resnet_1blocks", "ngf": 4, "ndf": 4,
                 "n_layers_D": 1, "pool_size": 3, "use_dropout": True, "lr": 0.005},
    # pSp / e4e: IR-SE BatchNorm, the frozen decoder's random noise; ReStyle's refinement steps; e4e's stage change
    # (stage 0 at step 0, 1 at step 1), latent D with R1 (step 0) and its w pools (filled, then swapping)
    "psp": {**PSP_TINY, "task": "encode", "w_norm_lambda": 0.01},
    # ReStyle: 2 refinement steps, the second reading the first's output, back-propagated into one update (lr 0.01:
    # when each step was its own update, at lr 0.05 the rounding grew to 5e-4 of the update in 2 steps)
    "psp_sketch": {**PSP_TINY, "method": "psp", "task": "sketch", "restyle": True, "restyle_iters": 2, "lr": 0.01},
    "e4e": {**PSP_TINY, "similarity_lambda": 0.0, "progressive_start": 1, "progressive_step_every": 1, "w_pool_size": 3,
            "d_reg_every": 2, "w_discriminator_lr": 0.05},
    # ReStyle-e4e: the discriminator on the first refinement step's codes, each step's loss with its latent terms
    "e4e_restyle": {**PSP_TINY, "method": "e4e", "similarity_lambda": 0.0, "progressive_start": 1, "progressive_step_every": 1,
                    "w_pool_size": 3, "d_reg_every": 2, "w_discriminator_lr": 0.05, "restyle": True, "restyle_iters": 2, "lr": 0.01},
}
SCRIPT = Path(__file__).with_name("ddp_method_step.py")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_methods")
    torch.manual_seed(5)
    decoder, generator = root / "decoder", Generator(16, 8, 2, channels={"4": 8, "8": 8, "16": 8})  # 16 px, 6 w+ rows
    with torch.no_grad():  # noise strengths start at 0: give the decoder's noise an effect on the output
        for name, p in generator.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)
    ganedit.save(generator, decoder)
    cases = json.dumps({name: {**COMMON, **{k: str(decoder) if v == DECODER else v for k, v in opts.items()}}
                        for name, opts in CASES.items()})
    env = sub_env()
    two = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(root / "two"), cases],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    one = subprocess.run([sys.executable, str(SCRIPT), str(root / "one"), cases], env=env, capture_output=True, text=True, timeout=600)
    out, _ = two.communicate(timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, out[-3000:]
    return root


@pytest.mark.parametrize("method", list(CASES))
def test_two_ranks_equal_one_process(runs, method):
    single = load_ckpt(runs / "one" / method / "rank0.pt")
    r0, r1 = (load_ckpt(runs / "two" / method / f"rank{r}.pt") for r in (0, 1))
    moved = max((v - single["initial"][k]).abs().max().item() for k, v in single["final"].items() if v.is_floating_point())
    assert moved > 1e-3, f"{method}: the steps barely moved the weights ({moved})"
    for key, value in single["final"].items():
        assert torch.equal(r0["final"][key], r1["final"][key]), f"{method}: {key} differs between the 2 ranks"
        if value.is_floating_point():
            err = (r0["final"][key] - value).abs().max().item()
            assert err <= 1e-4 * moved, f"{method}: {key}: 2 ranks vs 1 differ by {err:.3g} (the update moved weights by {moved:.3g})"
        else:
            assert torch.equal(r0["final"][key], value), f"{method}: {key}"
    assert set(r0["extra"]) == set(single["extra"])
    for key, value in single["extra"].items():
        # pooled codes / images come out of the updated networks: rounding scales with their size (e4e's offset
        # rows go through the lateral layers), while per-rank maths would differ by the size itself
        atol = max(1e-6, 1e-4 * value.abs().max().item()) if torch.is_tensor(value) and value.is_floating_point() else 1e-6
        for r in (r0, r1):
            torch.testing.assert_close(r["extra"][key], value, rtol=1e-4, atol=atol, msg=lambda m: f"{method}: {key}: {m}")


# -- the invariant forms, piece by piece (no process group needed) ----------------------------------------------
def _split(fn, x, parts=2):
    return torch.cat([fn(chunk) for chunk in x.chunk(parts)])


def test_contiguous_minibatch_stddev_groups_survive_splitting_the_batch():
    from ganedit.nn import minibatch_stddev

    x = torch.randn(8, 4, 2, 2)
    contiguous = lambda t: minibatch_stddev(t, 4, 1, "contiguous")
    strided = lambda t: minibatch_stddev(t, 4, 1, "strided")
    torch.testing.assert_close(_split(contiguous, x), contiguous(x))
    assert not torch.allclose(_split(strided, x), strided(x))  # the official groups straddle the shares
    # one group: both layouts are the same statistic
    torch.testing.assert_close(contiguous(x[:4]), strided(x[:4]))


def test_swapae_pairs_layout_is_the_same_on_any_number_of_processes():
    from ganedit.methods.swapae import SwapAE

    method = SwapAE({"batch_layout": "pairs"})
    full = torch.arange(16)
    d, g, rec = method.layout(16, torch.device("cpu"))
    shares = [method.layout(8, torch.device("cpu")) for _ in range(2)]
    assert torch.equal(torch.cat([full[r * 8:(r + 1) * 8][s[0]] for r, s in enumerate(shares)]), full[d])
    assert torch.equal(torch.cat([full[r * 8:(r + 1) * 8][s[1]] for r, s in enumerate(shares)]), full[g])
    assert torch.equal(full[d][rec], torch.tensor([0, 4, 8, 12])) and torch.equal(full[g][rec], torch.tensor([2, 6, 10, 14]))
    halves = SwapAE({"batch_layout": "halves"})
    hd = halves.layout(16, torch.device("cpu"))[0]
    assert not torch.equal(torch.cat([full[r * 8:(r + 1) * 8][halves.layout(8, torch.device("cpu"))[0]] for r in range(2)]), full[hd])


def test_crop_draws_through_rand_reproduce_the_generator_draws():
    from ganedit.models.swapae.discriminators import draw_crop_params

    ref = draw_crop_params(3, 8, 0.125, 0.25, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    via = draw_crop_params(3, 8, 0.125, 0.25, rand=lambda *shape: torch.rand(*shape, generator=g))
    for k in ref:
        assert torch.equal(ref[k], via[k]), k


def test_global_batch_layers_are_plain_layers_in_one_process():
    from torch import nn

    from ganedit.nn.global_batch import GlobalBatchNorm2d, SharedNoiseDropout, dropout_noise, make_world_size_invariant

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    reference = nn.Sequential(*[m for m in net])  # same modules, before replacement
    x = torch.randn(4, 3, 8, 8)
    torch.manual_seed(1)
    expected = reference(x)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    make_world_size_invariant(net)
    assert isinstance(net[1], GlobalBatchNorm2d) and isinstance(net[2], SharedNoiseDropout)
    assert list(net.state_dict()) == list(state)
    # drawn from the global RNG without a rand source, exactly like nn.Dropout
    net[1].load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("1.")})
    torch.manual_seed(1)
    torch.testing.assert_close(net(x), expected)
    # with a rand source the keep-mask is u >= p of its draws, scaled by 1 / (1 - p)
    u = torch.rand(4, 4, 6, 6)
    with dropout_noise(net, lambda *shape: u):
        y = net[2](torch.ones(4, 4, 6, 6))
    assert torch.equal(y, (u >= 0.5).float() * 2) and net[2].rand is None
