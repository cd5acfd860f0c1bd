"""The web UI's parts without a browser: model catalog, upload checks, and each tab's work function against the
Python API / CLI for the same inputs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_models import make_models
from ganedit.app import work
from ganedit.app.catalog import Catalog
from ganedit.app.context import EXAMPLES, guarded
from ganedit.app.uploads import MAX_UPLOAD_BYTES, read_upload
from ganedit.cli.main import main
from ganedit.data.io import make_grid, read_image, to_uint8_hwc
from ganedit.errors import ConfigError, ImageError

SHIPPED_SWAPAE = "swapae_synth64 (shipped)"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def catalog(models) -> Catalog:
    return Catalog(models)


def test_catalog_lists_models_by_tab_with_training_data(catalog):
    assert catalog.names("swapae") == [SHIPPED_SWAPAE]
    assert sorted(catalog.names("translation")) == ["cyclegan/pair", "pix2pix_tiny"]
    assert catalog.names("stylegan2") == ["stylegan2_synth64 (shipped)", "sg2_tiny"]  # shipped first, then --models
    assert "synthetic:4000" in catalog.info(SHIPPED_SWAPAE, "swapae") and "64 px" in catalog.info(SHIPPED_SWAPAE, "swapae")
    assert "random weights" in catalog.info("sg2_tiny", "stylegan2")


def test_catalog_never_resolves_paths_outside_the_models_folder(catalog, models, tmp_path):
    for name in ("../../etc/passwd", "/etc", str(models / "sg2_tiny"), "sg2_tiny/../pix2pix_tiny"):
        with pytest.raises(ConfigError, match="unknown model"):
            catalog.get(name, "stylegan2")
    with pytest.raises(ConfigError, match="unknown model"):
        catalog.get("pix2pix_tiny", "stylegan2")  # a listed model, but not for this tab
    # a link inside --models that points outside it is not offered
    outside = make_models(tmp_path / "outside")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(outside / "sg2_tiny", linked / "escape")
    assert "escape" not in Catalog(linked).names("stylegan2")  # only the shipped generator is offered
    assert Catalog(linked).names("stylegan2") == ["stylegan2_synth64 (shipped)"]


def test_missing_models_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        Catalog(tmp_path / "nope")


def test_upload_checks_give_the_cli_message(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageError) as cli_err:
        read_image(bad)
    with pytest.raises(ImageError) as ui_err:
        read_upload(str(bad), "input", 64)
    assert str(ui_err.value) == str(cli_err.value).replace(str(bad), "bad.png")
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ImageError, match="over the upload limit"):
        read_upload(str(big), "input", 64)
    huge = tmp_path / "huge.png"
    Image.new("RGB", (4097, 4097)).save(huge)
    with pytest.raises(ImageError, match="pixels"):
        read_upload(str(huge), "input", 64)
    with pytest.raises(ImageError, match="no image given"):
        read_upload(None, "structure image", 64)


def test_guard_turns_errors_into_one_status_line(tmp_path):
    def broken(_):
        raise RuntimeError("deep torch failure")

    def bad_input(_):
        raise ImageError("x.png", "cannot identify image")

    assert guarded(bad_input)(1) == [None, "error: x.png: cannot identify image"]
    image, status = guarded(broken)(1)
    assert image is None and "RuntimeError" in status and "deep torch" not in status
    assert guarded(lambda v: v)(3) == [3, "done"]


def test_swap_matches_the_python_api(catalog):
    from ganedit.cli.swap import load_swapae
    from ganedit.edit import swapae as E

    a_path, b_path = EXAMPLES / "synth_face_0.png", EXAMPLES / "synth_face_1.png"
    got = work.swap(catalog, "cpu", SHIPPED_SWAPAE, str(a_path), str(b_path), 0.5)
    model = load_swapae(str(catalog.get(SHIPPED_SWAPAE, "swapae").path))
    a, b = read_image(a_path, 64, allow_upscale=True), read_image(b_path, 64, allow_upscale=True)
    want = to_uint8_hwc(E.swap(model, a, b, [0.5])[0, 0])
    assert got.shape == (64, 64, 3) and np.array_equal(got, want)
    full = work.swap(catalog, "cpu", SHIPPED_SWAPAE, str(a_path), str(b_path), 1.0)
    assert np.abs(full.astype(int) - got.astype(int)).mean() > 1  # the slider changes the result
    copy = work.swap(catalog, "cpu", SHIPPED_SWAPAE, str(a_path), str(b_path), 1.0, "copy", (0.0, 0.0, 0.5, 0.5))
    want = to_uint8_hwc(E.copy_structure_region(model, a, b, (0, 0, 32, 32))[0])
    assert np.array_equal(copy, want)
    seen = work.preview(catalog, "cpu", SHIPPED_SWAPAE, "swapae", str(EXAMPLES / "photo_astronaut.png"))
    assert np.array_equal(seen, to_uint8_hwc(read_image(EXAMPLES / "photo_astronaut.png", 64)[0]))
    with pytest.raises(ConfigError, match="region"):
        work.swap(catalog, "cpu", SHIPPED_SWAPAE, str(a_path), str(b_path), 1.0, "blend", (0.5, 0.0, 0.2, 1.0))


def test_translate_matches_the_cli(catalog, tmp_path):
    src = EXAMPLES / "photo_chelsea.png"
    for name, direction in (("pix2pix_tiny", "AtoB"), ("cyclegan/pair", "BtoA")):
        got = work.translate(catalog, "cpu", name, str(src), direction, 64)
        out = tmp_path / f"{name.replace('/', '_')}.png"
        main(["translate", "--model", str(catalog.get(name, "translation").path), str(src), "-o", str(out),
              "--size", "64", "--direction", direction])
        assert np.array_equal(got, np.asarray(Image.open(out).convert("RGB")))
    with pytest.raises(ConfigError, match="multiple of 32"):
        work.translate(catalog, "cpu", "pix2pix_tiny", str(src), "AtoB", 48)
    with pytest.raises(ConfigError):
        work.translate(catalog, "cpu", "pix2pix_tiny", str(src), "BtoA", 64)


def test_sample_and_mix_match_the_cli(catalog, tmp_path):
    path = str(catalog.get("sg2_tiny", "stylegan2").path)
    got = work.sample(catalog, "cpu", "sg2_tiny", "3,5", 0.7)
    model = work.load(catalog, "sg2_tiny", "stylegan2", "cpu")
    want = torch.cat([model.sample(1, truncation=0.7, seed=s) for s in (3, 5)])
    assert np.array_equal(got, to_uint8_hwc(make_grid(want, nrow=2)))
    main(["mix", path, "--rows", "1-2", "--cols", "7,8,9", "--range", "middle", "--truncation", "0.8", "-o", str(tmp_path / "mix.png")])
    mixed = work.mix(catalog, "cpu", "sg2_tiny", "1-2", "7,8,9", "middle", 0.8)
    assert np.array_equal(mixed, np.asarray(Image.open(tmp_path / "mix.png").convert("RGB")))
    with pytest.raises(ConfigError, match="limit"):
        work.sample(catalog, "cpu", "sg2_tiny", "0-1000", 1.0)


def test_serve_help_and_host_warning(capsys):
    from ganedit.app.server import host_warning

    main(["serve", "--help"])
    assert "--models" in capsys.readouterr().out
    assert host_warning("127.0.0.1", 7860) is None
    assert "0.0.0.0" in host_warning("0.0.0.0", 7860) and "warning" in host_warning("0.0.0.0", 7860)


def test_app_without_models_says_so_in_the_tabs():
    pytest.importorskip("gradio", reason="gradio is in the test extra; install it to build the app")
    import json

    from ganedit.app import build_app

    text = json.dumps(build_app().config, default=str)  # gr.State's config holds its delete callback
    assert "swapae_synth64 (shipped)" in text and "synthetic:4000" in text
    assert "No pix2pix or CycleGAN model is available" in text  # none is shipped
    assert "stylegan2_synth64 (shipped)" in text and "No StyleGAN2 model is available" not in text
    assert "Invert & edit" in text and "No pSp / e4e encoder fits this generator" in text  # none is shipped


def test_a_browser_leaving_mid_upload_is_one_line_not_a_traceback():
    """uvicorn logs a request that the browser abandoned (Starlette's ClientDisconnect) with a full traceback; the
    server's filter turns it into one warning line, alone or wrapped in an exception group, and leaves every other
    error's traceback alone."""
    import logging
    import sys

    from ganedit.app.server import ClientGoneFilter, quiet_client_disconnects

    class ClientDisconnect(Exception):  # the name Starlette gives it; the filter matches by name
        pass

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (),
                                 (type(exc), exc, None))

    gone = record(ClientDisconnect())
    assert ClientGoneFilter().filter(gone) and gone.exc_info is None and gone.levelno == logging.WARNING
    assert logging.Formatter().format(gone) == ClientGoneFilter.MESSAGE  # no "Traceback" left
    real = record(ValueError("bad"))
    assert ClientGoneFilter().filter(real) and real.exc_info is not None and real.levelno == logging.ERROR
    if sys.version_info >= (3, 11):
        grouped = record(BaseExceptionGroup("task group", [ClientDisconnect()]))  # noqa: F821 (3.11+ builtin)
        mixed = record(BaseExceptionGroup("task group", [ClientDisconnect(), ValueError("bad")]))  # noqa: F821
        ClientGoneFilter().filter(grouped), ClientGoneFilter().filter(mixed)
        assert grouped.exc_info is None and mixed.exc_info is not None
    logger = logging.getLogger("uvicorn.error")
    before = list(logger.filters)
    try:
        quiet_client_disconnects()
        quiet_client_disconnects()
        assert sum(isinstance(f, ClientGoneFilter) for f in logger.filters) == 1
    finally:
        logger.filters[:] = before
