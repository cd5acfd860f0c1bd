"""Swapping Autoencoder against the official reference data (conformance/swapae, README §6):
the small official checkpoint loads through ganedit.load, every stored output matches, the official losses are
reproduced, and every key of the four full-size official manifests maps onto the modules built on the meta device."""
from __future__ import annotations

import json

import pytest
import torch

import ganedit
from ganedit.formats import convert_swapae
from ganedit.models.swapae import SwappingAutoencoder, official_architecture
from ganedit.models.swapae import losses as L
from ganedit.models.swapae.discriminators import crops_from_params, random_crops
from ganedit.models.swapae.model import OFFICIAL_DEFAULTS

CODES = dict(atol=1e-5, rtol=1e-4)  # codes and logits (README §6)
IMAGES = dict(atol=1e-4, rtol=1e-4)  # images and features
MANIFESTS = ["official_church256", "official_ffhq512_mountain512", "official_ffhq1024_pretrained", "official_ffhq1024_patchDv7_L1_smallerstructurecode"]




@pytest.fixture(scope="module")
def small(conformance):
    root = conformance / "swapae" / "official_small"
    if not root.is_dir():
        pytest.skip(f"no Swapping Autoencoder vectors at {root}")
    load = lambda name: torch.load(root / name, weights_only=True)  # noqa: E731
    model = ganedit.load(root / "checkpoints" / "sae_small" / "latest_checkpoint.pth")
    return dict(root=root, model=model, inp=load("inputs.pt"), out=load("outputs.pt"), interp=load("interp.pt"), crops=load("dpatch_crops.pt"),
                losses=json.loads((root / "losses.json").read_text()), manifest=json.loads((root / "manifest_small.json").read_text()))


def test_small_checkpoint_converts_with_inferred_architecture(small):
    m = small["model"]
    assert isinstance(m, SwappingAutoencoder)
    # widths inferred from shapes, including the two non-option widths of README §6
    assert m.config["encoder_channels"] == [4, 8, 16, 32, 64, 64, 64]
    assert m.config["generator_head_channels"] == [16, 32] and m.config["generator_up_channels"] == [32, 32, 16, 8]
    assert m.config["discriminator_channels"] == [16, 32, 32, 32, 32, 32] and m.config["image_size"] == 128
    assert m.config["patch_pair_hidden"] == [64, 64, 32] and m.config["patch_size"] == 64
    assert list(m.state_dict()) == list(small["manifest"])  # official key order, no extra keys
    counts = {n: sum(p.numel() for p in getattr(m, n).parameters()) for n in ("E", "G", "D", "Dpatch")}
    assert counts == {"E": 122332, "G": 83639, "D": 111313, "Dpatch": 100437}


@pytest.mark.parametrize("channels_last", [False, True])
def test_encoder_generator_discriminator_outputs(small, channels_last):
    m, inp, out = small["model"], small["inp"], small["out"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x1, x2 = inp["x1"].contiguous(memory_format=fmt), inp["x2"].contiguous(memory_format=fmt)
    with torch.inference_mode():
        mid = m.E.trunk(x1)
        sp_raw, gl_raw = m.E.heads(mid)
        torch.testing.assert_close(sp_raw, out["sp1_prenorm"], **CODES)
        torch.testing.assert_close(gl_raw, out["gl1_prenorm"], **CODES)
        sp1, gl1, feat = m.E(x1, extract_features=True)
        sp2, gl2 = m.encode(x2)
        for name, value in dict(sp1=sp1, gl1=gl1, sp2=sp2, gl2=gl2).items():
            torch.testing.assert_close(value, out[name], **CODES)
        torch.testing.assert_close(feat, out["E_extract_features_x1"], **IMAGES)
        assert torch.allclose(sp1.norm(dim=1), torch.ones(()), atol=1e-5) and torch.allclose(gl1.norm(dim=1), torch.ones(()), atol=1e-5)
        rec, inter = m.G(sp1, gl1, inp["noise"], return_intermediates=True)
        for name in ("SpatialCodeModulation", "HeadResnetBlock0", "HeadResnetBlock1", "UpsamplingResBlock16", "UpsamplingResBlock32"):
            torch.testing.assert_close(inter[name], out[f"G_rec1_after_{name}"], **IMAGES)
        torch.testing.assert_close(rec, out["rec1"], **IMAGES)
        torch.testing.assert_close(m.decode(sp1, gl2, noise=inp["noise"]), out["swap12"], **IMAGES)
        for key, img in (("D_x1", x1), ("D_rec1", out["rec1"]), ("D_swap12", out["swap12"])):
            torch.testing.assert_close(m.D(img.contiguous(memory_format=fmt)), out[key], **CODES)


def test_patch_discriminator_features_and_logits(small):
    m, out, crops = small["model"], small["out"], small["crops"]
    dp = m.Dpatch
    with torch.inference_mode():
        real_agg = dp.extract_features(crops["real_crops_of_x1"], aggregate=True)
        real = dp.extract_features(crops["real_crops_of_x1"])
        target = dp.extract_features(crops["target_crops_of_x1"])
        mix = dp.extract_features(crops["mix_crops_of_swap12"])
        for name, value in dict(real_agg=real_agg, real=real, target=target, mix=mix).items():
            torch.testing.assert_close(value, out[f"Dpatch_feat_{name}"], **IMAGES)
        for ref_name, ref in (("agg", real_agg), ("noagg", real)):
            torch.testing.assert_close(dp.discriminate_features(ref, target), out[f"Dpatch_pred_real_{ref_name}"], **CODES)
            torch.testing.assert_close(dp.discriminate_features(ref, mix), out[f"Dpatch_pred_mix_{ref_name}"], **CODES)


def test_crops_reproduce_official_draws(small):
    inp, out, crops = small["inp"], small["out"], small["crops"]
    for key, seed, source in (("real_crops_of_x1", 100, inp["x1"]), ("target_crops_of_x1", 101, inp["x1"]), ("mix_crops_of_swap12", 102, out["swap12"])):
        torch.manual_seed(seed)
        torch.testing.assert_close(random_crops(source, 8, 64), crops[key], atol=1e-6, rtol=0)
        # the same crops from the recorded parameters (flip (N,), scale and offset (N, 2), channel 0 = x)
        rec = crops["params"][key.split("_")[0]]
        params = {"flip": rec["flip"].view(-1, 1, 1, 1), "scale": rec["scale"].view(-1, 1, 1, 2), "offset": rec["offset"].view(-1, 1, 1, 2)}
        torch.testing.assert_close(crops_from_params(source, params, 64), crops[key], atol=1e-5, rtol=0)


def test_texture_interpolation_matches_official_tool(small):
    m, inp, out, interp = small["model"], small["inp"], small["out"], small["interp"]
    noise0 = {k: v[:1] for k, v in inp["noise"].items()}
    with torch.inference_mode():
        images = m.interpolate_texture(out["sp1"][:1], out["gl1"][:1], out["gl2"][:1], interp["alphas"].tolist(), noise=noise0)
    assert images.shape == (1, 5, 3, 128, 128)
    torch.testing.assert_close(images[0], interp["images"], **IMAGES)


def test_official_loss_functions(small):
    m, inp, crops, ref = small["model"], small["inp"], small["crops"], small["losses"]
    ex, of = ref["explicit"], ref["official_functions"]
    close = lambda a, b: torch.testing.assert_close(a.detach().flatten(), torch.tensor(b).flatten(), atol=1e-6, rtol=1e-4)  # noqa: E731
    out = small["out"]
    close(L.gan_loss(out["D_x1"], True), ex["D_real(D_x1)"])
    close(L.gan_loss(out["D_swap12"], True), ex["G_GAN_mix(D_swap12)x1.0"])
    close(L.gan_loss(out["Dpatch_pred_mix_agg"], False), ex["PatchD_mix(Dpatch_pred_mix_agg)"])
    parts = L.r1_parts(m, inp["x1"], crops["real_crops_of_x1"], crops["target_crops_of_x1"])
    close(parts["image"] + parts["patch"], ex["D_R1 = image_part + patch_part"])
    torch.manual_seed(200)
    for k, v in L.discriminator_losses(m, inp["x1"], noise=inp["noise"]).items():
        close(v, of["compute_discriminator_losses"]["losses"][k])
    torch.manual_seed(201)
    g, metrics = L.generator_losses(m, inp["x1"], noise=inp["noise"])
    assert set(g) == set(of["compute_generator_losses"]["losses"])
    for k, v in g.items():
        close(v, of["compute_generator_losses"]["losses"][k])
    torch.manual_seed(202)
    close(L.r1_loss(m, inp["x1"])["D_R1"], of["compute_R1_loss"]["losses"]["D_R1"])


@pytest.mark.parametrize("name", MANIFESTS)
def test_full_size_manifest_maps_key_for_key(conformance, name):
    manifest = json.loads((conformance / "swapae" / "manifests" / f"{name}.json").read_text())
    shapes = {k: v["shape"] for net in manifest["networks"].values() for k, v in net["keys"].items()}
    shapes.update({k: v["shape"] for k, v in manifest["non_network_keys"].items()})
    options = {k: v for k, v in manifest["options"].items() if k in OFFICIAL_DEFAULTS}
    with torch.device("meta"):
        model = SwappingAutoencoder(**official_architecture(**options))
    sd = model.state_dict()
    assert list(sd) == manifest["key_order"]
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    # the converter infers the same architecture from keys and shapes alone
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    inferred = convert_swapae.infer_config(fake)
    for k, v in inferred.items():
        assert model.config[k] == v, k
    assert model.E.ToGlobalCode[0].weight.shape[0] == manifest["derived"]["texture_code_dim"]
