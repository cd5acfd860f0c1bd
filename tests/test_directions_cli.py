"""`ganedit directions ...` on a tiny random generator saved in the native format."""
from __future__ import annotations

import sys
import types

import pytest
import torch

import ganedit
from ganedit.cli.main import main
from ganedit.edit import directions as D
from ganedit.edit.latents import generator_fingerprint, save_latents
from ganedit.models.stylegan2 import StyleGAN2


@pytest.fixture()
def model_dir(tmp_path):
    torch.manual_seed(0)
    G = StyleGAN2({"size": 8, "style_dim": 16, "n_mlp": 2, "channel_base": 64, "channel_max": 8}).eval()
    G.latent_avg.copy_(G.g_ema.mean_latent(256, seed=0).reshape(-1))
    ganedit.save(G, tmp_path / "G")
    return tmp_path / "G"


def test_ganspace_and_sefa_commands(model_dir, tmp_path, capsys):
    main(["directions", "ganspace", "--model", str(model_dir), "--n-samples", "500", "--components", "5",
          "--layers", "0-3", "-o", str(tmp_path / "pcs.safetensors")])
    G = ganedit.load(model_dir)
    pcs = D.load_direction(tmp_path / "pcs.safetensors", G)
    assert pcs.method == "ganspace" and pcs.vectors.shape == (5, 16) and pcs.layers == range(0, 4)
    main(["directions", "sefa", "--model", str(model_dir), "--layers", "1-2", "--components", "3",
          "-o", str(tmp_path / "sefa.safetensors")])
    sefa = D.load_direction(tmp_path / "sefa.safetensors", G)
    assert sefa.method == "sefa" and sefa.vectors.shape == (3, 16)
    assert sefa.meta["modulations"] == ["convs.0", "convs.1"]
    assert torch.allclose(sefa.vectors, D.sefa(G, range(1, 3), 3).vectors)
    main(["directions", "show", str(tmp_path / "sefa.safetensors"), "--model", str(model_dir)])
    out = capsys.readouterr().out
    assert "sefa, 3 x 16-d, layers 1-2" in out and "fits the given generator" in out


def test_interfacegan_from_a_labels_csv(model_dir, tmp_path):
    G = ganedit.load(model_dir)
    w = D.sample_w(G, 1200, seed=3)
    d_true = torch.randn(16, generator=torch.Generator().manual_seed(1))
    d_true /= d_true.norm()
    names = [f"img{i:04d}" for i in range(len(w))]
    save_latents(tmp_path / "mine.safetensors", w, names, meta={"generator": generator_fingerprint(G), "source": "test"})
    score = (w - w.mean(0)) @ d_true
    rows = "\n".join(f"{n},{float(s):.6f},{int(s > 0)}" for n, s in zip(names, score))
    (tmp_path / "labels.csv").write_text("name,score,flag\n" + rows + "\n")
    main(["directions", "interfacegan", "--model", str(model_dir), "--latents", str(tmp_path / "mine.safetensors"),
          "--labels", str(tmp_path / "labels.csv"), "--attribute", "flag", "--attribute", "score",
          "--extremes", "0.25", "-o", str(tmp_path / "ifg.safetensors")])
    found = D.load_direction(tmp_path / "ifg.safetensors", G)
    assert found.names == ["flag", "score"] and found.meta["attributes"] == ["flag", "score"]
    assert float(found.vector("flag") @ d_true) > 0.9
    assert float(found.vector("score") @ d_true) > 0.9


def test_interfacegan_with_the_regressor_and_a_condition(model_dir, tmp_path, monkeypatch):
    """The regressor is replaced by a stand-in reading two linear image statistics; the plumbing is what is tested:
    labels from generated images, several attributes, conditioning one on the other."""
    calls = []

    def predict_factors(images, model=None):
        calls.append((images.shape, model))
        return {"red": images[:, 0].mean((1, 2)), "top": images[:, :, :4].mean((1, 2, 3))}

    fake = types.ModuleType("ganedit.models.attributes")
    fake.predict_factors = predict_factors
    monkeypatch.setitem(sys.modules, "ganedit.models.attributes", fake)
    main(["directions", "interfacegan", "--model", str(model_dir), "--attribute", "red", "--attribute", "top",
          "--condition", "top", "--n-samples", "400", "--regressor", str(model_dir), "-o", str(tmp_path / "r.safetensors")])
    assert sum(s[0] for s, _ in calls) == 400 and all(m == str(model_dir) for _, m in calls)
    found = D.load_direction(tmp_path / "r.safetensors")
    red_parts = found.meta["parts"][0]
    assert red_parts["conditioned_on"] == ["top"] and found.meta["parts"][1]["conditioned_on"] == []
    # the red direction is orthogonal to the unconditioned "top" direction, which is stored beside it
    assert abs(float(found.vector("red") @ found.vector("top"))) < 1e-5


def test_wrong_generator_is_refused_from_the_cli(model_dir, tmp_path, capsys):
    main(["directions", "sefa", "--model", str(model_dir), "-o", str(tmp_path / "s.safetensors")])
    other = StyleGAN2({"size": 16, "style_dim": 16, "n_mlp": 2, "channel_base": 64, "channel_max": 8})
    ganedit.save(other, tmp_path / "other")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["directions", "show", str(tmp_path / "s.safetensors"), "--model", str(tmp_path / "other")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "s.safetensors" in err and "size 8 (this generator: 16)" in err


def test_interfacegan_regression_fit_and_automatic_layers(model_dir, tmp_path, monkeypatch, capsys):
    """--fit regression and --layers auto: the rows are chosen by the readings of edited images (a stand-in
    reader here) on other latents than the fit's, and recorded in the file."""
    from ganedit.cli import directions as cli_directions

    def predict_factors(images, model=None):
        return {"red": images[:, 0].mean((1, 2)), "top": images[:, :, :4].mean((1, 2, 3))}

    fake = types.ModuleType("ganedit.models.attributes")
    fake.predict_factors = predict_factors
    monkeypatch.setitem(sys.modules, "ganedit.models.attributes", fake)
    read_sizes = []

    def readings(regressor):
        def read(images):
            read_sizes.append(len(images))
            return {"red": images[:, 0].mean((1, 2)), "top": images[:, :, :4].mean((1, 2, 3)),
                    "green": images[:, 1].mean((1, 2))}
        return read

    monkeypatch.setattr(cli_directions, "_regressor_readings", readings)
    out = tmp_path / "red.safetensors"
    main(["directions", "interfacegan", "--model", str(model_dir), "--attribute", "red", "--fit", "regression",
          "--layers", "auto", "--layer-samples", "16", "--n-samples", "300", "--regressor", str(model_dir), "-o", str(out)])
    G = ganedit.load(model_dir)
    found = D.load_direction(out, G)
    assert found.meta["fit"] == "regression" and "validation_r2" in found.meta
    choice = found.meta["layer_choice"]
    assert choice["n_samples"] == 16 and choice["target"] == "red" and choice["ratio"] >= choice["all_rows_ratio"]
    rows = range(choice["rows"][0], choice["rows"][1] + 1)
    assert found.layers == (None if rows == range(0, G.n_latent) else rows)
    # the unedited images, then two per row of w+, 16 latents each
    assert sum(read_sizes) == 16 * (1 + 2 * G.n_latent)
    capsys.readouterr()
    main(["directions", "show", str(out)])
    assert f"layers chosen on 16 held-out latents: change / leakage {choice['ratio']:.2f}" in capsys.readouterr().out
    # the rows are chosen by measuring edits of generated images: not possible for the user's own latents
    with pytest.raises(SystemExit):
        main(["directions", "interfacegan", "--model", str(model_dir), "--latents", str(out), "--labels", str(out),
              "--attribute", "red", "--layers", "auto", "-o", str(tmp_path / "x.safetensors")])
    assert "--layers auto measures edits of generated images" in capsys.readouterr().err


def test_regressor_readings_are_smooth(tmp_path):
    """The reader --layers auto uses: continuous factors and binary probabilities, no angles or classes."""
    from benchmarks.bench_directions import tiny_models
    from ganedit.cli.directions import _regressor_readings
    from ganedit.models.attributes import FACTOR_BY_NAME

    _, R = tiny_models(0)
    ganedit.save(R, tmp_path / "R")
    read = _regressor_readings(str(tmp_path / "R"))(torch.rand(5, 3, 64, 64) * 2 - 1)
    kinds = {FACTOR_BY_NAME[k].kind for k in read}
    assert kinds == {"continuous", "binary"}
    assert all(torch.is_floating_point(v) and v.shape[0] == 5 for v in read.values())
    assert bool(((read["glasses"] >= 0) & (read["glasses"] <= 1)).all())
