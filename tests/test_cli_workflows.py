"""Everyday CLI jobs at tiny sizes: `swap --pairs`, swap-grid's progress bar and confirmation, `data synth
--baselines` progress, `translate --aligned` (side-by-side pages and scores), pix2pix sizes that follow the data."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganedit
from ganedit.cli.main import cli as group
from ganedit.data.io import read_image, write_image


def invoke(*args, ok: bool = True, **kwargs):
    result = CliRunner().invoke(group, [str(a) for a in args], **kwargs)
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def noise_image(seed: int, width: int = 64, height: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def sae(tmp_path_factory):
    from ganedit.models.swapae import SwappingAutoencoder

    root = tmp_path_factory.mktemp("pairs")
    torch.manual_seed(3)
    ganedit.save(SwappingAutoencoder.small(64, width=8, texture_channels=16, with_discriminators=False), root / "model")
    for i, name in enumerate(["x", "y", "sub/z", "only_a"]):
        write_image(noise_image(10 + i), root / "A" / f"{name}.png")
    for i, name in enumerate(["x", "y", "sub/z", "only_b"]):
        write_image(noise_image(20 + i), root / "B" / f"{name}.jpg" if name == "y" else root / "B" / f"{name}.png")
    return root


def test_swap_pairs_matches_single_swaps(sae, tmp_path):
    out = tmp_path / "swaps"
    result = invoke("swap", "--model", sae / "model", "--pairs", sae / "A", sae / "B", "-o", out, "--batch", "2")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["sub/z.png", "x.png", "y.png"]
    assert "only_a.png" in result.output and "only_b.png" in result.output and "no partner" in result.output
    assert "wrote 3 swap(s)" in result.output
    for name, b_name in (("x", "x.png"), ("y", "y.jpg"), ("sub/z", "sub/z.png")):
        invoke("swap", "--model", sae / "model", "--structure", sae / "A" / f"{name}.png", "--texture", sae / "B" / b_name,
               "-o", tmp_path / "one.png")
        diff = np.abs(pixels(out / f"{name}.png") - pixels(tmp_path / "one.png"))
        assert diff.max() <= 1, name  # batched or alone: the same swap, up to float rounding
    invoke("swap", "--model", sae / "model", "--pairs", sae / "A", sae / "B", "-o", tmp_path / "alphas", "--alpha", "0", "1", "-q")
    assert {p.name for p in (tmp_path / "alphas").glob("*.png")} == {"x_0.00.png", "x_1.00.png", "y_0.00.png", "y_1.00.png"}
    # alpha 0 reconstructs the structure image; alpha 1 is the swap written above
    assert np.abs(pixels(tmp_path / "alphas" / "x_1.00.png") - pixels(out / "x.png")).max() <= 1
    assert np.abs(pixels(tmp_path / "alphas" / "x_0.00.png") - pixels(out / "x.png")).max() > 1


def test_swap_pairs_errors(sae, tmp_path):
    empty = tmp_path / "C"
    write_image(noise_image(1), empty / "nothing_in_common.png")
    bad = invoke("swap", "--model", sae / "model", "--pairs", sae / "A", empty, "-o", tmp_path / "o", ok=False)
    assert isinstance(bad.exception, ganedit.GaneditError) and "no file names in common" in str(bad.exception)
    bad = invoke("swap", "--model", sae / "model", "--pairs", sae / "A", sae / "B", "--structure", sae / "A" / "x.png", "-o", tmp_path / "o", ok=False)
    assert isinstance(bad.exception, ganedit.GaneditError) and "either --structure and --texture, or --pairs" in str(bad.exception)
    bad = invoke("swap", "--model", sae / "model", "-o", tmp_path / "o", ok=False)
    assert isinstance(bad.exception, ganedit.GaneditError)


def test_swap_grid_progress_and_confirmation(sae, tmp_path, monkeypatch):
    import ganedit.cli.swap as swap_cli

    structures, textures = sae / "A", sae / "B"  # 4 x 4 = 16 swaps
    result = invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "g.png")
    assert re.search(r"swap-grid: 100%.*16/16", result.output), result.output
    assert "16/16" not in invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "q.png", "-q").output
    assert np.array_equal(pixels(tmp_path / "g.png"), pixels(tmp_path / "q.png"))
    monkeypatch.setattr(swap_cli, "GRID_CONFIRM_ABOVE", 15)
    refused = invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "r.png", ok=False)
    message = str(refused.exception)
    assert isinstance(refused.exception, ganedit.GaneditError) and "16 outputs (more than 15)" in message and "--yes" in message
    assert not (tmp_path / "r.png").exists()
    invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "y.png", "--yes")
    assert np.array_equal(pixels(tmp_path / "y.png"), pixels(tmp_path / "g.png"))
    # at a terminal the user is asked: "n" aborts before any work, "y" runs
    from ganedit.cli import _options

    monkeypatch.setattr(_options, "interactive", lambda: True)
    aborted = invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "n.png", ok=False, input="n\n")
    assert "Continue?" in aborted.output and aborted.exit_code != 0 and not (tmp_path / "n.png").exists()
    invoke("swap-grid", "--model", sae / "model", structures, textures, "-o", tmp_path / "a.png", input="y\n")
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "g.png"))


def test_synth_baselines_progress_and_exact_means(monkeypatch):
    import ganedit.cli.data_synth as synth
    from ganedit.metrics.groundtruth import heldout_swap_pairs, swap_baselines

    monkeypatch.setattr(synth, "BASELINE_CHUNK", 4)
    result = invoke("data", "synth", "--baselines", "--baseline-pairs", "10", "--size", "32")
    assert re.search(r"baselines: 100%.*10/10", result.output), result.output
    whole = swap_baselines(heldout_swap_pairs(10, 32, 0))
    for name, s in whole.items():
        row = re.search(rf"{name}\s+([\d.]+)\s+([\d.]+)", result.output)
        assert row, name
        assert abs(float(row.group(1)) - s["psnr"]) < 0.006 and abs(float(row.group(2)) - s["ssim"]) < 6e-5


# ---------------------------------------------------------------------------------------------- translate


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    from ganedit.models.pix2pix import UnetGenerator

    root = tmp_path_factory.mktemp("aligned")
    torch.manual_seed(0)
    ganedit.save(UnetGenerator(num_downs=5, ngf=4), root / "unet")
    for i in range(3):
        write_image(noise_image(40 + i, 64, 32), root / "data" / "test" / f"p{i}.png")
    write_image(noise_image(49, 64, 32), root / "data" / "train" / "ignored.png")
    return root


def test_translate_aligned_writes_pages_and_scores(aligned, tmp_path):
    out = tmp_path / "res"
    result = invoke("translate", "--model", aligned / "unet", "--aligned", aligned / "data", "-o", out, "--batch", "2")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == 3 and [r["name"] for r in scores["images"]] == ["p0", "p1", "p2"]  # test/ only
    assert f"PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}" in result.output
    model = ganedit.load(aligned / "unet").eval()
    from ganedit.metrics import psnr

    for row in scores["images"]:
        pair = read_image(aligned / "data" / "test" / f"{row['name']}.png", crop=False)
        a, b = pair[..., :32], pair[..., 32:]
        with torch.no_grad():
            y = model(a).clamp(-1, 1)
        assert abs(row["psnr"] - float(psnr(y, b))) < 1e-3
        strip = pixels(out / "compare" / f"{row['name']}.png")
        assert strip.shape == (32, 96, 3)
        assert np.abs(strip[:, :32] - pixels_of(a)).max() <= 1 and np.abs(strip[:, 64:] - pixels_of(b)).max() <= 1
        assert np.abs(strip[:, 32:64] - pixels(out / "output" / f"{row['name']}.png")).max() == 0
    page = (out / "index.html").read_text()
    assert page.count("<tr>") == 4 and "compare/p1.png" in page and f"{scores['psnr']:.2f} dB" in page
    # BtoA takes the right half as the input
    invoke("translate", "--model", aligned / "unet", "--aligned", aligned / "data" / "test" / "p0.png", "-o", tmp_path / "ba", "--direction", "BtoA")
    strip = pixels(tmp_path / "ba" / "compare" / "p0.png")
    pair = read_image(aligned / "data" / "test" / "p0.png", crop=False)
    assert np.abs(strip[:, :32] - pixels_of(pair[..., 32:])).max() <= 1


def pixels_of(x: torch.Tensor) -> np.ndarray:
    from ganedit.data.io import to_uint8_hwc

    return to_uint8_hwc(x[0]).astype(np.int16)


def test_translate_aligned_warns_about_files_that_are_not_2_to_1(aligned, tmp_path):
    folder = tmp_path / "mixed"
    write_image(noise_image(1, 64, 32), folder / "good.png")
    write_image(noise_image(2, 80, 32), folder / "wide.png")
    result = invoke("translate", "--model", aligned / "unet", "--aligned", folder, "-o", tmp_path / "o", "--size", "32")
    assert "1 file(s) are not 2:1" in result.output and "wide.png" in result.output
    assert json.loads((tmp_path / "o" / "scores.json").read_text())["n"] == 2


# ------------------------------------------------------------------------------------------- pix2pix sizes


def _aligned_folder(root: Path, n: int, side: int, width_factor: float = 2.0) -> Path:
    for i in range(n):
        write_image(noise_image(60 + i, int(side * width_factor), side), root / "train" / f"{i}.png")
    return root


def test_pix2pix_sizes_follow_the_data(tmp_path, caplog):
    from ganedit.methods.pair_sizes import resolve_pair_sizes
    from ganedit.methods.pix2pix import Pix2Pix
    from ganedit.train.config import defaults_for

    def resolved(data, **over):
        cfg = {**defaults_for(Pix2Pix), "data": str(data), **over}
        resolve_pair_sizes(cfg)
        return cfg["load_size"], cfg["crop_size"], cfg["netG"]

    assert resolved(_aligned_folder(tmp_path / "p64", 2, 64)) == (72, 64, "unet_64")
    assert resolved(_aligned_folder(tmp_path / "p256", 1, 256)) == (286, 256, "unet_256")  # the official recipe
    assert resolved(_aligned_folder(tmp_path / "p512", 1, 512)) == (286, 256, "unet_256")
    assert resolved(_aligned_folder(tmp_path / "p100", 1, 100)) == (72, 64, "unet_64")
    assert resolved("synthetic:8") == (72, 64, "unet_64")
    assert resolved(tmp_path / "p64", crop_size=32, netG="unet_128") == (36, 32, "unet_128")  # given values win
    assert resolved(tmp_path / "p64", load_size=64) == (64, 64, "unet_64")
    with caplog.at_level(logging.WARNING):
        resolved(_aligned_folder(tmp_path / "square", 2, 64, width_factor=1.0))
    assert "not 2:1" in caplog.text and "(64x64)" in caplog.text
    with pytest.raises(ganedit.GaneditError, match="smaller than the smallest U-Net"):
        resolved(_aligned_folder(tmp_path / "tiny", 1, 16))


def test_pix2pix_trains_at_the_data_size(tmp_path):
    from ganedit.train.loop import train

    data = _aligned_folder(tmp_path / "x2y", 4, 64)
    trainer = train("pix2pix", {"data": str(data), "out": str(tmp_path / "run"), "steps": 1, "batch": 2, "ngf": 4, "ndf": 4,
                                "workers": 0, "device": "cpu", "quiet": True, "tensorboard": False, "snapshot_every": 0,
                                "checkpoint_every": 0})
    assert trainer.method.cfg["crop_size"] == 64 and trainer.method.cfg["load_size"] == 72
    model = ganedit.load(tmp_path / "run" / "model")
    assert model.config["num_downs"] == 6  # unet_64, not unet_256 on upscaled 286 px crops
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_readme_pix2pix_command_fits_a_cpu(tmp_path):
    """The README's pix2pix command, on 64 px pairs like the data it names, resolves to the CPU-sized run
    that BENCHMARKS.md timed (~16 min): unet_64 on 64 px crops, a few thousand steps -- not 80,000 steps of a
    256 px network (days on a CPU)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("ganedit train pix2pix"))
    assert re.search(r"#.*\bmin\b", line), "the README line should say how long it takes"
    args = line.split("#")[0].split()[1:]
    data = _aligned_folder(tmp_path / "x2y", 2, 64)
    args[args.index("--data") + 1] = str(data)
    args[args.index("-o") + 1] = str(tmp_path / "run")
    result = invoke(*args, "--dry-run")
    cfg = json.loads(result.output[result.output.index("{"):])
    from ganedit.methods.pair_sizes import resolve_pair_sizes

    resolve_pair_sizes(cfg)
    assert (cfg["crop_size"], cfg["netG"]) == (64, "unet_64")
    # BENCHMARKS.md (translation quality): 2406 steps of batch 4, ngf/ndf 32, unet_64 took 16.1 CPU minutes
    assert cfg["steps"] * cfg["batch"] <= 2 * 2406 * 4 and cfg["ngf"] <= 32 and cfg["ndf"] <= 32
