"""Latents file format and the arithmetic of edits on StyleGAN2 codes (ganedit.edit.latents)."""
from __future__ import annotations

import warnings

import pytest
import torch

from ganedit.edit import latents as L
from ganedit.errors import CheckpointError, ConfigError
from ganedit.models.stylegan2 import StyleGAN2


def tiny(size: int = 16, style_dim: int = 8, seed: int = 0) -> StyleGAN2:
    torch.manual_seed(seed)
    return StyleGAN2({"size": size, "style_dim": style_dim, "n_mlp": 2, "channel_base": 64, "channel_max": 8})


def test_save_load_round_trip_with_noise_and_names(tmp_path):
    G = tiny()
    n_latent, dim = G.n_latent, G.style_dim
    wplus = torch.randn(3, n_latent, dim)
    noise = G.g_ema.make_noise(3, seed=1)
    fp = L.generator_fingerprint(G)
    path = L.save_latents(tmp_path / "codes.safetensors", wplus, ["a.png", "b.png", "c.png"],
                          {"space": "w+", "source": "projection", "generator": fp, "steps": 7}, noise=noise)
    got = L.load_latents(path, G)
    assert torch.equal(got.wplus, wplus)
    assert got.names == ["a.png", "b.png", "c.png"]
    assert (got.space, got.source, got.meta["steps"]) == ("w+", "projection", 7)
    assert got.generator == fp
    assert len(got.noise) == len(noise) and all(torch.equal(a, b) for a, b in zip(got.noise, noise))
    sub = got.select([2, 0])
    assert sub.names == ["c.png", "a.png"] and torch.equal(sub.wplus[0], wplus[2]) and torch.equal(sub.noise[0][1], noise[0][0])


def test_w_codes_are_stored_repeated_and_read_back_as_w(tmp_path):
    G = tiny()
    w = torch.randn(2, G.style_dim)
    got = L.load_latents(L.save_latents(tmp_path / "w.safetensors", w, None, {"generator": L.generator_fingerprint(G)}))
    assert got.space == "w" and got.wplus.shape == (2, G.n_latent, G.style_dim)
    assert torch.equal(got.w, w) and torch.equal(got.wplus[:, -1], w)
    assert got.names == ["0000", "0001"]


def test_latents_for_another_generator_are_refused(tmp_path):
    small, big = tiny(16), tiny(32)
    path = L.save_latents(tmp_path / "c.safetensors", torch.zeros(1, small.n_latent, 8), None,
                          {"generator": L.generator_fingerprint(small)})
    with pytest.raises(CheckpointError, match=r"c\.safetensors: made for another generator: .*n_latent 6 \(this generator: 8\)"):
        L.load_latents(path, big)
    other_dim = tiny(16, style_dim=4)
    with pytest.raises(CheckpointError, match="style_dim 8"):
        L.load_latents(path, other_dim)


def test_same_shape_other_weights_only_warns(tmp_path):
    a, b = tiny(seed=0), tiny(seed=1)
    path = L.save_latents(tmp_path / "c.safetensors", torch.zeros(1, a.n_latent, 8), None,
                          {"generator": L.generator_fingerprint(a)})
    with pytest.warns(L.FingerprintWarning, match="other weights"):
        L.load_latents(path, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.load_latents(path, a)  # the right generator: silent


def test_fingerprint_hash_follows_weights():
    G = tiny()
    before = L.generator_fingerprint(G)
    assert before == L.generator_fingerprint(G)
    with torch.no_grad():
        G.g_ema.conv1.conv.weight[0, 0, 0, 0, 0] += 1e-3
    after = L.generator_fingerprint(G)
    assert after["hash"] != before["hash"] and {k: after[k] for k in ("size", "n_latent")} == {"size": 16, "n_latent": 6}


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "not a readable safetensors"),
])
def test_corrupt_files_give_clear_errors(tmp_path, content, match):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        L.load_latents(p)


def test_foreign_safetensors_and_missing_file_are_refused(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "model.safetensors"
    save_file({"wplus": torch.zeros(1, 2, 3)}, str(p), metadata={"format": "ganedit"})
    with pytest.raises(CheckpointError, match="not a ganedit latents file"):
        L.load_latents(p)
    with pytest.raises(CheckpointError, match="no such latents file"):
        L.load_latents(tmp_path / "nope.safetensors")
    truncated = tmp_path / "cut.safetensors"
    good = L.save_latents(tmp_path / "good.safetensors", torch.zeros(2, 4, 8))
    truncated.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        L.load_latents(truncated)


def test_apply_adds_strength_times_direction_on_chosen_rows():
    w = torch.randn(2, 6, 4)
    d = torch.randn(4)
    out = L.apply(w, d, 2.5, layers=range(1, 3))
    assert torch.allclose(out[:, 1:3], w[:, 1:3] + 2.5 * d)
    assert torch.equal(out[:, [0, 3, 4, 5]], w[:, [0, 3, 4, 5]])
    assert torch.allclose(L.apply(w, d, -1.0), w - d)
    per_row = torch.randn(6, 4)
    assert torch.allclose(L.apply(w, per_row, 0.5, layers=[5])[:, 5], w[:, 5] + 0.5 * per_row[5])
    per_code = L.apply(w, d, torch.tensor([1.0, -2.0]))
    assert torch.allclose(per_code[1], w[1] - 2 * d) and torch.allclose(per_code[0], w[0] + d)
    w2 = torch.randn(3, 4)
    assert torch.allclose(L.apply(w2, d, 3.0), w2 + 3 * d)
    with pytest.raises(ConfigError, match="w\\+ codes"):
        L.apply(w2, d, 1.0, layers=range(2))
    with pytest.raises(ConfigError, match="fits neither"):
        L.apply(w, torch.randn(5), 1.0)
    assert L.strip(w, d, [-1, 0, 1]).shape == (3, 2, 6, 4)


def test_parse_layers():
    assert L.parse_layers("2-4") == range(2, 5)
    assert L.parse_layers("3") == range(3, 4)
    assert L.parse_layers("4-", n_latent=8) == range(4, 8)
    assert L.parse_layers(None) is None and L.parse_layers("all") is None
    for bad in ("x", "5-2", "-3"):
        with pytest.raises(ConfigError):
            L.parse_layers(bad, n_latent=8)
    with pytest.raises(ConfigError, match="rows 0-7"):
        L.parse_layers("6-9", n_latent=8)


def test_interpolate_and_mix():
    a, b = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    out = L.interpolate(a, b, [0.0, 0.25, 1.0])
    assert out.shape == (3, 2, 6, 4)
    assert torch.allclose(out[0], a) and torch.allclose(out[2], b) and torch.allclose(out[1], 0.75 * a + 0.25 * b)
    m = L.mix(a, b, range(0, 2))
    assert torch.equal(m[:, :2], b[:, :2]) and torch.equal(m[:, 2:], a[:, 2:])
    one = L.mix(a[:1], b, [5])  # one code mixed with a batch
    assert one.shape == (2, 6, 4) and torch.equal(one[1, 5], b[1, 5]) and torch.equal(one[1, 0], a[0, 0])
    with pytest.raises(ConfigError):
        L.mix(a[:, 0], b[:, 0], [0])
    with pytest.raises(ConfigError):
        L.interpolate(a, b[:1], [0.5])


def test_edit_package_offers_the_latent_operations_by_name():
    """Issue 15's Python form, ``edit.apply(w, direction, strength, layers)``, on the package itself."""
    from ganedit import edit
    from ganedit.edit import latents

    assert edit.apply is latents.apply and edit.interpolate is latents.interpolate and edit.mix is latents.mix
    w = torch.zeros(2, 4, 3)
    out = edit.apply(w, torch.tensor([1.0, 0.0, 0.0]), 2.0, range(1, 3))
    assert torch.equal(out[:, 1:3, 0], torch.full((2, 2), 2.0)) and float(out[:, [0, 3]].abs().sum()) == 0.0
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        edit.nothing  # noqa: B018
