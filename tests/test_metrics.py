"""Metrics core: PSNR/SSIM/MS-SSIM against hand-derived values, scikit-image and torchmetrics; the PGGAN sliced
Wasserstein distance (pyramid against scipy, 1-D distance against scipy, behaviour on blur and noise); LPIPS and
the FID Inception-v3 built with random weights (shapes, parameter counts of the torchvision layouts, determinism,
weight files in every supported layout, clear errors when absent); FID/KID against scipy and direct formulas;
and the `ganedit eval` command end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganedit.errors import CheckpointError, DataError, GaneditError
from ganedit.metrics.feature_distances import feature_statistics, fid, fid_from_features, frechet_distance, kid_from_features
from ganedit.metrics.image import MS_SSIM_BETAS, ms_ssim, ms_ssim_max_scales, psnr, ssim
from ganedit.metrics.inception import InceptionV3, load_inception
from ganedit.metrics.lpips_net import LPIPS, AlexNetFeatures, VGG16Features, load_lpips
from ganedit.metrics.sliced_wasserstein import SWDDescriptors, laplacian_pyramid, sliced_wasserstein, swd
from ganedit.metrics.weights import MissingWeightsError

C1, C2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2


def _pairs(n=3, h=40, w=48, noise=0.3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=dtype)).clamp(-1, 1)
    return x, y


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("GANEDIT_CACHE", str(cache))
    return cache


# ------------------------------------------------------------------------------------------------ PSNR / SSIM


def test_psnr_hand_values_and_torchmetrics():
    x = torch.rand(2, 3, 16, 16) * 1.6 - 0.8
    # A constant offset d gives MSE d^2: PSNR = 10 log10(2^2 / 0.2^2) = 20 dB exactly.
    assert torch.allclose(psnr(x, x + 0.2), torch.full((2,), 20.0), atol=1e-4)
    assert torch.allclose(psnr(x, x - 0.02), torch.full((2,), 40.0), atol=1e-3)
    assert torch.isinf(psnr(x, x)).all()
    import torchmetrics.functional.image as tm  # a test dependency (pyproject [test])
    a, b = _pairs(dtype=torch.float32)
    ref = tm.peak_signal_noise_ratio(a, b, data_range=2.0, reduction="none", dim=(1, 2, 3))
    assert torch.allclose(psnr(a, b), ref.float(), atol=1e-4)


def test_ssim_hand_values():
    x, _ = _pairs(2, 24, 24)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    # Constant images: zero variances, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.5, -0.25
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    got = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_ssim_matches_scikit_image_and_torchmetrics():
    x, y = _pairs()
    ours = ssim(x, y).double()
    import skimage.metrics as metrics  # a test dependency (pyproject [test])
    ref = [metrics.structural_similarity(x[i].numpy(), y[i].numpy(), gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=2.0, channel_axis=0)
           for i in range(len(x))]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64), atol=1e-6)
    import torchmetrics.functional.image as tm  # a test dependency (pyproject [test])
    # torchmetrics reflect-pads and (since 1.x) averages the map over the padded border too; its map cropped to
    # the valid window positions is exactly our figure.
    _, full = tm.structural_similarity_index_measure(x, y, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                                                     data_range=2.0, reduction="none", return_full_image=True)
    assert torch.allclose(ours, full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)), atol=1e-6)


def test_ms_ssim_against_torchmetrics_terms_and_hand_values():
    import torchmetrics.functional.image.ssim as tm_ssim  # a test dependency (pyproject [test])
    x, y = _pairs(1, 176, 180, noise=0.2, dtype=torch.float32)  # float32 keeps torchmetrics' 11x11 convs fast
    ours = ms_ssim(x, y).double()
    # Reference built from torchmetrics' own per-scale terms: cs (valid positions) at scales 1-4, the SSIM map
    # cropped to valid positions at scale 5, 2x2 average pooling in between, the standard exponents.
    a, b, terms = x, y, []
    for j in range(5):
        if j < 4:
            _, cs = tm_ssim._ssim_update(a, b, True, 1.5, 11, 2.0, return_contrast_sensitivity=True)
            terms.append(cs.clamp_min(0))
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        else:
            _, full = tm_ssim._ssim_update(a, b, True, 1.5, 11, 2.0, return_full_image=True)
            terms.append(full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).clamp_min(0))
    ref = torch.prod(torch.stack(terms).double() ** torch.tensor(MS_SSIM_BETAS, dtype=torch.float64).view(-1, 1), dim=0)
    assert torch.allclose(ours, ref, atol=2e-5)
    # torchmetrics' public MS-SSIM differs only by its padded border in the last scale's SSIM term.
    public = tm_ssim.multiscale_structural_similarity_index_measure(x, y, data_range=2.0, reduction="none")
    assert torch.allclose(ours, public.double(), atol=5e-3)
    # Constant images: every cs is 1, so MS-SSIM = luminance ^ beta_5.
    c, d = 0.3, 0.1
    lum = (2 * c * d + C1) / (c * c + d * d + C1)
    got = ms_ssim(torch.full((1, 3, 176, 176), c), torch.full((1, 3, 176, 176), d))
    assert got.item() == pytest.approx(lum ** MS_SSIM_BETAS[-1], rel=1e-5)


def test_ms_ssim_scales():
    x, y = _pairs(2, 64, 64)
    assert ms_ssim_max_scales(64, 64) == 3 and ms_ssim_max_scales(176, 300) == 5 and ms_ssim_max_scales(10, 10) == 0
    with pytest.raises(ValueError, match="too small for 5 scales"):
        ms_ssim(x, y)
    assert torch.allclose(ms_ssim(x, y, scales=1), ssim(x, y), atol=1e-6)  # one scale, renormalised beta = 1
    three = ms_ssim(x, y, scales=3)
    assert torch.allclose(ms_ssim(x, x, scales=3), torch.ones(2), atol=1e-6)
    assert (three < 1).all() and (three > ms_ssim(x, torch.zeros_like(y), scales=3)).all()


# ----------------------------------------------------------------------------------------------------------- SWD


def _textures(n, size=32, seed=0, smooth=3):
    """Random smooth colour textures: a stationary distribution, so two draws are two samples of it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    x = F.avg_pool2d(F.pad(x, (smooth // 2,) * 4, mode="circular"), smooth, 1)
    return (x * 1.5).clamp(-1, 1)


def _blocks(n, size=32, seed=0, cell=2):
    """Random colour cells with sharp edges: blurring them changes their patch statistics clearly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // cell + 1, size // cell + 1, generator=g) * 2 - 1
    return F.interpolate(x, scale_factor=cell, mode="nearest")[:, :, 1:1 + size, 1:1 + size].contiguous()


def test_laplacian_pyramid_matches_scipy_mirror_reference():
    import scipy.ndimage as ndimage  # a test dependency (pyproject [test])
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0

    def down(a):
        return ndimage.convolve(a, k, mode="mirror")[:, :, ::2, ::2]

    def up(a):
        z = np.zeros((*a.shape[:2], a.shape[2] * 2, a.shape[3] * 2))
        z[:, :, ::2, ::2] = a
        return ndimage.convolve(z, k * 4, mode="mirror")

    ref = [x.numpy()]
    for _ in range(2):
        ref.append(down(ref[-1]))
        ref[-2] = ref[-2] - up(ref[-1])
    ours = laplacian_pyramid(x, 3)
    assert [tuple(p.shape[-2:]) for p in ours] == [(32, 32), (16, 16), (8, 8)]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-12)


def test_sliced_wasserstein_one_dimensional_is_exact_w1():
    import scipy.stats as stats  # a test dependency (pyproject [test])
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 1, generator=g, dtype=torch.float64), torch.randn(170, 1, generator=g, dtype=torch.float64) + 0.4
    # In 1-D every unit direction is +-1, and W1 does not care about the sign.
    ref = stats.wasserstein_distance(a[:, 0].numpy(), b[:, 0].numpy())
    assert sliced_wasserstein(a, b, 2, 3, generator=g) == pytest.approx(ref, rel=1e-9)
    same = torch.randn(50, 1, generator=g, dtype=torch.float64)
    shifted = same + 0.25
    assert sliced_wasserstein(same, shifted, 1, 4, generator=g) == pytest.approx(0.25, rel=1e-9)


def test_swd_behaviour():
    kw = dict(nhoods_per_image=64, dir_repeats=2, dirs_per_repeat=64)
    # 64 images x 64 patches: enough descriptors that two samples of one distribution are clearly closer than a
    # sample and a blurred sample (the estimate's noise shrinks as 1/sqrt(descriptors)).
    a, other = _blocks(64, seed=0), _blocks(64, seed=1)
    base = swd(a, other, **kw)
    assert list(base.levels) == [32, 16] and base.mean == pytest.approx(sum(base.levels.values()) / 2)
    assert swd(a, a, **kw).mean == 0.0  # both sets are sampled at the same patch positions
    blurred = swd(a, F.avg_pool2d(F.pad(other, (1, 1, 1, 1), mode="replicate"), 3, 1), **kw)
    assert blurred.mean > 1.2 * base.mean and blurred.levels[32] > 1.5 * base.levels[32]
    small, g = a[:16], torch.Generator().manual_seed(5)
    noise = torch.randn(small.shape, generator=g)
    by_level = [swd(small, small + s * noise, **kw).mean for s in (0.02, 0.1, 0.3, 0.6)]
    assert by_level == sorted(by_level) and 0 < by_level[0] < 0.5 * by_level[-1]
    # Deterministic given the seed and independent of batching; another seed draws other patches.
    first = swd(small, other[:16], **kw).mean
    assert swd(small, other[:16], **kw).mean == first
    assert swd(small, other[:16], batch_size=5, **kw).mean == pytest.approx(first, rel=1e-6)
    assert swd(small, other[:16], seed=1, **kw).mean != first
    assert math.isfinite(swd(small, other[:10], **kw).mean)  # sets of different sizes


def test_swd_descriptors_normalised_per_channel():
    collector = SWDDescriptors(6, (32, 32), nhoods_per_image=16)
    x = _textures(6) * 3 + 1
    collector.add(x[:4])
    collector.add(x[4:])
    desc = collector.finalize()
    assert [d.shape for d in desc] == [(96, 3 * 49), (96, 3 * 49)]
    per_channel = desc[0].view(96, 3, 49).permute(1, 0, 2).reshape(3, -1).double()
    assert torch.allclose(per_channel.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)
    with pytest.raises(ValueError, match="smaller than"):
        SWDDescriptors(2, (8, 8))


# --------------------------------------------------------------------------------------------------------- LPIPS


def test_backbones_match_torchvision_layouts():
    # torchvision's documented totals minus the classifiers: AlexNet 61,100,840 - 58,631,144, VGG16
    # 138,357,544 - 123,642,856. Equal counts and key names are what lets the official files load.
    assert sum(p.numel() for p in AlexNetFeatures().parameters()) == 2_469_696
    assert sum(p.numel() for p in VGG16Features().parameters()) == 14_714_688
    alex = LPIPS("alex").state_dict()
    assert alex["net.features.0.weight"].shape == (64, 3, 11, 11) and alex["net.features.10.weight"].shape == (256, 256, 3, 3)
    assert [alex[f"lin{i}.model.1.weight"].shape[1] for i in range(5)] == [64, 192, 384, 256, 256]
    vgg = LPIPS("vgg").state_dict()
    assert vgg["net.features.28.weight"].shape == (512, 512, 3, 3)
    assert [vgg[f"lin{i}.model.1.weight"].shape[1] for i in range(5)] == [64, 128, 256, 512, 512]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_random_weights(net):
    torch.manual_seed(0)
    model = LPIPS(net)
    x, y = _pairs(3, 32, 32, dtype=torch.float32)
    d = model(x, y)
    assert d.shape == (3,) and (d > 0).all()
    assert torch.equal(model(x, y), d)  # deterministic
    assert torch.allclose(model(y, x), d, atol=1e-6)  # symmetric
    assert torch.equal(model(x, x), torch.zeros(3))
    model.train()  # no dropout or batch statistics: the figure does not depend on the mode
    assert torch.equal(model(x, y), d)
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_weight_files_in_every_layout(tmp_path, empty_cache):
    torch.manual_seed(1)
    ref = LPIPS("alex")
    x, y = _pairs(2, 32, 32, dtype=torch.float32)
    expected = ref(x, y)
    state = ref.state_dict()
    # 1) official split: heads file + torchvision backbone (with its classifier keys) in a folder.
    folder = tmp_path / "official"
    folder.mkdir()
    torch.save({k: v for k, v in state.items() if k.startswith("lin")}, folder / "alex.pth")
    backbone = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    backbone["classifier.1.weight"] = torch.zeros(8, 4)
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    assert torch.allclose(load_lpips("alex", folder)(x, y), expected, atol=1e-6)
    # 2) the lpips package's module layout: net.slice<k>.<torchvision index>, plus its scaling constants.
    slices = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}
    package = {}
    for k, v in state.items():
        if k.startswith("net.features."):
            index, kind = k.split(".")[2:]
            package[f"net.slice{slices[int(index)]}.{index}.{kind}"] = v
        else:
            package[k] = v
    package["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    torch.save(package, tmp_path / "lpips_package.pth")
    assert torch.allclose(load_lpips("alex", tmp_path / "lpips_package.pth")(x, y), expected, atol=1e-6)
    # 3) a state dict saved from this architecture, found in the cache folder.
    from safetensors.torch import save_file

    (empty_cache / "lpips").mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(empty_cache / "lpips" / "lpips_alex.safetensors"))
    assert torch.allclose(load_lpips("alex")(x, y), expected, atol=1e-6)
    # 4) the native format (config.json + safetensors) through ganedit.save / ganedit.load.
    import ganedit

    ganedit.save(ref, tmp_path / "native")
    assert torch.allclose(ganedit.load(tmp_path / "native")(x, y), expected, atol=1e-6)
    # A file that does not fit names itself and the problem.
    torch.save({k: v for k, v in state.items() if k != "lin2.model.1.weight"}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"broken\.pth.*missing keys.*lin2"):
        load_lpips("alex", tmp_path / "broken.pth")


def test_lpips_missing_weights_message(empty_cache):
    with pytest.raises(MissingWeightsError) as info:
        load_lpips("vgg")
    message = str(info.value)
    assert isinstance(info.value, GaneditError)
    for needed in ("vgg.pth", "vgg16-", "lin0.model.1.weight", "features.", str(empty_cache), "--lpips-weights"):
        assert needed in message


# ----------------------------------------------------------------------------------------------------- Inception


@pytest.fixture(scope="module")
def inception_model():
    torch.manual_seed(0)
    return InceptionV3(resize=False)


def test_inception_architecture_and_determinism(inception_model):
    model = inception_model
    # torchvision's documented inception_v3 total (27,161,264) minus fc (2,049,000) and AuxLogits (3,326,696).
    assert sum(p.numel() for p in model.parameters()) == 21_785_568
    sd = model.state_dict()
    assert sd["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert sd["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    x = torch.rand(2, 3, 75, 75) * 2 - 1  # the smallest input the graph accepts: keeps the test fast
    f = model(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all()
    model.train()
    assert not model.training and torch.equal(model(x), f)  # BatchNorm stays on running statistics
    assert torch.allclose(model(x[:1]), f[:1], atol=1e-5)  # no dependence on the rest of the batch
    model.eval()


def test_inception_weight_files(tmp_path, empty_cache, inception_model):
    model = inception_model
    x = torch.rand(1, 3, 75, 75) * 2 - 1
    expected = model(x)
    # pytorch-fid layout: torchvision key names, a 1008-way fc head, no num_batches_tracked.
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    (empty_cache / "inception").mkdir()
    torch.save(state, empty_cache / "inception" / "pt_inception-2015-12-05-6726825d.pth")
    loaded = load_inception()
    loaded.resize = False
    assert torch.allclose(loaded(x), expected, atol=1e-5)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"wrong\.pth"):
        load_inception(tmp_path / "wrong.pth")


def test_inception_missing_weights_message(empty_cache):
    with pytest.raises(MissingWeightsError, match=r"pt_inception-2015-12-05-6726825d\.pth") as info:
        load_inception()
    assert "--inception-weights" in str(info.value) and str(empty_cache) in str(info.value)
    with pytest.raises(MissingWeightsError, match="not comparable"):
        fid(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))


# ------------------------------------------------------------------------------------------------------- FID/KID


def test_frechet_distance_against_scipy_and_closed_form():
    import scipy.linalg as linalg  # a test dependency (pyproject [test])
    g = torch.Generator().manual_seed(0)
    fa = torch.randn(300, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    fb = torch.randn(250, 12, generator=g, dtype=torch.float64) * 1.3 + 0.5
    mu_a, s_a = feature_statistics(fa)
    mu_b, s_b = feature_statistics(fb)
    np.testing.assert_allclose(s_a.numpy(), np.cov(fa.numpy(), rowvar=False), atol=1e-10)
    covmean = linalg.sqrtm(s_a.numpy() @ s_b.numpy()).real
    ref = ((mu_a - mu_b) ** 2).sum().item() + np.trace(s_a.numpy()) + np.trace(s_b.numpy()) - 2 * np.trace(covmean)
    assert fid_from_features(fa, fb) == pytest.approx(ref, rel=1e-8)
    assert abs(fid_from_features(fa, fa)) < 1e-8
    # Diagonal covariances commute: FID = |dmu|^2 + sum (sqrt(va) - sqrt(vb))^2.
    va, vb = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64)
    dmu = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    expected = (dmu**2).sum() + ((va.sqrt() - vb.sqrt()) ** 2).sum()
    assert frechet_distance(dmu, torch.diag(va), torch.zeros(3), torch.diag(vb)) == pytest.approx(expected.item(), rel=1e-10)


def test_kid_unbiased_estimate():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 6, generator=g, dtype=torch.float64)
    b = torch.randn(40, 6, generator=g, dtype=torch.float64) + 0.3
    # One subset holding every feature: the estimate is deterministic; check it against a plain loop.
    x, y = a.numpy(), b.numpy()
    k = lambda p, q: (p @ q / 6 + 1) ** 3  # noqa: E731
    m = 40
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    mean, std = kid_from_features(a, b, num_subsets=1, subset_size=1000)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-9) and std == 0.0
    # Same distribution: near 0 (unbiased, may be negative); shifted: clearly positive; seeded.
    c = torch.randn(400, 6, generator=g, dtype=torch.float64)
    d = torch.randn(400, 6, generator=g, dtype=torch.float64)
    same, _ = kid_from_features(c, d, num_subsets=10, subset_size=200)
    shifted, _ = kid_from_features(c, d + 0.5, num_subsets=10, subset_size=200)
    assert abs(same) < 0.1 * shifted
    assert kid_from_features(c, d, 10, 200, seed=3) == kid_from_features(c, d, 10, 200, seed=3)


def test_fid_with_a_custom_extractor():
    def extractor(images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 2).flatten(1)

    a, b = _textures(40, 16, seed=0), _textures(40, 16, seed=1)
    direct = fid_from_features(extractor(a), extractor(b))
    assert fid(a, b, extractor=extractor, batch_size=7) == pytest.approx(direct, rel=1e-9)
    assert fid(a, a + 0.5, extractor=extractor) > 10 * direct


# ------------------------------------------------------------------------------------------------- ganedit eval


def _write_folders(root: Path, n=6, size=32, extra_b=()):
    from ganedit.data.io import read_image, write_image

    g = torch.Generator().manual_seed(0)
    for i in range(n):
        x = torch.rand(3, size, size, generator=g) * 2 - 1
        write_image(x, root / "a" / f"sub/img{i}.png")
        write_image((x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1), root / "b" / f"sub/img{i}.png")
    for name in extra_b:
        write_image(torch.zeros(3, size, size), root / "b" / name)
    read = lambda d: torch.cat([read_image(root / d / f"sub/img{i}.png") for i in range(n)])  # noqa: E731
    return read("a"), read("b")


def _run(argv, capsys):
    from ganedit.cli.main import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_command_writes_table_and_json(tmp_path, capsys, empty_cache):
    xa, xb = _write_folders(tmp_path)
    torch.manual_seed(2)
    model = LPIPS("alex")
    torch.save(model.state_dict(), tmp_path / "lpips_alex.pth")
    code, out, err = _run(["eval", str(tmp_path / "a"), str(tmp_path / "b"), "-m", "psnr,ssim,ms-ssim,lpips,swd",
                           "--json", str(tmp_path / "scores.json"), "--lpips-weights", str(tmp_path / "lpips_alex.pth"),
                           "-q"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "scores.json").read_text())
    assert list(result["metrics"]) == ["psnr", "ssim", "ms-ssim", "lpips", "swd"] and result["pairs"] == 6
    assert result["metrics"]["psnr"] == pytest.approx(psnr(xa, xb).mean().item(), rel=1e-5)
    assert result["metrics"]["ssim"] == pytest.approx(ssim(xa, xb).mean().item(), rel=1e-5)
    assert result["details"]["ms-ssim"]["scales"] == 2  # 32 px images hold two 11-tap scales
    assert result["metrics"]["lpips"] == pytest.approx(model(xa, xb).mean().item(), rel=1e-4)
    assert list(result["details"]["swd"]["levels"]) == ["32", "16"] and result["metrics"]["swd"] > 0
    assert set(result["per_image"]) == {f"sub/img{i}" for i in range(6)}
    for name in ("psnr", "ssim", "ms-ssim", "lpips", "swd"):
        assert name in out


def test_eval_errors(tmp_path, capsys, empty_cache):
    _write_folders(tmp_path, n=3, extra_b=("stray.png", "other/extra.jpg"))
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    code, _, err = _run(["eval", a, b, "-m", "psnr", "-q"], capsys)
    assert code == 2 and "2 in" in err and "stray" in err and "other/extra" in err
    # Distribution metrics need no pairing.
    code, out, err = _run(["eval", a, b, "-m", "swd", "-q"], capsys)
    assert code == 0 and "3 vs 5 images" in out, err
    code, _, err = _run(["eval", a, b, "-m", "fid", "-q"], capsys)
    assert code == 2 and "pt_inception-2015-12-05" in err
    code, _, err = _run(["eval", a, b, "-m", "psnr,bogus", "-q"], capsys)
    assert code == 2 and "bogus" in err
    with pytest.raises(DataError, match="same name"):
        from ganedit.data.io import write_image
        from ganedit.metrics.evaluate import list_images

        write_image(torch.zeros(3, 8, 8), tmp_path / "a" / "sub" / "img0.jpg")
        list_images(tmp_path / "a")


def test_eval_fid_kid_plumbing(tmp_path, monkeypatch, empty_cache):
    """FID/KID in eval use the features of the loaded network; a cheap stand-in keeps this fast."""
    import ganedit.metrics.inception as inception
    from ganedit.metrics.evaluate import EvalOptions, evaluate_folders

    class Tiny(torch.nn.Module):
        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 2).flatten(1)

    monkeypatch.setattr(inception, "load_inception", lambda weights=None: Tiny())
    xa, xb = _write_folders(tmp_path, n=8, size=16)
    result = evaluate_folders(tmp_path / "a", tmp_path / "b", ["fid", "kid"],
                              EvalOptions(batch_size=3, kid_subsets=5, kid_subset_size=6))
    fa, fb = Tiny()(xa), Tiny()(xb)
    assert result["metrics"]["fid"] == pytest.approx(fid_from_features(fa, fb), rel=1e-6)
    assert result["metrics"]["kid"] == pytest.approx(kid_from_features(fa, fb, 5, 6, seed=0)[0], rel=1e-6)
    assert result["pairs"] is None and "per_image" not in result
