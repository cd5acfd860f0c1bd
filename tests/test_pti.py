"""Pivotal tuning (ganedit.edit.pti) on tiny random-weight StyleGAN2 generators: it must reconstruct better than
its pivot, store only a small fp16 (or low-rank) difference, and load back only onto its own base generator."""
from __future__ import annotations

import pytest
import torch

from ganedit.edit import pti
from ganedit.edit.latents import generator_fingerprint
from ganedit.errors import CheckpointError
from ganedit.models.stylegan2 import StyleGAN2


def tiny(seed: int = 0) -> StyleGAN2:
    torch.manual_seed(seed)
    return StyleGAN2({"size": 16, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16})


@pytest.fixture(scope="module")
def tuned():
    G = tiny()
    with torch.no_grad():
        w = G.g_ema.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)))
        target = G.g_ema.synthesis(w, "const")
        # a pivot that is close but not exact, as a projection would leave it
        pivot = (w + 0.5 * torch.randn(1, 16, generator=torch.Generator().manual_seed(4))).unsqueeze(1).repeat(1, G.n_latent, 1)
    before = generator_fingerprint(G)
    result = pti.pivotal_tuning(G, target, "face.png", pivot=pivot, steps=25, lr=3e-3, lpips=False, stop_loss=0)
    return G, target, pivot, result, before


def test_tuning_reconstructs_better_than_its_pivot_and_leaves_G_alone(tuned):
    G, target, pivot, result, before = tuned
    with torch.no_grad():
        pivot_error = (G.g_ema.synthesis(pivot, "const") - target).pow(2).mean()
        tuned_error = (result.generator(G).synthesis(pivot, "const") - target).pow(2).mean()
    assert tuned_error < 0.3 * pivot_error, (tuned_error, pivot_error)
    assert result.final_loss < 0.3 * result.pivot_loss and result.steps == 25
    assert generator_fingerprint(G) == before  # the base generator is untouched
    assert result.delta and not any(name.startswith("style.") for name in result.delta)


def test_early_stop_on_the_loss():
    G = tiny()
    with torch.no_grad():
        w = G.g_ema.mapping(torch.randn(1, 16))
        target = G.g_ema.synthesis(w, "const")
    # the exact pivot already reproduces the image: tuning stops at once and changes nothing
    result = pti.pivotal_tuning(G, target, pivot=w, steps=50, lpips=False)
    assert result.steps == 0 and result.delta == {}


def test_fp16_difference_round_trips_and_is_small(tuned, tmp_path):
    G, target, pivot, result, _ = tuned
    path = pti.save_pti(tmp_path / "face.safetensors", result)
    g2, loaded = pti.load_tuned(path, G)
    assert loaded.name == "face.png" and torch.equal(loaded.pivot, result.pivot)
    for name, d in result.delta.items():
        assert torch.allclose(loaded.delta[name], d, rtol=1e-3, atol=1e-6)
    with torch.no_grad():
        a = result.generator(G).synthesis(pivot, "const")
        b = g2.synthesis(pivot, "const")
    assert (a - b).abs().max() < 1e-3
    full_fp32 = sum(p.numel() * 4 for p in G.g_ema.parameters())
    assert path.stat().st_size < 0.7 * full_fp32  # fp16 and no mapping network


def test_low_rank_difference_is_smaller_and_approximates(tuned, tmp_path):
    G, target, pivot, result, _ = tuned
    full = pti.save_pti(tmp_path / "full.safetensors", result)
    low = pti.save_pti(tmp_path / "low.safetensors", result, rank=2)
    assert low.stat().st_size < full.stat().st_size
    loaded = pti.load_pti(low)
    assert set(loaded.delta) == set(result.delta)
    big = max(result.delta, key=lambda n: result.delta[n].numel())
    d, approx = result.delta[big], loaded.delta[big]
    assert approx.shape == d.shape and (approx - d).norm() < d.norm()  # the best rank-2 fit explains part of it
    with torch.no_grad():
        err = (loaded.generator(G).synthesis(pivot, "const") - target).pow(2).mean()
        pivot_err = (G.g_ema.synthesis(pivot, "const") - target).pow(2).mean()
    assert err < pivot_err


def test_result_for_another_generator_is_refused(tuned, tmp_path):
    G, _, _, result, _ = tuned
    path = pti.save_pti(tmp_path / "face.safetensors", result)
    with pytest.raises(CheckpointError, match="tuned from another generator: hash"):
        pti.load_tuned(path, tiny(seed=1))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        pti.load_pti(bad)
    assert pti.is_pti_file(path) and not pti.is_pti_file(bad)


def test_locality_regulariser_keeps_far_codes_closer_to_the_original(tuned):
    G, target, pivot, plain, _ = tuned
    regular = pti.pivotal_tuning(G, target, pivot=pivot, steps=25, lr=3e-3, lpips=False, stop_loss=0,
                                 locality=True, locality_weight=10.0, locality_alpha=3.0)
    far = pti.locality_codes(G.g_ema, pivot, 4, 3.0, torch.Generator().manual_seed(7), G.g_ema.mean_latent(1000, seed=0))
    with torch.no_grad():
        reference = G.g_ema.synthesis(far, "const")
        drift_plain = (plain.generator(G).synthesis(far, "const") - reference).pow(2).mean()
        drift_regular = (regular.generator(G).synthesis(far, "const") - reference).pow(2).mean()
    assert drift_regular < drift_plain


def test_pivot_projection_reports_progress_and_cancel_stops_both_phases():
    G = tiny()
    target = torch.zeros(1, 3, 16, 16)
    pivot_steps, tune_steps = [], []
    pti.pivotal_tuning(G, target, pivot_steps=4, steps=3, lpips=False, stop_loss=0,
                       pivot_progress=lambda k, n, stats: pivot_steps.append((k, n, "loss" in stats)),
                       progress=lambda k, n, stats: tune_steps.append((k, n)))
    assert pivot_steps == [(1, 4, True), (2, 4, True), (3, 4, True), (4, 4, True)]
    assert tune_steps == [(1, 3), (2, 3), (3, 3)]
    seen = []
    result = pti.pivotal_tuning(G, target, pivot_steps=50, steps=50, lpips=False, stop_loss=0,
                                pivot_progress=lambda k, n, s: seen.append(k), cancel=lambda: len(seen) >= 2)
    assert seen == [1, 2] and result.steps == 0 and result.delta == {}
