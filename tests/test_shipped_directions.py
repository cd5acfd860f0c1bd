"""Direction files found by name (MODEL/NAME), and the direction files shipped for stylegan2-synth64."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import ganedit
from ganedit.cli.main import main
from ganedit.edit import directions as D
from ganedit.edit import latents as L
from ganedit.errors import CheckpointError
from ganedit.models.stylegan2 import StyleGAN2


def _tiny() -> StyleGAN2:
    torch.manual_seed(0)
    G = StyleGAN2({"size": 16, "style_dim": 16, "n_mlp": 2, "channel_base": 128, "channel_max": 16})
    with torch.no_grad():
        G.latent_avg.copy_(G.g_ema.mean_latent(1000, seed=0).reshape(-1))
    return G.eval()


def test_resolve_direction_by_path_and_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "ASSETS", tmp_path)
    folder = tmp_path / "tiny_gen_directions"
    folder.mkdir()
    G = _tiny()
    path = D.save_direction(folder / "sefa.safetensors", D.sefa(G, n_components=2))
    assert D.resolve_direction(path) == path
    assert D.resolve_direction("tiny-gen/sefa") == path
    assert D.resolve_direction("tiny-gen/sefa.safetensors") == path
    with pytest.raises(CheckpointError, match="no shipped direction 'smile' for tiny-gen .shipped: sefa."):
        D.resolve_direction("tiny-gen/smile")
    with pytest.raises(CheckpointError, match="no such direction file"):
        D.resolve_direction("other-gen/sefa")


def test_edit_cli_takes_a_shipped_direction_name(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "ASSETS", tmp_path)
    G = _tiny()
    ganedit.save(G, tmp_path / "G")
    (tmp_path / "tiny_directions").mkdir()
    d = D.sefa(G, n_components=2)
    D.save_direction(tmp_path / "tiny_directions" / "sefa.safetensors", d)
    wplus = G.g_ema.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(1)))[:, None].repeat(1, G.n_latent, 1)
    L.save_latents(tmp_path / "codes.safetensors", wplus, ["a"], meta={"space": "w+", "generator": L.generator_fingerprint(G)})
    out = tmp_path / "strip.png"
    main(["edit", str(tmp_path / "codes.safetensors"), "--model", str(tmp_path / "G"), "--direction", "tiny/sefa",
          "--component", "sefa1", "--raw", "--strength", "-1,1", "-o", str(out)])
    grid = np.asarray(Image.open(out).convert("RGB"))
    with torch.no_grad():
        want = G.g_ema.synthesis(L.apply(wplus, d.vectors[1], 1.0), "const")
    cell = grid[2:18, 2 + 18:2 + 18 + 16]  # the second cell: strength +1
    assert np.abs(cell.astype(int) - L_png(want[0]).astype(int)).max() <= 1


def L_png(image: torch.Tensor) -> np.ndarray:
    from ganedit.data.io import to_uint8_hwc

    return to_uint8_hwc(image)


SHIPPED = D.shipped_directions("stylegan2-synth64")


def test_shipped_direction_files_fit_the_shipped_generator():
    """Each shipped file loads by name, fits the shipped generator and was computed on these very weights (no
    fingerprint warning): a new generator checkpoint must come with new direction files."""
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2

    G = load_stylegan2(resolve_model("stylegan2-synth64"))
    files = sorted(SHIPPED.glob("*.safetensors"))
    assert sum(f.stat().st_size for f in files) < 200 * 1024
    assert {"interfacegan_yaw", "interfacegan_glasses", "interfacegan_smile", "ganspace", "sefa"} <= {f.stem for f in files}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d = D.load_direction(D.resolve_direction(f"stylegan2-synth64/{f.stem}"), G)
        assert torch.allclose(d.vectors.norm(dim=1), torch.ones(len(d)), atol=1e-4)
