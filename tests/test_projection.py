"""Optimisation inversion (ganedit.edit.projection) on tiny random-weight StyleGAN2 generators."""
from __future__ import annotations

import logging

import pytest
import torch

from ganedit.edit import projection as P
from ganedit.errors import ConfigError
from ganedit.models.stylegan2 import StyleGAN2


def tiny(size: int = 16, seed: int = 0) -> StyleGAN2:
    torch.manual_seed(seed)
    return StyleGAN2({"size": size, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16})


def known_images(G: StyleGAN2, n: int = 2, seed: int = 5):
    with torch.no_grad():
        w = G.g_ema.mapping(torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(seed)))
        return w, G.g_ema.synthesis(w, "const")


def test_projection_reduces_loss_and_recovers_w_better_than_the_mean():
    G = tiny()
    w, images = known_images(G)
    result = P.project(G, images, space="w", steps=120, noise=False, lpips=False, n_mean_latent=2000)
    mean, _ = P.w_statistics(G, 2000)
    error = (result.wplus[:, 0] - w).norm(dim=1)
    baseline = (mean - w).norm(dim=1)
    assert result.history[-1] < 0.1 * result.history[0]
    assert torch.all(error < 0.7 * baseline), (error, baseline)
    # the returned images are G(codes), and closer to the targets than the mean latent's image
    start = G.g_ema.synthesis(mean.expand(2, -1), "const")
    assert (result.images - images).pow(2).mean() < 0.2 * (start - images).pow(2).mean()
    assert result.wplus.shape == (2, G.n_latent, G.style_dim) and torch.equal(result.wplus[:, 0], result.wplus[:, -1])
    assert result.noise is None and result.space == "w" and result.steps == 120


def test_wplus_with_noise_maps_keeps_them_normalised_and_fits_better_than_w():
    G = tiny()
    _, images = known_images(G, n=1, seed=9)
    plus = P.project(G, images, space="w+", steps=60, noise=True, lpips=False, n_mean_latent=1000)
    assert len(plus.noise) == G.g_ema.num_layers
    for nz in plus.noise:
        assert nz.shape[0] == 1
        assert abs(float(nz.mean())) < 1e-4 and abs(float(nz.std(unbiased=False)) - 1) < 1e-3
    assert not torch.equal(plus.wplus[:, 0], plus.wplus[:, -1])  # rows moved independently
    assert plus.history[-1] < 0.2 * plus.history[0]


def test_noise_regularizer_penalises_correlated_noise_per_image():
    white = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, 8, 8), scale_factor=4, mode="bilinear")
    smooth = (smooth - smooth.mean()) / smooth.std()
    both = P.noise_regularizer([torch.cat([white, smooth])])
    assert both.shape == (2,) and both[1] > 50 * both[0]


def test_schedules():
    assert P.learning_rate(0.0, 0.1) == 0.0
    assert P.learning_rate(0.5, 0.1) == pytest.approx(0.1)
    assert P.learning_rate(0.025, 0.1) == pytest.approx(0.05)  # half-way through the warm-up
    assert P.learning_rate(0.875, 0.1) == pytest.approx(0.05)  # half-way through the cosine ramp-down
    assert P.latent_noise_strength(0.0, 2.0) == pytest.approx(0.1)
    assert P.latent_noise_strength(0.8, 2.0) == 0.0


def test_progress_and_cancel():
    G = tiny(8)
    _, images = known_images(G, n=1)
    seen = []
    result = P.project(G, images, steps=50, lpips=False, n_mean_latent=500,
                       progress=lambda step, total, stats: seen.append((step, total, stats["loss"])),
                       cancel=lambda: len(seen) >= 3)
    assert result.cancelled and result.steps == 3 and [s[:2] for s in seen] == [(1, 50), (2, 50), (3, 50)]
    assert len(result.history) == 3 and result.images.shape == images.shape


def test_init_from_encoder_codes_starts_there():
    G = tiny(8)
    w, images = known_images(G, n=1)
    start = w.unsqueeze(1).expand(-1, G.n_latent, -1)
    result = P.project(G, images, space="w+", steps=1, noise=False, init=start, lpips=False, n_mean_latent=500)
    # one step at the warm-up's lr 0 with latent noise: the code cannot leave the start
    assert torch.allclose(result.wplus, start)
    with pytest.raises(ConfigError, match="init codes"):
        P.project(G, images, steps=1, init=torch.zeros(1, 3, 16), lpips=False)


def test_missing_lpips_weights_fall_back_and_say_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GANEDIT_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="ganedit.edit.projection"):
        fn, name = P.perceptual_loss(None, "vgg")
    assert name == "pyramid-mse" and "no weights" in caplog.text
    x = torch.zeros(2, 3, 16, 16)
    assert torch.allclose(fn(x, x + 0.5), torch.full((2,), 0.25))


def test_lpips_module_is_used_as_the_loss():
    from ganedit.metrics.lpips_net import LPIPS

    G = tiny()
    _, images = known_images(G, n=1)
    result = P.project(G, images, space="w", steps=3, noise=False, lpips=LPIPS("vgg"), n_mean_latent=500)
    assert result.loss_name == "lpips-vgg" and len(result.history) == 3


def test_wrong_image_size_is_a_clear_error():
    G = tiny(8)
    with pytest.raises(ConfigError, match=r"\[N, 3, 8, 8\]"):
        P.project(G, torch.zeros(1, 3, 16, 16), steps=1, lpips=False)


def test_noise_maps_can_start_from_the_stored_ones():
    G = tiny(8)
    _, images = known_images(G, n=1)
    result = P.project(G, images, space="w", steps=1, noise=True, noise_init="const", lpips=False, n_mean_latent=500)
    stored = [getattr(G.g_ema.noises, f"noise_{k}") for k in range(G.g_ema.num_layers)]
    # lr is 0 at the first step: the maps are the stored ones, renormalised
    for got, ref in zip(result.noise, stored):
        expected = (ref - ref.mean()) / ref.std(unbiased=False)
        assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="noise_init"):
        P.project(G, images, steps=1, noise_init="zeros", lpips=False)


def test_named_lpips_weights_that_are_missing_are_an_error(tmp_path):
    from ganedit.metrics.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="vgg.pth"):
        P.perceptual_loss(tmp_path, "vgg")  # an existing folder without the files
