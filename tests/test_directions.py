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


# ----------------------------------------------------------------------------------------------- regression fit


def test_regression_fit_uses_every_sample_and_beats_the_extremes_on_a_noisy_score():
    """A continuous score that is mostly noise: the extremes are then mostly noise too, while the regression on
    all samples still finds the planted direction."""
    G = tiny()
    w = D.sample_w(G, 2000, seed=4)
    d_true = torch.randn(16, generator=torch.Generator().manual_seed(9))
    d_true /= d_true.norm()
    signal = (w - w.mean(0)) @ d_true
    noise = torch.randn(len(w), generator=torch.Generator().manual_seed(10)) * 2 * float(signal.std())
    scores = signal + noise
    ridge = D.interfacegan(G, (w, scores), attribute="s", fit="regression")
    extremes = D.interfacegan(G, (w, scores), attribute="s", extreme_fraction=0.1)
    assert ridge.meta["fit"] == "regression" and ridge.meta["n_trained"] == 2000
    assert 0.05 < ridge.meta["validation_r2"] < 0.4  # about 1/5 of the variance is signal
    cos_ridge, cos_extremes = float(ridge.vector(0) @ d_true), float(extremes.vector(0) @ d_true)
    assert cos_ridge > 0.9 and cos_ridge > cos_extremes + 0.02
    with pytest.raises(ConfigError, match="fit must be one of"):
        D.interfacegan(G, (w, scores), fit="svm")
    with pytest.raises(ConfigError, match="same score"):
        D.fit_linear_regression(w, torch.ones(len(w)))


# ----------------------------------------------------------------------------------------------- layer choice


class PlantedGenerator(torch.nn.Module):
    """A stand-in generator with 6 rows of w+ whose "image" holds readings planted in known rows: coordinate 0 of
    rows 2-3 is the target, of rows 0-1 and 4-5 two other factors; a weak reading takes coordinate 0 of every
    row (so no row range is free of leakage), another coordinate 1 of every row (so the vector below, mostly
    along coordinate 0, leaks a little everywhere)."""

    size, style_dim, n_latent, num_layers = 4, 8, 6, 9

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # where sample_w finds the device

    def mapping(self, z, truncation=1.0, w_avg=None):
        return z

    def synthesis(self, latent, noise="const"):
        if latent.dim() == 2:
            latent = latent.unsqueeze(1).expand(-1, self.n_latent, -1)
        c0, c1 = latent[:, :, 0], latent[:, :, 1]
        readings = torch.stack([c0[:, 2:4].sum(1), c0[:, 0:2].sum(1), c0[:, 4:6].sum(1), 0.05 * c0.sum(1),
                                0.1 * c1.sum(1)], dim=1)
        return torch.tanh(readings / 8).reshape(-1, 5, 1, 1).repeat(1, 1, 2, 2)  # non-linear, like a real reader


def planted_labels(images):
    names = ("target", "low_rows", "high_rows", "everywhere", "other_axis")
    return {name: images[:, i].mean((1, 2)) for i, name in enumerate(names)}


def test_choose_layers_finds_the_rows_an_attribute_is_planted_in(tmp_path):
    G = PlantedGenerator()
    vector = torch.zeros(8)
    vector[0], vector[1] = 1.0, 0.2
    found = D.Directions(vector / vector.norm(), ["target"], "interfacegan", scales=torch.ones(1))
    effects, spread = D.layer_effects(G, found.vector(0), planted_labels, step=1.0, n_samples=64, seed=3)
    assert set(effects) == {"target", "low_rows", "high_rows", "everywhere", "other_axis"}
    assert all(float(effects["target"][r]) > 0.01 for r in (2, 3))
    assert all(abs(float(effects["target"][r])) < 1e-6 for r in (0, 1, 4, 5))
    chosen = D.choose_layers(G, found, planted_labels, n_samples=64, seed=3)
    assert chosen.layers == range(2, 4)
    choice = chosen.meta["layer_choice"]
    assert choice["rows"] == [2, 3] and choice["ratio"] > 3 * choice["all_rows_ratio"]
    assert found.layers is None and torch.equal(chosen.vectors, found.vectors)  # a copy; the vector is unchanged
    # the choice travels with the file, and an edit then moves only those rows
    path = D.save_direction(tmp_path / "planted.safetensors", chosen)
    loaded = D.load_direction(path)
    assert loaded.layers == range(2, 4) and loaded.meta["layer_choice"]["rows"] == [2, 3]
    edited = loaded.apply(torch.zeros(1, 6, 8), 0, 1.0)
    assert torch.equal(edited[0, [0, 1, 4, 5]], torch.zeros(4, 8)) and float(edited[0, 2, 0]) > 0.9


def test_rank_layer_ranges_scores_sums_of_rows():
    effects = {"t": torch.tensor([0.0, 1.0, 1.0, 0.0]), "a": torch.tensor([1.0, 0.1, 0.1, 1.0]),
               "b": torch.tensor([0.0, 0.2, -0.2, 0.5])}
    ranked = D.rank_layer_ranges(effects, "t")
    assert len(ranked) == 10  # every contiguous range of 4 rows
    rows, change, leak, ratio = ranked[0]
    # rows 1-2: b cancels, a adds up to 0.2: leakage sqrt((0.2² + 0²) / 2)
    assert rows == range(1, 3) and change == pytest.approx(2.0) and leak == pytest.approx(0.2 / 2 ** 0.5)
    assert ratio == pytest.approx(change / leak) and ratio == max(r[3] for r in ranked)
    every = next(r for r in ranked if r[0] == range(0, 4))
    assert every[1] == pytest.approx(2.0) and every[3] < ratio
    # the spread puts readings in comparable units: a wide spread of "a" makes its leakage small
    assert D.rank_layer_ranges(effects, "t", {"t": 1.0, "a": 100.0, "b": 1.0})[0][2] < leak
    assert all(len(r[0]) >= 3 for r in D.rank_layer_ranges(effects, "t", min_rows=3))
    # within the tolerance of the best ratio, the range with the larger change wins: rows 1-2 (ratio 2 / 0.2)
    # over row 1 alone (ratio 1 / 0.1 plus a little)
    close = {"t": torch.tensor([1.0, 1.0]), "a": torch.tensor([0.1, 0.102])}
    assert D.rank_layer_ranges(close, "t")[0][0] == range(0, 2)
    assert D.rank_layer_ranges(close, "t", tolerance=0.0)[0][0] == range(0, 1)
    with pytest.raises(ConfigError, match="no smooth reading named 'smile'"):
        D.rank_layer_ranges(effects, "smile")
    # a reading that is part of the target (shown only with it) is not leakage
    with_part = dict(effects, part=torch.tensor([5.0, 5.0, 5.0, 5.0]))
    assert D.rank_layer_ranges(with_part, "t")[0][2] > leak
    assert D.rank_layer_ranges(with_part, "t", parts_of_target=["part"])[0][:3] == ranked[0][:3]


def test_layer_effects_count_a_reading_where_it_is_shown():
    """NaN readings (a factor the image hides) drop out of the change and the spread instead of spoiling them."""
    G = PlantedGenerator()
    vector = torch.zeros(8)
    vector[0] = 1.0

    def labels(images):
        out = planted_labels(images)
        target = out["target"].clone()
        target[::2] = float("nan")  # hidden in every other image
        return dict(out, target=target, never=torch.full_like(target, float("nan")))

    effects, spread = D.layer_effects(G, vector, labels, step=1.0, n_samples=16, seed=3)
    plain, plain_spread = D.layer_effects(G, vector, planted_labels, step=1.0, n_samples=16, seed=3)
    assert bool(torch.isfinite(effects["target"]).all()) and float(effects["target"][2]) > 0.01
    assert float(effects["target"][2]) == pytest.approx(float(plain["target"][2]), rel=0.5)
    assert spread["target"] > 0 and spread["never"] == 0.0 and bool((effects["never"] == 0).all())


def test_smooth_readings_skip_classes_and_split_vectors():
    out = D.smooth_readings({"p": torch.rand(3), "cls": torch.tensor([0, 1, 2]), "rgb": torch.rand(3, 3)})
    assert sorted(out) == ["p", "rgb[0]", "rgb[1]", "rgb[2]"]
    assert list(D.smooth_readings(torch.rand(3))) == ["attribute"]


def test_most_correlated_ranks_by_absolute_cosine():
    d = torch.tensor([1.0, 0.0, 0.0])
    others = {"same_axis_flipped": torch.tensor([-2.0, 0.1, 0.0]), "orthogonal": torch.tensor([0.0, 1.0, 0.0]),
              "half": torch.tensor([1.0, 1.0, 0.0])}
    assert D.most_correlated(d, others, k=2) == ["same_axis_flipped", "half"]
    assert D.most_correlated(d, others, k=0) == [] and len(D.most_correlated(d, others, k=5)) == 3
