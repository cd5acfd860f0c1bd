"""benchmarks/make_edit_strips.py: labelled grids with the input beside each row, on a tiny random generator."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from benchmarks import bench_directions, make_edit_strips as M


def test_labelled_grid_layout_and_cells():
    cells = torch.linspace(-1, 1, 2 * 3 * 3 * 4 * 4).reshape(2, 3, 3, 4, 4)
    grid = M.labelled_grid(cells, ["row a", "row b"], ["c0", "c1", "c2"], ["title"], scale=2)
    assert grid.size[1] >= 2 * 8 + 12 + 12  # two rows of 8 px cells under a title and a header
    # every cell is drawn, pixel for pixel (values mapped from [-1, 1] to 0..255), upscaled by 2 (nearest)
    for i in range(2):
        for j in range(3):
            tile = ((cells[i, j].permute(1, 2, 0) + 1) * 127.5).round()
            assert _find_tile(grid, tile.repeat_interleave(2, 0).repeat_interleave(2, 1), half=False)
    try:
        M.labelled_grid(cells, ["only one"], ["0", "1", "2"], [])
    except ValueError as exc:
        assert "row" in str(exc)
    else:
        raise AssertionError("a missing row label must be refused")


def test_make_strips_on_tiny_generator(tmp_path):
    from ganedit.edit import directions as D

    G, R = bench_directions.tiny_models(0)
    folder = tmp_path / "dirs"
    folder.mkdir()
    D.save_direction(folder / "ganspace.safetensors", D.ganspace(G, 200, 2))
    D.save_direction(folder / "sefa.safetensors", D.sefa(G, n_components=2))
    w, labels = D.label_samples(G, lambda im: {"yaw": im.mean(dim=(1, 2, 3))}, 100)
    d = D.interfacegan(G, (w, labels), attribute="yaw", extreme_fraction=0.2)
    d.meta["factor"] = "yaw"
    D.save_direction(folder / "interfacegan_yaw.safetensors", d)
    out = tmp_path / "strips"
    written = M.make_strips(G, folder, out, ["interfacegan_yaw", "ganspace:pc1", "sefa:sefa0"], n_indomain=2,
                            n_world=2, steps=2, strengths=(-3, 0, 3), regressor=R, lpips=False, model_label="tiny",
                            command="cmd")
    names = sorted(p.name for p in written)
    assert names == ["ganspace_pc1.png", "interfacegan_yaw.png", "interpolation.png", "sefa_sefa0.png", "style_mixing.png"]
    legend = (out / "README.md").read_text()
    assert "`cmd`" in legend and "in-domain 1" in legend and "world 0" in legend
    # 4 rows (2 in-domain + 2 world) x (input + 3 strengths), each cell 16 px at scale 2, plus labels and notes
    strip = Image.open(out / "interfacegan_yaw.png")
    assert strip.size[0] > 4 * 32 and strip.size[1] > 4 * (32 + 12)
    # the input column holds the input image: in-domain image 0 upscaled by 2 (nearest)
    labels_, images = M.load_inputs(G, 2, 2, 0)
    assert labels_ == ["in-domain 0", "in-domain 1", "world 0", "world 1"]
    expected = ((images[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
    found = _find_tile(strip, expected.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert found, "the input image is not in the strip"


def _find_tile(image: Image.Image, tile: torch.Tensor, half: bool = True) -> bool:
    """Whether ``tile`` [h, w, 3] appears (within 1 level) anywhere in the image (its left half with ``half``)."""
    pixels = torch.from_numpy(np.array(image.convert("RGB"))).float()
    h, w, _ = tile.shape
    width = pixels.shape[1] // 2 if half else pixels.shape[1] - w + 1
    for y in range(0, pixels.shape[0] - h + 1):
        for x in range(0, width):
            if (pixels[y, x] - tile[0, 0]).abs().max() <= 1 and (pixels[y:y + h, x:x + w] - tile).abs().max() <= 1:
                return True
    return False


def test_cell_notes_read_probabilities_of_classes():
    _, R = bench_directions.tiny_models(0)
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    raw = R.eval()(images)
    glasses = M.reader(R, "glasses")(images)
    assert glasses == [f"p(on) {float(v):.2f}" for v in torch.sigmoid(raw["glasses"][:, 0])]
    long_hair = M.reader(R, "hair_kind", positive_class=1)(images)
    assert long_hair == [f"p(long) {float(v):.2f}" for v in torch.softmax(raw["hair_kind"], 1)[:, 1]]
    assert M.reader(R, "hair_kind")(images)[0] in ("short", "long", "bob", "bun")


def test_strip_titles_say_how_a_vector_was_fitted():
    from benchmarks.make_edit_strips import _fit_text

    assert _fit_text({"validation_accuracy": 0.9}) == "val. acc. 0.90"
    text = _fit_text({"fit": "regression", "validation_r2": 0.26, "conditioned_on": ["a", "b"], "layer_choice": {"rows": [3, 8]}})
    assert text == "ridge, held-out R2 0.26, orthogonal to 2 other factors, rows chosen on held-out samples"
