"""`ganedit data indomain`: a tiny in-domain set from a small random StyleGAN2; every file is checked and the
latents reproduce the images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganedit
from ganedit.cli.main import main
from ganedit.data.degrade import brush_masks, edge_sketch, rectangle_masks
from ganedit.data.io import read_image
from ganedit.models.stylegan2 import StyleGAN2

SIZE, N = 32, 6


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    torch.manual_seed(1)
    model = StyleGAN2(generator={"size": SIZE, "style_dim": 32, "n_mlp": 2, "lr_mlp": 1.0, "channels": {str(r): 16 for r in (4, 8, 16, 32)}})
    with torch.no_grad():  # a non-zero mean latent (lr_mlp 1: w, hence the image, varies with z at init)
        model.latent_avg.copy_(model.g_ema.mean_latent(256, seed=0).reshape(-1))
    path = tmp_path_factory.mktemp("g") / "g"
    ganedit.save(model, path)
    return path


@pytest.fixture(scope="module")
def indomain_set(generator_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("indomain") / "set"
    main(["data", "indomain", "--model", str(generator_dir), "--n", str(N), "-o", str(out), "--seed", "3", "--mixing", "0.5", "--batch", "4"])
    return out


def _png(path):
    return np.asarray(Image.open(path))


def test_every_file_is_written(indomain_set):
    record = json.loads((indomain_set / "indomain.json").read_text())
    assert record["n"] == N and record["size"] == SIZE and record["seed"] == 3 and record["noise"] == "const"
    assert set(record["mask_kind"]) <= {"rectangle", "brush"} and len(record["mask_kind"]) == N
    shapes = {"images": (SIZE, SIZE, 3), "lowres4": (SIZE // 4, SIZE // 4, 3), "lowres8": (SIZE // 8, SIZE // 8, 3),
              "masked": (SIZE, SIZE, 3), "sketch": (SIZE, SIZE), "masks": (SIZE, SIZE)}
    for folder, shape in shapes.items():
        files = sorted((indomain_set / folder).glob("*.png"))
        assert [f.name for f in files] == [f"{i:08d}.png" for i in range(N)], folder
        assert all(_png(f).shape == shape for f in files), folder
    for i in range(N):
        name = f"{i:08d}.png"
        image, masked, hole = _png(indomain_set / "images" / name), _png(indomain_set / "masked" / name), _png(indomain_set / "masks" / name) > 127
        assert 0 < hole.sum() < hole.size  # a real hole, not the whole image
        assert (masked[hole] == 128).all()  # mid-grey inside the hole
        assert np.array_equal(masked[~hole], image[~hole])  # the rest untouched
        low4 = _png(indomain_set / "lowres4" / name).astype(np.float64)
        box = image.astype(np.float64).reshape(SIZE // 4, 4, SIZE // 4, 4, 3).mean((1, 3))
        assert np.abs(low4 - box).max() <= 1.0  # 4x4 box average (PNG rounding only)


def test_latents_reproduce_images(indomain_set, generator_dir):
    from safetensors.torch import load_file

    from ganedit.cli.sample import load_stylegan2
    from ganedit.edit.latents import load_latents

    G = load_stylegan2(str(generator_dir))
    latents = load_latents(indomain_set / "latents.safetensors", G)  # also checks the generator fingerprint
    assert latents.wplus.shape == (N, G.n_latent, G.style_dim) and latents.space == "w+"
    assert latents.names == [f"{i:08d}" for i in range(N)]
    with torch.no_grad():
        images = G.synthesis(latents.wplus, noise="const")
    files = torch.cat([read_image(indomain_set / "images" / f"{i:08d}.png") for i in range(N)])
    assert (images.clamp(-1, 1) - files).abs().max() <= 1.0 / 127.5 + 1e-6  # equal up to 8-bit rounding

    codes = load_file(str(indomain_set / "codes.safetensors"))
    with torch.no_grad():
        w = G.mapping(codes["z"][:, 0])
    assert torch.allclose(w, codes["w"], atol=1e-5)
    mixed, cross = codes["mixed"], codes["crossover"]
    for i in range(N):  # rows before the crossover are w, the rest the second z's w
        assert torch.allclose(latents.wplus[i, : cross[i]], w[i].expand(int(cross[i]), -1), atol=1e-5)
        assert bool(mixed[i]) == (int(cross[i]) < G.n_latent)


def test_seeds_are_fixed_per_image(indomain_set, generator_dir, tmp_path):
    """Image i of a seed does not depend on how many images are drawn; another seed gives other images."""
    main(["data", "indomain", "--model", str(generator_dir), "--n", "2", "-o", str(tmp_path / "a"), "--seed", "3", "--mixing", "0.5"])
    main(["data", "indomain", "--model", str(generator_dir), "--n", "2", "-o", str(tmp_path / "b"), "--seed", "4", "--mixing", "0.5"])
    for i in range(2):
        name = f"{i:08d}.png"
        assert np.array_equal(_png(tmp_path / "a" / "images" / name), _png(indomain_set / "images" / name))
        assert np.array_equal(_png(tmp_path / "a" / "masks" / name), _png(indomain_set / "masks" / name))
        assert not np.array_equal(_png(tmp_path / "b" / "images" / name), _png(indomain_set / "images" / name))


def test_edge_sketch_draws_region_edges():
    from ganedit.data.synthetic import render, sample_appearance, sample_structure

    r = render(sample_structure(8, 5), sample_appearance(8, 5), 64)
    sketch = edge_sketch(r.image)
    assert sketch.shape == (8, 1, 64, 64) and sketch.min() >= -1 and sketch.max() <= 1
    true_lines = r.sketch < 0  # the world's own sketch: region boundaries
    ink = sketch < 0
    # most true boundary pixels are inked, and the paper stays mostly white
    assert (ink & true_lines).sum() / true_lines.sum() > 0.7
    assert ink.float().mean() < 0.5
    assert (edge_sketch(torch.zeros(1, 3, 16, 16)) == 1).all()  # a flat image is blank paper


def test_masks():
    u = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.999, 0.999, 0.999, 0.999]])  # uniforms are < 1
    rect = rectangle_masks(u, 16)
    assert rect[0, 0].sum() == 4 * 4 and rect[0, 0, :4, :4].all()  # quarter side, top-left
    assert rect[1, 0].sum() == 7 * 7 and rect[1, 0, 9:, 9:].all()  # just under half the side, bottom-right
    line = brush_masks(torch.tensor([[[0.0, 0.5], [1.0, 0.5]]]), torch.tensor([2.0]), 16)
    assert line[0, 0, 6:10].all() and not line[0, 0, :5].any() and not line[0, 0, 11:].any()  # a horizontal band
