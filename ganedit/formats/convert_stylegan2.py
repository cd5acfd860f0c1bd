"""rosinality/stylegan2-pytorch checkpoints <-> ganedit's StyleGAN2 (conformance README §3.4).

Two layouts are recognised: a converted official file (``g_ema``, ``latent_avg`` [, ``g``, ``d``]) and a
``train.py`` checkpoint (``g``, ``d``, ``g_ema``, ``g_optim``, ``d_optim``, ``args``, ``ada_aug_p``; no
``latent_avg``). The architecture (size, style_dim, n_mlp, channel table, blur kernel) is read from the key
shapes, so no flags are needed. Every other top-level entry is kept, so :func:`export_rosinality` writes back a
file whose tensors are bit-identical to the original.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from ganedit.errors import CheckpointError
from ganedit.ops import make_kernel

NETWORK_KEYS = ("g_ema", "g", "d", "latent_avg")
DEFAULT_BLUR = [1.0, 3.0, 3.0, 1.0]


def _is_generator_state(sd: Any) -> bool:
    return isinstance(sd, Mapping) and "input.input" in sd and "style.1.weight" in sd and "to_rgb1.conv.weight" in sd


def detect(obj: Any) -> bool:
    return isinstance(obj, Mapping) and _is_generator_state(obj.get("g_ema"))


def _blur_taps(kernel: Optional[torch.Tensor], gain: float = 4.0) -> list:
    """1-D taps whose make_kernel (x ``gain``: 4 for upsampling, 1 for the discriminator's blur) gives ``kernel``;
    rosinality stores only the 2-D buffer. Any length: a [1, 2, 1] file has 3x3 buffers."""
    if kernel is None or kernel.is_meta:
        return list(DEFAULT_BLUR)
    if kernel.shape == (len(DEFAULT_BLUR),) * 2 and torch.allclose(kernel, make_kernel(DEFAULT_BLUR) * gain):
        return list(DEFAULT_BLUR)
    # make_kernel(k) = outer(k, k) / sum(k)^2, so its column sums are proportional to k (even where k[0] is 0)
    taps = kernel.double().sum(dim=0)
    return [float(v) for v in (taps / taps.sum())]


def _compact_channels(table: Dict[int, int], size: int) -> Dict[str, Any]:
    """Express the table as rosinality's channel_multiplier when it is one of those, else explicitly."""
    from ganedit.models.stylegan2 import channel_table

    for cm in (1, 2, 4):
        if channel_table(size, cm) == table:
            return {"channel_multiplier": cm}
    return {"channels": {str(k): v for k, v in sorted(table.items())}}


def infer_generator_config(sd: Mapping[str, torch.Tensor], where: Any = None) -> Dict[str, Any]:
    """Generator constructor arguments from a rosinality generator state dict."""
    try:
        style_dim = int(sd["style.1.weight"].shape[1])
        n_mlp = max(int(m.group(1)) for k in sd if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
        n_rgbs = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
        log_size = n_rgbs + 2
        size = 2**log_size
        table = {4: int(sd["input.input"].shape[1])}
        for j in range(n_rgbs):
            table[2 ** (j + 3)] = int(sd[f"convs.{2 * j + 1}.conv.weight"].shape[1])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(where, f"generator state dict is incomplete ({exc})") from None
    config: Dict[str, Any] = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp}
    config.update(_compact_channels(table, size))
    config["blur_kernel"] = _blur_taps(sd.get("convs.0.conv.blur.kernel"))
    return config


def infer_discriminator_config(sd: Mapping[str, torch.Tensor], where: Any = None) -> Dict[str, Any]:
    try:
        n_blocks = len({k.split(".")[1] for k in sd if re.match(r"convs\.\d+\.conv1\.", k)})
        size = 2 ** (n_blocks + 2)
        table = {size: int(sd["convs.0.0.weight"].shape[0])}
        for i in range(1, n_blocks + 1):
            table[size // 2**i] = int(sd[f"convs.{i}.conv2.1.weight"].shape[0])
        in_channels = int(sd["convs.0.0.weight"].shape[1])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(where, f"discriminator state dict is incomplete ({exc})") from None
    config: Dict[str, Any] = {"size": size}
    config.update(_compact_channels(table, size))
    config["blur_kernel"] = _blur_taps(sd.get("convs.1.conv2.0.kernel"), gain=1.0)
    if in_channels != 3:
        config["in_channels"] = in_channels
    return config


def _check_latent_avg(latent_avg: torch.Tensor, style_dim: int, where: Any) -> None:
    """The average w must be style_dim wide ([style_dim], [1, style_dim] or one row per w+ layer): a wrong one
    would only fail later, inside truncation."""
    shape = list(latent_avg.shape)
    if not shape or shape[-1] != style_dim or latent_avg.numel() == 0:
        raise CheckpointError(where, f"latent_avg has shape {shape}, but the generator's style_dim is {style_dim} "
                                     f"(from g_ema style.1.weight): expected [{style_dim}] or [..., {style_dim}]")
    if not latent_avg.is_floating_point():
        raise CheckpointError(where, f"latent_avg has dtype {latent_avg.dtype}, expected a floating-point tensor")


def _prefixed(prefix: str, sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def convert(obj: Mapping[str, Any], path: "os.PathLike[str] | str | None" = None) -> torch.nn.Module:
    """Build a :class:`ganedit.models.stylegan2.StyleGAN2` holding every entry of the rosinality file."""
    from ganedit.formats.native import load_state_dict_checked
    from ganedit.models.stylegan2 import StyleGAN2, _flatten_extra

    g_config = infer_generator_config(obj["g_ema"], path)
    d_config = infer_discriminator_config(obj["d"], path) if isinstance(obj.get("d"), Mapping) else None
    with_g = _is_generator_state(obj.get("g"))
    has_latent_avg = isinstance(obj.get("latent_avg"), torch.Tensor)
    if has_latent_avg:
        _check_latent_avg(obj["latent_avg"], g_config["style_dim"], path)
    extras = {k: v for k, v in obj.items() if k not in NETWORK_KEYS}
    tensors: Dict[str, torch.Tensor] = {}
    skeleton = _flatten_extra(extras, tensors) if extras else None
    model = StyleGAN2(
        generator=g_config, discriminator=d_config, with_g=with_g, has_latent_avg=has_latent_avg,
        extra=skeleton, key_order=[str(k) for k in obj.keys()],
        latent_avg_shape=list(obj["latent_avg"].shape) if has_latent_avg else None,
    )
    state = _prefixed("g_ema", obj["g_ema"])
    if with_g:
        state.update(_prefixed("g", obj["g"]))
    if d_config is not None:
        state.update(_prefixed("d", obj["d"]))
    state.update(_prefixed("extra", tensors))
    if has_latent_avg:
        state["latent_avg"] = obj["latent_avg"]
    else:
        # train.py files carry no average w; estimate it reproducibly (fixed seed) for truncation
        model.g_ema.load_state_dict(obj["g_ema"])
        state["latent_avg"] = model.g_ema.mean_latent(4096, seed=0).reshape(model.latent_avg.shape)
    load_state_dict_checked(model, state, path)
    model.eval()
    model.checkpoint_meta = {"converted_from": "rosinality/stylegan2-pytorch", "source": str(path) if path else None}
    return model


def to_rosinality(model: torch.nn.Module) -> Dict[str, Any]:
    """The rosinality checkpoint dict for a StyleGAN2 wrapper (or a bare Generator: ``{'g_ema': ...}``)."""
    from ganedit.models.stylegan2 import Generator, StyleGAN2, _unflatten_extra

    if isinstance(model, Generator):
        return {"g_ema": model.state_dict()}
    if not isinstance(model, StyleGAN2):
        raise CheckpointError(None, f"only StyleGAN2 models can be exported to the rosinality layout, not {type(model).__name__}")
    out: Dict[str, Any] = {"g_ema": model.g_ema.state_dict()}
    if model.has_latent_avg:
        out["latent_avg"] = model.latent_avg
    if hasattr(model, "g"):
        out["g"] = model.g.state_dict()
    if hasattr(model, "d"):
        out["d"] = model.d.state_dict()
    if model.extra_skeleton is not None:
        out.update(_unflatten_extra(model.extra_skeleton, dict(model.extra.named_buffers())))
    if model.key_order:
        order = [k for k in model.key_order if k in out] + [k for k in out if k not in model.key_order]
        out = {k: out[k] for k in order}
    return out


def export_rosinality(model: torch.nn.Module, path: "os.PathLike[str] | str") -> Path:
    """Write ``model`` as a rosinality ``.pt`` file (atomically)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    torch.save(to_rosinality(model), tmp)
    os.replace(tmp, p)
    return p
