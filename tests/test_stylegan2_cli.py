"""`ganedit sample`, `ganedit mix` and `ganedit convert` on the small official checkpoint, plus ONNX export."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganedit.cli.main import main


@pytest.fixture(scope="module")
def native(conformance, tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2") / "native"
    main(["convert", str(conformance / "stylegan2" / "stylegan2_small" / "checkpoint.pt"), str(out)])
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    return out


def _cells(path, n_rows, n_cols, size=32, pad=2):
    grid = np.asarray(Image.open(path).convert("RGB"))
    assert grid.shape == (n_rows * (size + pad) + pad, n_cols * (size + pad) + pad, 3)
    return [[grid[pad + r * (size + pad): pad + r * (size + pad) + size, pad + c * (size + pad): pad + c * (size + pad) + size]
             for c in range(n_cols)] for r in range(n_rows)]


def test_sample_grid(native, tmp_path):
    main(["sample", str(native), "--n", "6", "--truncation", "0.7", "--seed", "3", "--nrow", "3", "-o", str(tmp_path / "a.png")])
    cells = _cells(tmp_path / "a.png", 2, 3)
    assert not np.array_equal(cells[0][0], cells[0][1])  # different seeds -> different images
    main(["sample", str(native), "--n", "6", "--truncation", "0.7", "--seed", "3", "--nrow", "3", "-o", str(tmp_path / "b.png")])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    main(["sample", str(native), "--n", "4", "--truncation", "0", "--seed", "9", "--nrow", "4", "-o", str(tmp_path / "c.png")])
    cells = _cells(tmp_path / "c.png", 1, 4)
    assert all(np.array_equal(cells[0][0], cells[0][i]) for i in range(4))  # psi = 0: the average image


def test_mix_grid(native, conformance, tmp_path):
    # works on the original .pt too (loaded through the converter)
    src = conformance / "stylegan2" / "stylegan2_small" / "checkpoint.pt"
    main(["mix", str(src), "--rows", "1-2", "--cols", "5,6,7", "--range", "coarse", "-o", str(tmp_path / "m.png")])
    cells = _cells(tmp_path / "m.png", 3, 4)
    assert (cells[0][0] == 255).all()  # blank corner
    # w+ rows 4..7 (16-32 px) come from the row image, so mixes differ from the column images and from each other
    assert not np.array_equal(cells[1][1], cells[0][1]) and not np.array_equal(cells[1][1], cells[1][2])
    # mixing rows 0..7 (all) from the column reproduces the column image exactly
    main(["mix", str(native), "--rows", "1", "--cols", "5", "--range", "0-7", "-o", str(tmp_path / "all.png")])
    cells = _cells(tmp_path / "all.png", 2, 2)
    assert np.array_equal(cells[1][1], cells[0][1])
    with pytest.raises(SystemExit) as exc:
        main(["mix", str(native), "--range", "fine", "-o", str(tmp_path / "x.png")])  # 32 px: no 64 px+ layers
    assert exc.value.code == 2


def test_onnx_export_matches(native, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import ganedit
    from ganedit.models.stylegan2 import export_onnx

    model = ganedit.load(native)
    path = export_onnx(model, tmp_path / "g.onnx", batch=2)
    wplus = torch.randn(2, model.n_latent, model.style_dim) * 0.5 + model.w_avg
    with torch.no_grad():
        expected = model.synthesis(wplus).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"wplus": wplus.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-3)
