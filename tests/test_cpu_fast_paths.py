"""The CPU rewrites of the StyleGAN2 synthesis (phase-split transposed conv, 1x1 modulated conv as a matmul, the
activation's bias and gain folded into the modulated conv, channels_last kept at batch 1) against the plain
reference ops, op by op and as a whole small generator."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganedit.allocator import retain_freed_memory
from ganedit.models.stylegan2 import Generator
from ganedit.nn import StyledConv
from ganedit.ops import conv_transpose2d, make_kernel, modulated_conv2d, standard_kernels
from ganedit.ops.reference import fused_leaky_relu_ref, modulated_conv2d_ref, upfirdn2d_ref
from ganedit.ops.transposed_conv import phase_conv_transpose2d, use_phase_split

CL = torch.channels_last


@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (4, 4), (5, 3), (3, 2)])
def test_phase_split_transposed_conv_equals_the_standard_kernel(kernel):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 7, 6, generator=g).contiguous(memory_format=CL)
    weight = torch.randn(5, 4, *kernel, generator=g)
    expected = F.conv_transpose2d(x, weight, stride=2)
    with torch.no_grad():
        assert use_phase_split(x, weight, 2)
        out = conv_transpose2d(x, weight, stride=2)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(phase_conv_transpose2d(x.double(), weight.double()), F.conv_transpose2d(x.double(), weight.double(), stride=2),
                               atol=1e-12, rtol=1e-12)


def test_phase_split_is_used_only_where_it_applies():
    x = torch.randn(1, 4, 5, 5).contiguous(memory_format=CL)
    w = torch.randn(4, 8, 3, 3)
    with torch.no_grad():
        assert use_phase_split(x, w, 2)
        assert not use_phase_split(x.contiguous(), w, 2)  # NCHW input
        assert not use_phase_split(x, w, 1) and not use_phase_split(x, torch.randn(4, 8, 1, 1), 2)
        assert not use_phase_split(x, torch.randn(4, 256, 3, 3), 2)  # wide outputs: the standard kernel was faster
        assert not use_phase_split(torch.randn(1, 8, 5, 5).contiguous(memory_format=CL), torch.randn(8, 2, 3, 3), 2, groups=2)
        with standard_kernels():
            assert not use_phase_split(x, w, 2)
    assert not use_phase_split(x, w.requires_grad_(True), 2)  # training keeps the standard kernel and its backward


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", ["plain", "up", "down", "1x1", "1x1 demod"])
@pytest.mark.parametrize("fused", [None, True, False])
def test_bias_and_gain_fold_into_every_form(batch, kind, fused):
    """modulated_conv2d(..., add, bias, gain) = gain * (reference + add + bias) in every form and layout."""
    g = torch.Generator().manual_seed(4)
    k = 1 if kind.startswith("1x1") else 3
    x = torch.randn(batch, 6, 8, 8, generator=g)
    w = torch.randn(5, 6, k, k, generator=g) / math.sqrt(6 * k * k)
    s = torch.randn(batch, 6, generator=g)
    kw = {"demodulate": kind != "1x1"}
    if kind == "up":
        kw.update(upsample=True, blur_kernel=make_kernel([1, 3, 3, 1]) * 4)
    if kind == "down":
        kw.update(downsample=True, blur_kernel=make_kernel([1, 3, 3, 1]))
    ref = modulated_conv2d_ref(x, w, s, **kw)
    add = torch.randn(1, 1, ref.shape[2], ref.shape[3], generator=g)
    bias = torch.randn(5, generator=g)
    expected = math.sqrt(2) * (ref + add + bias.reshape(1, -1, 1, 1))
    for layout in (x, x.contiguous(memory_format=CL)):
        with torch.no_grad():
            out = modulated_conv2d(layout, w, s, fused=fused, add=add.clone(), bias=bias, gain=math.sqrt(2), **kw)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # with autograd the same numbers, and gradients reach the bias
    bias_g = bias.clone().requires_grad_(True)
    out = modulated_conv2d(x, w, s, fused=fused, add=add, bias=bias_g, gain=math.sqrt(2), **kw)
    torch.testing.assert_close(out.detach(), expected, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    torch.testing.assert_close(bias_g.grad, torch.full((5,), math.sqrt(2) * out[:, 0].numel()), rtol=1e-6, atol=1e-3)


def _reference_synthesis(G: Generator, wplus: torch.Tensor) -> torch.Tensor:
    """The synthesis network rebuilt from the plain reference ops (official grouped form), stored noise."""
    noise = [getattr(G.noises, f"noise_{k}") for k in range(G.num_layers)]

    def styled(layer, x, w, n):
        conv = layer.conv
        blur = conv.blur.kernel if conv.upsample else None
        out = modulated_conv2d_ref(x, conv.weight[0] * conv.scale, conv.modulation(w), upsample=conv.upsample, blur_kernel=blur)
        return fused_leaky_relu_ref(out + layer.noise.weight * n, layer.activate.bias)

    def to_rgb(layer, x, w, skip):
        conv = layer.conv
        out = modulated_conv2d_ref(x, conv.weight[0] * conv.scale, conv.modulation(w), demodulate=False) + layer.bias
        if skip is not None:
            out = out + upfirdn2d_ref(skip, layer.upsample.kernel, up=2, pad=layer.upsample.pad)
        return out

    x = G.input.input.expand(wplus.shape[0], -1, -1, -1)
    x = styled(G.conv1, x, wplus[:, 0], noise[0])
    skip = to_rgb(G.to_rgb1, x, wplus[:, 1], None)
    for j, rgb in enumerate(G.to_rgbs):
        x = styled(G.convs[2 * j], x, wplus[:, 2 * j + 1], noise[2 * j + 1])
        x = styled(G.convs[2 * j + 1], x, wplus[:, 2 * j + 2], noise[2 * j + 2])
        skip = to_rgb(rgb, x, wplus[:, 2 * j + 3], skip)
    return skip


@pytest.mark.parametrize("batch", [1, 2])
def test_small_generator_equals_the_plain_reference(batch):
    # widths <= 128 so that every up-sampling conv takes the phase split
    G = Generator(64, 32, 2, channel_max=64, channels={"64": 16}).eval().requires_grad_(False)
    with torch.no_grad():
        for p in G.parameters():  # non-zero noise weights and biases, so the folded terms matter
            if p.dim() <= 1:
                p.normal_(0, 0.3)
        wplus = torch.randn(batch, G.n_latent, 32)
        expected = _reference_synthesis(G, wplus)
        fast = G.synthesis(wplus)
        with standard_kernels():
            standard = G.synthesis(wplus)
    assert fast.shape == (batch, 3, 64, 64) and expected.abs().max() > 0.1
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(standard, expected, atol=1e-4, rtol=1e-4)


def test_batch_of_one_stays_channels_last():
    """A no-op reshape used to turn batch-1 activations NCHW after every up-sampling conv (8x slower blur)."""
    G = Generator(32, 16, 1, channel_max=32).eval().requires_grad_(False)
    layouts = []
    hooks = [m.register_forward_hook(lambda m, a, o: layouts.append(o.is_contiguous(memory_format=CL) and o.stride(0) == o[0].numel()))
             for m in G.modules() if isinstance(m, StyledConv)]
    with torch.no_grad():
        G.synthesis(torch.randn(1, G.n_latent, 16))
    for h in hooks:
        h.remove()
    assert len(layouts) == G.num_layers and all(layouts)


def test_retain_freed_memory_respects_user_settings():
    assert retain_freed_memory({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert retain_freed_memory({"LD_PRELOAD": "libjemalloc.so"}) is False
    applied = retain_freed_memory({})
    # on glibc (this project's Linux machines) it applies; elsewhere it must say it did nothing
    import platform

    assert applied is (platform.libc_ver()[0] == "glibc")
