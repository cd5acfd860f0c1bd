"""benchmarks/bench_e4e_tradeoff.py: the W distance (1 for sampled w; split by w+ row it finds an off-W row) and the
LEC ratio."""
from __future__ import annotations

import torch

from benchmarks.bench_e4e_tradeoff import relative_drift, row_distances, w_statistics
from ganedit.models.stylegan2 import StyleGAN2


def test_w_distance_by_row():
    torch.manual_seed(3)
    G = StyleGAN2(generator={"size": 16, "style_dim": 8, "n_mlp": 2, "channels": {"4": 8, "8": 8, "16": 8}}).eval()
    mean, inv, unit = w_statistics(G, n=4000, seed=1)
    with torch.no_grad():
        w = G.mapping(torch.randn(600, 8, generator=torch.Generator().manual_seed(7)))
    wplus = w.reshape(100, 6, 8).clone()  # six independent sampled w per code: every row as typical as W
    typical = row_distances(wplus, mean, inv, unit)
    assert typical.shape == (6,) and ((typical - 1).abs() < 0.2).all(), typical
    spread, axes = torch.linalg.eigh(torch.linalg.inv(inv))  # W's covariance: variances and their directions
    wplus[:, 3] += 2 * unit * spread[0].sqrt() * axes[:, 0]  # a row pushed 2 units along W's narrowest direction
    moved = row_distances(wplus, mean, inv, unit)
    assert moved[3] > 1.5 * typical[3] and torch.allclose(moved[[0, 1, 2, 4, 5]], typical[[0, 1, 2, 4, 5]])


def test_relative_drift_is_the_lec_ratio():
    w = torch.randn(4, 6, 8)
    delta = torch.zeros(4, 6, 8)
    delta[:, :, 0] = 2.0  # ||delta|| = 2 on every row
    assert torch.allclose(relative_drift(w + delta - delta, w, delta), torch.zeros(4), atol=1e-6)  # read back exactly
    off = w.clone()
    off[:, :, 1] += 1.0  # read back 1 off on every row: half the edit's size
    assert torch.allclose(relative_drift(off, w, delta), torch.full((4,), 0.5))


def test_code_spread_scales_with_the_codes():
    from benchmarks.bench_e4e_tradeoff import code_spread

    w = torch.randn(64, 6, 8)
    assert code_spread(w) > 1.0 and abs(code_spread(w * 0.5) - 0.5 * code_spread(w)) < 1e-5
    assert code_spread(w[:1].repeat(64, 1, 1)) < 1e-5  # every image coded alike: no spread
    assert abs(code_spread(w + 3.0) - code_spread(w)) < 1e-5  # a shift is not a spread


def test_projection_encoder_inverts_under_no_grad():
    """The bench calls every encoder under torch.no_grad; the projection encoder must still optimise, and its
    codes must make the image with the stored noise maps (as the encoders' codes do)."""
    from benchmarks.bench_e4e_tradeoff import projection_encoder

    torch.manual_seed(0)
    G = StyleGAN2({"size": 16, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16}).eval()
    with torch.no_grad():
        w = G.g_ema.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(5)))
        images = G.g_ema.synthesis(w, "const")
        mean_image = G.g_ema.synthesis(G.g_ema.mapping(torch.randn(2000, 16)).mean(0, keepdim=True).expand(2, -1), "const")
    for space in ("w", "w+"):
        with torch.no_grad():
            codes = projection_encoder(G, space, steps=120)(images)
            rebuilt = G.g_ema.synthesis(codes, "const")
        assert codes.shape == (2, G.n_latent, 16)
        assert (rebuilt - images).pow(2).mean() < 0.2 * (mean_image - images).pow(2).mean(), space
        assert torch.equal(codes[:, 0], codes[:, -1]) == (space == "w")  # one w repeated; w+ rows differ


def test_image_drift_is_the_lec_in_pixels():
    from benchmarks.bench_e4e_tradeoff import image_drift

    rec = torch.zeros(3, 3, 8, 8)
    edited = torch.zeros(3, 3, 8, 8)
    edited[:, 0] = 0.5  # the edit moves every pixel of one channel
    assert torch.allclose(image_drift(rec.clone(), rec, edited), torch.zeros(3))  # undone exactly
    half_back = edited * 0.5  # undoing lands half-way: half the edit's own move
    assert torch.allclose(image_drift(half_back, rec, edited), torch.full((3,), 0.5))
    assert torch.allclose(image_drift(edited, rec, edited), torch.ones(3))  # the edit not undone at all


def test_bar_line_judges_both_image_sets():
    from benchmarks.bench_e4e_tradeoff import bar_line

    def row(leak, lec, psnr=25.0):
        return {"psnr": psnr, "leak": leak, "lec": lec, "pixel_lec": lec, "dist": 1.0}

    indomain = {"pSp": row(0.05, 1.6), "e4e": row(0.04, 1.2, psnr=24.0)}
    world = {"pSp": row(0.05, 2.0), "e4e": row(0.04, 2.5)}
    line = bar_line("pSp", "e4e", indomain, world)
    assert "reconstruction -1.00 dB" in line and "in-domain: met" in line and "world: not met" in line
    assert "LEC 0.75x" in line and "LEC 1.25x" in line
