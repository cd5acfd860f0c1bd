"""Inception-v3 as used for FID and KID: the 2048-d pool features of the TensorFlow "2015-12-05" graph, in the
PyTorch port of pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``).

The layers carry torchvision's ``Inception3`` key names (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.
running_mean``, ...) so that file loads as it is (its ``fc.*`` classifier keys are ignored). Two details of the
TF graph are reproduced, as pytorch-fid does: the average pools inside the A, C and first E blocks do not count
the zero padding, and the last E block pools its fourth branch with a max instead of an average.
Images are resized to 299x299 (bilinear, no corner alignment) and must be in [-1, 1], the range the graph expects.
Nothing is downloaded: see ``load_inception``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.formats.native import register_model
from ganedit.metrics.weights import MissingWeightsError, cache_dir, find_file, load_checked, read_state_dict, search_folders

Pair = Union[int, Tuple[int, int]]


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, as in the TF graph) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Pair, stride: Pair = 1, padding: Pair = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool divides by the number of real pixels under the window, not by 9.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 convolutions (1x7 then 7x1) at 17x17."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            self.branch7x7dbl_5(self.branch7x7dbl_4(dbl)),
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), self.branch7x7x3_4(b7), F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """Expanded filter bank at 8x8; ``max_pool`` selects the TF graph's quirk in the last block."""

    def __init__(self, cin: int, max_pool: bool = False) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


@register_model("metrics.InceptionV3")
class InceptionV3(nn.Module):
    """FID Inception-v3 up to the global average pool: [N, 3, H, W] in [-1, 1] -> [N, 2048].

    Built with random weights; use ``load_inception`` for the real ones. Always in evaluation mode (BatchNorm
    uses its running statistics even inside a module that is training)."""

    feature_dim = 2048

    def __init__(self, resize: bool = True) -> None:
        super().__init__()
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        # Random weights only matter for tests and before loading; He init keeps activations at unit scale, where
        # PyTorch's default shrinks them layer by layer into subnormal floats that run 100x slower on CPUs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        self.requires_grad_(False)
        # channels_last: oneDNN/cuDNN convolutions run ~1.5x faster on CPU in this layout (measured, batch 8).
        self.to(memory_format=torch.channels_last)
        self.eval()

    def train(self, mode: bool = True) -> "InceptionV3":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize and tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


INCEPTION_PATTERNS = ("pt_inception-2015-12-05-*.pth", "inception_fid.safetensors", "inception_fid.pth")


def _missing_message(looked: List[Path], what: str) -> str:
    folders = ", ".join(str(p) for p in dict.fromkeys(looked))
    return (
        f"FID/KID need the Inception-v3 weights and ganedit never downloads any; {what}.\n"
        "  Needed: pt_inception-2015-12-05-6726825d.pth, the pytorch-fid port of the TensorFlow FID Inception "
        "(mseitzer/pytorch-fid release 'fid_weights'): a state dict in torchvision's Inception3 layout "
        "(Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_mean, ..., fc.weight), or the state_dict of "
        "ganedit's InceptionV3 saved as inception_fid.safetensors.\n"
        f"  Looked in: {folders}.\n"
        f"  Provide it: copy the file into {cache_dir() / 'inception'} (the cache folder is $GANEDIT_CACHE, default "
        "~/.cache/ganedit), or pass --inception-weights FILE. Without it, FID/KID can run on another feature "
        "extractor (ganedit.metrics.fid(..., extractor=f)), but such figures are not comparable with published FIDs."
    )


def inception_from_file(path: "str | os.PathLike[str]") -> InceptionV3:
    model = InceptionV3()
    # fc.* is the 1008-way classifier of the TF graph; AuxLogits.* appear in torchvision files; neither is used.
    load_checked(model, read_state_dict(path), path, ignore_prefixes=("fc.", "AuxLogits."),
                 ignore_suffixes=("num_batches_tracked",))
    return model.eval()


def load_inception(weights: Optional["str | os.PathLike[str]"] = None) -> InceptionV3:
    """The FID Inception-v3 filled from a local file (``weights``, a file or folder, else the cache folder).

    A missing file raises ``MissingWeightsError`` naming it, its layout and where to put it."""
    if weights is not None and Path(weights).is_file():
        return inception_from_file(weights)
    if weights is not None and not Path(weights).exists():
        raise MissingWeightsError(_missing_message([Path(weights)], f"the given path {weights} does not exist"))
    folders = search_folders("inception", weights)
    found = find_file(folders, INCEPTION_PATTERNS)
    if found is None:
        raise MissingWeightsError(_missing_message(folders, "pt_inception-2015-12-05-*.pth not found"))
    return inception_from_file(found)
