"""Official pix2pix / CycleGAN checkpoints (junyanz/pytorch-CycleGAN-and-pix2pix) -> ganedit models.

An official file is a bare ``state_dict`` (possibly saved from CUDA tensors; ``safe_torch_load`` maps it to the CPU)
with no options stored. The architecture is read from the keys and shapes instead
(conformance/translation/checkpoint_format.md):

* U-Net: keys under ``model.model.``; depth = number of nested down-convs; ngf / in / out channels from the first
  down-conv and the last up-conv. Dropout leaves no key, so the official default (on) is assumed and reported.
* ResNet generator: ``model.<i>.conv_block.`` keys; n_blocks = number of such i; a 4-D ``conv_block.6.weight``
  means dropout (it shifts the second conv from index 5 to 6).
* PatchGAN: ``model.<i>`` convs with 4x4 kernels; n_layers = number of convs - 2. PixelGAN: ``net.<i>`` 1x1 convs.
* norm: BatchNorm leaves weight/bias/running stats; InstanceNorm leaves nothing but gives the preceding conv a
  bias; "none" leaves neither.

Loading follows the official loader: ``_metadata`` is ignored, InstanceNorm ``running_mean`` / ``running_var`` /
``num_batches_tracked`` of old CycleGAN files are dropped, a BatchNorm without ``num_batches_tracked`` (pre-0.4.1
files) gets 0, and everything else must match exactly. The converted model's ``config`` holds every inferred
option, so ``ganedit.save`` writes a native checkpoint that never needs a flag.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ganedit.errors import CheckpointError, GaneditError

_LEAF = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_PATCHGAN_KEY = re.compile(r"model\.(\d+)\." + _LEAF + r"$")
_PIXEL_KEY = re.compile(r"net\.(\d+)\." + _LEAF + r"$")
_RESNET_KEY = re.compile(r"model\.(\d+)\.(conv_block\.(\d+)\.)?" + _LEAF + r"$")
_UNET_KEY = re.compile(r"model\.model\.(\d+\.)(model\.\d+\.)*" + _LEAF + r"$")
_INSTANCE_EXTRAS = ("running_mean", "running_var", "num_batches_tracked")


def _tensor_dict(obj: Any) -> Optional["OrderedDict[str, torch.Tensor]"]:
    """The state dict as a plain ordered dict of tensors (``_metadata`` dropped, an optional ``module.`` prefix of
    third-party DataParallel saves stripped), or None when ``obj`` is not one."""
    if not isinstance(obj, dict) or not obj:
        return None
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        return None
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):
        return OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return OrderedDict(obj.items())


# A file is recognised by its anchor key and the pattern of (nearly) all its keys; up to this many keys outside
# the pattern are tolerated at detection so that convert() can name them instead of "no converter recognises".
_MAX_STRAY_KEYS = 3


def _classify(state: Dict[str, torch.Tensor]) -> Tuple[Optional[str], list]:
    """(kind, keys outside that kind's pattern); kind None when no layout fits."""
    candidates = []
    if "model.model.0.weight" in state:
        candidates.append(("unet", _UNET_KEY))
    if any(".conv_block." in k for k in state):
        candidates.append(("resnet", _RESNET_KEY))
    first = state.get("model.0.weight")
    if first is not None and first.dim() == 4 and tuple(first.shape[-2:]) == (4, 4):
        candidates.append(("patchgan", _PATCHGAN_KEY))
    first = state.get("net.0.weight")
    if first is not None and first.dim() == 4 and tuple(first.shape[-2:]) == (1, 1):
        candidates.append(("pixel", _PIXEL_KEY))
    for kind, pattern in candidates:
        stray = [k for k in state if not pattern.match(k)]
        if len(stray) <= _MAX_STRAY_KEYS and len(stray) < len(state) // 2:
            return kind, stray
    return None, []


def _kind(state: Dict[str, torch.Tensor]) -> Optional[str]:
    return _classify(state)[0]


def detect(obj: Any) -> bool:
    """True for a junyanz pix2pix / CycleGAN network file (G, G_A/G_B, D, D_A/D_B)."""
    state = _tensor_dict(obj)
    return state is not None and _kind(state) is not None


def _norm_from(state: Dict[str, torch.Tensor], norm_weight: str, conv_bias: str) -> str:
    if norm_weight in state:
        return "batch"
    return "instance" if conv_bias in state else "none"


def infer_architecture(state: Dict[str, torch.Tensor]) -> Tuple[str, Dict[str, Any], Dict[str, str]]:
    """(model_type, constructor config, assumptions) for an official state dict; assumptions name each option
    that the keys cannot determine and the official default used for it."""
    kind = _kind(state)
    assumed: Dict[str, str] = {}
    if kind == "unet":
        first = state["model.model.0.weight"]
        num_downs, prefix = 1, "model.model.1"
        while f"{prefix}.model.1.weight" in state:
            num_downs += 1
            prefix += ".model.3"
        assumed["use_dropout"] = "True: U-Net dropout leaves no key in the file; pix2pix's default (dropout on) is used"
        config = {
            "input_nc": int(first.shape[1]),
            "output_nc": int(state["model.model.3.weight"].shape[1]),
            "num_downs": num_downs,
            "ngf": int(first.shape[0]),
            "norm": _norm_from(state, "model.model.1.model.2.weight", "model.model.0.bias"),
            "use_dropout": True,
            "upsample": "transposed",  # the junyanz networks have no other
        }
        return "pix2pix.UnetGenerator", config, assumed
    if kind == "resnet":
        first = state["model.1.weight"]
        blocks = sorted({int(k.split(".")[1]) for k in state if ".conv_block." in k})
        if blocks != list(range(10, 10 + len(blocks))):
            raise CheckpointError(None, f"ResNet blocks at unexpected positions model.{blocks}: expected model.10 onwards")
        convs = [(int(k.split(".")[1]), v) for k, v in state.items() if _RESNET_KEY.match(k) and ".conv_block." not in k and k.endswith(".weight") and v.dim() == 4]
        last_conv = max(convs, key=lambda item: item[0])[1]
        second = state.get(f"model.{blocks[0]}.conv_block.6.weight")
        config = {
            "input_nc": int(first.shape[1]),
            "output_nc": int(last_conv.shape[0]),
            "ngf": int(first.shape[0]),
            "n_blocks": len(blocks),
            "norm": _norm_from(state, "model.2.weight", "model.1.bias"),
            "use_dropout": bool(second is not None and second.dim() == 4),
            "upsample": "transposed",
        }
        return "cyclegan.ResnetGenerator", config, assumed
    if kind == "patchgan":
        first = state["model.0.weight"]
        n_convs = sum(1 for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)
        config = {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "n_layers": n_convs - 2,
                  "norm": _norm_from(state, "model.3.weight", "model.2.bias")}
        return "pix2pix.NLayerDiscriminator", config, assumed
    if kind == "pixel":
        first = state["net.0.weight"]
        config = {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "norm": _norm_from(state, "net.3.weight", "net.2.bias")}
        return "pix2pix.PixelDiscriminator", config, assumed
    raise CheckpointError(None, "not a pix2pix / CycleGAN network file")


def patch_official_state(model: nn.Module, state: Dict[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """What the official loader does before its strict load: drop InstanceNorm running statistics (and their
    counters), and give a BatchNorm that lacks ``num_batches_tracked`` a zero counter."""
    modules = dict(model.named_modules())
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        owner, _, leaf = key.rpartition(".")
        module = modules.get(owner)
        if isinstance(module, nn.InstanceNorm2d) and leaf in _INSTANCE_EXTRAS and not module.track_running_stats:
            continue
        out[key] = value
    for name, module in modules.items():
        if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and f"{name}.num_batches_tracked" not in out:
            out[f"{name}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def convert(obj: Any, path: "Path | str | None" = None) -> nn.Module:
    """Build the ganedit network for an official state dict and load it (strictly, after the official patches)."""
    from ganedit.formats.native import load_state_dict_checked, registered_models
    import ganedit.models.cyclegan  # noqa: F401  (registers the classes)
    import ganedit.models.pix2pix  # noqa: F401

    state = _tensor_dict(obj)
    kind, stray = _classify(state) if state is not None else (None, [])
    if kind is None:
        raise CheckpointError(path, "not a pix2pix / CycleGAN network file (expected the official state-dict keys)")
    if stray:
        names = ", ".join(repr(k) for k in stray)
        raise CheckpointError(path, f"unexpected key{'s' if len(stray) > 1 else ''} {names} in a junyanz {kind} network file "
                                    "(not a key of the official network)")
    try:
        model_type, config, assumed = infer_architecture(state)
        model = registered_models()[model_type](**config)
    except CheckpointError as exc:
        raise CheckpointError(path, exc.problem) from None
    except GaneditError as exc:
        raise CheckpointError(path, f"inferred architecture cannot be built: {exc}") from None
    load_state_dict_checked(model, patch_official_state(model, state), path or "<state dict>")
    model.eval()
    model.checkpoint_meta = {  # type: ignore[attr-defined]
        "source": str(path) if path else None,
        "format": "junyanz/pytorch-CycleGAN-and-pix2pix",
        "inferred": dict(config),
        "assumed": assumed,
    }
    return model


def find_experiment_files(folder: "Path | str", epoch: str = "latest") -> Dict[str, Path]:
    """The generator files of an official checkpoints/<name>/ folder: {"G": ...} or {"G_A": ..., "G_B": ...}."""
    folder = Path(folder)
    found = {name: folder / f"{epoch}_net_{name}.pth" for name in ("G", "G_A", "G_B")}
    return {name: p for name, p in found.items() if p.is_file()}


def load_experiment(folder: "Path | str", epoch: str = "latest") -> nn.Module:
    """Load an official experiment folder: G_A + G_B become a GeneratorPair (both directions), G alone a generator."""
    from ganedit.formats.foreign import safe_torch_load
    from ganedit.models.cyclegan import GeneratorPair

    files = find_experiment_files(folder, epoch)
    if "G_A" in files and "G_B" in files:
        g_a = convert(safe_torch_load(files["G_A"]), files["G_A"])
        g_b = convert(safe_torch_load(files["G_B"]), files["G_B"])
        pair = GeneratorPair.of(g_a, g_b).eval()
        pair.checkpoint_meta = {"G_A": g_a.checkpoint_meta, "G_B": g_b.checkpoint_meta}  # type: ignore[attr-defined]
        return pair
    for name in ("G", "G_A", "G_B"):
        if name in files:
            return convert(safe_torch_load(files[name]), files[name])
    raise CheckpointError(folder, f"no ganedit config.json and no official {epoch}_net_G*.pth generator files in this folder")
