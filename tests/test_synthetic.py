"""The synthetic world: determinism, any pairing, sizes, label consistency, the exact X <-> Y mapping, and the
`ganedit data synth` layouts."""
from __future__ import annotations

import colorsys
import json

import pytest
import torch

from ganedit.data.synthetic import (
    BG_PATTERNS,
    CLASSES,
    Appearance,
    Structure,
    from_domain_y,
    frontalize,
    hsv_to_rgb,
    render,
    sample_appearance,
    sample_structure,
    to_domain_y,
)

GLASSES = CLASSES.index("glasses")




@pytest.fixture(scope="module")
def world():
    st, ap = sample_structure(24, seed=5), sample_appearance(24, seed=6)
    return st, ap, render(st, ap, 64)


def test_same_seed_same_images_other_seed_other_images(world):
    st, ap, r = world
    assert sample_structure(24, seed=5).equal(st) and sample_appearance(24, seed=6).equal(ap)
    again = render(sample_structure(24, seed=5), sample_appearance(24, seed=6), 64)
    assert torch.equal(again.image, r.image) and torch.equal(again.segmentation, r.segmentation)
    other = render(sample_structure(24, seed=7), sample_appearance(24, seed=6), 64)
    assert not torch.equal(other.image, r.image)
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    assert sample_structure(4, g1).equal(sample_structure(4, g2)) and sample_appearance(4, g1).equal(sample_appearance(4, g2))


def test_factors_do_not_depend_on_batch_or_chunking(world):
    st, ap, r = world
    # image i of a seed is the same whether drawn in a batch of 24 or alone from `start`
    assert sample_structure(5, seed=5, start=10).equal(st[10:15])
    assert sample_appearance(5, seed=6, start=10).equal(ap[10:15])
    for chunk in (1, 5, 7):
        c = render(st, ap, 64, chunk=chunk)
        assert torch.equal(c.image, r.image), chunk
        assert torch.equal(c.segmentation, r.segmentation) and torch.equal(c.sketch, r.sketch)
    part = render(st[3:11], ap[3:11], 64)
    assert torch.equal(part.image, r.image[3:11])


def test_any_pairing_renders_structure_i_with_appearance_j(world):
    st, ap, r = world
    perm = torch.randperm(len(ap), generator=torch.Generator().manual_seed(0))
    swapped = render(st, ap[perm], 64)
    for i in (0, 9, 17):
        single = render(st[i], ap[int(perm[i])], 64)
        assert torch.equal(single.image[0], swapped.image[i])
    # segmentation and sketch come from the structure alone
    assert torch.equal(swapped.segmentation, r.segmentation) and torch.equal(swapped.sketch, r.sketch)
    assert not torch.equal(swapped.image, r.image)


@pytest.mark.parametrize("size", [32, 200])
def test_shapes_ranges_and_types(size):
    st, ap = sample_structure(3, seed=1), sample_appearance(3, seed=1)
    r = render(st, ap, size)
    assert r.image.shape == (3, 3, size, size) and r.image.dtype == torch.float32
    assert r.segmentation.shape == (3, size, size) and r.segmentation.dtype == torch.int64
    assert r.sketch.shape == (3, 1, size, size)
    assert r.image.min() >= -1 and r.image.max() <= 1 and r.sketch.min() >= -1 and r.sketch.max() <= 1
    assert 0 <= int(r.segmentation.min()) and int(r.segmentation.max()) < len(CLASSES)
    assert set(r.labels) >= {"glasses", "attributes"} and r.labels["attributes"].shape[0] == 3


def test_1024_smoke_and_size_limits():
    st, ap = sample_structure(1, seed=2), sample_appearance(1, seed=2)
    r = render(st, ap, 1024)
    assert r.image.shape == (1, 3, 1024, 1024) and torch.isfinite(r.image).all()
    for bad in (31, 1025):
        with pytest.raises(ValueError, match="32 to 1024"):
            render(st, ap, bad)
    with pytest.raises(ValueError, match="as many"):
        render(st, sample_appearance(2), 64)


def test_antialiased_and_consistent_across_resolutions():
    st, ap = sample_structure(6, seed=3), sample_appearance(6, seed=3)
    small = render(st, ap, 64).image
    big = render(st, ap, 256).image
    reference = torch.nn.functional.avg_pool2d(big, 4)  # 16x supersampled: the anti-aliased answer
    point_sampled = big[:, :, 2::4, 2::4]  # what hard edges would give at 64 px

    def psnr(x, y):
        return float(10 * torch.log10(4 / (x - y).pow(2).mean()))

    assert psnr(small, reference) > 35  # the same picture at any size, with box-filtered edges
    assert psnr(small, reference) > psnr(point_sampled, reference) + 5


def test_segmentation_matches_the_factors(world):
    st, ap, r = world
    has_glasses = (r.segmentation == GLASSES).flatten(1).any(1)
    assert torch.equal(has_glasses, st.glasses.bool())
    assert 0 < int(st.glasses.sum()) < len(st)
    for cls in ("background", "skin", "hair", "eyes", "lips", "clothes"):
        assert (r.segmentation == CLASSES.index(cls)).flatten(1).any(1).all(), cls


def test_segmentation_is_consistent_with_the_image(world):
    st, ap, _ = world
    ap = ap.replace(light_strength=0.0)  # no lighting: region interiors show their exact slot colours
    r = render(st, ap, 128)
    rgb = ap.rgb() * 2 - 1  # [N, slots, 3]
    from ganedit.data.synthetic import COLOR_SLOTS

    slot = {name: rgb[:, k] for k, name in enumerate(COLOR_SLOTS)}
    # class -> the colours its regions may have (face, neck/ears and nose shadows; hair and brows)
    allowed = {
        "skin": [(slot["skin"] + 1) * f - 1 for f in (1.0, 0.8, 0.74)],
        "hair": [(slot["hair"] + 1) * f - 1 for f in (1.0, 0.6)],
        "lips": [slot["lips"]],
    }
    for cls, colours in allowed.items():
        mask = (r.segmentation == CLASSES.index(cls)).float()[:, None]
        interior = (-torch.nn.functional.max_pool2d(-mask, 3, 1, 1))[:, 0].bool()  # all 8 neighbours alike
        exact, checked = 0, 0
        for i in range(len(st)):
            pixels = r.image[i].permute(1, 2, 0)[interior[i]]  # [P, 3]
            err = torch.stack([(pixels - c[i]).abs().max(1).values for c in colours]).min(0).values
            exact += int((err < 2e-3).sum())
            checked += pixels.shape[0]
        # the rest are anti-aliased thin strokes (nose, brows) that are too thin to own a pixel
        assert checked > 50 and exact / checked > 0.9, (cls, exact, checked)


def test_domain_mapping_is_an_exact_bijection():
    ap = sample_appearance(500, seed=9)
    y = to_domain_y(ap)
    assert from_domain_y(y).equal(ap)
    assert to_domain_y(from_domain_y(y)).equal(y)
    assert not torch.equal(y.colors, ap.colors)
    # the pattern change is visible in distribution: X never has dots, Y never has stripes
    assert not (ap.bg_pattern == BG_PATTERNS.index("dots")).any()
    assert not (y.bg_pattern == BG_PATTERNS.index("stripes")).any()


def test_frontalize_sets_yaw_to_zero_and_changes_only_turned_faces():
    st, ap = sample_structure(8, seed=4), sample_appearance(8, seed=4)
    st = st.replace(yaw=torch.tensor([0.0, 0.4, -0.4, 0.0, 0.3, 0.0, -0.2, 0.1]))
    fr = frontalize(st)
    assert torch.all(fr.yaw == 0)
    a, b = render(st, ap, 64).image, render(fr, ap, 64).image
    same = (a == b).flatten(1).all(1)
    assert same.tolist() == (st.yaw == 0).tolist()


def test_hsv_matches_colorsys_and_factors_round_trip():
    hsv = torch.rand(64, 3)
    ours = hsv_to_rgb(hsv)
    ref = torch.tensor([colorsys.hsv_to_rgb(*v.tolist()) for v in hsv])
    assert torch.allclose(ours, ref, atol=1e-6)
    st, ap = sample_structure(4, seed=3), sample_appearance(4, seed=3)
    assert Structure.from_dict(json.loads(json.dumps(st.to_dict()))).equal(st)
    assert Appearance.from_dict(json.loads(json.dumps(ap.to_dict()))).equal(ap)


def test_data_synth_cli_writes_every_layout(tmp_path):
    from click.testing import CliRunner

    from ganedit.cli.main import cli
    from ganedit.data.synthetic.export import load_factors

    out = tmp_path / "synth"
    res = CliRunner().invoke(cli, ["data", "synth", "--n", "6", "--n-test", "2", "--size", "32", "--seed", "3", str(out)])
    assert res.exit_code == 0, res.output
    count = lambda d: len(list((out / d).glob("*.png")))  # noqa: E731
    for d in ["images", "aligned/train", "unaligned/trainA", "unaligned/trainB"] + [f"conditions/{k}" for k in ("segmentation", "sketch", "lowres", "masked")]:
        assert count(d) == 6, d
    for d in ["images_test", "aligned/test", "unaligned/testA", "unaligned/testB", "conditions_test/sketch"]:
        assert count(d) == 2, d
    labels = json.loads((out / "images" / "dataset.json").read_text())["labels"]
    st, ap = load_factors(out, "train")
    assert st.equal(sample_structure(6, seed=3)) and ap.equal(sample_appearance(6, seed=3))
    assert [lab for _, lab in labels] == st.glasses.tolist()

    from PIL import Image

    pair = Image.open(out / "aligned" / "train" / "00000000.png")
    assert pair.size == (64, 32)
    assert Image.open(out / "conditions" / "lowres" / "00000000.png").size == (8, 8)
    seg = Image.open(out / "conditions" / "segmentation" / "00000001.png")
    assert seg.mode == "L" and max(seg.get_flattened_data()) < len(CLASSES)
    # unpaired: domain B images are other structures, not the Y rendering of trainA
    a_img = torch.tensor(list(Image.open(out / "unaligned" / "trainA" / "00000000.png").get_flattened_data()), dtype=torch.float32)
    x_img = torch.tensor(list(Image.open(out / "images" / "00000000.png").get_flattened_data()), dtype=torch.float32)
    assert torch.equal(a_img, x_img)

    only = tmp_path / "only"
    res = CliRunner().invoke(cli, ["data", "synth", "--n", "3", "--size", "32", "--layout", "aligned", str(only)])
    assert res.exit_code == 0, res.output
    assert count_dirs(only) == {"aligned"}


def count_dirs(root):
    return {p.name for p in root.iterdir() if p.is_dir()}


def test_demo_and_baselines_commands(tmp_path):
    from click.testing import CliRunner

    from ganedit.cli.main import cli

    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "--world-only", "--out", str(out), "--size", "32", "--n", "8", "--pairs", "4", "--figures", str(tmp_path / "docs")])
    assert res.exit_code == 0, res.output
    for name in ("gallery.png", "gallery_labelled.png", "swap_ground_truth.png", "scores.json"):
        assert (out / name).is_file(), name
    assert (tmp_path / "docs" / "synthetic_samples.png").is_file() and (tmp_path / "docs" / "synthetic_swap_gt.png").is_file()
    scores = json.loads((out / "scores.json").read_text())["scores"]
    assert set(scores) == {"copy", "copy_b", "colour_transfer", "colours_only"} and all(s["n"] == 4 for s in scores.values())
    assert "colour_transfer" in res.output and "colours_only" in res.output

    res = CliRunner().invoke(cli, ["data", "synth", "--baselines", "--baseline-pairs", "3", "--size", "32"])
    assert res.exit_code == 0, res.output
    assert "copy" in res.output and "colour_transfer" in res.output and "colours_only" in res.output
    res = CliRunner().invoke(cli, ["data", "synth"])
    assert res.exit_code != 0
