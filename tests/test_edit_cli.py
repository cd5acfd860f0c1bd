"""`ganedit project`, `ganedit pti` and `ganedit edit` on a tiny random-weight StyleGAN2 saved natively."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ganedit
from ganedit.cli.main import main
from ganedit.data.io import to_uint8_hwc, write_image
from ganedit.edit import latents as L
from ganedit.models.stylegan2 import StyleGAN2

SIZE = 16


def _tiny(size: int = SIZE, seed: int = 0) -> StyleGAN2:
    torch.manual_seed(seed)
    G = StyleGAN2({"size": size, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16})
    with torch.no_grad():
        G.latent_avg.copy_(G.g_ema.mean_latent(1000, seed=0).reshape(-1))
    return G.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit_cli")
    G = _tiny()
    ganedit.save(G, root / "G")
    with torch.no_grad():
        w = G.g_ema.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))
        images = G.g_ema.synthesis(w, "const")
    (root / "faces").mkdir()
    for i, name in enumerate(["anna", "bert"]):
        write_image(images[i], root / "faces" / f"{name}.png")
    return root, G, w


@pytest.fixture(autouse=True)
def _no_lpips(tmp_path, monkeypatch):
    monkeypatch.setenv("GANEDIT_CACHE", str(tmp_path / "empty-cache"))  # the weight-free loss: no files needed


def _cells(path, n, size=SIZE, pad=2):
    grid = np.asarray(Image.open(path).convert("RGB"))
    assert grid.shape == (size + 2 * pad, n * (size + pad) + pad, 3)
    return [grid[pad:pad + size, pad + c * (size + pad): pad + c * (size + pad) + size] for c in range(n)]


def _png(image: torch.Tensor) -> np.ndarray:
    return to_uint8_hwc(image)


def test_project_writes_latents_and_reconstructions(setup, tmp_path):
    root, G, w = setup
    out = tmp_path / "proj"
    main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(out), "--space", "w",
          "--steps", "40", "--no-noise"])
    codes = L.load_latents(out / "latents.safetensors", G)
    assert codes.names == ["anna", "bert"] and codes.space == "w" and codes.source == "projection"
    assert codes.meta["steps"] == 40 and codes.meta["loss"] == "pyramid-mse" and codes.noise is None
    assert (out / "reconstructions" / "anna.png").is_file() and (out / "compare.png").is_file()
    # the reconstructions are the codes decoded, and closer to the inputs than the mean latent's image
    with torch.no_grad():
        decoded = G.g_ema.synthesis(codes.wplus, "const")
        start = G.g_ema.synthesis(G.g_ema.mean_latent(2000, seed=0), "const")
    recon = np.asarray(Image.open(out / "reconstructions" / "bert.png").convert("RGB")).astype(int)
    target = np.asarray(Image.open(root / "faces" / "bert.png").convert("RGB")).astype(int)
    assert np.abs(recon - _png(decoded[1]).astype(int)).max() <= 1
    assert ((recon - target) ** 2).mean() < ((_png(start[0]).astype(int) - target) ** 2).mean()


def test_project_with_noise_stores_the_noise_maps(setup, tmp_path):
    root, G, _ = setup
    out = tmp_path / "proj"
    main(["project", "--model", str(root / "G"), str(root / "faces" / "anna.png"), "-o", str(out), "--steps", "3"])
    codes = L.load_latents(out / "latents.safetensors", G)
    assert codes.space == "w+" and len(codes.noise) == G.g_ema.num_layers and codes.noise[-1].shape == (1, 1, SIZE, SIZE)


def test_bad_encoder_for_init_is_a_clear_error(setup, tmp_path, capsys):
    root, _, _ = setup
    junk = tmp_path / "encoder.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exc:
        main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(tmp_path / "o"), "--init", str(junk)])
    assert exc.value.code == 2 and "not a loadable encoder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # a generator is loadable but is not an encoder
        main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(tmp_path / "o"), "--init", str(root / "G")])
    assert exc.value.code == 2 and "not an encoder" in capsys.readouterr().err


def _latents(tmp_path, G, w, name="codes.safetensors", names=None):
    return L.save_latents(tmp_path / name, L.to_wplus(w, G.n_latent), names, {"space": "w", "source": "test",
                                                                               "generator": L.generator_fingerprint(G)})


def test_edit_strip_over_strengths_is_apply_decoded(setup, tmp_path):
    root, G, w = setup
    path = _latents(tmp_path, G, w[:1], names=["anna.png"])
    direction = torch.randn(16, generator=torch.Generator().manual_seed(2))
    from safetensors.torch import save_file

    save_file({"direction": direction}, str(tmp_path / "d.safetensors"))
    out = tmp_path / "strip.png"
    main(["edit", str(path), "--model", str(root / "G"), "--direction", str(tmp_path / "d.safetensors"),
          "--strength", "-2,0,2", "--layers", "0-2", "-o", str(out)])
    cells = _cells(out, 3)
    with torch.no_grad():
        wplus = L.to_wplus(w[:1], G.n_latent)
        expected = [G.g_ema.synthesis(L.apply(wplus, direction, s, range(0, 3)), "const") for s in (-2, 0, 2)]
    for cell, image in zip(cells, expected):
        assert np.abs(cell.astype(int) - _png(image).astype(int)).max() <= 1
    assert not np.array_equal(cells[0], cells[1])


def test_edit_interpolate_and_mix(setup, tmp_path):
    root, G, w = setup
    a = _latents(tmp_path, G, w[:1], "a.safetensors", ["a"])
    b = _latents(tmp_path, G, w[1:], "b.safetensors", ["b"])
    main(["edit", str(a), "--model", str(root / "G"), "--interpolate", str(b), "--n", "4", "-o", str(tmp_path / "i.png")])
    cells = _cells(tmp_path / "i.png", 4)
    with torch.no_grad():
        ends = G.g_ema.synthesis(w, "const")
    assert np.abs(cells[0].astype(int) - _png(ends[0]).astype(int)).max() <= 1
    assert np.abs(cells[3].astype(int) - _png(ends[1]).astype(int)).max() <= 1
    # mixing every row from b gives b; the strip is a | b | a-with-b's-rows
    main(["edit", str(a), "--model", str(root / "G"), "--mix-with", str(b), "--layers", f"0-{G.n_latent - 1}",
          "-o", str(tmp_path / "m.png")])
    cells = _cells(tmp_path / "m.png", 3)
    assert np.array_equal(cells[2], cells[1]) and not np.array_equal(cells[0], cells[1])
    main(["edit", str(a), "--model", str(root / "G"), "--mix-with", str(b), "--layers", "coarse", "-o", str(tmp_path / "c.png")])
    cells = _cells(tmp_path / "c.png", 3)
    assert not np.array_equal(cells[2], cells[0]) and not np.array_equal(cells[2], cells[1])


def test_edit_refuses_latents_of_another_generator(setup, tmp_path, capsys):
    root, _, _ = setup
    other = _tiny(size=8)
    path = _latents(tmp_path, other, torch.zeros(1, 16))
    torch.save(torch.zeros(16), tmp_path / "d.pt")
    with pytest.raises(SystemExit) as exc:
        main(["edit", str(path), "--model", str(root / "G"), "--direction", str(tmp_path / "d.pt"), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "made for another generator" in err and "n_latent 4 (this generator: 6)" in err


def test_pti_cli_then_edit_the_pti_file(setup, tmp_path, capsys):
    root, G, _ = setup
    out = tmp_path / "pti"
    main(["pti", "--model", str(root / "G"), str(root / "faces" / "anna.png"), "-o", str(out),
          "--pivot-steps", "20", "--pivot-lr", "0.05", "--steps", "10", "--lr", "3e-3", "--stop-loss", "0"])
    printed = capsys.readouterr().out
    assert "anna: 10 tuning steps" in printed and "KiB" in printed
    pti_file = out / "pti" / "anna.safetensors"
    assert pti_file.is_file() and (out / "reconstructions" / "anna.png").is_file()
    pivots = L.load_latents(out / "latents.safetensors", G)
    assert pivots.source == "pti" and pivots.names == ["anna"] and pivots.meta["pti_files"] == [str(pti_file)]
    torch.save({"direction": torch.ones(16)}, tmp_path / "d.pt")
    main(["edit", str(pti_file), "--model", str(root / "G"), "--direction", str(tmp_path / "d.pt"),
          "--strength", "-1..1", "--n", "3", "-o", str(tmp_path / "e.png")])
    cells = _cells(tmp_path / "e.png", 3)
    recon = np.asarray(Image.open(out / "reconstructions" / "anna.png").convert("RGB"))
    # strength 0 decodes the pivot with the tuned generator: the PTI reconstruction (fp16 difference: within 2 levels)
    assert np.abs(cells[1].astype(int) - recon.astype(int)).max() <= 2
    # the tuned generator is refused for another base
    other = tmp_path / "G2"
    ganedit.save(_tiny(seed=3), other)
    with pytest.raises(SystemExit) as exc:
        main(["edit", str(pti_file), "--model", str(other), "--direction", str(tmp_path / "d.pt"), "-o", str(tmp_path / "x.png")])
    assert exc.value.code == 2 and "tuned from another generator" in capsys.readouterr().err


def test_edit_image_inverted_by_projection(setup, tmp_path):
    root, G, _ = setup
    torch.save(torch.ones(16), tmp_path / "d.pt")
    main(["edit", str(root / "faces"), "--model", str(root / "G"), "--direction", str(tmp_path / "d.pt"),
          "--strength", "0,1", "--steps", "5", "-o", str(tmp_path / "strips")])
    # one strip per image: the input, then the two strengths
    for name in ("anna", "bert"):
        _cells(tmp_path / "strips" / f"{name}.png", 3)


def test_strength_and_row_parsing():
    from ganedit.cli.edit import parse_rows, parse_strengths
    from ganedit.errors import ConfigError

    assert parse_strengths("-3..3", 7) == [-3, -2, -1, 0, 1, 2, 3]
    assert parse_strengths("-2,0,2.5", 7) == [-2, 0, 2.5] and parse_strengths("1.5", 7) == [1.5]
    with pytest.raises(ConfigError):
        parse_strengths("a..b", 3)
    assert parse_rows("coarse", 10) == range(0, 4) and parse_rows("2-3", 10) == range(2, 4)
    assert parse_rows(None, 10) is None and parse_rows(None, 10, default="fine") == range(8, 10)


def test_edit_with_a_direction_file_uses_its_layers_and_sigma(setup, tmp_path, capsys):
    from ganedit.edit.directions import Directions, save_direction

    root, G, w = setup
    path = _latents(tmp_path, G, w[:1], names=["anna"])
    vectors = torch.nn.functional.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(8)), dim=1)
    dfile = save_direction(tmp_path / "pca.safetensors", Directions(
        vectors=vectors, names=["pc0", "pc1"], method="ganspace", layers=range(1, 3),
        generator=L.generator_fingerprint(G), scales=torch.tensor([0.5, 2.0])))
    main(["edit", str(path), "--model", str(root / "G"), "--direction", str(dfile), "--component", "pc1",
          "--strength", "-1,1", "-o", str(tmp_path / "s.png")])
    assert "pc1: strengths -1..1 sigma on rows 1-2" in capsys.readouterr().out
    cells = _cells(tmp_path / "s.png", 2)
    with torch.no_grad():
        wplus = L.to_wplus(w[:1], G.n_latent)
        expected = G.g_ema.synthesis(L.apply(wplus, vectors[1], 2.0, range(1, 3)), "const")  # 1 sigma = 2.0
    assert np.abs(cells[1].astype(int) - _png(expected).astype(int)).max() <= 1
    # the file is refused for a generator of another shape
    other = tmp_path / "G8"
    ganedit.save(_tiny(size=8), other)
    small = _latents(tmp_path, _tiny(size=8), torch.zeros(1, 16), "small.safetensors")
    with pytest.raises(SystemExit) as exc:
        main(["edit", str(small), "--model", str(other), "--direction", str(dfile), "-o", str(tmp_path / "x.png")])
    assert exc.value.code == 2 and "pca.safetensors" in capsys.readouterr().err


from ganedit.formats.native import register_model  # noqa: E402
from ganedit.models.stylegan2 import Generator  # noqa: E402


@register_model("tests.ConstantEncoder")
class ConstantEncoder(torch.nn.Module):
    """A stand-in encoder: every image gets the same stored w+; ``generator`` is the decoder it was made for."""

    def __init__(self, decoder: dict, n_latent: int, style_dim: int) -> None:
        super().__init__()
        self.decoder = Generator(**decoder)
        self.register_buffer("code", torch.randn(n_latent, style_dim))

    @property
    def generator(self) -> Generator:
        return self.decoder

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.code.expand(images.shape[0], -1, -1)


def test_project_init_from_an_encoder(setup, tmp_path, capsys):
    root, G, _ = setup
    encoder = ConstantEncoder(G.g_ema.config, G.n_latent, 16)
    encoder.decoder.load_state_dict(G.g_ema.state_dict())
    ganedit.save(encoder, tmp_path / "enc")
    out = tmp_path / "o"
    # one step runs at the warm-up's lr 0: the codes are the encoder's
    main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(out), "--steps", "1",
          "--init", str(tmp_path / "enc")])
    codes = L.load_latents(out / "latents.safetensors", G)
    assert torch.allclose(codes.wplus, encoder.code.expand(2, -1, -1)) and codes.meta["init"] == str(tmp_path / "enc")
    small = ConstantEncoder(_tiny(size=8).g_ema.config, 4, 16)
    ganedit.save(small, tmp_path / "enc8")
    with pytest.raises(SystemExit) as exc:
        main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(out), "--init", str(tmp_path / "enc8")])
    assert exc.value.code == 2 and "made for another generator" in capsys.readouterr().err


def test_device_cuda_without_a_gpu_is_a_clear_error(setup, tmp_path, capsys, monkeypatch):
    root, _, _ = setup
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        main(["project", "--model", str(root / "G"), str(root / "faces"), "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert exc.value.code == 2 and "--device cuda: CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_edit_an_image_through_an_encoder(setup, tmp_path):
    """`ganedit edit IMAGE --encoder E --direction D --strength s` (also spelt --invert E): the image's code is the
    encoder's, the strip shows the input, then the code edited at each strength."""
    root, G, _ = setup
    encoder = ConstantEncoder(G.g_ema.config, G.n_latent, 16)
    encoder.decoder.load_state_dict(G.g_ema.state_dict())
    ganedit.save(encoder, tmp_path / "enc")
    direction = torch.randn(16, generator=torch.Generator().manual_seed(4))
    torch.save(direction, tmp_path / "d.pt")
    face = sorted((root / "faces").iterdir())[0]
    for flag, out in (("--encoder", tmp_path / "e.png"), ("--invert", tmp_path / "i.png")):
        main(["edit", str(face), "--model", str(root / "G"), flag, str(tmp_path / "enc"), "--direction", str(tmp_path / "d.pt"),
              "--raw", "--strength", "0,2", "-o", str(out)])
    cells = _cells(tmp_path / "e.png", 3)
    with torch.no_grad():
        expected = [G.g_ema.synthesis(L.apply(encoder.code[None], direction, s, None), "const") for s in (0, 2)]
    for cell, image in zip(cells[1:], expected):
        assert np.abs(cell.astype(int) - _png(image).astype(int)).max() <= 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e.png")), np.asarray(Image.open(tmp_path / "i.png")))
