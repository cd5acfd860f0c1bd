"""Identity similarity with ArcFace IR-SE50, as pSp and e4e use it for faces (their ``criteria/id_loss.py``).

The network is the IR-SE50 ``Backbone(input_size=112, num_layers=50, mode='ir_se', drop_ratio=0.6)`` of
TreB1eN/InsightFace_Pytorch, defined here with the key names of its state dict so the official pretrained file
``model_ir_se50.pth`` loads as it is:
- ``input_layer``: 3x3 conv 3 -> 64 (no bias), BatchNorm2d, PReLU;
- ``body.0`` .. ``body.23``: IR-SE bottleneck units (3, 4, 14, 3 per block; depths 64, 128, 256, 512; SE reduction 16),
  the units of ``ganedit.nn.irse``;
- ``output_layer``: BatchNorm2d(512), Dropout, Flatten, Linear(512*7*7 -> 512), BatchNorm1d(512);
and the output is L2-normalised (a unit embedding per image).

The identity loss embeds the face region of each image: rows 35:223, columns 32:220 of a 256-px image (the box
scales with the image for other sizes, :func:`face_box`), average-pooled to 112x112, and returns
``mean(1 - <e(output), e(target)>)``; the target's embedding carries no gradient.
Nothing is downloaded: :func:`load_arcface` reads a local file (see ``ganedit.metrics.weights``).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganedit.metrics.weights import load_checked, locate_weights, read_state_dict
from ganedit.errors import CheckpointError
from ganedit.nn.irse import DEPTHS, backbone_units, input_layer, make_body

FACE_BOX_256 = (35, 223, 32, 220)  # top, bottom, left, right of pSp's face crop on a 256-px image
EMBEDDING = 512
INPUT_SIZE = 112
WEIGHT_PATTERNS = ("model_ir_se50.pth", "*ir_se50*.pth", "*ir_se50*.pt", "*ir_se50*.safetensors")


def face_box(size: int) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) of the face crop on a ``size``-px image: pSp's 256-px box scaled proportionally."""
    return tuple(int(round(v * size / 256)) for v in FACE_BOX_256)  # type: ignore[return-value]


def face_crop(images: torch.Tensor) -> torch.Tensor:
    """The face region of NCHW images (square images; the box of :func:`face_box` for their side)."""
    top, bottom, left, right = face_box(images.shape[-1])
    return images[:, :, top:bottom, left:right]


class ArcFaceIRSE50(nn.Module):
    """IR-SE50 face recognition network: [N, 3, 112, 112] images in [-1, 1] -> [N, 512] unit embeddings.

    The defaults are the official network; smaller widths or unit counts (read from a file's shapes by
    :func:`arcface_arch`) give stand-ins with the same key layout. Built with random weights; :func:`load_arcface`
    fills it from a file. Its parameters do not require gradients (a fixed loss network; gradients still reach
    its input)."""

    def __init__(self, width: int = 64, depths: Sequence[int] = DEPTHS, units: Sequence[int] = (3, 4, 14, 3),
                 se_reduction: int = 16, embedding: int = EMBEDDING, drop_ratio: float = 0.6) -> None:
        super().__init__()
        self.arch = {"width": width, "depths": list(depths), "units": list(units), "se_reduction": se_reduction,
                     "embedding": embedding}
        self.input_layer = input_layer(3, width)
        self.body = make_body(backbone_units(50, depths, width, units), "ir_se", se_reduction)
        side = INPUT_SIZE // 2 ** len(depths)  # one stride-2 unit per block: 7 for 112 px
        self.output_layer = nn.Sequential(nn.BatchNorm2d(depths[-1]), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(depths[-1] * side * side, embedding), nn.BatchNorm1d(embedding))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def arcface_arch(state: Dict[str, torch.Tensor], path: "str | os.PathLike[str]") -> Dict[str, Any]:
    """The constructor arguments of :class:`ArcFaceIRSE50` that fit a state dict in the official layout (the
    official file gives the defaults: width 64, depths 64/128/256/512, units 3/4/14/3, SE reduction 16). A block
    starts where the depth changes or a unit has a conv shortcut, so a stand-in needs a distinct depth per block."""
    try:
        width = state["input_layer.0.weight"].shape[0]
        depths: List[int] = []
        units: List[int] = []
        for i in range(len([k for k in state if k.endswith(".res_layer.1.weight") and k.startswith("body.")])):
            depth = state[f"body.{i}.res_layer.1.weight"].shape[0]
            if i == 0 or depth != depths[-1] or f"body.{i}.shortcut_layer.0.weight" in state:
                depths.append(depth)
                units.append(0)
            units[-1] += 1
        fc1 = state["body.0.res_layer.5.fc1.weight"].shape
        return {"width": int(width), "depths": depths, "units": units, "se_reduction": int(depths[0] // fc1[0]),
                "embedding": int(state["output_layer.3.weight"].shape[0])}
    except (KeyError, IndexError) as exc:
        raise CheckpointError(path, f"not an ArcFace IR-SE state dict (input_layer.*, body.<i>.res_layer.*, "
                                    f"output_layer.*): missing {exc}") from None


class CosineEmbeddingLoss(nn.Module):
    """``mean(1 - cos)`` between unit embeddings of ``output`` and ``target`` (the target's without gradient), the
    form of pSp's identity loss and e4e's MoCo loss; subclasses say what ``embed`` reads."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def similarity(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pair cosine similarity [N] of the two batches' embeddings (target without gradient)."""
        with torch.no_grad():
            want = self.embed(target)
        return (self.embed(output) * want).sum(dim=1)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1 - self.similarity(output, target)).mean()


class IdentityLoss(CosineEmbeddingLoss):
    """``mean(1 - cos)`` between the ArcFace embeddings of the face crops of ``output`` and ``target``."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(F.adaptive_avg_pool2d(face_crop(images), (INPUT_SIZE, INPUT_SIZE)))


def load_arcface(weights: Optional["str | os.PathLike[str]"] = None) -> ArcFaceIRSE50:
    """ArcFace IR-SE50 filled from a local file: ``weights`` (a file or a folder), else ``$GANEDIT_CACHE/identity``
    and ``$GANEDIT_CACHE``. Read with ``torch.load(weights_only=True)``; a missing file raises MissingWeightsError."""
    path = locate_weights(
        weights, "identity", WEIGHT_PATTERNS, name="the identity loss needs the ArcFace IR-SE50 weights",
        needed="model_ir_se50.pth (pSp's pretrained_models, from TreB1eN/InsightFace_Pytorch): a state dict with keys "
               "input_layer.*, body.0-23.*, output_layer.* (Backbone(112, 50, 'ir_se'))",
        how_to_pass="pass --set id_weights=FILE")
    state = read_state_dict(path)
    net = ArcFaceIRSE50(**arcface_arch(state, path))
    # files saved by torch < 0.4.1 have no BatchNorm num_batches_tracked; the forward does not use it
    load_checked(net, state, path, ignore_suffixes=("num_batches_tracked",))
    return net.eval()


def identity_similarity(x: torch.Tensor, y: torch.Tensor, weights: Optional["str | os.PathLike[str]"] = None,
                        loss: Optional[IdentityLoss] = None, batch_size: int = 32) -> torch.Tensor:
    """Per-pair identity similarity [N] (cosine of ArcFace embeddings of the face crops) of two image batches."""
    loss = loss if loss is not None else IdentityLoss(load_arcface(weights))
    device = next(loss.parameters()).device
    with torch.no_grad():
        out = [loss.similarity(a.to(device), b.to(device)).cpu() for a, b in zip(x.split(batch_size), y.split(batch_size))]
    return torch.cat(out)


__all__ = ["ArcFaceIRSE50", "arcface_arch", "IdentityLoss", "load_arcface", "identity_similarity", "face_box", "face_crop"]
