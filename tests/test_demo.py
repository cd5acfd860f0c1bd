"""`ganedit demo` with a tiny Swapping Autoencoder: every file is written, the scores are finite and the swap
grid's model row is the model's swap."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganedit
from ganedit.cli.main import main
from ganedit.data.io import to_uint8_hwc
from ganedit.edit.swapae import swap
from ganedit.metrics.groundtruth import heldout_swap_pairs
from ganedit.models.swapae import SwappingAutoencoder

FILES = ["gallery.png", "gallery_labelled.png", "swap_ground_truth.png", "swap_grid.png", "interpolation.png",
         "region_edit.png", "texture_edit.png", "scores.json"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    model = SwappingAutoencoder.small(64, structure_channels=4, texture_channels=16, width=4)  # with D: the demo drops it
    ganedit.save(model, tmp / "model")
    out = tmp / "out"
    main(["demo", "--model", str(tmp / "model"), "--out", str(out), "--pairs", "6", "--n", "8", "--direction-images", "4"])
    return model, out


def test_demo_writes_every_file_with_finite_scores(demo_run):
    _, out = demo_run
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "scores.json").read_text())
    scores = summary["scores"]
    for key in ("swapae_swap", "swapae_reconstruction", "copy", "colour_transfer", "texture_edit_x2y"):
        assert math.isfinite(scores[key]["psnr"]) and math.isfinite(scores[key]["ssim"]), key
        assert scores[key]["n"] == 6, key
    for who in ("swapae", "ground_truth"):
        assert all(math.isfinite(v) for v in summary["structure_leak"][who].values())
    # The ground truth follows A's layout better than the texture image's: the leak measure can tell them apart.
    gt = summary["structure_leak"]["ground_truth"]
    assert gt["fit_structure"] > gt["fit_texture"]
    assert summary["model"]["source"] == "loaded"


def test_swap_grid_model_row_is_the_models_swap(demo_run):
    model, out = demo_run
    grid = np.asarray(Image.open(out / "swap_grid.png").convert("RGB")).astype(int)
    p = heldout_swap_pairs(8, 64, 0)
    expected = to_uint8_hwc(swap(model, p.a, p.b, (1.0,), seed=0)[:, 0]).astype(int)  # (8, 64, 64, 3)
    # Layout of labelled_rows: a label margin of 8 + 6 * len(longest label), rows of make_grid with padding 2.
    pad, size, label_w = 2, 64, 8 + 6 * len("structure A")
    y0 = 2 * (size + 2 * pad) + pad  # third row: A, B, model swap
    for j in range(8):
        x0 = label_w + pad + j * (size + pad)
        cell = grid[y0 : y0 + size, x0 : x0 + size]
        assert np.abs(cell - expected[j]).max() <= 1, f"column {j}"
    # and it is not the ground truth or the copy row (the check can fail)
    truth = to_uint8_hwc(p.target).astype(int)
    assert np.abs(grid[y0 : y0 + size, label_w + pad : label_w + pad + size] - truth[0]).max() > 1


def test_demo_trains_within_its_time_budget(tmp_path):
    import time

    start = time.perf_counter()
    main(["demo", "--train", "--train-minutes", "0.05", "--train-images", "16", "--out", str(tmp_path), "--pairs", "2",
          "--n", "8", "--direction-images", "2"])
    summary = json.loads((tmp_path / "scores.json").read_text())
    info = summary["model"]
    assert info["source"] == "trained by the demo" and info["steps"] >= 1
    assert info["train_seconds"] < 3 + 30  # stopped by the budget, not by the recipe's 5000 steps
    trained = ganedit.load(tmp_path / "train" / "model")
    assert trained.checkpoint_meta["step"] == info["steps"]
    assert math.isfinite(summary["scores"]["swapae_swap"]["psnr"])
    assert time.perf_counter() - start < 120


def test_demo_refuses_a_size_the_model_does_not_fit_before_writing_anything(tmp_path):
    from click.testing import CliRunner

    from ganedit.cli.main import cli

    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "--size", "32", "--out", str(out)])
    assert res.exit_code != 0
    assert "works on 64 px images" in str(res.exception) and not out.exists()


def test_demo_device_option_runs_the_model_there_or_refuses_before_writing_anything(tmp_path):
    from click.testing import CliRunner

    from ganedit.cli.main import cli

    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "--device", "cuda", "--world-only", "--n", "8", "--pairs", "2", "--out", str(out)])
    if torch.cuda.is_available():  # a GPU machine: the world-only report runs
        assert res.exit_code == 0 and (out / "gallery.png").is_file()
    else:
        assert res.exit_code != 0 and "--device cuda: CUDA is not available" in str(res.exception)
        assert not out.exists()
