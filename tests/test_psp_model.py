"""pSp / e4e features on tiny random models: encode/decode surface, multi-modal style mixing, ReStyle refinement,
e4e progressive stages, save/load, and the `invert` / `psp` commands, each checked on what it outputs."""
from __future__ import annotations

import pytest
import torch

import ganedit
from ganedit.edit.latents import load_latents
from ganedit.errors import ConfigError
from ganedit.formats import convert_psp
from ganedit.models.e4e import E4E
from ganedit.models.psp import PSP, parse_rows

DECODER = {"size": 16, "style_dim": 8, "n_mlp": 2, "channels": {"4": 8, "8": 8, "16": 8}}  # n_latent 6


def tiny_encoder(input_nc: int = 3, **extra):
    return {"type": "GradualStyleEncoder", "input_nc": input_nc, "input_width": 4, "depths": [4, 6, 8, 10], "units": [1, 2, 1, 1],
            "n_styles": 6, "style_dim": 8, "input_size": 32, "se_reduction": 2, **extra}


def tiny_psp(**kwargs) -> PSP:
    torch.manual_seed(1)
    model = PSP(kwargs.pop("encoder", tiny_encoder()), DECODER, **kwargs).eval()
    with torch.no_grad():
        model.latent_avg.copy_(model.decoder.mean_latent(256, seed=3).expand_as(model.latent_avg))
    return model


def test_encode_decode_surface():
    model = tiny_psp()
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8) * 2 - 1, size=32, mode="bilinear", align_corners=False)
    x = smooth
    with torch.no_grad():
        w = model.encode(x)
        assert w.shape == (2, 6, 8)
        torch.testing.assert_close(w, model.encoder(x) + model.latent_avg)
        # larger inputs are resized to the encoder's size, as the official Resize transform does
        big = torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)
        small = model.to_encoder_input(big)
        assert small.shape == (2, 3, 32, 32) and (small - x).abs().mean() < 0.05
        torch.testing.assert_close(model.encode(big), model.encoder(small) + model.latent_avg)
        img = model.decode(w)
        assert img.shape == (2, 3, 16, 16)
        torch.testing.assert_close(img, model.generator.synthesis(w, "const"))
        torch.testing.assert_close(model(x, resize=False, randomize_noise=False), img)
        assert model(x, randomize_noise=False).shape == (2, 3, 256, 256)  # official face_pool
    with pytest.raises(ConfigError, match=r"\[B, 3, 32, 32\]"):
        model.encoder(torch.zeros(1, 3, 48, 48))


def test_style_mixing_rows_alpha_and_seed():
    model = tiny_psp()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        own = model.encode(x)
        images, mixed = model.style_mix(x, 3, "4-5", alpha=None, seed=7)
        assert images.shape == (2, 3, 3, 16, 16) and mixed.shape == (2, 3, 6, 8)
        z = torch.randn(3, 8, generator=torch.Generator().manual_seed(7))
        inject = model.decoder.mapping(z)
        for k in range(3):
            torch.testing.assert_close(mixed[:, k, :4], own[:, :4])  # coarse rows are the input's
            torch.testing.assert_close(mixed[:, k, 4:], inject[k].expand(2, 2, 8))  # fine rows from the k-th random w
            torch.testing.assert_close(images[:, k], model.decode(mixed[:, k]))
        assert not torch.allclose(images[:, 0], images[:, 1])  # different outputs per input
        _, blended = model.style_mix(x, 3, [5], alpha=0.25, seed=7)
        torch.testing.assert_close(blended[:, :, 5], 0.25 * inject.unsqueeze(0) + 0.75 * own[:, 5].unsqueeze(1))
        torch.testing.assert_close(blended[:, :, :5], own[:, :5].unsqueeze(1).expand(-1, 3, -1, -1))
        same, _ = model.style_mix(x, 3, "4-5", seed=7)
        other, _ = model.style_mix(x, 3, "4-5", seed=8)
        assert torch.equal(same, images) and not torch.allclose(other, images)


def test_parse_rows():
    assert parse_rows("8-10,2", 18) == [2, 8, 9, 10]
    assert parse_rows([3, 1], 6) == [1, 3] and parse_rows(None, 6) is None
    with pytest.raises(ConfigError, match="outside"):
        parse_rows("4-7", 6)
    with pytest.raises(ConfigError, match="8-17"):
        parse_rows("a-b", 6)


def test_restyle_steps_add_residuals_from_the_average():
    model = tiny_psp(encoder=tiny_encoder(input_nc=6), restyle=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        steps = model.restyle_steps(x, 3)
        assert len(steps) == 3
        w = model.average_wplus(2)
        current = model.decode(w)
        for w_k, img_k in steps:
            feedback = torch.nn.functional.interpolate(current, size=32, mode="bilinear", align_corners=False)
            expected = w + model.encoder(torch.cat([x, feedback], 1))
            torch.testing.assert_close(w_k, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(img_k, model.decode(w_k))
            w, current = w_k, img_k
        assert not torch.allclose(steps[0][1], steps[2][1])  # the image changes from step to step
        torch.testing.assert_close(model.encode(x), model.restyle_steps(x, 5)[-1][0])  # official inference default
        three = tiny_psp(encoder=tiny_encoder(input_nc=6), restyle=True, restyle_iters=3)
        torch.testing.assert_close(three.encode(x), three.restyle_steps(x, 3)[-1][0])  # the steps it was trained with
        assert three.config["restyle_iters"] == 3
    with pytest.raises(ConfigError, match="ReStyle"):
        tiny_psp().restyle_steps(x, 2)


def test_learn_in_w_encoder_broadcasts_one_w():
    enc = {"type": "BackboneEncoderUsingLastLayerIntoW", "input_nc": 3, "input_width": 4, "depths": [4, 6, 8, 10],
           "units": [1, 1, 1, 1], "style_dim": 8, "input_size": 32, "se_reduction": 2}
    model = tiny_psp(encoder=enc, learn_in_w=True)
    assert model.latent_avg.shape == (1, 8)
    with torch.no_grad():
        w = model.encode(torch.zeros(1, 3, 32, 32))
    assert w.shape == (1, 6, 8) and torch.equal(w[:, 0], w[:, 5])


def test_wplus_encoder_into_wplus():
    enc = {"type": "BackboneEncoderUsingLastLayerIntoWPlus", "input_nc": 3, "input_width": 4, "depths": [4, 6, 8, 10],
           "units": [1, 1, 1, 1], "style_dim": 8, "n_styles": 6, "input_size": 32, "se_reduction": 2}
    model = tiny_psp(encoder=enc)
    with torch.no_grad():
        w = model.encode(torch.rand(2, 3, 32, 32))
    assert w.shape == (2, 6, 8) and not torch.allclose(w[:, 0], w[:, 5])


def test_e4e_stage_controls_active_offsets(tmp_path):
    torch.manual_seed(2)
    model = E4E({k: v for k, v in tiny_encoder().items() if k != "type"}, DECODER, latent_discriminator={"style_dim": 8, "n_mlp": 4}).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        full = model.encoder(x)
        model.set_stage(0)
        w_only = model.encoder(x)
        assert torch.equal(w_only, full[:, :1].expand_as(full))  # stage 0: one w in every row
        model.set_stage(2)
        part = model.encoder(x)
        torch.testing.assert_close(part[:, :3], full[:, :3])
        assert torch.equal(part[:, 3:], full[:, :1].expand(-1, 3, -1))
        assert model.latent_discriminator(full[0]).shape == (6, 1)
    with pytest.raises(ConfigError, match="stage"):
        model.set_stage(19)
    ganedit.save(model, tmp_path / "e4e")
    again = ganedit.load(tmp_path / "e4e")
    assert isinstance(again, E4E) and again.encoder.progressive_stage == 18
    with torch.no_grad():
        torch.testing.assert_close(again.encoder(x), full)


def _official_file(model: PSP, path, opts):
    """Write ``model`` as the official Coach would: prefixed state_dict, opts, latent_avg."""
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    torch.save({"state_dict": state, "opts": opts, "latent_avg": model.latent_avg.clone()}, path)


def test_official_task_file_converts(tmp_path):
    """A segmentation model (label_nc one-hot input) round-trips through the official layout."""
    model = tiny_psp(encoder=tiny_encoder(input_nc=5), task="segmentation", label_nc=5)
    _official_file(model, tmp_path / "seg.pt", {"encoder_type": "GradualStyleEncoder", "dataset_type": "celebs_seg_to_face",
                                                   "label_nc": 5, "input_nc": 5, "start_from_latent_avg": True, "n_styles": 6})
    again = ganedit.load(tmp_path / "seg.pt")
    assert again.task == "segmentation" and again.label_nc == 5 and again.encoder.input_nc == 5
    assert again.encoder.units == (1, 2, 1, 1) and again.input_size == 32
    x = torch.rand(1, 5, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.encode(x), model.encode(x))


def _write_images(folder, n=2, size=40):
    from ganedit.data.io import write_image

    folder.mkdir()
    for i in range(n):
        write_image(torch.rand(1, 3, size, size) * 2 - 1, folder / f"img{i}.png")


def test_invert_cli_writes_reconstructions_and_latents(tmp_path):
    from ganedit.cli.main import main
    from ganedit.data.io import read_image

    model = tiny_psp()
    ganedit.save(model, tmp_path / "enc")
    _write_images(tmp_path / "in")
    main(["invert", "--model", str(tmp_path / "enc"), str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    codes = load_latents(tmp_path / "out" / "latents.safetensors", model.decoder)
    assert codes.names == ["img0", "img1"] and codes.wplus.shape == (2, 6, 8)
    with torch.no_grad():
        x = read_image(tmp_path / "in" / "img1.png", 32, allow_upscale=True)
        torch.testing.assert_close(codes.wplus[1:], model.encode(x), atol=1e-5, rtol=1e-5)
        recon = model.decode(codes.wplus[1:])
    written = read_image(tmp_path / "out" / "img1.png")
    assert written.shape == (1, 3, 16, 16)
    assert (written - recon.clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit rounding only


def test_psp_cli_mix_and_restyle(tmp_path):
    from ganedit.cli.main import main

    ganedit.save(tiny_psp(), tmp_path / "enc")
    ganedit.save(tiny_psp(encoder=tiny_encoder(input_nc=6), restyle=True), tmp_path / "restyle")
    _write_images(tmp_path / "in")
    main(["psp", "--model", str(tmp_path / "enc"), str(tmp_path / "in"), "-o", str(tmp_path / "mix"),
          "--mix", "3", "--mix-alpha", "0.5", "--latent-mask", "3-5"])
    mixed = load_latents(tmp_path / "mix" / "latents_mix.safetensors")
    base = load_latents(tmp_path / "mix" / "latents.safetensors")
    assert len(mixed) == 6 and mixed.names[:3] == ["img0_mix00", "img0_mix01", "img0_mix02"]
    torch.testing.assert_close(mixed.wplus[:3, :3], base.wplus[:1, :3].expand(3, -1, -1))
    assert sorted(p.name for p in (tmp_path / "mix").glob("img0_mix*.png")) == [f"img0_mix0{k}.png" for k in range(3)]
    main(["psp", "--model", str(tmp_path / "restyle"), str(tmp_path / "in"), "-o", str(tmp_path / "rs"), "--iters", "3"])
    assert sorted(p.name for p in (tmp_path / "rs").glob("img1_iter*.png")) == ["img1_iter0.png", "img1_iter1.png", "img1_iter2.png"]
    with pytest.raises(SystemExit) as exc:
        main(["psp", "--model", str(tmp_path / "enc"), str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--iters", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["psp", "--model", str(tmp_path / "enc"), str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--task", "sketch"])


def test_converter_detects_only_psp_layouts():
    assert not convert_psp.detect({"g_ema": {}, "latent_avg": torch.zeros(4)})
    assert not convert_psp.detect({"state_dict": {"encoder.a": torch.zeros(1)}})  # no opts, no decoder
    assert convert_psp.detect({"state_dict": {"encoder.a": torch.zeros(1), "decoder.b": torch.zeros(1)}, "opts": {}})


def test_task_inputs_for_sketch_segmentation_and_inpaint(tmp_path):
    import numpy as np
    from PIL import Image

    from ganedit.cli.invert import task_input
    from ganedit.data.io import write_image

    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[8:24, 4:12] = 2
    labels[0:4, :] = 4
    Image.fromarray(labels, "L").save(tmp_path / "seg.png")
    seg_model = tiny_psp(encoder=tiny_encoder(input_nc=5), task="segmentation", label_nc=5)
    onehot = task_input(seg_model, tmp_path / "seg.png", "segmentation")
    assert onehot.shape == (1, 5, 32, 32) and torch.equal(onehot.sum(1), torch.ones(1, 32, 32))
    assert torch.equal(onehot[0].argmax(0), torch.from_numpy(labels).long())
    labels[0, 0] = 7
    Image.fromarray(labels, "L").save(tmp_path / "bad.png")
    with pytest.raises(ganedit.errors.ImageError, match="outside the model's 5 classes"):
        task_input(seg_model, tmp_path / "bad.png", "segmentation")

    image = torch.rand(1, 3, 32, 32) * 2 - 1
    write_image(image, tmp_path / "img.png")
    sketch = task_input(tiny_psp(encoder=tiny_encoder(input_nc=1)), tmp_path / "img.png", "sketch")
    assert sketch.shape == (1, 1, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 10:20, 10:20] = 1
    inp = task_input(tiny_psp(encoder=tiny_encoder(input_nc=4)), tmp_path / "img.png", "inpaint", mask)
    assert inp.shape == (1, 4, 32, 32) and torch.equal(inp[:, 3:], mask)
    assert torch.all(inp[:, :3, 10:20, 10:20] == 0) and inp[:, :3, :5].abs().sum() > 0
    with pytest.raises(ConfigError, match="--mask"):
        task_input(tiny_psp(encoder=tiny_encoder(input_nc=4)), tmp_path / "img.png", "inpaint")


def test_psp_inpaint_keeps_the_known_pixels_and_fills_the_hole(tmp_path):
    """`ganedit psp --task inpaint` writes the input's pixels outside the mask and the decoder's inside it (the raw
    decoder image beside it); --decoder-only writes the decoder image alone."""
    import numpy as np
    from PIL import Image

    from ganedit.cli.main import main
    from ganedit.data.io import read_image
    from ganedit.models.psp import keep_known_pixels

    model = tiny_psp(encoder=tiny_encoder(input_nc=4), task="inpaint")
    ganedit.save(model, tmp_path / "inp")
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    ganedit.data.io.write_image(image[0], tmp_path / "img.png")
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:10, 6:12] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    main(["psp", "--model", str(tmp_path / "inp"), str(tmp_path / "img.png"), "--mask", str(tmp_path / "mask.png"),
          "-o", str(tmp_path / "out")])
    out = read_image(tmp_path / "out" / "img.png", 16)
    decoded = read_image(tmp_path / "out" / "img_decoded.png", 16)
    given = read_image(tmp_path / "img.png", 16)
    hole = torch.from_numpy(mask > 0)[None, None].expand(1, 3, -1, -1)
    step = 2 / 255 + 1e-6  # one 8-bit level
    assert (out - given)[~hole].abs().max() <= step and (out - decoded)[hole].abs().max() <= step
    assert (decoded - given)[~hole].abs().max() > 10 * step  # the decoder alone does not reproduce the known pixels
    main(["psp", "--model", str(tmp_path / "inp"), str(tmp_path / "img.png"), "--mask", str(tmp_path / "mask.png"),
          "-o", str(tmp_path / "raw"), "--decoder-only"])
    assert not (tmp_path / "raw" / "img_decoded.png").exists()
    torch.testing.assert_close(read_image(tmp_path / "raw" / "img.png", 16), decoded)
    with pytest.raises(ConfigError, match="inpaint input"):
        keep_known_pixels(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_back_projection_makes_super_resolution_agree_with_its_input(tmp_path):
    """`ganedit psp --task super_resolution --back-projection`: the output's box downsampling matches the low-res file
    (the raw decoder image, written beside, does not); a file whose side does not divide the output is refused."""
    import torch.nn.functional as F

    from ganedit.cli.main import main
    from ganedit.data.io import read_image, write_image
    from ganedit.models.psp import back_project

    ganedit.save(tiny_psp(task="super_resolution"), tmp_path / "sr")
    low = torch.rand(1, 3, 8, 8) * 2 - 1
    write_image(low[0], tmp_path / "low.png")
    low = read_image(tmp_path / "low.png", 8)
    main(["psp", "--model", str(tmp_path / "sr"), str(tmp_path / "low.png"), "-o", str(tmp_path / "out"), "--back-projection"])
    out = read_image(tmp_path / "out" / "low.png", 16)
    raw = read_image(tmp_path / "out" / "low_decoded.png", 16)
    err_out = (F.avg_pool2d(out, 2) - low).abs().mean()
    err_raw = (F.avg_pool2d(raw, 2) - low).abs().mean()
    assert err_out < 0.2 * err_raw and err_out < 0.03, (float(err_out), float(err_raw))
    torch.testing.assert_close(back_project(raw, low, iters=0), raw)
    write_image(torch.zeros(3, 6, 6), tmp_path / "odd.png")
    with pytest.raises(SystemExit):
        main(["psp", "--model", str(tmp_path / "sr"), str(tmp_path / "odd.png"), "-o", str(tmp_path / "o2"), "--back-projection"])
    with pytest.raises(ConfigError, match="does not divide"):
        back_project(raw, torch.zeros(1, 3, 6, 6))
