"""NVlabs stylegan2-ada-pytorch ``.pkl`` files -> ganedit's StyleGAN2, without running any of their code.

NVlabs snapshots are plain pickles of a dict (``G``, ``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs``)
whose networks are ``torch_utils.persistence`` classes: each object is pickled as a call to
``_reconstruct_persistent_obj(meta)`` where ``meta`` carries the *source code* of its module and the object's
``__dict__``; the official loader ``exec``s that source. Here a restricted unpickler answers every global the file
names from a fixed table of harmless stand-ins (:data:`ALLOWED_GLOBALS`): persistent objects become inert
:class:`PersistentObject` records (class name + state; the source is kept as text and never run), tensor
storages are read with ``torch.load(weights_only=True)``, and any other global (``os.system``, ``builtins.eval``,
a TensorFlow-era ``dnnlib.tflib`` network, ...) stops the load with a CheckpointError naming it.

The parameters and buffers are then collected from the records' ``_parameters``/``_buffers`` and mapped to
rosinality's layout (the same facts as rosinality's ``convert_weight.py`` for the TensorFlow release: the
``b{res}.conv0`` weights are used as they are by a transposed convolution, ``affine`` is the modulation, ``bias_init``
1 is stored, not added). Supported: unconditional ``skip`` generators with ``lrelu`` and z_dim == w_dim, as
stylegan2-ada's configs make them. Refused with a reason: StyleGAN3 (alias-free) generators, conditional ones,
other architectures. A resnet discriminator (the stylegan2-ada default) is converted too; any other is left out
with a note in the model's metadata (editing never needs it).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ganedit.errors import CheckpointError

# ------------------------------------------------------------------------------------------- safe unpickling


@dataclass
class PersistentObject:
    """What ``torch_utils.persistence`` pickled for one network object: its class name and ``__dict__``.
    ``module_src`` is the embedded source, kept as text for inspection; nothing here ever runs it."""

    class_name: str
    state: Dict[str, Any]
    module_src: str = field(repr=False, default="")

    def child(self, name: str) -> Optional["PersistentObject"]:
        mod = (self.state.get("_modules") or {}).get(name)
        return mod if isinstance(mod, PersistentObject) else None

    def tensors(self, prefix: str = "") -> Dict[str, torch.Tensor]:
        """Every parameter and buffer below this object, with dotted names (like ``state_dict()``)."""
        out: Dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    out[prefix + name] = value
        for name, mod in (self.state.get("_modules") or {}).items():
            if isinstance(mod, PersistentObject):
                out.update(mod.tensors(f"{prefix}{name}."))
        return out


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict with attribute access): a plain dict subclass, no code."""


def _persistent(meta: Mapping[str, Any]) -> PersistentObject:
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object without a class record")
    state = meta.get("state") or {}
    return PersistentObject(str(meta.get("class_name")), dict(state), str(meta.get("module_src") or ""))


def _storage_from_bytes(data: bytes) -> Any:
    # torch's own loader, restricted to tensors and containers: a storage cannot smuggle code in either
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(f"an embedded tensor storage is not plain data ({str(exc).splitlines()[0][:200]})") from None


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, backward_hooks: Any = None, *state: Any) -> torch.Tensor:
    return data  # a Parameter's data is all a conversion needs; hooks are never restored


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    """numpy's dtype, scalar and array constructors (numpy scalars appear in the objects' __dict__, e.g. weight
    gains). They build plain values from bytes; torch's weights_only loader trusts the same ones."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a torch dependency here
        return {}
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    found: Dict[Tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "scalar")] = scalar
        found[(module, "_reconstruct")] = _reconstruct
    return found


ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "device"): torch.device,
    **_numpy_globals(),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only through :data:`ALLOWED_GLOBALS`; never imports a module the file names."""

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not used by NVlabs pickles")


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


def read_nvlabs_pickle(path: "str | os.PathLike[str]") -> Any:
    """Unpickle an NVlabs ``.pkl`` into plain containers, tensors and :class:`PersistentObject` records."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such file" if not p.exists() else "is not a file")
    try:
        with open(p, "rb") as handle:
            return _RestrictedUnpickler(handle).load()
    except _Refused as exc:
        hint = ""
        if exc.module.startswith("dnnlib.tflib"):
            hint = (" This is a TensorFlow-era StyleGAN pickle: convert it to a PyTorch one with NVlabs' "
                    "stylegan2-ada-pytorch legacy.py first.")
        raise CheckpointError(p, f"refused to load: the pickle calls {exc.module}.{exc.name}, which is not on the "
                                 f"list of plain-data constructors ganedit accepts; nothing from the file was run.{hint}") from None
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, OSError, MemoryError, zipfile.BadZipFile) as exc:
        raise CheckpointError(p, f"not a readable NVlabs pickle (truncated or corrupt?): {type(exc).__name__}: {str(exc)[:300]}") from None


def looks_like_nvlabs_pickle(path: "str | os.PathLike[str]") -> bool:
    """A plain (non-zip) pickle that names NVlabs' ``torch_utils`` or ``dnnlib`` near its start (the networks'
    reconstruct function comes before their embedded source, so 64 KiB always reach it)."""
    p = Path(path)
    if not p.is_file() or zipfile.is_zipfile(p):
        return False
    with open(p, "rb") as handle:
        head = handle.read(1 << 16)
    return head[:1] == b"\x80" and (b"torch_utils" in head or b"dnnlib" in head)


# ------------------------------------------------------------------------------------------- mapping


def _refuse(path: Any, problem: str) -> CheckpointError:
    return CheckpointError(path, problem)


def _is_stylegan3(G: PersistentObject) -> bool:
    synthesis = G.child("synthesis")
    return synthesis is not None and (synthesis.child("input") is not None
                                      or any(k.startswith("L0_") for k in (synthesis.state.get("_modules") or {})))


def _filter_taps(f: torch.Tensor) -> List[float]:
    """1-D taps of a setup_filter 2-D kernel (normalised outer product k k^T / sum(k)^2)."""
    taps = f.double().sum(0) if f.dim() == 2 else f.double()
    taps = taps / taps.sum()
    default = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8
    if taps.shape == default.shape and torch.allclose(taps, default):
        return [1.0, 3.0, 3.0, 1.0]  # the usual filter, written as everywhere else in ganedit
    return [float(v) for v in taps]


def generator_config(G: PersistentObject, where: Any = None) -> Dict[str, Any]:
    """ganedit Generator arguments for an NVlabs generator record, or a CheckpointError saying what is unsupported."""
    if _is_stylegan3(G):
        raise _refuse(where, "this is a StyleGAN3 (alias-free) generator; ganedit converts StyleGAN2 / stylegan2-ada "
                             "networks only (StyleGAN3's Fourier-feature input and filtered layers have no StyleGAN2 "
                             "equivalent)")
    s = G.state
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    if mapping is None or synthesis is None or G.class_name != "Generator":
        raise _refuse(where, f"G_ema is a {G.class_name} without mapping/synthesis networks: not a stylegan2-ada generator")
    if int(s.get("c_dim", 0)) != 0:
        raise _refuse(where, f"conditional generator (c_dim={s.get('c_dim')}): ganedit's StyleGAN2 has no label input")
    z_dim, w_dim = int(s["z_dim"]), int(s["w_dim"])
    if int(s.get("img_channels", 3)) != 3:
        raise _refuse(where, f"generator makes {s.get('img_channels')}-channel images; only RGB is supported")
    n_mlp = int(mapping.state["num_layers"])
    fc = [mapping.child(f"fc{i}") for i in range(n_mlp)]
    if any(layer is None for layer in fc):
        raise _refuse(where, "mapping network is incomplete")
    widths = {int(layer.state["_parameters"]["weight"].shape[0]) for layer in fc}
    if z_dim != w_dim or widths != {w_dim}:
        raise _refuse(where, f"mapping network of widths z={z_dim}, layers={sorted(widths)}, w={w_dim}: ganedit's StyleGAN2 "
                             "needs them all equal")
    if any(layer.state.get("activation") != "lrelu" for layer in fc):
        raise _refuse(where, "mapping activation is not lrelu")
    lr_mlp = float(fc[0].state.get("bias_gain", 0.01))
    size = int(s["img_resolution"])
    channels: Dict[str, int] = {}
    blur: Optional[List[float]] = None
    res = 4
    while res <= size:
        block = synthesis.child(f"b{res}")
        if block is None:
            raise _refuse(where, f"synthesis network has no block b{res}")
        if block.state.get("architecture", "skip") != "skip":
            raise _refuse(where, f"synthesis architecture {block.state.get('architecture')!r}: only 'skip' (the StyleGAN2 "
                                 "default) maps to ganedit's generator")
        conv1 = block.child("conv1")
        for layer in (block.child("conv0"), conv1):
            if layer is not None and layer.state.get("activation", "lrelu") != "lrelu":
                raise _refuse(where, f"b{res} uses activation {layer.state.get('activation')!r}, not lrelu")
        channels[str(res)] = int(conv1.state["_parameters"]["weight"].shape[0])
        filt = block.state.get("_buffers", {}).get("resample_filter")
        if isinstance(filt, torch.Tensor) and res > 4:
            blur = _filter_taps(filt)
        res *= 2
    return {"size": size, "style_dim": w_dim, "n_mlp": n_mlp, "lr_mlp": lr_mlp, "channels": channels,
            "blur_kernel": blur or [1.0, 3.0, 3.0, 1.0]}


def _styled(dst: str, layer: PersistentObject, out: Dict[str, torch.Tensor]) -> None:
    """One SynthesisLayer -> a rosinality StyledConv (weights, modulation, noise strength, bias)."""
    p = layer.state["_parameters"]
    out[f"{dst}.conv.weight"] = p["weight"].unsqueeze(0)
    aff = layer.child("affine").state["_parameters"]
    out[f"{dst}.conv.modulation.weight"] = aff["weight"]
    out[f"{dst}.conv.modulation.bias"] = aff["bias"]
    out[f"{dst}.activate.bias"] = p["bias"]
    strength = p.get("noise_strength")
    out[f"{dst}.noise.weight"] = strength.reshape(1) if isinstance(strength, torch.Tensor) else torch.zeros(1)


def _torgb(dst: str, layer: PersistentObject, out: Dict[str, torch.Tensor]) -> None:
    p = layer.state["_parameters"]
    out[f"{dst}.conv.weight"] = p["weight"].unsqueeze(0)
    aff = layer.child("affine").state["_parameters"]
    out[f"{dst}.conv.modulation.weight"] = aff["weight"]
    out[f"{dst}.conv.modulation.bias"] = aff["bias"]
    out[f"{dst}.bias"] = p["bias"].reshape(1, -1, 1, 1)


def _noise(layer: PersistentObject, res: int) -> torch.Tensor:
    const = (layer.state.get("_buffers") or {}).get("noise_const")
    if isinstance(const, torch.Tensor):
        return const.reshape(1, 1, res, res)
    return torch.zeros(1, 1, res, res)  # use_noise=False: strength is 0 anyway


def generator_state(G: PersistentObject, config: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The generator's tensors under rosinality's names (the blur kernels excepted: the config rebuilds them)."""
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    out: Dict[str, torch.Tensor] = {}
    for i in range(int(config["n_mlp"])):
        p = mapping.child(f"fc{i}").state["_parameters"]
        out[f"style.{i + 1}.weight"] = p["weight"]
        out[f"style.{i + 1}.bias"] = p["bias"]
    b4 = synthesis.child("b4")
    out["input.input"] = b4.state["_parameters"]["const"].unsqueeze(0)
    _styled("conv1", b4.child("conv1"), out)
    _torgb("to_rgb1", b4.child("torgb"), out)
    out["noises.noise_0"] = _noise(b4.child("conv1"), 4)
    for j in range(int(math.log2(int(config["size"]))) - 2):
        res = 2 ** (j + 3)
        block = synthesis.child(f"b{res}")
        _styled(f"convs.{2 * j}", block.child("conv0"), out)
        _styled(f"convs.{2 * j + 1}", block.child("conv1"), out)
        _torgb(f"to_rgbs.{j}", block.child("torgb"), out)
        out[f"noises.noise_{2 * j + 1}"] = _noise(block.child("conv0"), res)
        out[f"noises.noise_{2 * j + 2}"] = _noise(block.child("conv1"), res)
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def _load_generator(target: torch.nn.Module, G: PersistentObject, config: Mapping[str, Any], where: Any) -> None:
    from ganedit.formats.native import state_dict_mismatch

    own = target.state_dict()
    state = generator_state(G, config)
    # blur kernels are buffers derived from blur_kernel; take the freshly built ones
    state.update({k: v for k, v in own.items() if k.endswith(".kernel") and k not in state})
    problem = state_dict_mismatch(own, state)
    if problem:
        raise CheckpointError(where, f"NVlabs generator does not map onto ganedit's StyleGAN2: {problem}")
    target.load_state_dict(state, strict=True)


def discriminator_config(D: PersistentObject) -> Tuple[Optional[Dict[str, Any]], str]:
    """(ganedit Discriminator arguments, "") for a resnet stylegan2-ada discriminator, else (None, the reason)."""
    s = D.state
    if D.class_name != "Discriminator":
        return None, f"D is a {D.class_name}"
    if int(s.get("c_dim", 0)) != 0:
        return None, "conditional discriminator"
    size = int(s["img_resolution"])
    channels: Dict[str, int] = {}
    blur: Optional[List[float]] = None
    res = size
    while res > 4:
        block = D.child(f"b{res}")
        if block is None or block.state.get("architecture") != "resnet":
            return None, f"block b{res} is not a resnet block"
        channels[str(res)] = int(block.child("conv0").tensors()["weight"].shape[0])
        filt = (block.state.get("_buffers") or {}).get("resample_filter")
        if isinstance(filt, torch.Tensor):
            blur = _filter_taps(filt)
        res //= 2
    epilogue = D.child("b4")
    if epilogue is None or epilogue.child("mbstd") is None or int(epilogue.child("mbstd").state.get("num_channels", 1)) != 1:
        return None, "the epilogue's minibatch-stddev layer is not the StyleGAN2 one (1 channel)"
    channels["4"] = int(epilogue.child("conv").tensors()["weight"].shape[0])
    group = epilogue.child("mbstd").state.get("group_size")
    config: Dict[str, Any] = {"size": size, "channels": channels, "blur_kernel": blur or [1.0, 3.0, 3.0, 1.0],
                              "stddev_group": int(group) if group is not None else 1 << 30}
    in_channels = int(D.child(f"b{size}").child("fromrgb").tensors()["weight"].shape[1])
    if in_channels != 3:
        config["in_channels"] = in_channels
    return config, ""


def discriminator_state(D: PersistentObject) -> Dict[str, torch.Tensor]:
    """The discriminator's tensors under rosinality's names (resnet blocks: conv0 -> conv1, conv1 -> conv2)."""
    size = int(D.state["img_resolution"])
    out: Dict[str, torch.Tensor] = {}
    rgb = D.child(f"b{size}").child("fromrgb").tensors()
    out["convs.0.0.weight"], out["convs.0.1.bias"] = rgb["weight"], rgb["bias"]
    res, i = size, 1
    while res > 4:
        block = D.child(f"b{res}")
        conv0, conv1 = block.child("conv0").tensors(), block.child("conv1").tensors()
        out[f"convs.{i}.conv1.0.weight"], out[f"convs.{i}.conv1.1.bias"] = conv0["weight"], conv0["bias"]
        out[f"convs.{i}.conv2.1.weight"], out[f"convs.{i}.conv2.2.bias"] = conv1["weight"], conv1["bias"]
        out[f"convs.{i}.skip.1.weight"] = block.child("skip").tensors()["weight"]
        res, i = res // 2, i + 1
    epilogue = D.child("b4")
    conv, fc, last = (epilogue.child(n).tensors() for n in ("conv", "fc", "out"))
    out["final_conv.0.weight"], out["final_conv.1.bias"] = conv["weight"], conv["bias"]
    out["final_linear.0.weight"], out["final_linear.0.bias"] = fc["weight"], fc["bias"]
    out["final_linear.1.weight"], out["final_linear.1.bias"] = last["weight"], last["bias"]
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def _load_discriminator(target: torch.nn.Module, D: PersistentObject, where: Any) -> None:
    from ganedit.formats.native import state_dict_mismatch

    own = target.state_dict()
    state = discriminator_state(D)
    state.update({k: v for k, v in own.items() if k.endswith(".kernel") and k not in state})
    problem = state_dict_mismatch(own, state)
    if problem:
        raise CheckpointError(where, f"NVlabs discriminator does not map onto ganedit's: {problem}")
    target.load_state_dict(state, strict=True)


def _notes(G: PersistentObject) -> List[str]:
    """Settings that ganedit reproduces only approximately, said once in the converted model's metadata."""
    notes = []
    synthesis = G.child("synthesis")
    clamp = None
    fp16 = False
    for name, block in (synthesis.state.get("_modules") or {}).items():
        if isinstance(block, PersistentObject):
            fp16 = fp16 or bool(block.state.get("use_fp16"))
            conv1 = block.child("conv1")
            if conv1 is not None and conv1.state.get("conv_clamp") is not None:
                clamp = conv1.state.get("conv_clamp")
    if clamp is not None:
        notes.append(f"conv_clamp={clamp} is not applied (it only cuts activations beyond +-{clamp}, which fp32 "
                     "inference of a trained network does not reach)")
    if fp16:
        notes.append("the highest-resolution blocks ran in fp16 in the original; ganedit computes them in fp32")
    return notes


def convert_object(obj: Any, path: "str | os.PathLike[str] | None" = None) -> torch.nn.Module:
    """A :class:`ganedit.models.stylegan2.StyleGAN2` from an unpickled NVlabs snapshot (``G_ema`` [+ ``G``])."""
    from ganedit.models.stylegan2 import StyleGAN2

    if isinstance(obj, PersistentObject):
        obj = {"G_ema": obj}
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"NVlabs pickle holds a {type(obj).__name__}, expected a dict with G_ema")
    G_ema = obj.get("G_ema") if isinstance(obj.get("G_ema"), PersistentObject) else obj.get("G")
    if not isinstance(G_ema, PersistentObject):
        raise CheckpointError(path, f"no G_ema generator in this pickle (keys: {sorted(map(str, obj))[:8]})")
    config = generator_config(G_ema, path)
    G = obj.get("G") if isinstance(obj.get("G"), PersistentObject) and obj.get("G") is not G_ema else None
    if G is not None:
        generator_config(G, path)  # same checks for the training generator
    d_config, d_note = (discriminator_config(obj["D"]) if isinstance(obj.get("D"), PersistentObject)
                        else (None, "no D in the file"))
    model = StyleGAN2(generator=config, discriminator=d_config, with_g=G is not None, has_latent_avg=True)
    _load_generator(model.g_ema, G_ema, config, path)
    if G is not None:
        _load_generator(model.g, G, config, path)
    if d_config is not None:
        _load_discriminator(model.d, obj["D"], path)
    w_avg = (G_ema.child("mapping").state.get("_buffers") or {}).get("w_avg")
    if isinstance(w_avg, torch.Tensor):
        model.latent_avg.copy_(w_avg.float().reshape(model.latent_avg.shape))
    else:  # a mapping network without w_avg tracking: estimate it reproducibly, as for rosinality's train.py files
        model.latent_avg.copy_(model.g_ema.mean_latent(4096, seed=0).reshape(model.latent_avg.shape))
    model.eval()
    model.checkpoint_meta = {  # type: ignore[attr-defined]
        "converted_from": "NVlabs/stylegan2-ada-pytorch pickle (read without running its code)",
        "source": str(path) if path else None, "notes": _notes(G_ema),
        "discriminator": "converted" if d_config is not None else f"not converted: {d_note}",
    }
    return model


def convert_file(path: "str | os.PathLike[str]") -> torch.nn.Module:
    """Read and convert an NVlabs ``.pkl``; nothing in the file is executed."""
    return convert_object(read_nvlabs_pickle(path), path)
