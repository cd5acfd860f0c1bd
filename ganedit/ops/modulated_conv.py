"""StyleGAN2 modulated convolution (modulate, demodulate, convolve), in two equivalent forms.

- *grouped* (the official form): every sample gets its own weight ``W_b = W * s_b``, demodulated per output
  channel, and the batch runs as one grouped convolution. Cheapest for a batch of one (a plain conv) and
  usually on GPUs.
- *fused* (scale the activations): ``conv(x * s_b, W) * d_b``. The convolution shares one weight over the
  batch, which CPU conv kernels and channels_last handle far better than a grouped conv; it costs one pass
  over the input (x * s) and one over the output (* d, merged with the optional ``add`` term).

Both give the same numbers up to float rounding; ``fused=None`` picks per call (:func:`use_fused_form`), and
then runs a 1x1 kernel on channels_last activations (a ToRGB) as one batched matrix product with the
per-sample weights (:func:`_pointwise`): CPU conv kernels are slow with 3 output channels.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ganedit.ops.standard import rewrites_allowed
from ganedit.ops.transposed_conv import conv_transpose2d
from ganedit.ops.upfirdn2d import upfirdn2d


def _fir_pads(kernel_taps: int, conv_k: int, upsample: bool) -> tuple:
    """rosinality's padding of the blur that goes with an up (after) or down (before) sampling conv."""
    factor = 2
    if upsample:
        p = (kernel_taps - factor) - (conv_k - 1)
        return ((p + 1) // 2 + factor - 1, p // 2 + 1)
    p = (kernel_taps - factor) + (conv_k - 1)
    return ((p + 1) // 2, p // 2)


def weight_sq(weight: torch.Tensor) -> torch.Tensor:
    """sum over the kernel window of W^2, [O, I]: what demodulation needs (cacheable per weight)."""
    return weight.pow(2).sum([2, 3])


def demodulation(weight: torch.Tensor, style: torch.Tensor, eps: float = 1e-8, wsq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """d[b, o] = 1 / sqrt(sum_{i,kh,kw} (W[o,i] * s[b,i])^2 + eps), computed without per-sample weights."""
    if wsq is None:
        wsq = weight_sq(weight)
    return torch.rsqrt(style.pow(2) @ wsq.t() + eps)


def use_fused_form(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """CPU-oriented choice. A batch of one: grouped (then a plain conv on the modulated weight) unless modulating
    the weight costs more than the two activation passes of the fused form. Larger batches: fused, because
    oneDNN's grouped convolutions run several times slower than a shared-weight conv on the same data."""
    out_ch, in_ch, kh, kw = weight.shape
    if x.shape[0] == 1:
        return out_ch * in_ch * kh * kw > (in_ch + out_ch) * x.shape[2] * x.shape[3]
    return True


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    style: torch.Tensor,
    demodulate: bool = True,
    upsample: bool = False,
    downsample: bool = False,
    blur_kernel: Optional[torch.Tensor] = None,
    eps: float = 1e-8,
    fused: Optional[bool] = None,
    add: Optional[torch.Tensor] = None,
    wsq: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    gain: float = 1.0,
) -> torch.Tensor:
    """Modulated convolution.

    x [B, I, H, W]; weight [O, I, k, k], the effective weight (equalised-lr scale already applied);
    style [B, I], the per-sample modulation s. Padding is k // 2 (same size) unless up/downsampling, which
    follow rosinality: ``upsample`` = stride-2 transposed conv then FIR ``blur_kernel`` (sum 4);
    ``downsample`` = FIR blur then stride-2 conv. ``add`` (e.g. scaled noise [B or 1, 1, H, W]) is
    broadcast-added to the result in the same pass as demodulation. ``wsq`` may pass a cached
    :func:`weight_sq`. ``fused`` forces a form (None: :func:`use_fused_form`).

    ``bias`` [O] and ``gain`` make the result ``gain * (conv + add + bias)``: the gain rides on the weights or
    the demodulation factors and the bias on the convolution where the form allows, so a following
    ``leaky_relu(. + bias) * gain`` (StyledConv, gain > 0) becomes one leaky ReLU pass instead of three.
    """
    if gain != 1:
        add = None if add is None else add * gain
        bias = None if bias is None else bias * gain
    if fused is None:
        if _pointwise_ok(x, weight, upsample, downsample):
            return _pointwise(x, weight, style, demodulate, eps, add, wsq, bias, gain)
        fused = use_fused_form(x, weight)
    if fused:
        out = _fused(x, weight, style, demodulate, upsample, downsample, blur_kernel, eps, add, wsq, gain)
        return out if bias is None else _add(out, _channel_map(bias))
    out = _grouped(x, weight, style, demodulate, upsample, downsample, blur_kernel, eps, wsq, bias, gain)
    return out if add is None else _add(out, add)


def _inplace_ok(t: torch.Tensor) -> bool:
    return not (torch.is_grad_enabled() and t.requires_grad)


def _add(out: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    add = add.to(out.dtype)
    return out.add_(add) if _inplace_ok(out) and _inplace_ok(add) else out + add


def _channel_map(bias: torch.Tensor) -> torch.Tensor:
    return bias.reshape(1, -1, 1, 1)


def _modulated_weights(weight, style, demodulate, eps, wsq, gain):
    """Per-sample weights gain * W * s_b (* d_b), [B, O, I, kh, kw]."""
    b, in_ch = style.shape
    out_ch = weight.shape[0]
    if not demodulate and gain != 1:
        style = style * gain
    wb = weight.unsqueeze(0) * style.reshape(b, 1, in_ch, 1, 1).to(weight.dtype)
    if demodulate:
        d = demodulation(weight, style, eps, wsq)
        wb = wb * (d * gain if gain != 1 else d).reshape(b, out_ch, 1, 1, 1).to(weight.dtype)
    return wb


def _same_shape_or_reshape(t: torch.Tensor, shape: tuple) -> torch.Tensor:
    """``t.reshape(shape)``, but ``t`` itself when the shape does not change: a no-op reshape of a channels_last
    batch of one re-derives its strides (batch stride = C), and the CPU depthwise conv then falls back to NCHW,
    ~8x slower, and hands NCHW on to every later layer."""
    return t if tuple(t.shape) == tuple(shape) else t.reshape(shape)


def _pointwise_ok(x: torch.Tensor, weight: torch.Tensor, upsample: bool, downsample: bool) -> bool:
    return (weight.shape[2] == weight.shape[3] == 1 and not (upsample or downsample) and x.dim() == 4 and x.shape[1] > 1
            and x.is_contiguous(memory_format=torch.channels_last) and rewrites_allowed())


def _pointwise(x, weight, style, demodulate, eps, add, wsq, bias, gain):
    """1x1 modulated conv on channels_last x: rows of x (one per pixel) times each sample's modulated weight.
    The activations are read once and never rescaled; the output is a channels_last view."""
    b, in_ch, h, w = x.shape
    out_ch = weight.shape[0]
    wb = _modulated_weights(weight, style, demodulate, eps, wsq, gain).reshape(b, out_ch, in_ch).to(x.dtype)
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, in_ch)  # a view: channels_last memory is [B, H, W, C]
    if bias is None:
        out = torch.bmm(rows, wb.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.to(x.dtype).reshape(1, 1, out_ch), rows, wb.transpose(1, 2))
    out = out.reshape(b, h, w, out_ch).permute(0, 3, 1, 2)
    return out if add is None else _add(out, add)


def _fused(x, weight, style, demodulate, upsample, downsample, blur_kernel, eps, add, wsq, gain):
    b = x.shape[0]
    out_ch, in_ch, k, _ = weight.shape
    x = x * (style if demodulate or gain == 1 else style * gain).reshape(b, in_ch, 1, 1).to(x.dtype)
    if upsample:
        out = conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        # the blur is linear per channel, so demodulation may follow it and share a pass with `add`
        out = upfirdn2d(out, blur_kernel, pad=_fir_pads(blur_kernel.shape[0], k, True))
    elif downsample:
        x = upfirdn2d(x, blur_kernel, pad=_fir_pads(blur_kernel.shape[0], k, False))
        out = F.conv2d(x, weight, stride=2)
    else:
        out = F.conv2d(x, weight, padding=k // 2)
    if not demodulate:
        return out if add is None else _add(out, add)
    d = demodulation(weight, style, eps, wsq)
    d = (d * gain if gain != 1 else d).to(out.dtype).reshape(b, out_ch, 1, 1)
    if add is None:
        return out.mul_(d) if _inplace_ok(out) else out * d
    add = add.to(out.dtype)
    if _inplace_ok(out) and _inplace_ok(add) and _inplace_ok(d):
        return torch.addcmul(add, out, d, out=out)  # out * d + add in one pass, written over out
    return torch.addcmul(add, out, d)


def _grouped(x, weight, style, demodulate, upsample, downsample, blur_kernel, eps, wsq, bias, gain):
    b, in_ch, h, w = x.shape
    out_ch, _, k, _ = weight.shape
    wb = _modulated_weights(weight, style, demodulate, eps, wsq, gain)
    if upsample:
        wt = wb.transpose(1, 2).reshape(b * in_ch, out_ch, k, k)
        out = conv_transpose2d(_same_shape_or_reshape(x, (1, b * in_ch, h, w)), wt, stride=2, groups=b)
        out = _same_shape_or_reshape(out, (b, out_ch, out.shape[2], out.shape[3]))
        out = upfirdn2d(out, blur_kernel, pad=_fir_pads(blur_kernel.shape[0], k, True))
        return out if bias is None else _add(out, _channel_map(bias))  # after the blur, which would filter it
    # the bias joins the convolution itself (repeated per group: one copy per sample)
    conv_bias = None if bias is None else bias.to(x.dtype).repeat(b)
    if downsample:
        x = upfirdn2d(x, blur_kernel, pad=_fir_pads(blur_kernel.shape[0], k, False))
        h, w = x.shape[2], x.shape[3]
        out = F.conv2d(_same_shape_or_reshape(x, (1, b * in_ch, h, w)), wb.reshape(b * out_ch, in_ch, k, k), conv_bias,
                       stride=2, groups=b)
    else:
        out = F.conv2d(_same_shape_or_reshape(x, (1, b * in_ch, h, w)), wb.reshape(b * out_ch, in_ch, k, k), conv_bias,
                       padding=k // 2, groups=b)
    return _same_shape_or_reshape(out, (b, out_ch, out.shape[2], out.shape[3]))
