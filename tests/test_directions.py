"""InterFaceGAN / GANSpace / SeFa directions and the direction file format, on tiny random generators."""
from __future__ import annotations

import warnings

import pytest
import torch

from ganedit.edit import directions as D
from ganedit.edit.latents import FingerprintWarning
from ganedit.errors import CheckpointError, ConfigError
from ganedit.models.stylegan2 import StyleGAN2


def tiny(size: int = 8, style_dim: int = 16, seed: int = 0) -> StyleGAN2:
    torch.manual_seed(seed)
    return StyleGAN2({"size": size, "style_dim": style_dim, "n_mlp": 2, "channel_base": 64, "channel_max": 8}).eval()


def test_interfacegan_recovers_a_planted_linear_attribute():
    G = tiny()
    w = D.sample_w(G, 3000, seed=1)
    d_true = torch.randn(16, generator=torch.Generator().manual_seed(7))
    d_true /= d_true.norm()
    # the boundary passes through the mean of w, as an attribute of the samples would
    labels = ((w - w.mean(0)) @ d_true > 0).long()
    found = D.interfacegan(G, (w, labels), attribute="planted")
    v = found.vector("planted")
    assert v.shape == (16,) and abs(float(v.norm()) - 1) < 1e-5
    assert float(v @ d_true) > 0.95  # sign and direction recovered
    assert found.meta["validation_accuracy"] > 0.9


def test_interfacegan_from_scores_with_a_label_function_takes_the_extremes():
    G = tiny()
    d_true = torch.randn(16, generator=torch.Generator().manual_seed(3))
    d_true /= d_true.norm()
    seen = []

    def score_images(images):  # a "regressor": the planted score of the latents behind the images
        seen.append(images.shape)
        return {"planted": latents_of[len(seen) - 1] @ d_true, "other": torch.zeros(len(images))}

    w = D.sample_w(G, 1500, seed=5)
    latents_of = list(w.split(64))
    found = D.interfacegan(G, score_images, attribute="planted", n_samples=1500, extreme_fraction=0.2, seed=5,
                           batch_size=64)
    assert all(s[1:] == (3, 8, 8) for s in seen) and sum(s[0] for s in seen) == 1500
    assert found.meta["n_trained"] == 600
    assert float(found.vector(0) @ d_true) > 0.9


def test_conditional_direction_is_orthogonal_to_the_conditions():
    G = tiny()
    w = D.sample_w(G, 2000, seed=2)
    a = torch.zeros(16); a[0] = 1
    b = torch.zeros(16); b[0] = 0.6; b[1] = 0.8  # correlated with a
    labels = ((w - w.mean(0)) @ b > 0).long()
    plain = D.interfacegan(G, (w, labels)).vector(0)
    cond = D.interfacegan(G, (w, labels), conditions={"a": a}).vector(0)
    assert abs(float(cond @ a)) < 1e-5 and abs(float(cond.norm()) - 1) < 1e-5
    assert abs(float(plain @ a)) > 0.3
    with pytest.raises(ConfigError, match="span"):
        D.project_out(a, [a * 2])


def test_ganspace_components_are_orthonormal_and_ordered_by_variance():
    G = tiny()
    pcs = D.ganspace(G, n_samples=2000, n_components=6, layers=range(0, 2))
    v = pcs.vectors
    assert v.shape == (6, 16)
    assert torch.allclose(v @ v.T, torch.eye(6), atol=1e-5)
    assert bool((pcs.values[:-1] >= pcs.values[1:]).all())
    # the values are the variances of the samples along each component, measured independently here
    w = D.sample_w(G, 2000, seed=0)
    measured = ((w - w.mean(0)) @ v.T).var(0)
    assert torch.allclose(measured, pcs.values, rtol=1e-3)
    assert pcs.layers == range(0, 2)


def test_sefa_matches_an_svd_of_the_stacked_weights():
    G = tiny(size=16)
    found = D.sefa(G, layers=range(0, 3))
    # rows 0..2 are used by conv1 (row 0) and convs.0 / convs.1 (rows 1, 2)
    assert found.meta["modulations"] == ["conv1", "convs.0", "convs.1"]
    g = G.g_ema
    mods = [g.conv1.conv.modulation.weight, g.convs[0].conv.modulation.weight, g.convs[1].conv.modulation.weight]
    a = torch.cat([m.detach().double() / m.detach().double().norm(dim=1, keepdim=True) for m in mods])
    _, s, vh = torch.linalg.svd(a, full_matrices=True)
    k = min(a.shape)  # the first k singular vectors are determined (up to sign) by distinct singular values
    cos = (found.vectors[:k].double() * vh[:k]).sum(1).abs()
    assert bool((cos > 1 - 1e-6).all())
    assert torch.allclose(found.values[:k].double(), s[:k] ** 2, rtol=1e-5)
    assert torch.allclose(found.vectors @ found.vectors.T, torch.eye(16), atol=1e-5)
    with pytest.raises(ConfigError, match="rows"):
        D.sefa(G, layers=range(20, 21))


def test_direction_file_round_trip_and_refusal(tmp_path):
    G = tiny()
    pcs = D.ganspace(G, n_samples=500, n_components=4, layers=[1, 2, 3])
    path = D.save_direction(tmp_path / "pcs.safetensors", pcs)
    back = D.load_direction(path, G)
    assert torch.equal(back.vectors, pcs.vectors) and torch.equal(back.values, pcs.values)
    assert torch.equal(back.mean, pcs.mean)
    assert back.method == "ganspace" and back.names == ["pc0", "pc1", "pc2", "pc3"] and back.layers == range(1, 4)
    assert back.generator == pcs.generator and back.meta["n_samples"] == 500
    # another shape: refused, naming the file
    with pytest.raises(CheckpointError, match="pcs.safetensors.*style_dim"):
        D.load_direction(path, tiny(style_dim=8))
    with pytest.raises(CheckpointError, match="size"):
        D.load_direction(path, tiny(size=16))
    # same shape, other weights: a warning (e.g. a PTI-tuned generator)
    with pytest.warns(FingerprintWarning):
        D.load_direction(path, tiny(seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.load_direction(path, G)


def test_load_direction_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a ganedit direction file"):
        D.load_direction(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        D.load_direction(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no such"):
        D.load_direction(tmp_path / "missing.safetensors")


def test_labels_csv(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("name,smile,glasses\na,0.5,1\nb,-1,0\nc,2,1\n")
    assert D.read_labels_csv(csv, ["c", "a"], "smile").tolist() == [2.0, 0.5]
    assert D.read_labels_csv(csv, ["b", "c"], "glasses").dtype == torch.int64
    with pytest.raises(CheckpointError, match="no label"):
        D.read_labels_csv(csv, ["zz"], "smile")
    with pytest.raises(CheckpointError, match="choose"):
        D.read_labels_csv(csv, ["a"])


def test_apply_uses_the_file_layers_and_sigma_units():
    G = tiny()
    pcs = D.ganspace(G, n_samples=500, n_components=3, layers=range(1, 3))
    w = D.sample_w(G, 4, seed=9)
    edited = pcs.apply(w, "pc1", 2.0, sigmas=True)
    assert edited.shape == (4, G.n_latent, 16)
    step = edited - w.unsqueeze(1)
    assert G.n_latent == 4 and torch.allclose(step[:, [0, 3]], torch.zeros(4, 2, 16))
    expected = 2.0 * float(pcs.scales[1]) * pcs.vector("pc1")
    assert torch.allclose(step[:, 1], expected.expand(4, -1), atol=1e-6)
    assert torch.allclose(pcs.apply(w, 0, 1.0, layers=range(0, 4)) - w.unsqueeze(1), pcs.vector(0).expand(4, 4, -1), atol=1e-6)
    with pytest.raises(ConfigError, match="no scales"):
        D.sefa(G).apply(w, 0, 1.0, sigmas=True)
