"""What an edit changes and leaks (``ganedit.metrics.attributes.edit_readings`` / ``edit_effect``): a factor
counts only where the image shows it before and after, and the factors a target can hide are part of it."""
from __future__ import annotations

import math

import pytest
import torch

from ganedit.data.synthetic import BG_PATTERNS, render, sample_appearance, sample_structure
from ganedit.data.synthetic.factors import heldout_seed
from ganedit.metrics.attributes import edit_effect, edit_readings, nan_std, soft_predictions
from ganedit.models.attributes import HIDDEN_BY, AttributeRegressor, factor_targets, load_regressor, predict_factors, visibility


def test_hidden_by_names_exactly_what_each_factor_hides():
    targets, _ = factor_targets(sample_structure(16, 3), sample_appearance(16, 3))
    present = {"glasses": 1, "clothes_pattern": 1, "bg_layout": 1, "light_strength": 1.0}
    absent = {"glasses": 0, "clothes_pattern": 0, "bg_layout": 0, "light_strength": 0.0}
    base = dict(targets)
    base.update({k: torch.full_like(targets[k], v) for k, v in present.items()})
    base["bg_pattern"] = torch.full_like(targets["bg_pattern"], BG_PATTERNS.index("stripes"))  # hides nothing
    shown = visibility(base)
    assert all(bool(v.all()) for v in shown.values())
    for hider, value in absent.items():
        values = dict(base, **{hider: torch.full_like(base[hider], value)})
        hidden = {k for k, v in visibility(values).items() if not bool(v.any())}
        assert hidden == set(HIDDEN_BY[hider]), hider
    # the background pattern hides by kind: a gradient has no frequency or phase, checks no angle
    hidden_by = {kind: {k for k, v in visibility(dict(base, bg_pattern=torch.full_like(base["bg_pattern"], BG_PATTERNS.index(kind)))).items()
                        if not bool(v.any())} for kind in ("gradient", "checks", "dots")}
    assert hidden_by == {"gradient": {"bg_freq", "bg_phase"}, "checks": {"bg_angle", "bg_phase"}, "dots": set()}
    assert set().union(*hidden_by.values()) == set(HIDDEN_BY["bg_pattern"])


def test_visibility_reads_probabilities_as_present_from_one_half():
    targets, _ = factor_targets(sample_structure(4, 1), sample_appearance(4, 1))
    soft = dict(targets, glasses=torch.tensor([0.1, 0.49, 0.5, 0.9]))
    assert visibility(soft)["color.frame"].tolist() == [False, False, True, True]


def test_soft_predictions_read_binary_factors_as_probabilities():
    torch.manual_seed(0)
    R = AttributeRegressor(channels=(4, 4, 8, 8, 8), feature_dim=16).eval()
    images = torch.rand(6, 3, 64, 64) * 2 - 1
    soft, hard = soft_predictions(images, R), predict_factors(images, R)
    assert torch.is_floating_point(soft["glasses"]) and bool(((soft["glasses"] >= 0) & (soft["glasses"] <= 1)).all())
    assert torch.equal((soft["glasses"] > 0.5).long(), hard["glasses"])
    assert torch.equal(soft["hair_kind"], hard["hair_kind"]) and torch.allclose(soft["yaw"], hard["yaw"])


def test_edit_readings_are_nan_where_the_image_hides_the_factor():
    R = load_regressor(None)
    st = sample_structure(16, heldout_seed(5))
    images = render(st.replace(glasses=0), sample_appearance(16, heldout_seed(6)), 64).image
    with_glasses = render(st.replace(glasses=1), sample_appearance(16, heldout_seed(6)), 64).image
    plain, shown = edit_readings(images, R), edit_readings(with_glasses, R)
    assert "hair_kind" not in plain and plain["color.frame"].shape == (16,)  # colours as their RGB mean
    assert int(torch.isnan(plain["color.frame"]).sum()) >= 14  # the regressor sees (almost) no glasses there
    assert int(torch.isfinite(shown["color.frame"]).sum()) >= 14
    assert bool(torch.isfinite(plain["yaw"]).all())
    assert bool(torch.isfinite(edit_readings(images, R, hidden_as_nan=False)["color.frame"]).all())


def test_edit_effect_counts_a_factor_only_where_shown_and_not_the_targets_parts():
    nan = float("nan")
    up = {"glasses": torch.tensor([1.0, 1.0, 1.0, 1.0]), "color.frame": torch.tensor([0.9, 0.9, 0.5, 0.5]),
          "yaw": torch.tensor([0.2, 0.2, 0.2, 0.2]), "clothes_freq": torch.tensor([1.0, nan, 3.0, nan])}
    down = {"glasses": torch.tensor([0.0, 0.0, 0.0, 0.0]), "color.frame": torch.tensor([nan, nan, 0.1, 0.1]),
            "yaw": torch.tensor([0.0, 0.0, 0.0, 0.0]), "clothes_freq": torch.tensor([0.0, 5.0, 1.0, 7.0])}
    spread = {"glasses": 0.5, "color.frame": 0.2, "yaw": 0.1, "clothes_freq": 1.0}
    change, leak, ratio = edit_effect(up, down, spread, "glasses", step=1.0)
    assert change["glasses"] == pytest.approx(1.0)  # (1 - 0) / 2 / 0.5
    assert change["color.frame"] == pytest.approx(0.4 / 2 / 0.2)  # the two images with a frame in both
    assert change["clothes_freq"] == pytest.approx(1.5 / 2)  # images 0 and 2: (1 + 2) / 2, halved
    assert change["yaw"] == pytest.approx(1.0)
    # the frame colour is part of glasses: leakage is yaw and clothes_freq only
    assert leak == pytest.approx(math.sqrt((1.0 + 0.75 ** 2) / 2)) and ratio == pytest.approx(1.0 / leak)
    # for another target the frame colour is leakage (where shown)
    _, leak_yaw, _ = edit_effect(up, down, spread, "yaw", step=2.0)
    assert leak_yaw == pytest.approx(math.sqrt((0.5 ** 2 + 0.5 ** 2 + 0.375 ** 2) / 3))
    with pytest.raises(KeyError, match="smile"):
        edit_effect(up, down, spread, "smile")


def test_the_true_glasses_edit_leaks_little_once_the_frame_colour_is_its_own():
    """The world's own glasses toggle (nothing else changes) read by the shipped regressor: counting the frame
    colour as leakage made a perfect edit score a ratio of about 6; as part of glasses it scores far more."""
    R = load_regressor(None)
    st, ap = sample_structure(64, heldout_seed(7)), sample_appearance(64, heldout_seed(8))
    up = edit_readings(render(st.replace(glasses=1), ap, 64).image, R)
    down = edit_readings(render(st.replace(glasses=0), ap, 64).image, R)
    base = edit_readings(render(st, ap, 64).image, R)
    spread = {k: nan_std(v) for k, v in base.items() if nan_std(v) > 1e-6}
    change, leak, ratio = edit_effect(up, down, spread, "glasses")
    assert change["glasses"] > 0.8 and ratio > 15, (change["glasses"], leak)
    # read without the visibility rule, the frame colour "changed" by far more than all real leakage together
    raw = [edit_readings(render(st.replace(glasses=g), ap, 64).image, R, hidden_as_nan=False) for g in (1, 0)]
    raw_spread = {k: float(v.std()) for k, v in edit_readings(render(st, ap, 64).image, R, hidden_as_nan=False).items()}
    raw_change, _, _ = edit_effect(raw[0], raw[1], raw_spread, "glasses")
    assert abs(raw_change["color.frame"]) > 10 * leak
