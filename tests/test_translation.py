"""pix2pix / CycleGAN networks, native save/load, test modes, `ganedit translate` and ONNX export (tiny nets)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import ganedit
from ganedit.errors import ConfigError
from ganedit.models.cyclegan import GeneratorPair, ResnetGenerator, select_generator
from ganedit.models.pix2pix import (
    NLayerDiscriminator,
    PixelDiscriminator,
    UnetGenerator,
    define_G,
    replay_dropout,
    set_test_mode,
)




def _unet(**kw) -> UnetGenerator:
    return UnetGenerator(num_downs=kw.pop("num_downs", 5), ngf=kw.pop("ngf", 4), **kw)


def test_non_square_sizes_and_clear_errors():
    unet = _unet().eval()
    with torch.no_grad():
        assert unet(torch.randn(2, 3, 32, 96)).shape == (2, 3, 32, 96)
        with pytest.raises(ConfigError, match="multiples of 32"):
            unet(torch.randn(1, 3, 48, 64))
        resnet = ResnetGenerator(ngf=4, n_blocks=1).eval()
        assert resnet(torch.randn(1, 3, 8, 20)).shape == (1, 3, 8, 20)
        with pytest.raises(ConfigError, match="multiples of 4"):
            resnet(torch.randn(1, 3, 10, 20))
    assert define_G("unet_128", ngf=2).num_downs == 7
    assert define_G("resnet_6blocks", ngf=2, norm="instance").config["n_blocks"] == 6
    with pytest.raises(ConfigError):
        define_G("unet_100")
    with pytest.raises(ConfigError, match="norm"):
        ResnetGenerator(norm="group")


@pytest.mark.parametrize("kind", ["unet", "resnet"])
def test_resize_upsampling_saves_and_has_no_checkerboard(tmp_path, kind):
    """upsample="resize" (nearest x2 + 3x3 conv) round-trips through a native file, and on a constant input its
    up-convolution gives a constant interior where the official transposed conv paints a period-2 pattern."""
    from ganedit.models.pix2pix import ResizeConv2d, make_upsample

    torch.manual_seed(0)
    net = _unet(upsample="resize") if kind == "unet" else ResnetGenerator(ngf=4, n_blocks=1, upsample="resize")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert any(isinstance(m, ResizeConv2d) for m in net.modules())
    ganedit.save(net, tmp_path / "g")
    back = ganedit.load(tmp_path / "g").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), net.eval()(x))
    flat = torch.ones(1, 4, 8, 8)
    with torch.no_grad():
        resized = make_upsample(4, 4, "resize")(flat)[..., 2:-2, 2:-2]
        transposed = make_upsample(4, 4, "transposed")(flat)[..., 2:-2, 2:-2]
    assert resized.shape == transposed.shape == (1, 4, 12, 12)
    assert (resized - resized[..., :1, :1]).abs().max() < 1e-5
    assert (transposed[..., 0::2, :] - transposed[..., 1::2, :]).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="upsample"):
        _unet(upsample="bilinear")


def test_official_init_and_bias_rule():
    net = UnetGenerator(num_downs=6, ngf=16)
    convs = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    bn = torch.cat([m.weight for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(convs.std().item() - 0.02) < 0.002 and abs(convs.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01 and 0.01 < bn.std().item() < 0.03
    # batch norm: convs before a norm have no bias; the outermost up-conv has one
    assert "model.model.0.bias" not in net.state_dict() and "model.model.3.bias" in net.state_dict()
    inst = NLayerDiscriminator(3, 8, norm="instance").state_dict()
    assert "model.2.bias" in inst and "model.3.weight" not in inst
    none = PixelDiscriminator(3, 8, norm="none").state_dict()
    assert list(none) == ["net.0.weight", "net.0.bias", "net.2.weight", "net.5.weight"]


def test_test_modes():
    torch.manual_seed(1)
    unet = _unet(num_downs=6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        set_test_mode(unet, "official")
        masks = {name: torch.rand(1, m_ch, s, s) > 0.5 for name, m_ch, s in [("model.model.1.model.3.model.3.model.3.model.7", 32, 4)]}
        with replay_dropout(unet, masks):
            a = unet(x)
            b = unet(x)
        assert torch.equal(a, b)  # masks replayed: deterministic
        assert isinstance(unet.get_submodule("model.model.1.model.3.model.3.model.3.model.7"), torch.nn.Dropout)
        set_test_mode(unet, "eval")
        assert not torch.allclose(unet(x), a, atol=1e-3)
        resnet = ResnetGenerator(ngf=4, n_blocks=2)
        assert torch.allclose(set_test_mode(resnet, "official")(x), set_test_mode(resnet, "eval")(x), atol=1e-6)
    with pytest.raises(ConfigError):
        set_test_mode(unet, "test")


def test_generator_pair_roundtrip_and_direction(tmp_path):
    pair = GeneratorPair.of(ResnetGenerator(ngf=4, n_blocks=1), _unet())
    ganedit.save(pair, tmp_path / "pair")
    again = ganedit.load(tmp_path / "pair")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x, "BtoA"), pair.eval()(x, "BtoA"))
    assert select_generator(again, "BtoA") is again.G_B
    with pytest.raises(ConfigError, match="single generator"):
        select_generator(again.G_A, "BtoA")
    with pytest.raises(ConfigError, match="not an image-to-image generator"):
        select_generator(NLayerDiscriminator(3, 4), "AtoB")


def _write_inputs(root, sizes):
    from ganedit.data.io import write_image

    root.mkdir(parents=True, exist_ok=True)
    for name, (h, w) in sizes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(torch.rand(1, 3, h, w) * 2 - 1, root / name)


def _cli(*args):
    from ganedit.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def test_translate_cli_files_folders_and_pairs(tmp_path):
    from ganedit.data.io import read_image

    torch.manual_seed(2)
    g_a, g_b = ResnetGenerator(ngf=4, n_blocks=1), _unet()
    ganedit.save(GeneratorPair.of(g_a, g_b), tmp_path / "pair")
    _write_inputs(tmp_path / "in", {"a.png": (32, 32), "deep/b.png": (32, 64), "c.png": (32, 32)})
    result = _cli("translate", "--model", str(tmp_path / "pair"), str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                  "--direction", "BtoA", "--batch", "2")
    assert result.exit_code == 0, result.output
    for name in ("a.png", "deep/b.png", "c.png"):
        x = read_image(tmp_path / "in" / name)
        with torch.no_grad():
            expected = g_b.eval()(x).clamp(-1, 1)
        got = read_image(tmp_path / "out" / name)
        assert (got - expected).abs().max().item() <= 1.01 / 127.5  # 8-bit rounding
    # one file to a named output, AtoB (G_A), resized with --size
    result = _cli("translate", "--model", str(tmp_path / "pair"), str(tmp_path / "in" / "deep" / "b.png"), "-o",
                  str(tmp_path / "one.png"), "--size", "16")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "one.png").shape == (1, 3, 16, 16)
    # an official experiment folder holding latest_net_G_A/G_B.pth gives both directions too
    official = tmp_path / "checkpoints" / "exp"
    official.mkdir(parents=True)
    torch.save(g_a.state_dict(), official / "latest_net_G_A.pth")
    torch.save(g_b.state_dict(), official / "latest_net_G_B.pth")
    result = _cli("translate", "--model", str(official), str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "o2"))
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        expected = g_a.eval()(read_image(tmp_path / "in" / "a.png")).clamp(-1, 1)
    assert (read_image(tmp_path / "o2" / "a.png") - expected).abs().max().item() <= 1.01 / 127.5


def test_translate_cli_errors(tmp_path):
    g = _unet()
    ganedit.save(g, tmp_path / "g")
    _write_inputs(tmp_path / "in", {"odd.png": (40, 32)})
    result = _cli("translate", "--model", str(tmp_path / "g"), str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert isinstance(result.exception, ConfigError) and "multiples of 32" in str(result.exception) and "odd.png" in str(result.exception)
    result = _cli("translate", "--model", str(tmp_path / "g"), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--direction", "BtoA")
    assert isinstance(result.exception, ConfigError) and "single generator" in str(result.exception)
    # official mode with a seed is reproducible and differs from eval for a BatchNorm + dropout U-Net
    outs = []
    for mode, out in [("official", "o1"), ("official", "o2"), ("eval", "o3")]:
        result = _cli("translate", "--model", str(tmp_path / "g"), str(tmp_path / "in" / "odd.png"), "-o", str(tmp_path / out),
                      "--size", "32", "--test-mode", mode, "--seed", "3")
        assert result.exit_code == 0, result.output
        outs.append((tmp_path / out / "odd.png").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation and tracer notes
@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_onnx_export_matches_onnxruntime(tmp_path, kind):
    ort = pytest.importorskip("onnxruntime")
    from ganedit.models.pix2pix import export_onnx

    torch.manual_seed(4)
    net = ResnetGenerator(ngf=8, n_blocks=2) if kind == "resnet" else _unet(num_downs=6, ngf=4)
    x = torch.rand(1, 3, 64, 128) * 2 - 1
    export_onnx(net, str(tmp_path / "g.onnx"), 64, 128, dynamo=False)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, net.eval()(x).numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("extra", ["model.model.0.scale", "optimizer_step"])
def test_junyanz_file_with_an_extra_key_names_it(tmp_path, extra):
    from ganedit.errors import CheckpointError

    state = _unet().state_dict()
    state[extra] = torch.zeros(1)
    torch.save(state, tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match=rf"latest_net_G\.pth: unexpected key '{extra}' in a junyanz unet network file"):
        ganedit.load(tmp_path / "latest_net_G.pth")
    del state[extra]
    torch.save(state, tmp_path / "latest_net_G.pth")
    assert isinstance(ganedit.load(tmp_path / "latest_net_G.pth"), UnetGenerator)
