"""Swapping Autoencoder networks beyond the official vectors: the public API (encode / decode / swap /
interpolate_texture with noise fixed per structure image), small 64 px models, native save/load, test-mode official
files, cached inference weights, and gradients through the in-place fast paths."""
from __future__ import annotations

import pytest
import torch

import ganedit
from ganedit.errors import CheckpointError, ImageError
from ganedit.models.swapae import SwappingAutoencoder, structure_to_rgb
from ganedit.models.swapae import losses as L




@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = SwappingAutoencoder.small(64, width=16, texture_channels=64).eval()
    with torch.no_grad():  # non-trivial biases, noise strengths and modulations so every path matters
        for name, p in m.named_parameters():
            if name.endswith("bias") or name.endswith("noise.weight"):
                p.add_(0.2 * torch.randn_like(p))
    return m


def images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_small_model_shapes_and_unit_codes(model):
    x = images(4)
    with torch.inference_mode():
        sp, gl = model.encode(x)
        assert sp.shape == (4, 8, 8, 8) and gl.shape == (4, 64)
        torch.testing.assert_close(sp.norm(dim=1), torch.ones(4, 8, 8))
        torch.testing.assert_close(gl.norm(dim=1), torch.ones(4))
        out = model.decode(sp, gl, noise="zero")
        assert out.shape == (4, 3, 64, 64) and torch.isfinite(out).all()
        # G renormalises: scaled codes decode to the same image
        torch.testing.assert_close(model.decode(3 * sp, 0.5 * gl, noise="zero"), out, atol=1e-5, rtol=1e-4)
        assert model.D(x).shape == (4, 1)
        vis = structure_to_rgb(sp)
        assert vis.shape == (4, 3, 8, 8) and vis.abs().max() <= 1 + 1e-6 and vis.std() > 0.05
        crops = model.crops(x)
        assert crops.shape == (4, 8, 3, 16, 16)
        f = model.Dpatch.extract_features(crops, aggregate=True)
        assert f.shape == (32, model.config["patch_feature_channels"], 2, 2)
        assert torch.equal(f[0], f[7]) and not torch.equal(f[0], f[8])  # one reference per image
    with pytest.raises(ImageError, match="multiples of 8"):
        model.encode(images(1, 60))
    with pytest.raises(ImageError, match="at least 56"):
        model.encode(images(1, 48))


def test_swap_and_interpolation_semantics(model):
    a, b = images(2, seed=1), images(2, seed=2)
    with torch.inference_mode():
        sp_a, gl_a = model.encode(a)
        _, gl_b = model.encode(b)
        noise = model.make_noise(sp_a, torch.Generator().manual_seed(3))
        swapped = model.swap(a, b, noise=noise)
        torch.testing.assert_close(swapped, model.decode(sp_a, gl_b, noise=noise), atol=1e-5, rtol=1e-4)
        # the swap changes the image: the texture code matters
        assert (swapped - model.decode(sp_a, gl_a, noise=noise)).abs().mean() > 1e-3
        strip = model.interpolate_texture(sp_a, gl_a, gl_b, [0.0, 0.5, 0.5, 1.0], generator=torch.Generator().manual_seed(4))
        assert strip.shape == (2, 4, 3, 64, 64)
        # one noise draw per structure image, shared by every alpha
        torch.testing.assert_close(strip[:, 1], strip[:, 2], atol=0, rtol=0)
        fixed = model.make_noise(sp_a, torch.Generator().manual_seed(4))
        torch.testing.assert_close(strip[:, 0], model.decode(sp_a, gl_a, fixed), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(strip[:, 3], model.decode(sp_a, gl_b, fixed), atol=1e-5, rtol=1e-4)
        mid = torch.lerp(gl_a, gl_b, 0.5)
        torch.testing.assert_close(strip[:, 1], model.decode(sp_a, mid, fixed), atol=1e-5, rtol=1e-4)
        # random noise (the default) differs between calls
        assert not torch.equal(model.decode(sp_a, gl_a), model.decode(sp_a, gl_a))
    assert torch.equal(SwappingAutoencoder.swap_pairs(torch.arange(4)), torch.tensor([1, 0, 3, 2]))


def test_native_roundtrip_without_flags(model, tmp_path):
    ganedit.save(model, tmp_path / "sae")
    loaded = ganedit.load(tmp_path / "sae")
    assert isinstance(loaded, SwappingAutoencoder) and loaded.config == model.config
    x = images(2)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.decode(*loaded.encode(x), noise="zero"), model.decode(*model.encode(x), noise="zero"), atol=0, rtol=0)
        torch.testing.assert_close(loaded.D(x), model.D(x), atol=0, rtol=0)


def test_official_file_in_test_mode_and_broken_files(model, tmp_path):
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith(("D.", "Dpatch."))}
    torch.save(sd, tmp_path / "latest_checkpoint.pth")
    loaded = ganedit.load(tmp_path / "latest_checkpoint.pth")
    assert not hasattr(loaded, "D") and not hasattr(loaded, "Dpatch")
    x = images(2)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.decode(*loaded.encode(x), noise="zero"), model.decode(*model.encode(x), noise="zero"), atol=0, rtol=0)
    broken = dict(sd)
    del broken["G.HeadResnetBlock1.conv2.conv.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="broken.pth"):
        ganedit.load(tmp_path / "broken.pth")
    wrong = dict(sd)
    wrong["G.ToRGB.bias"] = torch.zeros(1, 4, 1, 1)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="shape"):
        ganedit.load(tmp_path / "wrong.pth")


def test_cached_inference_weights_follow_parameter_updates(model):
    torch.manual_seed(5)
    m = SwappingAutoencoder.small(64, width=8, texture_channels=32, with_discriminators=False).eval()
    x = images(1)
    with torch.inference_mode():
        before = m.decode(*m.encode(x), noise="zero")
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.1)
    fresh = SwappingAutoencoder(**m.config)
    fresh.load_state_dict(m.state_dict())
    with torch.inference_mode():
        after = m.decode(*m.encode(x), noise="zero")
        torch.testing.assert_close(after, fresh.eval().decode(*fresh.encode(x), noise="zero"), atol=1e-6, rtol=1e-5)
    assert (after - before).abs().max() > 1e-3


def test_gradients_through_fast_paths_match_finite_differences():
    torch.manual_seed(6)
    m = SwappingAutoencoder(structure_channels=4, texture_channels=8, encoder_channels=[4, 8, 8, 8, 8], num_downsampling_sp=2,
                            generator_head_channels=[8, 8], generator_up_channels=[8, 4], image_size=16,
                            discriminator_channels=[4, 8, 8], patch_size=8, patch_channels=[4, 8], patch_feature_channels=8,
                            patch_pair_hidden=[8, 8, 8]).double()
    x = (torch.rand(2, 3, 28, 28, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    noise = {k: v.double() for k, v in m.make_noise(torch.zeros(2, 4, 7, 7)).items()}
    torch.autograd.gradcheck(lambda im: m.decode(*m.E(im), noise=noise), (x,), fast_mode=True, atol=1e-6)
    xd = (torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    torch.autograd.gradcheck(m.D, (xd,), fast_mode=True, atol=1e-6)
    p = (torch.rand(1, 2, 3, 8, 8, dtype=torch.float64)).requires_grad_(True)
    torch.autograd.gradgradcheck(lambda q: m.Dpatch(q, q), (p,), fast_mode=True, atol=1e-6)


def test_training_step_losses_backpropagate(model):
    m = SwappingAutoencoder.small(64, width=8, texture_channels=32).train()
    x = images(4)
    d = L.discriminator_losses(m, x)
    assert set(d) == {"D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix"} and d["PatchD_real"].shape == (32,)
    L.total(d).backward()
    assert m.D.stylegan2_D.convs[0].Conv.weight.grad.abs().sum() > 0 and m.Dpatch.pairlinear[0].weight.grad.abs().sum() > 0
    assert m.G.ToRGB.conv.weight.grad is None  # the D step does not reach E/G
    g, metrics = L.generator_losses(m, x)
    L.total(g).backward()
    assert m.E.FromRGB.Conv.weight.grad.abs().sum() > 0 and m.G.ToRGB.conv.weight.grad.abs().sum() > 0
    r1 = L.r1_loss(m, x)["D_R1"]
    assert r1.shape == (4,) and (r1 > 0).all()


def test_rosinality_layout_is_recognised_and_explained(conformance):
    path = conformance / "swapae" / "rosinality_small" / "checkpoint" / "000000.pt"
    if not path.exists():
        pytest.skip(f"no rosinality checkpoint at {path}")
    with pytest.raises(CheckpointError, match="rosinality's re-implementation"):
        ganedit.load(path)


def test_small_model_structure_downsampling_sets_the_code_resolution():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    for downsampling, side in ((0, 8), (2, 16), (3, 8)):
        model = SwappingAutoencoder.small(64, 4, 32, 8, structure_downsampling=downsampling, with_discriminators=False)
        sp, gl = model.encode(x)
        assert sp.shape == (2, 4, side, side) and gl.shape == (2, 32)
        assert model.decode(sp, gl, "zero").shape == (2, 3, 64, 64)
