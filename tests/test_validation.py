"""Issue 11 §3: every configuration value is validated before anything is built, with one clear error naming the
key and the allowed range; a native model never allocates more than its weights file implies."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import torch

import ganedit
from ganedit.checks import Each, OneOf, Range, check_value
from ganedit.cli.main import main
from ganedit.errors import CheckpointError, ConfigError


def _cli(argv, capsys):
    """(exit status, stdout, stderr) of `ganedit ARGV`."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------------------------- the helper


def test_range_refuses_wrong_types_and_non_finite_numbers():
    lr = Range(0, None, above=True)
    assert lr.fits(0.1) and lr.fits(3)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "0.1", None):
        assert not lr.fits(bad), bad
    with pytest.raises(ConfigError, match=r"lr=nan: must be a finite number > 0"):
        check_value("lr", float("nan"), lr)
    width = Range(1, 64, integer=True)
    assert not width.fits(2.0) and not width.fits(65) and width.fits(64)
    with pytest.raises(ConfigError, match=r"ngf=-4: must be an integer from 1 to 64"):
        check_value("ngf", -4, width)
    betas = Each(Range(0, 1, below=True), 2, 2)
    assert betas.fits([0.0, 0.99]) and not betas.fits([0.5, 1.0]) and not betas.fits([0.5])
    assert OneOf(("a", "b")).fits("a") and not OneOf((True, False)).fits(1)


# ------------------------------------------------------------------------------------- native config.json values


def _tiny_models():
    from ganedit.methods.tinygan import Discriminator as TinyD, Generator as TinyG
    from ganedit.models.cyclegan import GeneratorPair, ResnetGenerator
    from ganedit.models.pix2pix import NLayerDiscriminator, PixelDiscriminator, UnetGenerator
    from ganedit.models.stylegan2 import Discriminator, Generator, StyleGAN2
    from ganedit.models.swapae import SwappingAutoencoder

    sg = dict(size=8, style_dim=8, n_mlp=1, channel_base=32, channel_max=8)
    return {
        "stylegan2_g": lambda: Generator(**sg),
        "stylegan2_d": lambda: Discriminator(8, channel_base=32, channel_max=8),
        "stylegan2_full": lambda: StyleGAN2(sg, discriminator=dict(size=8, channel_base=32, channel_max=8), with_g=True),
        "swapae": lambda: SwappingAutoencoder.small(32, texture_channels=16, width=8),
        "unet": lambda: UnetGenerator(num_downs=5, ngf=4),
        "patchgan": lambda: NLayerDiscriminator(6, ndf=4),
        "pixelgan": lambda: PixelDiscriminator(6, ndf=4),
        "resnet": lambda: ResnetGenerator(ngf=4, n_blocks=1),
        "pair": lambda: GeneratorPair.of(ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1)),
        "tinygan_g": lambda: TinyG(8, 4, 4),
        "tinygan_d": lambda: TinyD(8, 4),
    }


@pytest.mark.parametrize("name", sorted(_tiny_models()))
def test_every_model_type_passes_the_weights_check_and_loads_exactly(name, tmp_path):
    model = _tiny_models()[name]()
    ganedit.save(model, tmp_path / name)
    loaded = ganedit.load(tmp_path / name)
    own, back = model.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)


def _edit_config(folder: Path, **changes) -> Path:
    path = folder / "config.json"
    record = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "format_version":
            record[key] = value
        else:
            record["config"][key] = value
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(
    "model, key, value, expected",
    [
        ("stylegan2_g", "style_dim", 10**9, r"style_dim=1000000000: must be an integer from 1 to \d+"),
        ("unet", "ngf", 2**20, r"ngf=1048576: must be an integer from 1 to \d+"),
        ("unet", "ngf", -4, r"ngf=-4: must be an integer from 1 to \d+"),
        ("unet", "num_downs", 2000, r"num_downs=2000: must be an integer from 5 to \d+"),
        ("unet", "format_version", "abc", r"format_version='abc': must be an integer from 0 to 1"),
        ("swapae", "image_size", 2**20, r"image_size=1048576: must be an integer from 4 to \d+"),
        ("resnet", "n_blocks", 10**6, r"n_blocks=1000000: must be an integer from 0 to \d+"),
        ("stylegan2_g", "lr_mlp", float("nan"), r"lr_mlp=nan: must be a finite number > 0"),
        ("tinygan_g", "channels", 0, r"channels=0: must be an integer from 1 to \d+"),
    ],
)
def test_bad_native_config_values_are_named_before_building(model, key, value, expected, tmp_path):
    ganedit.save(_tiny_models()[model](), tmp_path / "m")
    config = _edit_config(tmp_path / "m", **{key: value})
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=expected) as info:
        ganedit.load(tmp_path / "m")
    assert str(config) in str(info.value)
    assert time.perf_counter() - t0 < 10  # refused, not attempted


def test_a_config_asking_for_more_than_the_weights_hold_is_refused_without_allocating(tmp_path, monkeypatch):
    """A config within every range but describing a bigger network than model.safetensors holds is compared with
    the file's header on the meta device; the real network is never built."""
    from ganedit.models.stylegan2 import Generator

    ganedit.save(_tiny_models()["stylegan2_g"](), tmp_path / "m")
    _edit_config(tmp_path / "m", style_dim=16384, n_mlp=8)  # 8 x 16384^2 floats = 8.6 GB if it were built
    real_builds = []
    original = Generator.__init__

    def spy(self, *args, **kwargs):
        # EqualLinear's weight is created with torch.randn: on the meta device it has no storage
        real_builds.append(torch.empty(0).device.type != "meta")
        original(self, *args, **kwargs)

    monkeypatch.setattr(Generator, "__init__", spy)
    with pytest.raises(CheckpointError, match=r"does not describe the network stored in model.safetensors: .*shape mismatches"):
        ganedit.load(tmp_path / "m")
    assert real_builds == [False]


def test_corrupt_weights_header_is_a_checkpoint_error(tmp_path):
    ganedit.save(_tiny_models()["unet"](), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read safetensors weights"):
        ganedit.load(tmp_path / "m")


# ------------------------------------------------------------------------------------------- training options


@pytest.mark.parametrize(
    "args, expected",
    [
        (["tinygan", "--lr", "-1"], r"lr=-1.0: must be a finite number > 0"),
        (["tinygan", "--lr", "nan"], r"lr=nan: must be a finite number > 0"),
        (["tinygan", "--set", "channels=0"], r"tinygan: channels=0: must be an integer from 1 to"),
        (["tinygan", "--set", "betas=[0.5, 1.0]"], r"tinygan: betas=\[0.5, 1.0\]: must be a list of 2 values"),
        (["tinygan", "--set", "ema_kimg=-1"], r"ema_kimg=-1.0: must be a finite number >= 0"),
        (["stylegan2", "--set", "mixing=2"], r"stylegan2: mixing=2.0: must be a finite number from 0 to 1"),
        (["stylegan2", "--set", "style_dim=1000000000"], r"stylegan2: style_dim=1000000000: must be an integer"),
        (["swapae", "--set", "patch_min_scale=0.5"], r"patch_min_scale=0.5 must not exceed patch_max_scale"),
        (["swapae", "--set", "preset=church1024"], r"swapae: preset='church1024': must be one of"),
        (["pix2pix", "--set", "ngf=-4"], r"pix2pix: ngf=-4: must be an integer from 1 to"),
        (["pix2pix", "--set", "netG=unet_1048576"], r"pix2pix: unet_1048576: netG depth=20: must be an integer from 5 to"),
        (["pix2pix", "--set", "crop_size=-4"], r"pix2pix: crop_size=-4: must be an integer from 0 to"),
        (["cyclegan", "--set", "netG=resnet_100000blocks"], r"cyclegan: resnet_100000blocks: netG blocks=100000"),
        (["cyclegan", "--set", "norm=group"], r"cyclegan: norm='group': must be one of 'batch', 'instance', 'none'"),
    ],
)
def test_bad_training_options_are_refused_before_anything_runs(args, expected, tmp_path, capsys):
    code, out, err = _cli(["train", *args, "--data", "synthetic:8", "--out", tmp_path / "run", "--dry-run"], capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(expected, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["tinygan", "stylegan2", "swapae", "pix2pix", "cyclegan"])
def test_every_recipe_default_passes_its_own_limits(method, capsys):
    from ganedit.methods import get_method
    from ganedit.train.config import resolve

    cls = get_method(method)
    assert cls.limits or method in ("pix2pix", "cyclegan")  # translation recipes check in check_config
    cfg = resolve(cls, {})
    assert cfg["skip_bad"] is False
    for key, value in cfg.items():
        assert not (isinstance(value, float) and not math.isfinite(value)), key


# ---------------------------------------------------------------------------------------------- --skip-bad


def _folder_with_one_bad_file(root: Path, n: int = 12) -> Path:
    from ganedit.data.io import write_image

    g = torch.Generator().manual_seed(0)
    for i in range(n):
        write_image(torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, root / f"{i:03d}.png")
    (root / "005.png").write_bytes(b"not an image at all")
    return root


def test_train_stops_at_a_bad_file_unless_skip_bad_then_counts_it(tmp_path, capsys):
    data = _folder_with_one_bad_file(tmp_path / "data")
    common = ["train", "tinygan", "--data", data, "--steps", 3, "--batch", 4, "--workers", 0, "--quiet",
              "--set", "size=8", "--set", "channels=4", "--set", "z_dim=4", "--checkpoint-every", 0, "--snapshot-every", 0]
    code, _, err = _cli([*common, "--out", tmp_path / "strict"], capsys)
    assert code == 2 and "005.png" in err and "Traceback" not in err

    code, _, err = _cli([*common, "--out", tmp_path / "lenient", "--skip-bad"], capsys)
    assert code == 0, err
    assert "1 unreadable image read(s) skipped" in err
    events = [json.loads(line) for line in (tmp_path / "lenient" / "metrics.jsonl").read_text().splitlines()]
    bad = [e for e in events if e.get("event") == "bad_images"]
    assert sum(e["count"] for e in bad) == 1 and bad[-1]["total"] == 1
    assert (tmp_path / "lenient" / "model" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------- eval symlinks


@pytest.mark.parametrize("kind", ["dangling", "loop"])
@pytest.mark.parametrize("metric", ["swd", "psnr"])
def test_eval_refuses_broken_symlinks_for_every_metric(kind, metric, tmp_path, capsys):
    from ganedit.data.io import write_image

    for d in ("a", "b"):
        for i in range(4):
            write_image(torch.zeros(1, 3, 32, 32) + 0.1 * i, tmp_path / d / f"{i}.png")
    link = tmp_path / "b" / "extra.png"
    if kind == "dangling":
        os.symlink(tmp_path / "missing.png", link)
    else:
        os.symlink(link.name, link)  # a link to itself: ELOOP
    code, out, err = _cli(["eval", tmp_path / "a", tmp_path / "b", "--metrics", metric], capsys)
    assert code == 2, out
    assert "extra.png: broken symbolic link" in err


def test_a_huge_resize_target_is_refused_before_allocating(tmp_path):
    from ganedit.data.io import read_image, write_image

    write_image(torch.zeros(1, 3, 8, 8), tmp_path / "x.png")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"resize target 1048576x1048576 is larger than ganedit resizes to"):
        read_image(tmp_path / "x.png", 2**20, allow_upscale=True)
    assert time.perf_counter() - t0 < 5
    assert read_image(tmp_path / "x.png", 16, allow_upscale=True).shape == (1, 3, 16, 16)


def test_shipped_models_skip_the_meta_probe_and_copies_of_them_do_not(tmp_path, monkeypatch):
    """The meta-device config check guards files from outside; the package's own assets skip it (its first use
    in a process imports torch's compiler stack: seconds on every CLI call)."""
    import shutil

    import ganedit
    from ganedit.formats import native
    from ganedit.formats.named import ASSETS_DIR

    probed = []
    real = native.check_config_fits_weights
    monkeypatch.setattr(native, "check_config_fits_weights", lambda *a: probed.append(a[2]) or real(*a))
    ganedit.load("attributes-synth64")
    assert probed == []
    copy = tmp_path / "attributes_copy"
    shutil.copytree(ASSETS_DIR / "attributes_synth64", copy)
    ganedit.load(copy)
    assert probed == [copy / "config.json"]
