"""StyleGAN2 ops: fast versions against the plain references, the official pure-PyTorch vectors, and gradcheck."""
from __future__ import annotations

import math

import pytest
import torch

from ganedit.nn import (ConvLayer, Downsample, EqualConv2d, EqualLinear, ModulatedConv2d, ResBlock, StyledConv, ToRGB,
                        Upsample, minibatch_stddev)
from ganedit.ops import fused_leaky_relu, make_kernel, modulated_conv2d, upfirdn2d
from ganedit.ops.reference import fused_leaky_relu_ref, modulated_conv2d_ref, upfirdn2d_ref

K1331 = make_kernel([1, 3, 3, 1])
KASYM = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 3.0, 1.0, 2.0], [1.5, -0.5, 2.0, 1.0]])

# (kernel, up, down, pad) for every case of ops/config.json, named like its keys
UPFIRDN_CASES = {
    "up2_pad2_1_k4x": (K1331 * 4, 2, 1, (2, 1)),
    "down2_pad1_1": (K1331, 1, 2, (1, 1)),
    "blur_pad1_1_k4x": (K1331 * 4, 1, 1, (1, 1)),
    "blur_pad2_2": (K1331, 1, 1, (2, 2)),
    "up2_down1_negpad": (K1331, 2, 1, (-1, -2)),
    "asym_kernel_up2_down3_pad2_1": ("asym", 2, 3, (2, 1)),
    "xy_asym": ("asym", (2, 1), (1, 2), (1, 2, 0, 1)),
}


@pytest.fixture(scope="module")
def vectors(conformance):
    return torch.load(conformance / "stylegan2" / "ops" / "ops_vectors.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", sorted(UPFIRDN_CASES))
def test_upfirdn2d_matches_official_vectors(vectors, name):
    kernel, up, down, pad = UPFIRDN_CASES[name]
    if isinstance(kernel, str):
        kernel = vectors["in.kernel_asym"]
    assert torch.equal(vectors["in.kernel_1331"], K1331)
    expected = vectors[f"out.upfirdn2d.{name}"]
    for fn in (upfirdn2d, upfirdn2d_ref):
        out = fn(vectors["in.x"], kernel, up=up, down=down, pad=pad)
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_fir_kernel_is_a_true_convolution():
    # an impulse reproduces the kernel itself (not its mirror image)
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    out = upfirdn2d(x, KASYM, pad=(1, 2, 1, 1))
    assert torch.equal(out[0, 0, 1:4, 0:4], KASYM)


def test_upfirdn2d_random_cases_and_channels_last():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 7, 6, generator=g)
    k = torch.randn(3, 5, generator=g)
    for up in (1, 2, (3, 1)):
        for down in (1, 2, (1, 3)):
            for pad in ((0, 0), (2, 3), (-1, 2, 3, -2), (4, 4, 1, 0)):
                ref = upfirdn2d_ref(x, k, up, down, pad)
                torch.testing.assert_close(upfirdn2d(x, k, up, down, pad), ref, atol=1e-5, rtol=1e-5)
                xc = x.contiguous(memory_format=torch.channels_last)
                torch.testing.assert_close(upfirdn2d(xc, k, up, down, pad), ref, atol=1e-5, rtol=1e-5)


def test_upsample_downsample_modules(vectors):
    x = vectors["in.x"]
    torch.testing.assert_close(Upsample([1, 3, 3, 1])(x), vectors["out.Upsample"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(Downsample([1, 3, 3, 1])(x), vectors["out.Downsample"], atol=1e-6, rtol=1e-6)


def test_fused_leaky_relu(vectors):
    x, b = vectors["in.x"], vectors["in.lrelu_bias"]
    torch.testing.assert_close(fused_leaky_relu(x, b), vectors["out.fused_leaky_relu"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fused_leaky_relu_ref(x, b), vectors["out.fused_leaky_relu"], atol=1e-6, rtol=1e-6)
    y = x.clone()
    with torch.no_grad():
        out = fused_leaky_relu(y, b, inplace=True)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out, vectors["out.fused_leaky_relu"], atol=1e-6, rtol=1e-6)


MODCONV_CASES = {
    "plain": dict(in_channels=3, out_channels=5, kernel_size=3, style_dim=16),
    "up": dict(in_channels=3, out_channels=5, kernel_size=3, style_dim=16, upsample=True),
    "down": dict(in_channels=3, out_channels=5, kernel_size=3, style_dim=16, downsample=True),
    "nodemod_1x1": dict(in_channels=3, out_channels=5, kernel_size=1, style_dim=16, demodulate=False),
}


@pytest.mark.parametrize("name", sorted(MODCONV_CASES))
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_module_matches_official(vectors, name, fused):
    layer = ModulatedConv2d(**MODCONV_CASES[name], fused=fused)
    layer.load_state_dict(vectors[f"params.ModulatedConv2d_{name}"])
    with torch.no_grad():
        out = layer(vectors["in.x"], vectors["in.style"])
    torch.testing.assert_close(out, vectors[f"out.ModulatedConv2d_{name}"], atol=1e-5, rtol=1e-5)


def _load(module, vectors, name):
    module.load_state_dict(vectors[f"params.{name}"])
    return module.eval()


def test_equalized_and_block_modules(vectors):
    x, style = vectors["in.x"], vectors["in.style"]
    cases = [
        (EqualLinear(16, 8, lr_mul=0.01, activation="fused_lrelu"), "EqualLinear_lrmul0.01_lrelu", (style,)),
        (EqualLinear(16, 8), "EqualLinear_plain", (style,)),
        (EqualConv2d(3, 5, 3, padding=1), "EqualConv2d", (x,)),
        (ConvLayer(3, 5, 3, downsample=True), "ConvLayer_down", (x,)),
        (ResBlock(3, 5), "ResBlock", (x,)),
        (StyledConv(3, 5, 3, 16, upsample=True), "StyledConv_up", (x, style, vectors["in.noise_16"])),
        (ToRGB(3, 16), "ToRGB_skip", (x, style, vectors["in.skip_4x4"])),
    ]
    for module, name, args in cases:
        with torch.no_grad():
            out = _load(module, vectors, name)(*args)
        torch.testing.assert_close(out, vectors[f"out.{name}"], atol=1e-5, rtol=1e-5, msg=name)


def test_modulated_conv_forms_agree_with_reference():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 9, 9, generator=g)
    w = torch.randn(4, 6, 3, 3, generator=g) / math.sqrt(54)
    s = torch.randn(3, 6, generator=g)
    k = make_kernel([1, 3, 3, 1])
    for kw in ({}, {"upsample": True, "blur_kernel": k * 4}, {"downsample": True, "blur_kernel": k}, {"demodulate": False}):
        ref = modulated_conv2d_ref(x, w, s, **kw)
        for fused in (True, False):
            torch.testing.assert_close(modulated_conv2d(x, w, s, fused=fused, **kw), ref, atol=1e-5, rtol=1e-5)
        xc = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(modulated_conv2d(xc, w, s, fused=True, **kw), ref, atol=1e-5, rtol=1e-5)
        # `add` (scaled noise) is fused with demodulation; in place only when no gradient is needed
        add = torch.randn(1, 1, ref.shape[2], ref.shape[3], generator=g)
        for fused in (True, False):
            with torch.no_grad():
                torch.testing.assert_close(modulated_conv2d(xc, w, s, fused=fused, add=add, **kw), ref + add, atol=1e-5, rtol=1e-5)
    w1 = torch.randn(4, 6, 1, 1, generator=g)
    for layout in (x, x.contiguous(memory_format=torch.channels_last)):  # 1x1 (ToRGB) in both memory layouts
        torch.testing.assert_close(modulated_conv2d(layout, w1, s, fused=False), modulated_conv2d_ref(x, w1, s), atol=1e-5, rtol=1e-5)


def test_modulated_conv_weight_cache_follows_updates():
    layer = ModulatedConv2d(3, 4, 3, 8)
    x, w = torch.randn(2, 3, 6, 6), torch.randn(2, 8)
    with torch.no_grad():
        before = layer(x, w)
        layer.weight.mul_(2).add_(0.5)  # an optimiser-style in-place update must invalidate the cache
        after = layer(x, w)
    expected = layer(x, w)  # grad enabled: no cache
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected.detach(), atol=1e-5, rtol=1e-5)
    # a frozen layer cached under inference_mode still back-propagates to its input (pSp/e4e's frozen decoder)
    layer.requires_grad_(False)
    with torch.inference_mode():
        layer(x, w)
    xg = x.clone().requires_grad_(True)
    layer(xg, w).square().sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_minibatch_stddev_groups():
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x)
    assert out.shape == (8, 4, 2, 2)
    # sample 0 is grouped with samples 2, 4, 6 (stride B/G)
    group = x[0::2]
    expected = torch.sqrt(group.var(0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(out[0, 3], expected.expand(2, 2))
    torch.testing.assert_close(out[6, 3], expected.expand(2, 2))
    assert torch.allclose(minibatch_stddev(x[:1])[:, 3], torch.tensor(1e-4))
    from ganedit.errors import ConfigError

    with pytest.raises(ConfigError):
        minibatch_stddev(torch.randn(6, 3, 2, 2))


# --- gradients (float64, small sizes); double backward too, which R1 and the path-length penalty need ---

def test_gradcheck_upfirdn2d():
    k = KASYM.double()
    for up, down, pad in ((2, 1, (2, 1)), (1, 2, (1, 1)), (2, 3, (-1, 2, 1, 0)), (1, 1, (2, 2))):
        x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: upfirdn2d(t, k, up, down, pad), (x,))
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: upfirdn2d(t, k, 2, 1, (2, 1)), (x,))


def test_gradcheck_fused_leaky_relu():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    x = (x + 0.1 * torch.sign(x)).requires_grad_()  # keep away from the kink at 0
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, bb: fused_leaky_relu(t, bb), (x, b))
    assert torch.autograd.gradgradcheck(lambda t, bb: fused_leaky_relu(t, bb), (x, b))


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_modulated_conv(fused):
    k = make_kernel([1, 3, 3, 1]).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(2, 2, 3, 3, dtype=torch.float64) / 4).requires_grad_()
    s = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    for kw in ({}, {"upsample": True, "blur_kernel": k * 4}, {"downsample": True, "blur_kernel": k}):
        assert torch.autograd.gradcheck(lambda a, b, c: modulated_conv2d(a, b, c, fused=fused, **kw), (x, w, s), fast_mode=True)
    x1 = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, c: modulated_conv2d(a, w.detach(), c, fused=fused), (x1, s), fast_mode=True)
