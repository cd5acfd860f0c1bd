"""pix2pix / CycleGAN against the official reference data (conformance/translation): every vector in eval mode and
in the official test mode (masks replayed), BatchNorm buffer updates, the legacy files, the full-size key layouts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ganedit
from ganedit.formats.convert_translation import infer_architecture, patch_official_state
from ganedit.formats.foreign import safe_torch_load
from ganedit.formats.native import registered_models
from ganedit.models.pix2pix import define_D, define_G, replay_dropout, set_test_mode



VECTORS = [
    ("unet_256_ngf4", "latest_net_G.pth"),
    ("unet_256_ngf4", "legacy_no_num_batches_tracked_net_G.pth"),
    ("unet_128_ngf8", "latest_net_G.pth"),
    ("resnet_9blocks_ngf8", "latest_net_G_A.pth"),
    ("resnet_9blocks_ngf8", "legacy_instancenorm_stats_net_G_A.pth"),
    ("resnet_6blocks_ngf8", "latest_net_G_A.pth"),
    ("patchgan_basic_ndf8_pix2pix", "latest_net_D.pth"),
    ("patchgan_basic_ndf8_cyclegan", "latest_net_D_A.pth"),
    ("pixel_ndf8_pix2pix", "latest_net_D.pth"),
]


def _vector(conformance: Path, folder: str):
    root = conformance / "translation" / "vectors" / folder
    return root, torch.load(root / "io.pt", weights_only=True)


def _atol(io) -> float:
    # README: 1e-5 for generator outputs (tanh range), 1e-4 for discriminator logits. InstanceNorm is computed as a
    # group norm here (faster on CPU), which differs from PyTorch's instance norm in the last bits only.
    return 1e-5 if io["config"]["kind"] == "G" else 1e-4


def test_vector_list_is_complete(conformance):
    """Guards against a vector being added to the data without a test for it."""
    index = json.loads((conformance / "translation" / "vectors" / "index.json").read_text())
    assert set(index["vectors"]) == {folder for folder, _ in VECTORS}
    for folder, _ in VECTORS:
        on_disk = {p.name for p in (conformance / "translation" / "vectors" / folder).glob("*.pth")}
        assert on_disk <= {name for f, name in VECTORS if f == folder}


@pytest.mark.parametrize("folder,filename", VECTORS)
def test_official_file_loads_and_matches(conformance, folder, filename):
    root, io = _vector(conformance, folder)
    model = ganedit.load(root / filename)
    legacy = filename.startswith("legacy")
    config = io["config"]
    for key in ("input_nc", "output_nc", "ngf", "ndf", "norm"):
        if key in config:
            assert model.config[key] == config[key], key
    if "use_dropout" in config and "resnet" in config.get("netG", ""):
        assert model.config["use_dropout"] == config["use_dropout"]
    atol = _atol(io)
    with torch.no_grad():
        # eval mode (official test.py --eval)
        torch.testing.assert_close(model(io["input"]), io["output_eval"], atol=atol, rtol=0)
        # official test mode: train mode, batch statistics, the recorded dropout masks replayed
        set_test_mode(model, "official")
        assert set(io["dropout_masks"]) == set(n for n, _ in model.named_modules() if isinstance(_, torch.nn.Dropout))
        with replay_dropout(model, io["dropout_masks"]):
            out = model(io["input"])
    torch.testing.assert_close(out, io["output_train_mode_default"], atol=atol, rtol=0)
    state = model.state_dict()
    for key, expected in io["bn_buffers_after_one_train_mode_forward"].items():
        if legacy and key.endswith("num_batches_tracked"):
            assert int(state[key]) == 1  # the official loader fills a missing counter with 0
            continue
        torch.testing.assert_close(state[key], expected, atol=1e-6, rtol=1e-5)
    if io["config"]["kind"] == "D":
        logits = io["output_eval"]
        losses = io["gan_losses"]
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        assert abs(bce(logits, torch.ones_like(logits)).item() - losses["vanilla_real_on_output_eval"]) < 1e-5
        assert abs(((logits - 0) ** 2).mean().item() - losses["lsgan_fake_on_output_eval"]) < 1e-5


def test_native_roundtrip_needs_no_flags(conformance, tmp_path):
    root, io = _vector(conformance, "unet_128_ngf8")
    model = ganedit.load(root / "latest_net_G.pth")
    ganedit.save(model, tmp_path / "g")
    again = ganedit.load(tmp_path / "g")
    assert again.config == model.config and again.config["num_downs"] == 7
    with torch.no_grad():
        assert torch.equal(again(io["input"]), model(io["input"]))


def _manifest_model(config):
    if config["kind"] == "G":
        norm = "instance" if config["norm"] == "legacy_instance" else config["norm"]
        return define_G(config["netG"], config["input_nc"], config["output_nc"], config["ngf"], norm, config["use_dropout"])
    return define_D(config["netD"], config["input_nc"], config["ndf"], config.get("n_layers_D", 3), config["norm"])


def test_fullsize_manifests_map(conformance):
    data = json.loads((conformance / "translation" / "manifests" / "manifests_fullsize.json").read_text())
    assert len(data["manifests"]) >= 12
    for name, manifest in data["manifests"].items():
        config = manifest["config"]
        entries = manifest["entries"]
        with torch.device("meta"):
            model = _manifest_model(config)
            file_state = {e["key"]: torch.empty(e["shape"], dtype=getattr(torch, e["dtype"])) for e in entries}
        # the converter's view of the file: the same architecture inferred from keys and shapes alone
        model_type, inferred, _ = infer_architecture(file_state)
        assert model_type == model.model_type, name
        expect = {k: v for k, v in model.config.items() if k not in ("init_type", "init_gain")}
        if model_type == "pix2pix.UnetGenerator":
            expect["use_dropout"] = True  # not visible in the keys: the official default is assumed
        assert inferred == expect, name
        # after the official patches (drop InstanceNorm extras) the keys, order, shapes and kinds are exactly ours
        patched = patch_official_state(model, file_state)
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        ours = [(k, list(v.shape), str(v.dtype).replace("torch.", ""), "parameter" if k in params else "buffer") for k, v in model.state_dict().items()]
        theirs = [(e["key"], e["shape"], e["dtype"], e["kind"]) for e in entries if e["key"] in patched]
        assert ours == theirs, name
        assert all(k in buffers for k, *_ in ours if _[-1] == "buffer")
        if config["norm"] == "legacy_instance":
            assert len(entries) - len(patched) == 69
        else:
            assert len(patched) == len(entries) == manifest["num_state_dict_entries"]
        if "num_parameters" in manifest:
            assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"], name


def test_missing_and_wrong_keys_are_clear_errors(conformance, tmp_path):
    from ganedit.errors import CheckpointError

    root, _ = _vector(conformance, "resnet_6blocks_ngf8")
    state = safe_torch_load(root / "latest_net_G_A.pth")
    del state[list(state)[-1]]  # the final conv bias
    bad = tmp_path / "latest_net_G_A.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="missing"):
        ganedit.load(bad)
    assert "cyclegan.ResnetGenerator" in registered_models()
