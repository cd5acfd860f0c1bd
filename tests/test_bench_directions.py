"""benchmarks/bench_directions.py runs end to end on tiny random networks and reports what the issue asks."""
from __future__ import annotations

import argparse

import pytest
import torch

from benchmarks import bench_directions as B


def _args(**kw) -> argparse.Namespace:
    # more W dims (64) than the regressor's factors, so each direction can be made orthogonal to all the others
    base = dict(random=True, model=None, regressor=None, n_samples=200, n_eval=8, extremes=0.2, strength=1.0,
                components=2, random_dirs=2, batch=64, threads=1, seed=0, factors="smile,yaw,glasses,face_x",
                check_n=0, min_score=0.5, save=None, save_attributes="", layer_factors="yaw", layer_samples=4,
                layers="auto")
    base.update(kw)
    return argparse.Namespace(**base)


def test_bench_directions_smoke():
    args = _args()
    results = B.run(args)
    # glasses may be constant under a random regressor; the others vary
    assert {"smile", "yaw", "face_x"} <= set(results["factors"]) <= {"smile", "yaw", "glasses", "face_x"}
    for f in results["factors"]:
        change, leak, ratio, accuracy = results["interfacegan"][f]
        assert leak > 0 and abs(ratio - abs(change) / leak) < 1e-9 and 0 <= accuracy <= 1
        assert results["ganspace"][f][0] in ("pc0", "pc1") and results["sefa"][f][0] in ("sefa0", "sefa1")
    assert [name for name, _, _ in results["sefa_top"]] == ["sefa0", "sefa1"]
    # ridge and ridge orthogonal to the other factors: scored the same way, for every factor
    for key in ("ridge", "conditional"):
        assert set(results[key]) == set(results["factors"]), key
        for f, (change, leak, ratio, *_) in results[key].items():
            assert abs(ratio - abs(change) / leak) < 1e-9
    # layer-restricted: only for --layer-factors; every variant gets rows, the selected one a same-rows baseline
    assert set(results["layered"]) == {"yaw"} == set(results["selected"])
    best, rows, ratio, rnd_rows, rnd_all = results["selected"]["yaw"]
    assert best in results["layered"]["yaw"] and set(results["layered"]["yaw"]) == set(B.VARIANTS)
    assert ratio == results["layered"]["yaw"][best][4] and rnd_all == results["random"]["yaw"][2] and rnd_rows > 0
    text = B.report(results, args, "cmd")
    assert "| smile |" in text and "Bar (InterFaceGAN ratio >= 5x random" in text and "RANDOM" in text
    assert f"| yaw | {best}" in text and "random directions on the same rows" in text
    # the variant conditioned on the most correlated factor names it, and is orthogonal to its ridge direction
    assert results["conditioned_on"]["yaw"] and f"ridge_top (⊥ {results['conditioned_on']['yaw'][0]})" in text


def test_unreadable_factors_are_neither_targets_nor_leakage(monkeypatch):
    """A factor the regressor cannot read (score below --min-score) is left out of the targets and of the
    leakage, and the report says why the bar could not be measured for it."""
    calls = {}

    def fake_check(R, n, min_score, seed=0):
        calls["n"] = n
        return {"smile": ("R²", 0.04), "yaw": ("R²", 0.96), "face_x": ("R²", 0.98), "glasses": ("kappa", 0.97)}

    monkeypatch.setattr(B, "readable_factors", fake_check)
    args = _args(check_n=16)
    results = B.run(args)
    assert calls["n"] == 16
    assert "smile" not in results["factors"] and "smile" in results["unread"]
    assert "yaw" in results["factors"]
    text = B.report(results, args, "cmd")
    assert "smile (R² 0.04)" in text and "| smile |" not in text


def test_saved_directions_load_and_fit(tmp_path):
    from ganedit.edit.directions import load_direction

    G, _ = B.tiny_models(0)
    args = _args(save=str(tmp_path / "dirs"), save_attributes="yaw,face_x")
    results = B.run(args)
    names = sorted(p.name for p in (tmp_path / "dirs").iterdir())
    assert names == ["ganspace.safetensors", "interfacegan_face_x.safetensors", "interfacegan_yaw.safetensors",
                     "sefa.safetensors"]
    yaw = load_direction(tmp_path / "dirs" / "interfacegan_yaw.safetensors", G)
    assert yaw.names == ["yaw"] and yaw.method == "interfacegan" and yaw.meta["factor"] == "yaw"
    assert abs(float(yaw.vectors[0].norm()) - 1) < 1e-5
    assert len(load_direction(tmp_path / "dirs" / "ganspace.safetensors", G)) == 2
    assert "interfacegan_yaw.safetensors" in B.report(results, args, "cmd")


def test_parse_saved():
    assert B.parse_saved("glasses") == ("glasses", "glasses", None)
    assert B.parse_saved("hair_kind=long") == ("hair_long", "hair_kind", "long")


def test_saving_an_unknown_class_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no class 'curly'"):
        B.run(_args(save=str(tmp_path), save_attributes="hair_kind=curly"))


def test_save_only_writes_the_files_without_measuring(tmp_path, capsys):
    B.main(["--random", "--n-samples", "200", "--components", "2", "--extremes", "0.2", "--save", str(tmp_path),
            "--save-attributes", "yaw", "--save-only"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ganspace.safetensors", "interfacegan_yaw.safetensors",
                                                          "sefa.safetensors"]
    assert "Bar" not in capsys.readouterr().out
