"""The GEMM paths of GemmConv2d / GemmConvTranspose2d against PyTorch's own kernels (the reference), for both
memory formats of input and weight, with bias and without, in values and gradients."""
from __future__ import annotations

import itertools

import pytest
import torch

from ganedit.nn.gemm_conv import GemmConv2d, GemmConvTranspose2d, native_convolutions

CL = torch.channels_last


def both_ways(layer, x):
    """(output, input grad, weight grad) of the GEMM path and of the native kernel."""
    results = []
    for native in (False, True):
        layer.zero_grad()
        xi = x.detach().clone().requires_grad_(True)
        with native_convolutions() if native else torch.enable_grad():
            y = layer(xi)
        (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum().backward()
        results.append((y.detach(), xi.grad, layer.weight.grad.clone(), y.is_contiguous(memory_format=CL)))
    return results


@pytest.mark.parametrize("bias,x_cl,w_cl", list(itertools.product([True, False], [True, False], [True, False])))
@pytest.mark.parametrize("batch,size", [(1, 2), (2, 4), (1, 8)])
def test_down_conv_gemm_path_matches_native(bias, x_cl, w_cl, batch, size):
    torch.manual_seed(0)
    layer = GemmConv2d(6, 5, 4, stride=2, padding=1, bias=bias).double()
    if w_cl:
        layer = layer.to(memory_format=CL)
    x = torch.randn(batch, 6, size, size, dtype=torch.float64)
    if x_cl:
        x = x.contiguous(memory_format=CL)
    assert batch * (size // 2) ** 2 <= GemmConv2d.gemm_max_positions  # the GEMM path is the one under test
    (y, gx, gw, cl), (y0, gx0, gw0, cl0) = both_ways(layer, x)
    assert torch.allclose(y, y0, atol=1e-12) and torch.allclose(gx, gx0, atol=1e-12) and torch.allclose(gw, gw0, atol=1e-12)
    assert cl == x_cl or size == 2  # keeps the input's memory format (1x1 outputs are both)


@pytest.mark.parametrize("bias,x_cl,w_cl", list(itertools.product([True, False], [True, False], [True, False])))
@pytest.mark.parametrize("cin,cout,batch,size", [(6, 5, 1, 1), (6, 5, 2, 4), (8, 3, 2, 16)])
def test_up_conv_gemm_path_matches_native(bias, x_cl, w_cl, cin, cout, batch, size):
    """Small inputs (positions) and few output channels (3 channels x 16 taps = 48 columns) take the GEMM path."""
    torch.manual_seed(0)
    layer = GemmConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=bias).double()
    if w_cl:
        layer = layer.to(memory_format=CL)
    x = torch.randn(batch, cin, size, size, dtype=torch.float64)
    if x_cl:
        x = x.contiguous(memory_format=CL)
    (y, gx, gw, cl), (y0, gx0, gw0, _) = both_ways(layer, x)
    assert y.shape == (batch, cout, 2 * size, 2 * size)
    assert torch.allclose(y, y0, atol=1e-12) and torch.allclose(gx, gx0, atol=1e-12) and torch.allclose(gw, gw0, atol=1e-12)
    assert cl == x_cl or size == 1  # keeps the input's memory format (a 1x1 input is both)


def test_large_maps_and_tracing_use_the_native_kernel():
    layer = GemmConv2d(3, 4, 4, stride=2, padding=1)
    x = torch.randn(1, 3, 64, 64)  # 32x32 outputs: above the threshold
    with torch.autograd.profiler.profile() as prof:
        layer(x)
    assert any("convolution" in e.name for e in prof.function_events)
    small = torch.randn(1, 3, 4, 4)
    with torch.autograd.profiler.profile() as prof:
        layer(small)
    assert not any("convolution" in e.name for e in prof.function_events)
    traced = torch.jit.trace(layer, small)
    assert "conv" in str(traced.inlined_graph) and torch.allclose(traced(small), layer(small), atol=1e-6)


def test_padding_strings_and_modes_fall_back_to_the_native_kernel():
    x = torch.randn(1, 3, 4, 4)
    for layer in (GemmConv2d(3, 4, 3, padding="same"), GemmConv2d(3, 4, 4, stride=2, padding=1, padding_mode="reflect")):
        with native_convolutions():
            expected = layer(x)
        assert torch.equal(layer(x), expected)
