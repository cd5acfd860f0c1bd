"""The Invert & edit tab's and the brushed Swap region's helpers without a browser: mask extraction from an image
editor value, direction sets (computed once per generator, files offered only where they fit), inversion and
edits against the Python API for the same inputs and seed."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from app_models import make_models
from ganedit.app import editing, work
from ganedit.app.catalog import Catalog
from ganedit.app.context import EXAMPLES
from ganedit.app.masks import editor_mask, editor_value, mask_image
from ganedit.data.io import read_image, to_uint8_hwc
from ganedit.edit.directions import save_direction, sefa
from ganedit.edit.latents import apply, load_latents, mix
from ganedit.errors import ConfigError
from ganedit.models.stylegan2 import StyleGAN2

TINY = "sg2_tiny"
SHIPPED = "stylegan2_synth64 (shipped)"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    return Catalog(make_models(tmp_path_factory.mktemp("models")))


def _layer(size: int, box, alpha: int = 255) -> np.ndarray:
    layer = np.zeros((size, size, 4), np.uint8)
    x0, y0, x1, y1 = box
    layer[y0:y1, x0:x1] = (255, 60, 60, alpha)
    return layer


def test_editor_mask_is_the_union_of_the_brushed_layers():
    value = {"background": np.zeros((64, 64, 4), np.uint8), "composite": None,
             "layers": [_layer(64, (4, 8, 20, 16)), _layer(64, (30, 30, 40, 50)), _layer(64, (50, 0, 64, 10), alpha=60)]}
    mask = editor_mask(value, 64)
    want = torch.zeros(1, 1, 64, 64)
    want[..., 8:16, 4:20] = 1
    want[..., 30:50, 30:40] = 1  # the faint (alpha 60 < 128) stroke is not part of the region
    assert torch.equal(mask, want)
    # a canvas twice the model's size: resampled to it
    big = editor_mask({"layers": [_layer(128, (8, 16, 40, 32))]}, 64)
    assert big.shape == (1, 1, 64, 64) and torch.equal(big[0, 0].nonzero().min(0).values, torch.tensor([8, 4]))
    assert editor_mask(None, 64) is None and editor_mask({"layers": []}, 64) is None
    assert editor_mask({"layers": [np.zeros((64, 64, 4), np.uint8)]}, 64) is None
    with pytest.raises(ConfigError, match="RGBA"):
        editor_mask({"layers": [np.zeros((64, 64, 3), np.uint8)]}, 64)
    shown = mask_image(want)
    assert shown.shape == (64, 64, 3) and shown[10, 10, 0] == 255 and shown[0, 0, 0] == 0
    assert editor_value(None) is None and editor_value(shown)["layers"] == []


def test_swap_with_a_brushed_mask_is_the_api_blend_and_copy(catalog):
    from ganedit.cli.swap import load_swapae
    from ganedit.edit import swapae as E

    a, b = EXAMPLES / "synth_face_0.png", EXAMPLES / "synth_face_3.png"
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 10:30, 20:50] = 1
    model = load_swapae(str(catalog.get("swapae_synth64 (shipped)", "swapae").path))
    x_a, x_b = read_image(a, 64, allow_upscale=True), read_image(b, 64, allow_upscale=True)
    for mode, edit in (("blend", E.blend_structure), ("copy", E.copy_structure_region)):
        got = work.swap(catalog, "cpu", "swapae_synth64 (shipped)", str(a), str(b), 1.0, mode, mask=mask)
        assert np.array_equal(got, to_uint8_hwc(edit(model, x_a, x_b, mask)[0]))
    with pytest.raises(ConfigError, match="mask"):
        work.swap(catalog, "cpu", "swapae_synth64 (shipped)", str(a), str(b), 1.0, "blend", mask=torch.ones(1, 1, 32, 32))


def test_computed_directions_are_cached_per_generator(catalog, monkeypatch):
    tiny = work.load(catalog, TINY, "stylegan2", "cpu")
    calls = []
    real = editing._compute
    monkeypatch.setattr(editing, "_compute", lambda G, method: calls.append(method) or real(G, method))
    editing._cache.clear()
    first = editing.computed_directions(tiny, "sefa")
    assert editing.computed_directions(tiny, "sefa") is first and calls == ["sefa"]
    assert torch.allclose(first.vectors, sefa(tiny, n_components=16).vectors)
    assert first.scales is not None and first.scales.shape == (16,) and bool((first.scales > 0).all())
    gs = editing.computed_directions(tiny, "ganspace")
    assert gs.method == "ganspace" and len(gs) == 16 and calls == ["sefa", "ganspace"]
    # the same architecture with other weights is another generator: computed again
    torch.manual_seed(5)
    other = StyleGAN2(generator=dict(size=16, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=32))
    assert editing.computed_directions(other, "sefa") is not first and calls[-1] == "sefa" and len(calls) == 3
    with pytest.raises(ConfigError, match="unknown direction method"):
        editing.computed_directions(tiny, "interfacegan")


def test_direction_files_are_offered_only_where_they_fit(catalog, tmp_path):
    tiny = work.load(catalog, TINY, "stylegan2", "cpu")
    shipped = work.load(catalog, SHIPPED, "stylegan2", "cpu")
    shipped_files = sorted(k for k in catalog.directions if k.startswith("stylegan2_synth64_directions/"))
    assert shipped_files and all(k.endswith(" (shipped)") for k in shipped_files)  # the shipped generator's files
    assert sorted(catalog.directions) == sorted(["directions/sg2_tiny_sefa.safetensors", *shipped_files])
    # each generator is offered only the files made for it (style_dim 32 against the shipped 128)
    assert list(editing.fitting_direction_files(catalog, tiny)) == ["directions/sg2_tiny_sefa.safetensors"]
    assert sorted(editing.fitting_direction_files(catalog, shipped)) == shipped_files
    keys = [key for _, key in editing.direction_choices(catalog, tiny)]
    assert keys == ["sefa", "ganspace", "file:directions/sg2_tiny_sefa.safetensors"]
    shipped_keys = [key for _, key in editing.direction_choices(catalog, shipped)]
    assert shipped_keys[:2] == ["sefa", "ganspace"] and sorted(shipped_keys[2:]) == [f"file:{k}" for k in shipped_files]
    loaded = editing.directions_for(catalog, tiny, keys[-1])
    assert len(loaded) == 4 and torch.allclose(loaded.vectors, sefa(tiny, n_components=4).vectors)
    with pytest.raises(ConfigError, match="unknown direction file"):
        editing.directions_for(catalog, tiny, "file:../../etc/passwd")
    # same shape, other weights: offered, with a note (`ganedit edit` warns and goes on)
    root = tmp_path / "models"
    torch.manual_seed(9)
    other = StyleGAN2(generator=dict(size=16, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=32))
    save_direction(root / "other.safetensors", sefa(other, n_components=2))
    (root / "not_a_direction.safetensors").write_bytes(b"junk")
    labels = editing.fitting_direction_files(Catalog(root), tiny)
    assert list(labels) == ["other.safetensors"] and "other weights" in labels["other.safetensors"]


def test_no_encoder_is_offered_when_none_fits(catalog):
    shipped = work.load(catalog, SHIPPED, "stylegan2", "cpu")
    assert catalog.names("encoder") == []
    assert editing.fitting_encoders(catalog, shipped, lambda n: work.load(catalog, n, "encoder", "cpu")) == []


def test_projection_inversion_and_edits_match_the_api(catalog, tmp_path):
    from ganedit.edit.projection import project

    G = work.load(catalog, TINY, "stylegan2", "cpu")
    x = read_image(EXAMPLES / "synth_face_0.png", 16, allow_upscale=True)
    y = read_image(EXAMPLES / "synth_face_3.png", 16, allow_upscale=True)
    seen = []
    got = editing.invert(G, x, "projection", steps=12, space="w+", seed=3, progress=lambda k, n, s: seen.append((k, n)))
    want = project(G, x, space="w+", steps=12, seed=3)
    assert seen[-1] == (12, 12) and len(seen) == 12
    assert torch.equal(got.wplus, want.wplus) and torch.equal(got.reconstruction, want.images)
    from ganedit.cli.project import psnr
    assert got.psnr == pytest.approx(psnr(want.images, x)[0])
    other = editing.invert(G, y, "projection", steps=12, space="w+", seed=3)
    directions = editing.computed_directions(G, "sefa")
    code = editing.edited_code(got, directions, [1.5, 0, -1], range(0, 3), other, range(3, 6))
    expect = mix(want.wplus, other.wplus, range(3, 6))
    expect = apply(expect, directions.vectors[0], 1.5 * float(directions.scales[0]), range(0, 3))
    expect = apply(expect, directions.vectors[2], -1.0 * float(directions.scales[2]), range(0, 3))
    assert torch.allclose(code, expect)
    with torch.no_grad():
        assert torch.equal(got.decode(code), G.g_ema.synthesis(code, noise=want.noise))
    picture = to_uint8_hwc(got.decode(code)[0])
    png, latents_path = editing.save_downloads(tmp_path / "out", picture, got, code)
    latents = load_latents(latents_path, G)
    assert Path(png).is_file() and latents.names == ["inverted", "edited"] and torch.equal(latents.wplus[1], code[0])
    assert latents.noise is not None and latents.source == "projection"


def test_cancel_stops_projection_and_pti(catalog):
    G = work.load(catalog, TINY, "stylegan2", "cpu")
    x = read_image(EXAMPLES / "synth_face_0.png", 16, allow_upscale=True)
    for method in ("projection", "PTI"):
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = editing.invert(G, x, method, steps=200, tune_steps=50, progress=lambda k, n, s: seen.append((k, n)),
                                    cancel=lambda: len(seen) >= 3)
        assert result.cancelled and seen[-1] == (3, 250 if method == "PTI" else 200), (method, seen[-1])
    done = []
    pti = editing.invert(G, x, "PTI", steps=4, tune_steps=3, progress=lambda k, n, s: done.append(k))
    assert not pti.cancelled and done[:4] == [1, 2, 3, 4] and pti.reconstruction.shape == (1, 3, 16, 16)
    with pytest.raises(ConfigError, match="unknown inverter"):
        editing.invert(G, x, "magic")


def test_encoders_are_offered_only_for_their_own_generator(catalog, tmp_path):
    from ganedit.cli.project import encoder_codes
    from ganedit.formats.native import save_model
    from ganedit.models.psp import PSP

    tiny = work.load(catalog, TINY, "stylegan2", "cpu")
    torch.manual_seed(2)
    encoder = {"type": "GradualStyleEncoder", "input_nc": 3, "input_width": 4, "depths": [4, 6, 8, 10], "units": [1, 2, 1, 1],
               "n_styles": 6, "style_dim": 32, "input_size": 32, "se_reduction": 2}
    psp = PSP(encoder, dict(size=16, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=32)).eval()
    psp.decoder.load_state_dict(tiny.g_ema.state_dict())  # trained for sg2_tiny: its decoder is that generator
    root = tmp_path / "models"
    save_model(psp, root / "encoders" / "psp_tiny")
    ours = Catalog(root)
    assert ours.names("encoder") == ["encoders/psp_tiny"]
    loader = lambda name: work.load(ours, name, "encoder", "cpu")  # noqa: E731
    assert editing.fitting_encoders(ours, tiny, loader) == ["encoders/psp_tiny"]
    shipped = work.load(ours, SHIPPED, "stylegan2", "cpu")
    assert editing.fitting_encoders(ours, shipped, loader) == []  # another generator: not offered
    x = read_image(EXAMPLES / "synth_face_0.png", 16, allow_upscale=True)
    path = str(ours.get("encoders/psp_tiny", "encoder").path)
    got = editing.invert(tiny, x, "encoder", encoder_path=path)
    want = encoder_codes(path, tiny, x)
    assert torch.equal(got.wplus, want) and got.meta["source"] == "encoder"
    with torch.no_grad():
        assert torch.equal(got.reconstruction, tiny.g_ema.synthesis(want, noise="const"))
