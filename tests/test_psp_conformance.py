"""pSp and e4e against the official reference data (conformance/stylegan2, README §4-§5): the small official
checkpoints load through ganedit.load, every stored output reproduces, and every key of the full-size
psp_ffhq_encode_1024 / e4e_ffhq_encode_1024 manifests maps onto modules built on the meta device."""
from __future__ import annotations

import json

import pytest
import torch

import ganedit
from ganedit.errors import CheckpointError
from ganedit.formats import convert_psp
from ganedit.formats.convert_stylegan2 import infer_generator_config
from ganedit.models.e4e import E4E
from ganedit.models.psp import PSP

CODES = dict(atol=1e-5, rtol=1e-4)  # codes and logits (README §7)
IMAGES = dict(atol=1e-4, rtol=1e-4)


def _case(conformance, name):
    root = conformance / "stylegan2" / name
    if not root.is_dir():
        pytest.skip(f"no {name} vectors at {root}")
    load = lambda f: torch.load(root / f, weights_only=True)  # noqa: E731
    out = dict(load("vectors.pt"))
    for extra in ("features.pt", "outputs_pooled_avg.pt", "outputs_pooled_noavg.pt"):
        if (root / extra).exists():
            out.update(load(extra))
    x = torch.load(conformance / "stylegan2" / "encoder_inputs" / "images_256.pt", weights_only=True)["x"]
    config = json.loads((root / "config.json").read_text())
    return ganedit.load(root / "checkpoint.pt"), out, x, config


@pytest.fixture(scope="module")
def psp_small(conformance):
    return _case(conformance, "psp_small")


@pytest.fixture(scope="module")
def psp_w_small(conformance):
    return _case(conformance, "psp_w_small")


@pytest.fixture(scope="module")
def e4e_small(conformance):
    return _case(conformance, "e4e_small")


def _official_keys(model, config):
    """The model's encoder./decoder. keys in order with shapes, as the official state_dict lists them."""
    own = {k: list(v.shape) for k, v in model.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    return own, {k: v["shape"] for k, v in config["state_dict_shapes"].items()}



def assert_images_without_latent_avg(model, x: torch.Tensor, out) -> None:
    """The official outputs with start_from_latent_avg off (raw and pooled to 256), shared by pSp and e4e."""
    model.start_from_latent_avg = False
    try:
        torch.testing.assert_close(model(x, resize=False, randomize_noise=False), out["out.img_noavg_raw"], **IMAGES)
        torch.testing.assert_close(model(x, randomize_noise=False), out["out.img_noavg_pooled256"], **IMAGES)
    finally:
        model.start_from_latent_avg = True

def test_psp_small_converts_with_official_layout(psp_small):
    model, _, _, config = psp_small
    assert isinstance(model, PSP) and not isinstance(model, E4E)
    assert model.encoder_type == "GradualStyleEncoder" and model.n_latent == 10
    own, official = _official_keys(model, config)
    assert list(own.items()) == list(official.items())  # same keys, same order, same shapes
    assert model.checkpoint_meta["opts"]["n_styles"] == 10 and "device" not in model.checkpoint_meta["opts"]


def test_psp_small_encoder_features_and_codes(psp_small):
    model, out, x, _ = psp_small
    with torch.no_grad():
        c1, c2, c3 = model.encoder.pyramid(x)
        torch.testing.assert_close(c1, out["out.feat_c1_body6"], **IMAGES)
        torch.testing.assert_close(c2, out["out.feat_c2_body20"], **IMAGES)
        torch.testing.assert_close(c3, out["out.feat_c3_body23"], **IMAGES)
        torch.testing.assert_close(model.encoder(x), out["out.codes_encoder"], **CODES)
        torch.testing.assert_close(model.encode(x), out["out.codes_with_latent_avg"], **CODES)
    torch.testing.assert_close(model.latent_avg, out["latent_avg"], atol=0, rtol=0)


def test_psp_small_images(psp_small):
    model, out, x, _ = psp_small
    with torch.no_grad():
        img, latent = model(x, resize=False, randomize_noise=False, return_latents=True)
        torch.testing.assert_close(img, out["out.img_avg_raw"], **IMAGES)
        torch.testing.assert_close(latent, out["out.latent_returned_avg"], **CODES)
        torch.testing.assert_close(model(x, resize=True, randomize_noise=False), out["out.img_avg_pooled256"], **IMAGES)
        torch.testing.assert_close(model.decode(model.encode(x)), out["out.img_avg_raw"], **IMAGES)
        assert_images_without_latent_avg(model, x, out)


def test_psp_small_input_code_and_style_mixing(psp_small):
    model, out, x, _ = psp_small
    with torch.no_grad():
        img, latent = model(out["in.z_inject"], input_code=True, return_latents=True, randomize_noise=False, resize=False)
        torch.testing.assert_close(latent, out["out.latent_inject"], **CODES)
        torch.testing.assert_close(img, out["out.img_input_code"], **IMAGES)
        for alpha, tag in ((0.5, "alpha0.5"), (None, "replace")):
            img, latent = model(x[:1], latent_mask=[7, 8, 9], inject_latent=out["out.latent_inject"], alpha=alpha,
                                resize=False, randomize_noise=False, return_latents=True)
            torch.testing.assert_close(latent, out[f"out.latent_mix_{tag}"], **CODES)
            torch.testing.assert_close(img, out[f"out.img_mix_{tag}"], **IMAGES)


def test_psp_w_small(psp_w_small):
    model, out, x, config = psp_w_small
    assert model.learn_in_w and model.encoder_type == "BackboneEncoderUsingLastLayerIntoW"
    own, official = _official_keys(model, config)
    assert list(own.items()) == list(official.items())
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x), out["out.codes_encoder"], **CODES)
        wplus = model.encode(x)
        assert wplus.shape == (2, 10, 16)
        torch.testing.assert_close(wplus[:, 0], out["out.codes_with_latent_avg"], **CODES)
        img, latent = model(x, resize=False, randomize_noise=False, return_latents=True)
        torch.testing.assert_close(img, out["out.img_avg_raw"], **IMAGES)
        torch.testing.assert_close(latent, out["out.latent_returned_avg"], **CODES)
        torch.testing.assert_close(model(x[:1], randomize_noise=False), out["out.img_avg_pooled256_first_image"], **IMAGES)
        model.start_from_latent_avg = False
        try:
            torch.testing.assert_close(model(x, resize=False, randomize_noise=False), out["out.img_noavg_raw"], **IMAGES)
        finally:
            model.start_from_latent_avg = True


def test_e4e_small_stages(e4e_small):
    model, out, x, config = e4e_small
    assert isinstance(model, E4E)
    own, official = _official_keys(model, config)
    assert list(own.items()) == list(official.items())
    assert model.encoder.progressive_stage == 18  # loading keeps the constructor's Inference stage
    with torch.no_grad():
        for stage in (0, 3, 7, 18):
            model.set_stage(stage)
            codes = model.encoder(x)
            torch.testing.assert_close(codes, out[f"out.codes_stage{stage}"], **CODES)
            # rows beyond the stage are exactly w0
            assert torch.equal(codes[:, stage + 1:], codes[:, :1].expand_as(codes[:, stage + 1:]))
            if stage == 3:
                img = model(x, resize=False, randomize_noise=False)
                torch.testing.assert_close(img, out["out.img_stage3_avg_raw"], **IMAGES)
        model.set_stage(18)
        torch.testing.assert_close(model.encode(x), out["out.codes_with_latent_avg"], **CODES)
        torch.testing.assert_close(model(x, resize=False, randomize_noise=False), out["out.img_avg_raw"], **IMAGES)
        torch.testing.assert_close(model(x, randomize_noise=False), out["out.img_avg_pooled256"], **IMAGES)
        assert_images_without_latent_avg(model, x, out)
        torch.testing.assert_close(model.latent_discriminator(out["in.w_disc"]), out["out.w_disc_logits"], **CODES)
    disc = {k: list(v.shape) for k, v in model.latent_discriminator.state_dict().items()}
    assert disc == {k: v["shape"] for k, v in config["discriminator_state_dict_shapes"].items()}
    assert model.checkpoint_meta["global_step"] == 36000 and "optimizer" in model.checkpoint_meta["not_converted"]


def test_released_e4e_layout_and_missing_latent_avg(conformance):
    """The released e4e file has only state_dict/opts/latent_avg; without latent_avg the average is recomputed
    with a fixed seed (the official code draws a random one)."""
    obj = torch.load(conformance / "stylegan2" / "e4e_small" / "checkpoint.pt", weights_only=True)
    released = {k: obj[k] for k in ("state_dict", "opts", "latent_avg")}
    model = convert_psp.convert(released)
    assert isinstance(model, E4E) and not hasattr(model, "latent_discriminator")
    torch.testing.assert_close(model.latent_avg, obj["latent_avg"], atol=0, rtol=0)
    bare = {k: obj[k] for k in ("state_dict", "opts")}
    a, b = convert_psp.convert(bare), convert_psp.convert(bare)
    assert torch.equal(a.latent_avg, b.latent_avg) and "latent_avg" in a.checkpoint_meta
    assert torch.allclose(a.latent_avg[0], a.latent_avg[-1])  # one w repeated over the rows
    assert not torch.allclose(a.latent_avg, obj["latent_avg"])  # a real estimate, not the stored tensor


def test_native_round_trip_and_cli_convert(psp_small, conformance, tmp_path):
    from ganedit.cli.main import main

    model, out, x, _ = psp_small
    src = conformance / "stylegan2" / "psp_small" / "checkpoint.pt"
    main(["convert", str(src), str(tmp_path / "native")])
    again = ganedit.load(tmp_path / "native")
    assert isinstance(again, PSP) and again.config == model.config
    assert again.checkpoint_meta["converted_from"] == "eladrich/pixel2style2pixel"
    with torch.no_grad():
        torch.testing.assert_close(again(x, resize=False, randomize_noise=False), out["out.img_avg_raw"], **IMAGES)


def test_broken_psp_files_fail_clearly(conformance, tmp_path):
    obj = torch.load(conformance / "stylegan2" / "psp_small" / "checkpoint.pt", weights_only=True)
    state = dict(obj["state_dict"])
    state.pop("encoder.latlayer1.weight")
    with pytest.raises(CheckpointError, match="latlayer1"):
        convert_psp.convert({**obj, "state_dict": state}, "x.pt")
    opts = dict(obj["opts"], encoder_type="SingleStyleCodeEncoder")
    with pytest.raises(CheckpointError, match="SingleStyleCodeEncoder"):
        convert_psp.convert({**obj, "opts": opts}, "x.pt")


@pytest.mark.parametrize("name", ["psp_ffhq_encode_1024", "e4e_ffhq_encode_1024"])
def test_full_size_manifest_maps(conformance, name):
    path = conformance / "stylegan2" / "manifests" / f"{name}_manifest.json"
    if not path.exists():
        pytest.skip(f"no manifest at {path}")
    manifest = json.loads(path.read_text())
    official = manifest["state_dicts"]["state_dict"]
    # the architecture is inferred from shapes alone, as for a real file
    meta = {k: torch.empty(v["shape"], device="meta") for k, v in official.items()}
    enc = {k[len("encoder."):]: v for k, v in meta.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in meta.items() if k.startswith("decoder.")}
    kind = manifest["opts_example"]["encoder_type"]
    spec = convert_psp.infer_encoder(enc, kind)
    assert spec["input_size"] == 256 and spec["n_styles"] == 18 and spec["depths"] == [64, 128, 256, 512]
    assert spec["num_layers"] == 50 and spec["mode"] == "ir_se" and "units" not in spec
    decoder = infer_generator_config(dec)
    assert decoder["size"] == 1024 and decoder["channel_multiplier"] == 2
    with torch.device("meta"):
        if kind == "Encoder4Editing":
            disc = manifest["state_dicts"]["discriminator_state_dict"]
            model = E4E({k: v for k, v in spec.items() if k != "type"}, decoder, latent_discriminator={"style_dim": 512, "n_mlp": 4})
            own_disc = {k: list(v.shape) for k, v in model.latent_discriminator.state_dict().items()}
            assert list(own_disc.items()) == [(k, v["shape"]) for k, v in disc.items()]
        else:
            model = PSP(spec, decoder)
    own = [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items() if k.startswith(("encoder.", "decoder."))]
    assert own == [(k, v["shape"], v["dtype"]) for k, v in official.items()]
    kinds = {k: ("buffer" if k in dict(model.named_buffers()) else "parameter") for k, *_ in own}
    assert kinds == {k: v["kind"] for k, v in official.items()}
    assert tuple(model.latent_avg.shape) == tuple(manifest["checkpoint_top_level"]["latent_avg"]["shape"])
