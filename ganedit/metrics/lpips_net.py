"""LPIPS, the learned perceptual image patch similarity of Zhang et al. 2018 ("The Unreasonable Effectiveness of
Deep Features as a Perceptual Metric"), version 0.1, with AlexNet or VGG16 features.

    d(x, y) = sum_l  mean_hw  w_l . (f_l(x) / |f_l(x)| - f_l(y) / |f_l(y)|)^2

f_l are the ReLU outputs of five stages of an ImageNet backbone fed ``(x - shift) / scale``; features are
unit-normalised over channels at every position; w_l >= 0 are the 1x1 "linear" heads learnt on human judgements.

The networks are defined here with the key names of the official files, so those files load as they are:
- heads: the LPIPS repository's ``alex.pth`` / ``vgg.pth`` (``lpips/weights/v0.1/``): keys ``lin{0..4}.model.1.weight``,
  shapes [1, C_l, 1, 1];
- backbone: torchvision's ImageNet state dicts ``alexnet-owt-*.pth`` / ``vgg16-*.pth``: keys ``features.{i}.weight``
  and ``.bias`` (the ``classifier.*`` keys are ignored);
- or one combined file: the ``state_dict()`` of this module (``net.features.*`` + ``lin*``; .pt or .safetensors),
  or of the ``lpips`` package's ``LPIPS`` module (``net.slice{k}.{i}.*`` + ``lin*``; ``scaling_layer.*`` ignored).
Nothing is downloaded: see ``load_lpips`` for where the files are looked for.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ganedit.errors import ConfigError
from ganedit.formats.native import register_model
from ganedit.metrics.weights import (MissingWeightsError, cache_dir, find_file, load_checked, read_state_dict,
                                     search_folders)

# Input scaling of LPIPS v0.1: maps [-1, 1] images to the statistics the ImageNet backbones were trained on.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class _TappedFeatures(nn.Module):
    """A ``features`` Sequential whose outputs after the layers listed in ``taps`` are returned."""

    taps: tuple = ()
    features: nn.Sequential

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class AlexNetFeatures(_TappedFeatures):
    """torchvision AlexNet ``features`` (indices and shapes kept), tapped after ReLU 1..5."""

    channels = (64, 192, 384, 256, 256)
    taps = (1, 4, 7, 9, 11)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
        )


class VGG16Features(_TappedFeatures):
    """torchvision VGG16 ``features`` up to relu5_3 (indices kept), tapped at relu1_2, 2_2, 3_3, 4_3, 5_3."""

    channels = (64, 128, 256, 512, 512)
    taps = (3, 8, 15, 22, 29)
    _plan = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        cin = 3
        for item in self._plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(item)
        self.features = nn.Sequential(*layers)


class _LinearHead(nn.Module):
    """1x1 conv to one channel, no bias. ``model.0`` is where the official head has its dropout (inactive when
    evaluating); an Identity keeps the key name ``model.1.weight`` and makes the metric independent of train()."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))
        with torch.no_grad():  # random heads stay non-negative like trained ones, so d >= 0 holds either way
            self.model[1].weight.abs_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


BACKBONES = {"alex": AlexNetFeatures, "vgg": VGG16Features}


@register_model("metrics.LPIPS")
class LPIPS(nn.Module):
    """LPIPS distance; ``forward(x, y)`` takes NCHW images in [-1, 1] and returns [N] distances.

    Built with random weights; use ``load_lpips`` for the real ones. Differentiable (usable as a loss); its
    parameters do not require gradients."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ConfigError(f"LPIPS: unknown backbone {net!r}; choose one of {', '.join(BACKBONES)}")
        self.net_name = net
        self.net = BACKBONES[net]()
        # He init keeps random features at unit scale (PyTorch's default shrinks them towards subnormal floats,
        # which are very slow on CPUs); loading real weights replaces them anyway.
        for m in self.net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for i, c in enumerate(self.net.channels):
            setattr(self, f"lin{i}", _LinearHead(c))
        # Constants, not weights: kept out of the state dict so official files map one to one.
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU (~1.25x measured on CPU)
        self.eval()

    def heads(self) -> List[_LinearHead]:
        return [getattr(self, f"lin{i}") for i in range(len(self.net.channels))]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"lpips: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
        n = x.shape[0]
        # One pass over both inputs: larger convolutions run more efficiently than two half-size ones.
        scaled = ((torch.cat([x, y]) - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        feats = self.net(scaled)
        total = x.new_zeros(n)
        for f, head in zip(feats, self.heads()):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fy = f[:n], f[n:]
            total = total + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))
        return total


# ------------------------------------------------------------------------------------------------ weight files

HEAD_FILES = {"alex": "alex.pth", "vgg": "vgg.pth"}
BACKBONE_PATTERNS = {"alex": ("alexnet-owt-*.pth", "alexnet*.pth"), "vgg": ("vgg16-*.pth", "vgg16*.pth")}
COMBINED_PATTERNS = {"alex": ("lpips_alex.safetensors", "lpips_alex.pth"), "vgg": ("lpips_vgg.safetensors", "lpips_vgg.pth")}


def _missing_message(net: str, looked: List[Path], what: str) -> str:
    backbone = "alexnet-owt-7be5be79.pth (torchvision AlexNet)" if net == "alex" else "vgg16-397923af.pth (torchvision VGG16)"
    folders = ", ".join(str(p) for p in dict.fromkeys(looked))
    return (
        f"LPIPS ({net}) needs local weight files and ganedit never downloads any; {what}.\n"
        f"  Needed: (1) the linear heads {HEAD_FILES[net]} from the LPIPS repository (richzhang/PerceptualSimilarity, "
        f"lpips/weights/v0.1/{HEAD_FILES[net]}): a state dict with keys lin0.model.1.weight .. lin4.model.1.weight; "
        f"(2) the ImageNet backbone {backbone}: a torchvision state dict with keys features.<i>.weight/.bias.\n"
        f"  Or one combined state dict named {COMBINED_PATTERNS[net][0]} (ganedit's LPIPS layout, or the lpips "
        f"package's net.slice<k>.<i>.* layout).\n"
        f"  Looked in: {folders}.\n"
        f"  Provide them: copy the files into {cache_dir() / 'lpips'} (the cache folder is $GANEDIT_CACHE, default "
        f"~/.cache/ganedit), or pass --lpips-weights FOLDER (or a combined FILE)."
    )


def convert_lpips_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map any supported key layout (torchvision backbone, official heads, lpips package, ours) to this module's."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(("classifier.", "scaling_layer.")) or key in ("shift", "scale"):
            continue  # ImageNet classifier and LPIPS constants: not part of the metric's weights
        m = re.match(r"^net\.slice\d+\.(\d+)\.(weight|bias)$", key)
        if m:
            key = f"net.features.{m.group(1)}.{m.group(2)}"
        elif key.startswith("features."):
            key = "net." + key
        out[key] = value
    return out


def lpips_from_files(net: str, files: List[Path]) -> LPIPS:
    """An LPIPS model filled from one combined file or from a heads file plus a backbone file."""
    model = LPIPS(net)
    state: Dict[str, torch.Tensor] = {}
    for f in files:
        state.update(convert_lpips_state(read_state_dict(f)))
    load_checked(model, state, " + ".join(str(f) for f in files))
    return model.eval()


def load_lpips(net: str = "alex", weights: Optional["str | os.PathLike[str]"] = None) -> LPIPS:
    """The LPIPS metric with pretrained weights read from local files; never downloads.

    ``weights``: a combined state-dict file, or a folder holding the heads file (``alex.pth``/``vgg.pth``) and the
    torchvision backbone (``alexnet-owt-*.pth``/``vgg16-*.pth``). Without it, ``$GANEDIT_CACHE/lpips`` and
    ``$GANEDIT_CACHE`` are searched. A missing file raises ``MissingWeightsError`` naming it and its layout."""
    if net not in BACKBONES:
        raise ConfigError(f"LPIPS: unknown backbone {net!r}; choose one of {', '.join(BACKBONES)}")
    if weights is not None and Path(weights).is_file():
        return lpips_from_files(net, [Path(weights)])
    if weights is not None and not Path(weights).exists():
        raise MissingWeightsError(_missing_message(net, [Path(weights)], f"the given path {weights} does not exist"))
    folders = search_folders("lpips", weights)
    combined = find_file(folders, COMBINED_PATTERNS[net])
    if combined is not None:
        return lpips_from_files(net, [combined])
    heads = find_file(folders, (HEAD_FILES[net],))
    backbone = find_file(folders, BACKBONE_PATTERNS[net])
    if heads is None or backbone is None:
        absent = " and ".join(name for name, found in ((HEAD_FILES[net], heads), (BACKBONE_PATTERNS[net][0], backbone))
                              if found is None)
        raise MissingWeightsError(_missing_message(net, folders, f"{absent} not found"))
    return lpips_from_files(net, [heads, backbone])


def lpips(x: torch.Tensor, y: torch.Tensor, net: str = "alex", weights: Optional["str | os.PathLike[str]"] = None,
          model: Optional[LPIPS] = None, batch_size: int = 32) -> torch.Tensor:
    """Per-pair LPIPS distances [N] of two image batches in [-1, 1] (loads the pretrained model unless given)."""
    model = model if model is not None else load_lpips(net, weights)
    device = next(model.parameters()).device
    with torch.no_grad():
        out = [model(a.to(device), b.to(device)).cpu() for a, b in zip(x.split(batch_size), y.split(batch_size))]
    return torch.cat(out)


__all__ = ["LPIPS", "AlexNetFeatures", "VGG16Features", "load_lpips", "lpips", "lpips_from_files",
           "convert_lpips_state"]
