"""Issue 11 §7: the one-call Python API (ganedit.swap / ganedit.translate) and library logging."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

import ganedit
from ganedit.data.io import read_image, write_image
from ganedit.errors import ConfigError, ImageError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def swap_model(tmp_path_factory):
    from ganedit.models.swapae import SwappingAutoencoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sae") / "model"
    ganedit.save(SwappingAutoencoder.small(64, texture_channels=16, width=8, with_discriminators=False), folder)
    return folder


def _photo(path: Path, seed: int, size: int = 72) -> Path:
    g = torch.Generator().manual_seed(seed)
    write_image(torch.rand(1, 3, size, size, generator=g) * 2 - 1, path)
    return path


def test_swap_accepts_paths_pil_images_and_tensors_alike(swap_model, tmp_path):
    a, b = _photo(tmp_path / "a.png", 1), _photo(tmp_path / "b.png", 2)
    by_path = ganedit.swap(a, b, model=swap_model)
    assert by_path.shape == (1, 3, 64, 64) and by_path.dtype == torch.float32 and torch.isfinite(by_path).all()
    model = ganedit.load(swap_model)
    by_pil = ganedit.swap(Image.open(a), Image.open(b), model=model)
    xa, xb = read_image(a, 64), read_image(b, 64)
    by_tensor = ganedit.swap(xa[0], xb, model=str(swap_model))
    assert torch.equal(by_path, by_pil) and torch.equal(by_path, by_tensor)
    # the same as the editing library's own swap, and alpha 0 reconstructs (differs from the swap)
    from ganedit.edit.swapae import swap

    assert torch.equal(by_path, swap(model, xa, xb, (1.0,), seed=0)[:, 0])
    assert not torch.equal(by_path, ganedit.swap(a, b, model=model, alpha=0.0))
    uint8 = ((xa + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(ganedit.swap(uint8, xb, model=model), by_path, atol=1e-4)


def test_swap_takes_a_batch_and_shares_one_texture(swap_model, tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", i) for i in range(3)]
    out = ganedit.swap(paths, paths[0], model=swap_model)
    assert out.shape == (3, 3, 64, 64)
    first = ganedit.swap(paths[1], paths[0], model=swap_model)
    assert torch.allclose(out[1:2], first, atol=1e-5)


def test_swap_errors_are_clear(swap_model, tmp_path):
    from ganedit.models.pix2pix import UnetGenerator

    ganedit.save(UnetGenerator(num_downs=5, ngf=4), tmp_path / "unet")
    with pytest.raises(ConfigError, match="needs a Swapping Autoencoder, got a UnetGenerator"):
        ganedit.swap(torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), model=tmp_path / "unet")
    with pytest.raises(ImageError, match=r"expected an image tensor"):
        ganedit.swap(torch.zeros(64, 64), torch.zeros(3, 64, 64), model=swap_model)
    with pytest.raises(ImageError, match="cannot use a int as an image"):
        ganedit.swap(3, torch.zeros(3, 64, 64), model=swap_model)


def test_translate_accepts_paths_pil_images_tensors_and_restores_the_mode(tmp_path):
    from ganedit.models.cyclegan import GeneratorPair, ResnetGenerator
    from ganedit.models.pix2pix import UnetGenerator

    torch.manual_seed(0)
    unet = UnetGenerator(num_downs=5, ngf=4)
    ganedit.save(unet, tmp_path / "unet")
    image = _photo(tmp_path / "x.png", 3, size=32)
    by_path = ganedit.translate(image, model=tmp_path / "unet")
    by_pil = ganedit.translate(Image.open(image), model=unet)
    by_tensor = ganedit.translate(read_image(image), model=str(tmp_path / "unet"))
    assert by_path.shape == (1, 3, 32, 32) and torch.equal(by_path, by_pil) and torch.equal(by_path, by_tensor)
    with torch.no_grad():
        assert torch.equal(by_path, unet.eval()(read_image(image)))
    unet.train()
    ganedit.translate(image, model=unet, test_mode="official")
    assert unet.training
    unet.eval()
    ganedit.translate(image, model=unet, test_mode="official")
    assert not unet.training
    with pytest.raises(ConfigError, match="single generator"):
        ganedit.translate(image, model=unet, direction="BtoA")
    pair = GeneratorPair.of(ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1))
    back = ganedit.translate(image, model=pair, direction="BtoA", size=16)
    with torch.no_grad():
        assert torch.equal(back, pair.G_B.eval()(read_image(image, 16)))


def test_load_documents_what_it_accepts_returns_and_raises():
    doc = ganedit.load.__doc__ or ""
    for word in ("Accepts", "Returns", "Raises", "CheckpointError"):
        assert word in doc
    hints = ganedit.load.__annotations__
    assert "PathLike" in str(hints["path"]) and "Module" in str(hints["return"])


# --------------------------------------------------------------------------------------------------- logging


def _stderr_prints(tree: ast.AST):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name == "print" and any(k.arg == "file" and "stderr" in ast.unparse(k.value) for k in node.keywords):
            yield node.lineno
        if name in ("sys.stderr.write", "sys.stderr.writelines"):
            yield node.lineno


def test_library_code_never_prints_to_stderr():
    """Library messages go through logging / warnings; only the CLI (ganedit/cli) and the console handler that
    the CLI installs (ganedit/log.py) write to stderr themselves."""
    offenders = []
    for path in sorted((REPO / "ganedit").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("ganedit/cli/") or rel == "ganedit/log.py":
            continue
        offenders += [f"{rel}:{line}" for line in _stderr_prints(ast.parse(path.read_text()))]
    assert not offenders, offenders


def _train_args(tmp_path, *extra):
    return ["train", "tinygan", "--data", "synthetic:8", "--steps", "2", "--batch", "4", "--workers", "0",
            "--set", "size=32", "--set", "channels=4", "--set", "z_dim=4", "--snapshot-every", "0",
            "--out", str(tmp_path / "run"), *extra]


def _cli(argv, capsys):
    from ganedit.cli.main import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


def test_cli_verbosity_flags_control_library_messages(tmp_path, capsys):
    try:
        code, err = _cli(_train_args(tmp_path / "a"), capsys)
        assert code == 0 and "tinygan: 8 training items" in err and "done: 2 steps" in err
        code, err = _cli(["-q", *_train_args(tmp_path / "b")], capsys)
        assert code == 0 and "training items" not in err and "done:" not in err
        # warnings still show under -q, with their prefix; -qq hides them too
        code, err = _cli(["-q", *_train_args(tmp_path / "b"), "--resume", "auto", "--steps", "3", "--set", "r1_gamma=2"], capsys)
        assert code == 0 and "warning: resuming with changed options (r1_gamma)" in err
        code, err = _cli(["-qq", *_train_args(tmp_path / "b"), "--resume", "auto", "--steps", "4", "--set", "r1_gamma=3"], capsys)
        assert code == 0 and "warning" not in err
    finally:
        logging.getLogger("ganedit").handlers.clear()
        logging.getLogger("ganedit").setLevel(logging.NOTSET)
        logging.getLogger("py.warnings").handlers.clear()
        logging.captureWarnings(False)


def test_library_messages_are_log_records(tmp_path, caplog):
    from ganedit.train.loop import train

    with caplog.at_level(logging.INFO, logger="ganedit"):
        train("tinygan", {"data": "synthetic:8", "steps": 2, "batch": 4, "workers": 0, "size": 32, "channels": 4, "z_dim": 4,
                          "snapshot_every": 0, "out": str(tmp_path / "run"), "quiet": True})
        train("tinygan", {"data": "synthetic:8", "steps": 3, "batch": 4, "workers": 0, "size": 32, "channels": 4, "z_dim": 4,
                          "snapshot_every": 0, "out": str(tmp_path / "run"), "r1_gamma": 2.0, "quiet": False}, resume="auto")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(n.startswith("ganedit.") and lvl == logging.WARNING and "changed options" in m for n, lvl, m in records)
    assert any(n == "ganedit.train.logs" and lvl == logging.INFO and m.startswith("resumed from") for n, lvl, m in records)
