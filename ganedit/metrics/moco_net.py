"""MoCo v2 feature similarity, e4e's similarity loss for domains other than faces (its ``criteria/moco_loss.py``).

The network is a torchvision-layout ResNet-50 (``conv1``, ``bn1``, ``layer1``..``layer4`` of bottleneck blocks with
``conv1/bn1``, ``conv2/bn2`` (the 3x3, strided), ``conv3/bn3`` and ``downsample.0/.1``) up to the global average
pool: [N, 3, H, W] -> [N, 2048], then L2-normalised. It is filled from the official MoCo v2 checkpoint
``moco_v2_800ep_pretrain.pth.tar``: ``{"state_dict": {"module.encoder_q.<torchvision key>": ...}}``; the query
encoder's keys are taken, its projection head ``fc.*`` and everything else (``encoder_k``, ``queue``) is dropped.
A plain torchvision ResNet-50 state dict is accepted too.

As e4e does, images are resized to 224 (nearest, ``F.interpolate`` default) and fed as they are ([-1, 1], no
ImageNet normalisation); the loss is ``mean(1 - <f(output), f(target)>)``, the target's features without gradient.
Nothing is downloaded: :func:`load_moco` reads a local file (see ``ganedit.metrics.weights``).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.errors import CheckpointError
from ganedit.metrics.identity_net import CosineEmbeddingLoss
from ganedit.metrics.weights import load_checked, locate_weights, read_state_dict

BLOCKS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
INPUT_SIZE = 224
PREFIX = "module.encoder_q."
WEIGHT_PATTERNS = ("moco_v2_800ep_pretrain.pth.tar", "moco*.pth.tar", "moco*.pth", "moco*.pt", "moco*.safetensors")


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision's "ResNet v1.5") -> 1x1 (x4 channels), BatchNorm after each, ReLU after the sum."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50Features(nn.Module):
    """ResNet-50 without its classifier: images -> [N, 2048] average-pooled features (not normalised)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        channels = 64
        for i, (count, width) in enumerate(zip(BLOCKS, WIDTHS)):
            units: List[nn.Module] = []
            for k in range(count):
                units.append(Bottleneck(channels, width, 2 if (k == 0 and i > 0) else 1))
                channels = width * EXPANSION
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(len(BLOCKS)):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3))


class MocoLoss(CosineEmbeddingLoss):
    """``mean(1 - cos)`` between the MoCo features of ``output`` and ``target`` (whole images resized to 224)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(F.interpolate(images, size=INPUT_SIZE)), dim=1)


def query_encoder_state(state: Dict[str, torch.Tensor], path: "str | os.PathLike[str]") -> Dict[str, torch.Tensor]:
    """The backbone keys of a MoCo checkpoint's query encoder (``module.encoder_q.*`` minus ``fc``), or of a plain
    torchvision ResNet-50 state dict (minus ``fc``)."""
    if any(k.startswith(PREFIX) for k in state):
        picked = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    elif "conv1.weight" in state:
        picked = dict(state)
    else:
        raise CheckpointError(path, f"no {PREFIX}* keys (a MoCo v2 checkpoint) and no torchvision ResNet-50 keys "
                                    f"(first keys: {', '.join(list(state)[:4])})")
    return {k: v for k, v in picked.items() if not k.startswith("fc.")}


def load_moco(weights: Optional["str | os.PathLike[str]"] = None) -> ResNet50Features:
    """The MoCo v2 ResNet-50 backbone from a local file: ``weights`` (a file or a folder), else
    ``$GANEDIT_CACHE/moco`` and ``$GANEDIT_CACHE``. Read with ``torch.load(weights_only=True)``; a missing file
    raises MissingWeightsError."""
    path = locate_weights(
        weights, "moco", WEIGHT_PATTERNS, name="the MoCo similarity loss needs MoCo v2 ResNet-50 weights",
        needed=f"moco_v2_800ep_pretrain.pth.tar (facebookresearch/moco): a checkpoint whose state_dict has keys "
               f"{PREFIX}conv1.weight .. {PREFIX}layer4.* (or a torchvision ResNet-50 state dict)",
        how_to_pass="pass --set moco_weights=FILE")
    net = ResNet50Features()
    load_checked(net, query_encoder_state(read_state_dict(path), path), path, ignore_suffixes=("num_batches_tracked",))
    return net.eval()


__all__ = ["ResNet50Features", "MocoLoss", "load_moco", "query_encoder_state"]
