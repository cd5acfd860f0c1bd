"""The projection benchmark runs end to end on a tiny random generator (its figures are meaningless there)."""
from __future__ import annotations

import re

import torch

N = r"-?[\d.]+"


def test_bench_projection_smoke(capsys, tmp_path, monkeypatch):
    from benchmarks import bench_projection

    monkeypatch.setenv("GANEDIT_CACHE", str(tmp_path))
    bench_projection.main(["--random", "16", "--steps", "2", "--spaces", "w+", "--noise-modes", "const", "--n", "2",
                           "--mixing", "1", "--n-world", "1", "--world-steps", "3", "--timing-steps", "2",
                           "--repeats", "1", "--pti-n", "1", "--pivot-steps", "2", "--pti-steps", "2", "--direction", "random"])
    out = capsys.readouterr().out
    assert re.search(rf"^\| w\+ \| const \| 2 \| {N} \| {N} \| {N} \| {N} / {N} \| {N} \|$", out, re.M)  # in-domain
    assert re.search(rf"^\| w\+ \| const \| 3 \| {N} \| {N} \| {N} \|$", out, re.M)  # world, at --world-steps
    assert re.search(rf"^\| w\+ \| {N} / {N} \| {N} / {N} \| {N} / {N} \|$", out, re.M)  # speed
    for name in ("in-domain 0", "world 0"):
        row = re.search(rf"^\| {name} \| {N} / {N} \| {N} / {N} \| {N} \| \d+ \| {N} \| (\d+) \| (\d+) \| (\d+) \|$", out, re.M)
        assert row and int(row.group(1)) < int(row.group(3))  # the fp16 difference is smaller than the whole generator
    # the PTI edit check: one row per tuned image, base and tuned generator
    assert "PTI edits: direction 'random'" in out
    assert re.search(rf"^\| world 0 \| {N} \| {N} \| {N} \| {N} \|$", out, re.M)
    assert "ganedit data indomain --seed 0 --mixing 1`" in out and "2 style-mixed" in out and "min CPU" in out


def test_latent_error_against_wplus_truth():
    from benchmarks.bench_projection import latent_error

    mean = torch.zeros(4)
    truth = torch.tensor([[[1.0, 0, 0, 0], [0, 3.0, 0, 0]]])  # one image, two rows (style-mixed)
    assert torch.allclose(latent_error(truth.clone(), truth, mean), torch.zeros(1))
    assert torch.allclose(latent_error(mean.expand(1, 2, 4).clone(), truth, mean), torch.ones(1))  # the mean latent
    # a W truth [N, dim] is every row of w+
    w = torch.tensor([[2.0, 0, 0, 0]])
    assert torch.allclose(latent_error(torch.zeros(1, 3, 4), w, mean), torch.ones(1))
    assert torch.allclose(latent_error(w[:, None].expand(1, 3, 4) * 1.5, w, mean), torch.full((1,), 0.5))
