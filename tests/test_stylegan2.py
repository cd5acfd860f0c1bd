"""StyleGAN2 against rosinality's outputs (stylegan2_small), full-size key manifests on the meta device,
and the rosinality checkpoint round trips (converted and train.py layouts)."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

import ganedit
from ganedit.formats.convert_stylegan2 import detect, export_rosinality, infer_generator_config, to_rosinality
from ganedit.models.stylegan2 import Discriminator, Generator, StyleGAN2, channel_table


@pytest.fixture(scope="module")
def small(conformance):
    root = conformance / "stylegan2" / "stylegan2_small"
    return {
        "root": root,
        "config": json.loads((root / "config.json").read_text()),
        "ckpt": torch.load(root / "checkpoint.pt", map_location="cpu", weights_only=True),
        "v": torch.load(root / "vectors.pt", map_location="cpu", weights_only=True),
        "model": ganedit.load(root / "checkpoint.pt"),
    }


def _call(G, v, key):
    """Replay the official call of each `cases` entry (stylegan2_small/config.json)."""
    avg = v["in.truncation_latent"]
    calls = {
        "img_z_const_noise": lambda: G([v["in.z"]], randomize_noise=False, return_latents=True),
        "img_z_explicit_noise": lambda: G([v["in.z"]], noise=v["in.noise_explicit"]),
        "img_z_batched_noise": lambda: G([v["in.z"]], noise=v["in.noise_batched"]),
        "img_z_trunc0.7": lambda: G([v["in.z"]], truncation=0.7, truncation_latent=avg, randomize_noise=False, return_latents=True),
        "img_w": lambda: G([v["out.w_from_z"]], input_is_latent=True, randomize_noise=False),
        "img_wplus": lambda: G([v["in.wplus"]], input_is_latent=True, randomize_noise=False, return_latents=True),
        "img_wplus_trunc0.5": lambda: G([v["in.wplus"]], input_is_latent=True, truncation=0.5, truncation_latent=avg,
                                        randomize_noise=False, return_latents=True),
        "img_mix_inject3": lambda: G([v["in.z"], v["in.z2"]], inject_index=3, randomize_noise=False, return_latents=True),
        "img_mix_inject5_trunc0.7": lambda: G([v["in.z"], v["in.z2"]], inject_index=5, truncation=0.7, truncation_latent=avg,
                                              randomize_noise=False, return_latents=True),
    }
    return calls[key]()


def test_generator_vectors(small):
    model, v, cases = small["model"], small["v"], small["config"]["cases"]
    G = model.g_ema
    checked = set()
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(v["in.z"]), v["out.w_from_z"], atol=1e-5, rtol=1e-5)
        checked.add("out.w_from_z")
        for key in cases:
            name = key[4:]
            if not key.startswith("out.img_") or name.endswith("not_ema"):
                continue
            image, latent = _call(G, v, name)
            torch.testing.assert_close(image, v[key], atol=1e-4, rtol=1e-4, msg=key)
            checked.add(key)
            latent_key = "out.latent_" + name[4:]
            if latent_key in v:
                torch.testing.assert_close(latent, v[latent_key], atol=1e-5, rtol=1e-5, msg=latent_key)
                checked.add(latent_key)
        if "out.img_wplus" in checked:
            assert torch.equal(_call(G, v, "img_wplus")[1], v["in.wplus"])
        image, _ = model.g([v["in.z"]], randomize_noise=False)
        torch.testing.assert_close(image, v["out.img_z_const_noise_from_g_not_ema"], atol=1e-4, rtol=1e-4)
        checked.add("out.img_z_const_noise_from_g_not_ema")
    # every generator output listed in the official cases was replayed
    expected = {k for k in v if k.startswith("out.") and not k.startswith("out.d_")}
    assert expected <= checked, expected - checked


def test_discriminator_vectors(small):
    D, v = small["model"].d, small["v"]
    x = v["in.d_images"]
    with torch.no_grad():
        for key, images in (("out.d_logits_b8", x), ("out.d_logits_b4", x[:4]), ("out.d_logits_b2", x[4:6]), ("out.d_logits_b1", x[:1])):
            torch.testing.assert_close(D(images), v[key], atol=1e-5, rtol=1e-5, msg=key)


def test_clean_api_matches_official_call(small):
    model, v = small["model"], small["v"]
    with torch.no_grad():
        w = model.mapping(v["in.z"], truncation=0.7)
        torch.testing.assert_close(model.synthesis(w), v["out.img_z_trunc0.7"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.synthesis(v["in.wplus"], noise=v["in.noise_explicit"]),
                                   model.g_ema([v["in.wplus"]], input_is_latent=True, noise=v["in.noise_explicit"])[0])
        a, b = model.synthesis(w, noise="random"), model.synthesis(w, noise="random")
        assert not torch.equal(a, b)  # fresh noise every call
        assert torch.equal(model.sample(3, seed=5), model.sample(3, seed=5))
        same = model.sample(4, truncation=0.0, seed=1)
        assert torch.allclose(same, same[:1].expand_as(same), atol=1e-5)


def test_loaded_config_inferred_from_shapes(small):
    model, config = small["model"], small["config"]
    assert model.g_ema.channels == {int(k): v for k, v in config["channel_override"]["generator_channels"].items()}
    assert model.d.channels == {int(k): v for k, v in config["channel_override"]["discriminator_channels"].items()}
    assert (model.size, model.style_dim, model.n_latent, model.g_ema.num_layers) == (32, 32, 8, 7)
    assert detect(small["ckpt"]) and not detect({"state_dict": {}})


def _equal_nested(a, b, path="") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _equal_nested(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _equal_nested(x, y, f"{path}[{i}]")
    elif isinstance(a, argparse.Namespace):
        _equal_nested(vars(a), vars(b), path)
    else:
        assert type(a) is type(b) and a == b, path


def test_converted_layout_round_trip(small, tmp_path):
    original = small["ckpt"]
    _equal_nested(original, to_rosinality(small["model"]))
    ganedit.save(small["model"], tmp_path / "native")
    reloaded = ganedit.load(tmp_path / "native")
    export_rosinality(reloaded, tmp_path / "back.pt")
    _equal_nested(original, torch.load(tmp_path / "back.pt", weights_only=True))


def test_training_layout_loads_and_round_trips(tmp_path):
    torch.manual_seed(0)
    table = {4: 8, 8: 8, 16: 4}
    g, g_ema = Generator(16, 8, 2, channels=table), Generator(16, 8, 2, channels=table)
    d = Discriminator(16, channels=table)
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002, betas=(0.0, 0.99))
    g([torch.randn(2, 8)])[0].square().mean().backward()
    d(torch.randn(2, 3, 16, 16)).mean().backward()
    g_optim.step()
    d_optim.step()
    args = argparse.Namespace(path="lmdb", iter=800000, batch=16, r1=10.0, size=16, ckpt=None, wandb=False,
                              n_mlp=2, latent=8, lr=0.002, channel_multiplier=2, augment=False, ada_target=0.6)
    original = {"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(),
                "d_optim": d_optim.state_dict(), "args": args, "ada_aug_p": 0.0}
    torch.save(original, tmp_path / "010000.pt")
    model = ganedit.load(tmp_path / "010000.pt")  # a pickled Namespace: allow-listed, no code runs
    assert isinstance(model, StyleGAN2) and not model.has_latent_avg
    assert torch.isfinite(model.latent_avg).all() and model.latent_avg.abs().sum() > 0
    _equal_nested(original, to_rosinality(model))
    from ganedit.cli.main import main

    main(["convert", str(tmp_path / "010000.pt"), str(tmp_path / "native")])
    main(["convert", str(tmp_path / "native"), str(tmp_path / "back.pt"), "--to", "rosinality"])
    from ganedit.formats.foreign import safe_torch_load

    back = safe_torch_load(tmp_path / "back.pt")  # our export holds only tensors, containers and the Namespace
    _equal_nested(original, back)
    with torch.no_grad():
        z = torch.randn(2, 8)
        assert torch.equal(model.g_ema([z], randomize_noise=False)[0], g_ema([z], randomize_noise=False)[0])


def _manifest_check(manifest_path):
    manifest = json.loads(manifest_path.read_text())
    cfg = manifest["config"]
    with torch.device("meta"):
        G = Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], channel_multiplier=cfg["channel_multiplier"])
        D = Discriminator(cfg["size"], channel_multiplier=cfg["channel_multiplier"])
    for net, name in ((G, "generator"), (D, "discriminator")):
        expected = manifest["state_dicts"][name]
        params = {k for k, _ in net.named_parameters()}
        got = net.state_dict()
        assert list(got) == list(expected), name  # same keys in the same order
        for key, spec in expected.items():
            assert list(got[key].shape) == spec["shape"], key
            assert (key in params) == (spec["kind"] == "parameter"), key
    counts = manifest["counts"]
    assert len(G.state_dict()) == counts["generator_keys"] and len(D.state_dict()) == counts["discriminator_keys"]
    assert sum(p.numel() for p in G.parameters()) == counts["generator_parameters_numel"]
    assert G.channels == {int(k): v for k, v in cfg["generator_channels"].items() if int(k) <= cfg["size"]}
    # the converter infers the same architecture from the key shapes alone
    inferred = infer_generator_config(G.state_dict())
    assert inferred["size"] == cfg["size"] and inferred["n_mlp"] == cfg["n_mlp"] and inferred.get("channel_multiplier") == 2


@pytest.mark.parametrize("name", ["stylegan2_1024_cm2_manifest.json", "stylegan2_256_cm2_manifest.json"])
def test_full_size_manifests_on_meta_device(conformance, name):
    _manifest_check(conformance / "stylegan2" / "manifests" / name)


def test_channel_table_options():
    assert channel_table(1024, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert channel_table(32, channel_base=512, channel_max=32) == {4: 32, 8: 32, 16: 32, 32: 16}
    assert channel_table(32, channels={"32": 16, "16": 24}, channel_base=512, channel_max=32)[16] == 24
    G = Generator(32, 16, 2, channel_base=512, channel_max=32)
    rebuilt = Generator(**json.loads(json.dumps(G.config)))
    assert rebuilt.channels == G.channels


def test_training_recipe_runs_and_exports(tmp_path):
    """A few steps of `ganedit train stylegan2` (R1 and path length included) on a folder of images."""
    from PIL import Image

    from ganedit.train.loop import train

    data = tmp_path / "images"
    data.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(data / f"{i}.png")
    sets = {"size": 32, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16, "r1_every": 2, "pl_every": 2,
            "data": str(data), "out": str(tmp_path / "run"), "batch": 4, "steps": 3, "quiet": True, "checkpoint_every": 0,
            "snapshot_every": 0, "log_every": 1, "tensorboard": False, "workers": 0, "device": "cpu"}
    train("stylegan2", sets)
    model = ganedit.load(tmp_path / "run" / "model")
    assert isinstance(model, StyleGAN2) and model.size == 32
    images = model.sample(2, truncation=0.5, seed=0)
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/R1" in row for row in logs) and any("loss/path_length" in row for row in logs)


def _rosinality_file(blur=None, latent_avg_shape=(8,)):
    """A converted-layout rosinality file (g_ema, d, latent_avg) of a tiny model; with ``blur`` the convolutions'
    and discriminator's FIR buffers are those of an official model built with ``blur_kernel=blur``, while the
    ToRGB skip buffers keep [1, 3, 3, 1], as the official Generator builds them whatever blur_kernel is."""
    from ganedit.ops import make_kernel

    torch.manual_seed(0)
    table = {4: 8, 8: 8, 16: 4}
    g, d = Generator(16, 8, 2, channels=table).state_dict(), Discriminator(16, channels=table).state_dict()
    if blur is not None:
        for k in g:
            if k.endswith(".conv.blur.kernel"):
                g[k] = make_kernel(blur) * 4
        for k in d:
            if k.endswith(".kernel"):
                d[k] = make_kernel(blur)
    return {"g_ema": g, "d": d, "latent_avg": torch.randn(latent_avg_shape)}


def test_non_default_blur_kernel_loads_like_the_official_network(tmp_path):
    from ganedit.ops import make_kernel

    original = _rosinality_file(blur=[1, 2, 1])
    torch.save(original, tmp_path / "blur121.pt")
    model = ganedit.load(tmp_path / "blur121.pt")
    assert model.g_ema.config["blur_kernel"] == [0.25, 0.5, 0.25] and model.d.config["blur_kernel"] == [0.25, 0.5, 0.25]
    assert torch.equal(model.g_ema.convs[0].conv.blur.kernel, make_kernel([1, 2, 1]) * 4)
    assert torch.equal(model.g_ema.to_rgbs[0].upsample.kernel, make_kernel([1, 3, 3, 1]) * 4)
    _equal_nested(original, to_rosinality(model))
    with torch.no_grad():
        images = model.sample(2)
        assert images.shape == (2, 3, 16, 16) and torch.isfinite(model.d(images)).all()
    # native round trip rebuilds the same network with no flags
    ganedit.save(model, tmp_path / "native")
    again = ganedit.load(tmp_path / "native")
    assert torch.equal(again.sample(2), images)
    # the default file is still recognised as the default kernel
    assert infer_generator_config(_rosinality_file()["g_ema"])["blur_kernel"] == [1.0, 3.0, 3.0, 1.0]


def test_torgb_skip_upsampling_ignores_blur_kernel():
    from ganedit.ops import make_kernel

    G = Generator(16, 8, 2, channels={4: 8, 8: 8, 16: 4}, blur_kernel=[1, 2, 1])
    for to_rgb in G.to_rgbs:
        assert torch.equal(to_rgb.upsample.kernel, make_kernel([1, 3, 3, 1]) * 4)
    assert G.convs[0].conv.blur.kernel.shape == (3, 3)


@pytest.mark.parametrize("shape", [(7,), (1, 9), (8, 7)])
def test_latent_avg_of_the_wrong_width_is_refused_at_load(tmp_path, shape):
    from ganedit.errors import CheckpointError

    torch.save(_rosinality_file(latent_avg_shape=shape), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: latent_avg has shape .* style_dim is 8"):
        ganedit.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("shape", [(8,), (1, 8), (6, 8)])
def test_latent_avg_shapes_that_fit_style_dim_load(tmp_path, shape):
    original = _rosinality_file(latent_avg_shape=shape)
    torch.save(original, tmp_path / "ok.pt")
    model = ganedit.load(tmp_path / "ok.pt")
    assert torch.equal(model.w_avg, original["latent_avg"].reshape(-1)[:8])
    assert model.sample(1, truncation=0.5).shape == (1, 3, 16, 16)
