"""benchmarks/bench_e4e_tradeoff.py's W distance: 1 for sampled w, and its split by w+ row finds an off-W row."""
from __future__ import annotations

import torch

from benchmarks.bench_e4e_tradeoff import row_distances, w_statistics
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
