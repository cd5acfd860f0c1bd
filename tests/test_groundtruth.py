"""Ground-truth swap/translation sets and the baselines: Lab conversion, colour transfer, nearest neighbour,
scoring."""
from __future__ import annotations

import math

import pytest
import torch

from ganedit.data.synthetic import render, sample_appearance, sample_structure, to_domain_y
from ganedit.metrics.groundtruth import (
    NearestNeighbour,
    SwapPairs,
    colour_transfer,
    copy_baseline,
    heldout_condition_pairs,
    heldout_frontalization_pairs,
    heldout_seed,
    heldout_swap_pairs,
    heldout_translation_pairs,
    NON_COLOUR_APPEARANCE,
    lab_to_srgb,
    partial_swap,
    match_statistics,
    score_condition,
    score_outputs,
    score_swap,
    score_translation,
    srgb_to_lab,
    swap_baselines,
    training_images,
)




@pytest.fixture(scope="module")
def pairs():
    return heldout_swap_pairs(12, 64)


def test_lab_known_values_and_round_trip():
    rgb = torch.tensor([[1.0, 1, 1], [-1, -1, -1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]).view(5, 3, 1, 1)
    lab = srgb_to_lab(rgb).view(5, 3)
    expected = torch.tensor(
        [[100.0, 0, 0], [0, 0, 0], [53.241, 80.092, 67.203], [87.735, -86.183, 83.179], [32.297, 79.188, -107.860]]
    )
    assert torch.allclose(lab, expected, atol=0.01)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.allclose(lab_to_srgb(srgb_to_lab(x)), x, atol=1e-5)


def test_colour_transfer_imposes_b_lab_statistics(pairs):
    lab_a, lab_b = srgb_to_lab(pairs.a), srgb_to_lab(pairs.b)
    moved = match_statistics(lab_a, lab_b)
    assert torch.allclose(moved.mean((2, 3)), lab_b.double().mean((2, 3)), atol=1e-6)
    assert torch.allclose(moved.std((2, 3), unbiased=False), lab_b.double().std((2, 3), unbiased=False), atol=1e-4)
    # end to end (with the sRGB gamut clamp) the statistics land close to B's, far from A's
    out = srgb_to_lab(colour_transfer(pairs.a, pairs.b))
    err_b = (out.mean((2, 3)) - lab_b.mean((2, 3))).abs()
    err_a = (out.mean((2, 3)) - lab_a.mean((2, 3))).abs()
    assert err_b.max() < 3.0 and err_b.mean() < err_a.mean() / 5
    ratio = out.std((2, 3), unbiased=False) / lab_b.std((2, 3), unbiased=False)
    assert ratio.min() > 0.8 and ratio.max() < 1.1


def test_swap_pairs_are_the_known_answer(pairs):
    hs = heldout_seed(0)
    st, ap = sample_structure(4, hs), sample_appearance(4, hs)
    # pair i: A = image 2i, B = image 2i+1, truth = structure of A with appearance of B
    assert torch.equal(pairs.a[1], render(st[2], ap[2], 64).image[0])
    assert torch.equal(pairs.b[1], render(st[3], ap[3], 64).image[0])
    assert torch.equal(pairs.target[1], render(st[2], ap[3], 64).image[0])
    # the truth differs from both inputs, and the first pairs do not depend on how many are asked for
    assert ((pairs.target - pairs.a).flatten(1).abs().amax(1) > 0.1).all()
    assert ((pairs.target - pairs.b).flatten(1).abs().amax(1) > 0.1).all()
    assert torch.equal(heldout_swap_pairs(3, 64).target, pairs.target[:3])


def test_heldout_is_disjoint_from_training():
    assert heldout_seed(0) == 2**31 and heldout_seed(5) == 2**31 + 5
    with pytest.raises(Exception, match="2\\*\\*31"):
        heldout_seed(2**31)
    train = sample_structure(64, 0)
    held = sample_structure(64, heldout_seed(0))
    same = (train.face_x[:, None] == held.face_x[None, :]) & (train.yaw[:, None] == held.yaw[None, :])
    assert not same.any()


def test_scores_and_baselines(pairs):
    exact = score_swap(lambda a, b: a, SwapPairs(pairs.target, pairs.target, pairs.target))
    assert exact["psnr"] == 100.0 and abs(exact["ssim"] - 1.0) < 1e-6 and exact["n"] == 12
    scores = swap_baselines(pairs, train=training_images(32, 64))
    assert set(scores) == {"copy", "copy_b", "colour_transfer", "nearest_neighbour", "colours_only"}
    for s in scores.values():
        assert 5 < s["psnr"] < 40 and -1 < s["ssim"] < 0.9
    assert score_swap(copy_baseline, pairs) == scores["copy"]
    with pytest.raises(ValueError, match="shape"):
        score_swap(lambda a, b: a[:, :1], pairs)


def test_nearest_neighbour_is_brute_force_argmin():
    train = torch.rand(20, 3, 8, 8) * 2 - 1
    queries = torch.cat([train[[3, 7]], torch.rand(5, 3, 8, 8) * 2 - 1])
    nn = NearestNeighbour(train, targets=train.flip(0))
    brute = torch.cdist(queries.flatten(1), train.flatten(1)).argmin(1)
    assert torch.equal(nn.indices(queries), brute)
    assert torch.equal(nn(queries[:2]), train.flip(0)[[3, 7]])


def test_translation_and_frontalization_pairs():
    t = heldout_translation_pairs(4, 32)
    hs = heldout_seed(0)
    st, ap = sample_structure(4, hs), sample_appearance(4, hs)
    assert torch.equal(t.y, render(st, to_domain_y(ap), 32).image)
    identity = score_translation(lambda x: x, t)
    assert identity["psnr"] < 100 and identity["n"] == 4
    back = score_translation(lambda y: y, t, "y2x")
    symmetric = ("psnr", "ssim", "psnr_face", "psnr_hair", "psnr_background", "psnr_clothes")
    assert {k: back[k] for k in symmetric} == {k: identity[k] for k in symmetric}  # symmetric metrics, same pairs
    assert abs(back["sharpness_median"] * identity["sharpness_median"] - 1) < 0.5  # ratios: roughly reciprocal
    f = heldout_frontalization_pairs(4, 32)
    assert torch.equal(f.source, t.x) and not torch.equal(f.source, f.target)


def test_condition_pairs_match_the_written_conditions(tmp_path):
    from ganedit.data.io import read_image
    from ganedit.data.synthetic.export import write_dataset

    write_dataset(tmp_path, 2, 32, n_test=3, layouts=("conditions",), workers=0)
    for kind in ("sketch", "lowres", "masked"):
        p = heldout_condition_pairs(3, 32, kind)
        on_disk = read_image(tmp_path / "conditions_test" / kind / "00000002.png")
        cond = p.condition[2:3]
        if cond.shape[1] == 1:
            on_disk = on_disk[:, :1]
        assert (on_disk - cond).abs().max() <= 1 / 127.5 + 1e-6, kind  # 8-bit rounding only
    seg = heldout_condition_pairs(3, 32, "segmentation")
    assert seg.condition.dtype == torch.int64 and seg.condition.shape == (3, 32, 32)
    masked = heldout_condition_pairs(3, 32, "masked")
    hole = masked.condition == 0
    assert hole.any() and not torch.equal(masked.condition, masked.target)
    # "copy the input" on inpainting beats nothing in particular, but it is scored and finite
    assert 5 < score_condition(lambda x: x, masked)["psnr"] < 100
    with pytest.raises(ValueError, match="kind"):
        heldout_condition_pairs(2, 32, "depth")


def test_sharpness_ratio_is_one_for_the_truth_below_for_a_blur_above_for_speckle(pairs):
    from ganedit.metrics.groundtruth import sharpness_ratio

    truth = pairs.target
    blurred = torch.nn.functional.avg_pool2d(truth, 3, stride=1, padding=1, count_include_pad=False)
    speckled = (truth + 0.15 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert torch.allclose(sharpness_ratio(truth, truth), torch.ones(len(truth)))
    assert float(sharpness_ratio(blurred, truth).max()) < 0.7
    assert float(sharpness_ratio(speckled, truth).min()) > 1.3
    scores = score_swap(lambda a, b: torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1, count_include_pad=False),
                        SwapPairs(truth, truth, truth, pairs.segmentation))
    assert scores["sharpness"] < 0.7 and scores["sharpness_median"] < 0.7


def test_region_psnr_sees_an_error_confined_to_one_region(pairs):
    from ganedit.data.synthetic import CLASSES

    hair = (pairs.segmentation == CLASSES.index("hair"))[:, None].expand_as(pairs.target)
    wrong_hair = torch.where(hair, torch.zeros_like(pairs.target), pairs.target)
    scores = score_swap(lambda a, b: torch.where(hair[: len(a)], torch.zeros_like(a), a),
                        SwapPairs(pairs.target, pairs.target, pairs.target, pairs.segmentation))
    assert scores["psnr_background"] == scores["psnr_face"] == scores["psnr_clothes"] == 100.0
    expected = psnr_in(wrong_hair, pairs.target, hair[:, 0])
    assert abs(scores["psnr_hair"] - expected) < 1e-3 and scores["psnr_hair"] < 30
    assert scores["psnr"] > scores["psnr_hair"]  # the whole image hides the error: the region figure shows it


def psnr_in(x, y, mask):
    """Mean over images (with >= 16 mask pixels) of the PSNR inside the mask, written out plainly."""
    values = []
    for xi, yi, mi in zip(x, y, mask):
        if int(mi.sum()) >= 16:
            mse = float(((xi - yi) ** 2).mean(0)[mi].mean())
            values.append(10 * math.log10(4.0 / mse))
    return sum(values) / len(values)


def test_copy_b_baseline_returns_b(pairs):
    from ganedit.metrics.groundtruth import copy_b_baseline

    scores = swap_baselines(pairs)
    assert scores["copy_b"] == score_swap(lambda a, b: b, pairs)
    assert torch.equal(copy_b_baseline(pairs.a, pairs.b), pairs.b)


def test_partial_swap_moves_only_the_named_factors(pairs):
    hs = heldout_seed(0)
    st, ap = sample_structure(4, hs), sample_appearance(4, hs)
    # nothing kept from A: the truth; everything kept from A: A itself
    assert torch.equal(partial_swap(12, 64, keep_from_a=()), pairs.target)
    assert torch.equal(partial_swap(12, 64, keep_from_a=("colors",) + NON_COLOUR_APPEARANCE), pairs.a)
    # the default keeps every appearance factor but the colours: pair 1 is A's patterns and light in B's colours
    assert "colors" not in NON_COLOUR_APPEARANCE and {"bg_pattern", "light_angle"} <= set(NON_COLOUR_APPEARANCE)
    assert torch.equal(pairs.colours_only, partial_swap(12, 64))
    assert torch.equal(pairs.colours_only[1], render(st[2], ap[2].replace(colors=ap[3].colors), 64).image[0])
    light = partial_swap(12, 64, keep_from_a=("light_angle", "light_strength"))
    assert torch.equal(light[1], render(st[2], ap[3].replace(light_angle=ap[2].light_angle, light_strength=ap[2].light_strength), 64).image[0])
    with pytest.raises(ValueError, match="unknown appearance factors \\['hue'\\]"):
        partial_swap(2, 64, keep_from_a=("hue",))


def test_colours_only_reference_is_scored_against_the_truth(pairs):
    scores = swap_baselines(pairs)
    own = score_swap(lambda a, b: pairs.colours_only, pairs)
    assert scores["colours_only"]["psnr"] == pytest.approx(own["psnr"]) and scores["colours_only"]["n"] == 12
    assert score_outputs(pairs.colours_only, pairs.target, pairs.segmentation) == scores["colours_only"]
    assert score_outputs(pairs.target, pairs.target)["psnr"] == 100.0 and "psnr_face" not in score_outputs(pairs.a, pairs.target)
    # keeping A's patterns and light costs far more than an exact answer, yet beats copying A
    assert scores["copy"]["psnr"] < scores["colours_only"]["psnr"] < 40
    # pairs built by hand carry no reference, and then none is scored
    bare = SwapPairs(pairs.a, pairs.b, pairs.target, pairs.segmentation)
    assert "colours_only" not in swap_baselines(bare)
