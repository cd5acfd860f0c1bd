"""Official Swapping Autoencoder checkpoints (taesungp/swapping-autoencoder-pytorch ``latest_checkpoint.pth``).

The file is one flat state dict: ``num_discriminator_iters``, ``E.*``, ``G.*``, ``D.stylegan2_D.*``, ``Dpatch.*``
(README §2). The architecture is read from the key names and shapes alone -- depths from the block names, widths
from the weight shapes, the D's crop size from its final linear -- so narrow or non-standard variants load too.
Files saved in test mode may lack the ``D.``/``Dpatch.`` keys: the model is then built without discriminators.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, Mapping

import torch

from ganedit.errors import CheckpointError

_MARK = "G.SpatialCodeModulation.scale.weight"


def detect(obj: Any) -> bool:
    return isinstance(obj, Mapping) and ((_MARK in obj and "E.FromRGB.Conv.weight" in obj) or _is_rosinality(obj))


def _is_rosinality(obj: Mapping) -> bool:
    """rosinality/swapping-autoencoder-pytorch's ``checkpoint/NNNNNN.pt`` (e, g, d, cooccur, *_ema, args)."""
    return all(isinstance(obj.get(k), Mapping) for k in ("e", "g", "cooccur")) and "g_ema" in obj


def _numbered(keys, pattern: str) -> list:
    """Distinct values of the first group of `pattern` among keys, in file order."""
    seen: list = []
    for k in keys:
        m = re.match(pattern, k)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def infer_config(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Constructor arguments of SwappingAutoencoder from an official state dict (keys and shapes only)."""
    keys = list(sd)
    shape = lambda k: tuple(sd[k].shape)  # noqa: E731
    structure, texture = shape(_MARK)
    down = _numbered(keys, r"E\.DownToSpatialCode\.ResBlockDownBy(\d+)\.")
    glob = _numbered(keys, r"E\.DownToGlobalCode\.ConvLayerDownBy(\d+)\.")
    enc = [shape("E.FromRGB.Conv.weight")[0]]
    enc += [shape(f"E.DownToSpatialCode.ResBlockDownBy{d}.conv2.Conv.weight")[0] for d in down]
    enc += [shape(f"E.DownToGlobalCode.ConvLayerDownBy{d}.Conv.weight")[0] for d in glob]
    heads = _numbered(keys, r"G\.HeadResnetBlock(\d+)\.")
    ups = _numbered(keys, r"G\.UpsamplingResBlock(\d+)\.")
    cfg: Dict[str, Any] = dict(
        structure_channels=structure, texture_channels=texture, encoder_channels=enc,
        num_downsampling_sp=len(down), num_downsampling_gl=len(glob),
        generator_head_channels=[shape(f"G.HeadResnetBlock{h}.conv1.conv.weight")[1] for h in heads],
        generator_up_channels=[shape(f"G.UpsamplingResBlock{u}.conv1.conv.weight")[1] for u in ups],
    )
    has_d = any(k.startswith("D.stylegan2_D.") for k in keys)
    has_p = any(k.startswith("Dpatch.") for k in keys)
    cfg["with_discriminators"] = has_d and has_p
    if cfg["with_discriminators"]:
        pre = "D.stylegan2_D.convs."
        blocks = [b for b in _numbered(keys, re.escape(pre) + r"([^.]+)\.") if b != "0"]
        d_ch = [shape(pre + "0.Conv.weight")[0]] + [shape(f"{pre}{b}.conv2.Conv.weight")[0] for b in blocks]
        side = math.isqrt(shape("D.stylegan2_D.final_linear.0.weight")[1] // d_ch[-1])
        cfg.update(image_size=side * 2 ** (len(blocks) + 2) // 4, discriminator_channels=d_ch)
        pre = "Dpatch.convs."
        pblocks = [b for b in _numbered(keys, re.escape(pre) + r"([^.]+)\.") if b not in ("0", "5", "6")]
        p_ch = [shape(pre + "0.Conv.weight")[0]] + [shape(f"{pre}{b}.conv2.Conv.weight")[0] for b in pblocks]
        hidden = [shape(f"Dpatch.pairlinear.{i}.weight")[0] for i in range(3)]
        cfg.update(patch_size=2 ** (len(pblocks) + 2), patch_channels=p_ch,
                   patch_feature_channels=shape(pre + "6.Conv.weight")[0], patch_pair_hidden=hidden)
    return cfg


def convert(obj: Any, path: Path) -> torch.nn.Module:
    from ganedit.models.swapae import SwappingAutoencoder

    if _is_rosinality(obj):
        raise CheckpointError(path, "this is rosinality's re-implementation of the Swapping Autoencoder (keys e, g, d, cooccur): "
                              "its networks differ from the official ones (codes not normalised, StyleGAN2 demodulation, other "
                              "layers) and ganedit does not convert them; use an official latest_checkpoint.pth or train with "
                              "`ganedit train swapae`")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    try:
        cfg = infer_config(sd)
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(path, f"looks like an official Swapping Autoencoder checkpoint but its layout is incomplete ({exc})") from None
    if not cfg["with_discriminators"]:
        # keep only what the model has: a test-mode file, or one with only one of the two discriminators
        sd = {k: v for k, v in sd.items() if not (k.startswith("D.") or k.startswith("Dpatch."))}
    model = SwappingAutoencoder(**cfg)
    own = model.state_dict()
    sd.setdefault("num_discriminator_iters", own["num_discriminator_iters"])
    from ganedit.formats.native import load_state_dict_checked

    sd = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in sd.items()}
    load_state_dict_checked(model, sd, path)
    model.eval()
    model.checkpoint_meta = {"converted_from": "official swapping-autoencoder-pytorch", "source": str(path)}  # type: ignore[attr-defined]
    return model
