"""The attribute regressor's face-detail branch: window placement, shapes, the two-stage file format next to the
one-stage one, the detail fine-tune, and that the shipped regressor reads smile."""
from __future__ import annotations

import json

import pytest
import torch

from ganedit.data.synthetic import render, sample_appearance, sample_structure
from ganedit.errors import CheckpointError, ConfigError
from ganedit.formats.native import load_model, save_model
from ganedit.methods.attributes import add_detail_branch, jittered_box, train_regressor, world_batch
from ganedit.models.attributes import (
    DETAIL_FACTORS,
    FACTORS,
    WINDOW_DY,
    WINDOW_HALF,
    AttributeRegressor,
    crop_faces,
    load_regressor,
    predict_factors,
)

SMALL = {"channels": [4, 8, 8, 16, 16], "feature_dim": 32}
DETAIL = {"channels": [4, 4, 8, 8], "crop": 16, "feature_dim": 8}


def test_detail_branch_shapes_and_outputs():
    model = AttributeRegressor(**SMALL, detail=DETAIL).eval()
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    raw = model(images)
    assert set(raw) == {f.name for f in FACTORS}
    for spec in model.specs:
        assert raw[spec.name].shape == (3, spec.outputs), spec.name
    assert set(model.detail_slices) == set(DETAIL_FACTORS)
    windows = crop_faces(images, torch.zeros(3), torch.zeros(3), torch.full((3,), 0.4), 16)
    assert windows.shape == (3, 3, 16, 16) and model.detail(windows).shape == (3, 8)
    assert model.detail_from_global.in_features == 32 and model.detail_from_branch.in_features == 8
    # the detail factors come from the detail head: changing its bias moves them and nothing else
    before = model(images)
    with torch.no_grad():
        model.detail_from_global.bias.add_(1.0)
    after = model(images)
    for name in raw:
        moved = not torch.allclose(before[name], after[name])
        assert moved == (name in DETAIL_FACTORS), name


def test_part_segmentation_head_and_loss():
    from ganedit.methods.attributes import parts_loss
    from ganedit.models.attributes import PART_CLASSES

    model = AttributeRegressor(**SMALL, detail=DETAIL)
    images, targets, _, classes = world_batch(4, 0, 0, segmentation=True)
    assert classes.shape == (4, 64, 64) and int(classes.max()) < len(PART_CLASSES)
    box = (targets["face_x"], targets["face_y"], targets["face_size"])
    raw, parts = model.forward_with_parts(images, box)
    assert parts.shape == (4, len(PART_CLASSES), 16, 16) and set(raw) == {f.name for f in FACTORS}
    # the loss is small for logits that are the cropped class map itself, large for the wrong classes
    one_hot = torch.nn.functional.one_hot(classes, len(PART_CLASSES)).permute(0, 3, 1, 2).float()
    truth = crop_faces(one_hot, *box, 16)
    right = parts_loss(20.0 * truth, classes, box)
    wrong = parts_loss(20.0 * truth.roll(1, dims=1), classes, box)
    untrained = parts_loss(parts.detach(), classes, box)
    assert float(right) < 0.5 < float(untrained) < float(wrong)
    # the window's classes: mostly skin, some lips and eyes
    share = truth.mean((0, 2, 3))
    assert share[PART_CLASSES.index("skin")] > 0.2 and share[PART_CLASSES.index("lips")] > 0.002


def test_generator_scores_use_the_detail_branch():
    from ganedit.metrics.attributes import _predict_with_features

    model = AttributeRegressor(**SMALL, detail=DETAIL).eval()
    with torch.no_grad():
        model.detail_from_global.bias.normal_()  # the detail head now disagrees with the global head
    images = torch.rand(6, 3, 64, 64) * 2 - 1
    pred, feats = _predict_with_features(model, images, batch_size=4)
    direct = predict_factors(images, model, batch_size=4)
    assert [k for k in direct if not torch.equal(pred[k], direct[k])] == []
    assert torch.allclose(feats, model.features(images), atol=1e-6)


def test_detail_config_errors():
    with pytest.raises(ConfigError, match="detail channels"):
        AttributeRegressor(**SMALL, detail={"channels": [4, 4, 8]})
    with pytest.raises(ConfigError, match="multiple of 8"):
        AttributeRegressor(**SMALL, detail={"crop": 20})
    with pytest.raises(ConfigError, match="unknown detail setting"):
        AttributeRegressor(**SMALL, detail={"width": 3})
    with pytest.raises(ConfigError, match="face_x"):
        AttributeRegressor(**SMALL, factors=["smile", "face_y", "face_size"], detail={})
    with pytest.raises(ConfigError, match="detail factors"):
        AttributeRegressor(**SMALL, factors=["face_x", "face_y", "face_size"], detail={"factors": ["smile"]})


def test_crop_window_is_the_face_box():
    """A bright square at the window's centre lands in the centre of the crop, wherever the box is."""
    size, crop = 64, 16
    for col, row, fs in ((20, 40, 0.4), (45, 18, 0.3)):
        image = torch.full((1, 3, size, size), -1.0)
        image[0, :, row - 2:row + 2, col - 2:col + 2] = 1.0  # 4x4 px around the pixel corner (col, row)
        cx, cy = 2 * col / size - 1, 2 * row / size - 1  # that corner in image units
        window = crop_faces(image, torch.tensor([cx]), torch.tensor([cy - WINDOW_DY * fs]), torch.tensor([fs]), crop)[0, 0]
        assert torch.allclose(window[7:9, 7:9], torch.ones(2, 2))
        mass = window + 1.0
        grid = torch.arange(crop, dtype=torch.float32)
        centre = (float((mass.sum(1) * grid).sum() / mass.sum()), float((mass.sum(0) * grid).sum() / mass.sum()))
        assert max(abs(centre[0] - 7.5), abs(centre[1] - 7.5)) < 1e-3, centre
        # the window spans 2 * WINDOW_HALF * face_size image units: the square's share of the crop tells its scale
        share = float((window > 0).float().mean())
        expected = (4 / (WINDOW_HALF * fs * size)) ** 2
        assert 0.5 * expected < share < 2.0 * expected, (share, expected)


def test_crop_follows_a_moved_face():
    """Render one face at two places: windows placed by each face's own box match; a fixed box does not."""
    st, ap = sample_structure(6, 21), sample_appearance(6, 21)
    ap = ap.replace(bg_pattern=3, light_strength=0.0)  # a gradient wall: the background barely differs under the window
    st = st.replace(bg_layout=0, yaw=0.0)
    left, right = st.replace(face_x=-0.1), st.replace(face_x=0.1)
    img_l, img_r = render(left, ap, 64).image, render(right, ap, 64).image
    crop = lambda img, s: crop_faces(img, s.face_x, s.face_y, s.face_size, 32)  # noqa: E731
    following = (crop(img_l, left) - crop(img_r, right)).abs().mean()
    fixed = (crop(img_l, left) - crop(img_r, left)).abs().mean()
    assert following < 0.25 * fixed, (float(following), float(fixed))


def test_jittered_box_is_near_the_truth_and_seeded():
    _, targets, _ = world_batch(200, 0, 0)
    a = jittered_box(targets, torch.Generator().manual_seed(1), 0.015, 0.03)
    b = jittered_box(targets, torch.Generator().manual_seed(1), 0.015, 0.03)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    dx = a[0] - targets["face_x"]
    assert 0.01 < float(dx.std()) < 0.02 and float((a[2] / targets["face_size"]).log().std()) < 0.05


def test_added_branch_starts_as_the_global_head():
    one = AttributeRegressor(**SMALL).eval()
    with torch.no_grad():  # batch norms with non-trivial statistics
        for m in one.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    two = add_detail_branch(one, DETAIL, branch_init_std=1e-3).eval()
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    a, b = one(images), two(images)
    for name in a:  # the branch block starts tiny, not zero (so that the branch gets gradient at once)
        assert torch.allclose(a[name], b[name], atol=0.02), name
    assert not all(torch.equal(a[n], b[n]) for n in DETAIL_FACTORS)
    two.init_detail_head_from_global(branch_scale=0.0)
    b = two(images)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_one_and_two_stage_files_load(tmp_path):
    one = AttributeRegressor(**SMALL).eval()
    two = AttributeRegressor(**SMALL, detail=DETAIL).eval()
    save_model(one, tmp_path / "one")
    save_model(two, tmp_path / "two")
    assert "detail" not in json.loads((tmp_path / "one" / "config.json").read_text())["config"] or \
        json.loads((tmp_path / "one" / "config.json").read_text())["config"]["detail"] is None
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    for saved, model in ((tmp_path / "one", one), (tmp_path / "two", two)):
        loaded = load_regressor(str(saved))
        assert (loaded.detail is None) == (model.detail is None)
        x, y = predict_factors(images, loaded), predict_factors(images, model)
        assert all(torch.equal(x[k], y[k]) for k in x)
    # a config written before the branch existed (no "detail" key) still builds a one-stage regressor
    record = json.loads((tmp_path / "one" / "config.json").read_text())
    record["config"].pop("detail", None)
    (tmp_path / "one" / "config.json").write_text(json.dumps(record))
    assert load_model(tmp_path / "one").detail is None
    # a two-stage config over one-stage weights is refused with a message naming the config and the keys
    record["config"]["detail"] = DETAIL
    (tmp_path / "one" / "config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"config\.json.*missing keys.*detail"):
        load_model(tmp_path / "one")


def test_detail_finetune_trains_only_the_branch(tmp_path):
    base, _ = train_regressor(str(tmp_path / "base"), steps=2, seed=1, echo=lambda _: None, batch=8, **SMALL)
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    model, info = train_regressor(str(tmp_path / "two"), steps=12, seed=1, log_every=4, echo=lambda _: None, batch=8,
                                  warmup_steps=2, init=str(tmp_path / "base"), detail=DETAIL, freeze_global=True)
    assert model.detail is not None and info["config"]["detail"]["crop"] == 16
    state = model.state_dict()
    for key, value in frozen.items():  # the whole first stage, batch-norm statistics included
        assert torch.equal(state[key], value), key
    for name, sl in model.detail_slices.items():  # and the detail head's global block, still the global head's rows
        assert torch.equal(model.detail_from_global.weight[sl], frozen["head.weight"][model.slices[name]]), name
    assert any(not torch.equal(state[k], v) for k, v in AttributeRegressor(**SMALL, detail=DETAIL).state_dict().items()
               if k.startswith("detail.")) and len(info["history"]) == 3
    assert load_regressor(str(tmp_path / "two")).detail is not None
    with pytest.raises(ConfigError, match="freeze_global needs a detail branch"):
        train_regressor(None, steps=1, echo=lambda _: None, batch=4, freeze_global=True, **SMALL)


def test_cpu_minute_budget_ends_the_run():
    _, info = train_regressor(None, steps=10_000, cpu_minutes=0.003, seed=2, echo=lambda _: None, batch=4, **SMALL)
    assert 0 < info["steps_done"] < 10_000 and info["config"]["cpu_minutes"] == 0.003
    assert info["cpu_seconds"] < 5.0


def test_shipped_regressor_reads_smile():
    """The shipped two-stage regressor's smile follows the true smile on world images (held-out R² 0.59 in
    BENCHMARKS.md, so a correlation near 0.77), and an edit of smile alone moves it the right way."""
    model = load_regressor()
    assert model.detail is not None and "smile" in model.detail_slices
    st, ap = sample_structure(96, 2**31 + 9), sample_appearance(96, 2**31 + 9)
    pred = predict_factors(render(st, ap, 64).image, model)["smile"]
    corr = torch.corrcoef(torch.stack([pred, st.smile]))[0, 1]
    assert corr > 0.6, float(corr)
    frown = predict_factors(render(st[:32].replace(smile=-0.5), ap[:32], 64).image, model)
    smile = predict_factors(render(st[:32].replace(smile=0.9), ap[:32], 64).image, model)
    assert (smile["smile"] - frown["smile"]).mean() > 0.5  # the truth moves by 1.4
    assert (smile["smile"] > frown["smile"]).float().mean() > 0.8
    assert (smile["yaw"] - frown["yaw"]).abs().mean() < 0.05  # the first stage is not moved by the mouth
