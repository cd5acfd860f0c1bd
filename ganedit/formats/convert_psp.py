"""Official pSp / e4e ``.pt`` files -> ganedit's PSP / E4E (conformance/stylegan2/README.md §4, §5).

A file is ``{'state_dict': encoder.* + decoder.*, 'opts': dict, ['latent_avg']}``; e4e training files add
``global_step``, ``optimizer``, ``best_val_loss`` and ``discriminator_state_dict`` (the latent discriminator,
which is kept). Widths, unit counts, the number of styles, the encoder's input size and channels, and the
decoder are read from the key shapes, so small and task models convert with no flags. ``opts`` says which
encoder class and options (start_from_latent_avg, learn_in_w, task) the file was trained with.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ganedit.errors import CheckpointError

# Official dataset_type -> ganedit task (pSp's data_configs).
DATASET_TASKS = {
    "ffhq_encode": "encode", "celebs_sketch_to_face": "sketch", "celebs_seg_to_face": "segmentation",
    "celebs_super_resolution": "super_resolution", "ffhq_frontalize": "frontalize",
}
SUPPORTED_ENCODERS = ("GradualStyleEncoder", "BackboneEncoderUsingLastLayerIntoW", "BackboneEncoderUsingLastLayerIntoWPlus", "Encoder4Editing")
TRAINING_ENTRIES = ("global_step", "optimizer", "best_val_loss", "discriminator_optimizer_state_dict")


def _opts(obj: Mapping[str, Any]) -> Dict[str, Any]:
    opts = obj.get("opts")
    if isinstance(opts, argparse.Namespace):
        return dict(vars(opts))
    return dict(opts) if isinstance(opts, Mapping) else {}


def detect(obj: Any) -> bool:
    if not (isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping) and "opts" in obj):
        return False
    keys = [str(k) for k in obj["state_dict"]]
    return any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys)


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def infer_backbone(enc: Mapping[str, torch.Tensor], where: Any = None) -> Dict[str, Any]:
    """IR / IR-SE backbone arguments (input_nc, widths, unit counts, mode) from an encoder state dict."""
    from ganedit.nn.irse import UNITS_PER_BLOCK

    try:
        stem = enc["input_layer.0.weight"]
        n_units = _count(enc, r"body\.(\d+)\.res_layer\.1\.weight")
        unit_depths = [int(enc[f"body.{i}.res_layer.1.weight"].shape[0]) for i in range(n_units)]
    except KeyError as exc:
        raise CheckpointError(where, f"pSp encoder state dict is incomplete (missing {exc})") from None
    depths: List[int] = []
    units: List[int] = []
    for d in unit_depths:  # a block is a run of units of one depth
        if depths and depths[-1] == d:
            units[-1] += 1
        else:
            depths.append(d)
            units.append(1)
    if len(depths) != 4:
        raise CheckpointError(where, f"IR backbone with {len(depths)} blocks (depths {depths}); pSp's has 4")
    spec: Dict[str, Any] = {"input_nc": int(stem.shape[1]), "input_width": int(stem.shape[0]), "depths": depths}
    standard = [n for n, u in UNITS_PER_BLOCK.items() if list(u) == units]
    spec.update({"num_layers": standard[0]} if standard else {"num_layers": 50, "units": units})
    fc1 = enc.get("body.0.res_layer.5.fc1.weight")
    spec["mode"] = "ir_se" if fc1 is not None else "ir"
    if fc1 is not None:
        spec["se_reduction"] = int(unit_depths[0] // fc1.shape[0])
    return spec


def infer_encoder(enc: Mapping[str, torch.Tensor], kind: str, where: Any = None) -> Dict[str, Any]:
    """{"type": kind, ...constructor arguments} for one of SUPPORTED_ENCODERS."""
    if kind not in SUPPORTED_ENCODERS:
        raise CheckpointError(where, f"encoder type {kind!r} is not supported (supported: {', '.join(SUPPORTED_ENCODERS)})")
    spec = {"type": kind, **infer_backbone(enc, where)}
    try:
        if kind in ("GradualStyleEncoder", "Encoder4Editing"):
            spec["n_styles"] = _count(enc, r"styles\.(\d+)\.linear\.weight")
            spec["style_dim"] = int(enc["styles.0.linear.weight"].shape[0])
            n_convs = _count(enc, r"styles\.0\.convs\.(\d+)\.weight")
            spec["input_size"] = 16 * 2**n_convs  # the coarsest map (input/16) is brought to 1x1 by stride-2 convs
        elif kind == "BackboneEncoderUsingLastLayerIntoW":
            spec["style_dim"] = int(enc["linear.weight"].shape[0])
        else:
            spec["style_dim"] = int(enc["output_layer_2.3.weight"].shape[0])
            spec["n_styles"] = int(enc["linear.weight"].shape[0]) // spec["style_dim"]
    except KeyError as exc:
        raise CheckpointError(where, f"{kind} state dict is incomplete (missing {exc})") from None
    return spec


def _jsonable_opts(opts: Mapping[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in opts.items():
        if k == "device":  # the training machine's 'cuda:0': meaningless here
            continue
        out[str(k)] = v if isinstance(v, (str, int, float, bool, list, type(None))) else str(v)
    return out


def _encoder_kind(opts: Mapping[str, Any], enc: Mapping[str, torch.Tensor]) -> Tuple[str, bool]:
    """(encoder class, is_e4e). Old files may lack encoder_type; e4e opts have stylegan_size and no n_styles."""
    kind = opts.get("encoder_type")
    is_e4e = kind == "Encoder4Editing" or ("stylegan_size" in opts and "n_styles" not in opts)
    if not kind:
        kind = "Encoder4Editing" if is_e4e else ("GradualStyleEncoder" if "styles.0.linear.weight" in enc else
                                                   "BackboneEncoderUsingLastLayerIntoW")
    return str(kind), is_e4e


def convert(obj: Mapping[str, Any], path: "os.PathLike[str] | str | None" = None) -> torch.nn.Module:
    """Build a :class:`ganedit.models.psp.PSP` or :class:`ganedit.models.e4e.E4E` holding the file's weights."""
    from ganedit.formats.convert_stylegan2 import infer_generator_config
    from ganedit.formats.native import load_state_dict_checked
    from ganedit.models.e4e import E4E
    from ganedit.models.psp import PSP

    opts = _opts(obj)
    state = obj["state_dict"]
    enc, dec = _strip(state, "encoder."), _strip(state, "decoder.")
    kind, is_e4e = _encoder_kind(opts, enc)
    encoder = infer_encoder(enc, kind, path)
    decoder = infer_generator_config(dec, path)
    start = bool(opts.get("start_from_latent_avg", False))
    learn_in_w = bool(opts.get("learn_in_w", False)) and not is_e4e
    latent_avg = obj.get("latent_avg")
    meta: Dict[str, Any] = {
        "converted_from": "omertov/encoder4editing" if is_e4e else "eladrich/pixel2style2pixel",
        "source": str(path) if path else None,
        "opts": _jsonable_opts(opts),
    }
    for key in ("global_step", "best_val_loss"):
        if isinstance(obj.get(key), (int, float)):
            meta[key] = obj[key]
    dropped = [k for k in TRAINING_ENTRIES if k in obj and k not in meta]
    if dropped:
        meta["not_converted"] = dropped

    if isinstance(latent_avg, torch.Tensor):
        latent_avg = latent_avg.reshape(-1, latent_avg.shape[-1])
        rows = int(latent_avg.shape[0])
    else:
        latent_avg, rows = None, (1 if learn_in_w else None)
    disc = obj.get("discriminator_state_dict") if is_e4e else None
    if is_e4e:
        disc_args = None
        if isinstance(disc, Mapping) and "mlp.0.weight" in disc:
            disc_args = {"style_dim": int(disc["mlp.0.weight"].shape[1]), "n_mlp": _count(disc, r"mlp\.(\d+)\.weight")}
        spec = {k: v for k, v in encoder.items() if k != "type"}
        model = E4E(spec, decoder, start_from_latent_avg=start, latent_discriminator=disc_args, latent_avg_rows=rows)
    else:
        task = DATASET_TASKS.get(str(opts.get("dataset_type", "")), "encode")
        model = PSP(encoder, decoder, start_from_latent_avg=start, learn_in_w=learn_in_w, latent_avg_rows=rows, task=task,
                    label_nc=int(opts.get("label_nc") or 0))

    full = {f"encoder.{k}": v for k, v in enc.items()}
    full.update({f"decoder.{k}": v for k, v in dec.items()})
    if hasattr(model, "latent_discriminator"):
        full.update({f"latent_discriminator.{k}": v for k, v in disc.items()})
    if latent_avg is None:
        # Absent from the file: the official code would use None (pSp) or a random mean_latent (e4e). A fixed
        # seed keeps the conversion reproducible; without start_from_latent_avg it is never used.
        model.decoder.load_state_dict(dec)
        latent_avg = model.decoder.mean_latent(10000, seed=0).expand(model.latent_avg.shape[0], -1)
        meta["latent_avg"] = "not in the file: mean of 10000 mapped z (seed 0)"
    full["latent_avg"] = latent_avg
    load_state_dict_checked(model, full, path)
    model.eval()
    model.checkpoint_meta = meta
    return model
