"""benchmarks/bench_directions.py runs end to end on tiny random networks and reports what the issue asks."""
from __future__ import annotations

import argparse

from benchmarks import bench_directions as B


def test_bench_directions_smoke():
    args = argparse.Namespace(random=True, model=None, regressor=None, n_samples=200, n_eval=8, extremes=0.2,
                              strength=1.0, components=2, random_dirs=2, batch=64, threads=1, seed=0,
                              factors="smile,yaw,glasses,face_x")
    results = B.run(args)
    # glasses may be constant under a random regressor; the others vary
    assert {"smile", "yaw", "face_x"} <= set(results["factors"]) <= {"smile", "yaw", "glasses", "face_x"}
    for f in results["factors"]:
        change, leak, ratio, accuracy = results["interfacegan"][f]
        assert leak > 0 and abs(ratio - abs(change) / leak) < 1e-9 and 0 <= accuracy <= 1
        assert results["ganspace"][f][0] in ("pc0", "pc1") and results["sefa"][f][0] in ("sefa0", "sefa1")
    text = B.report(results, args, "cmd")
    assert "| smile |" in text and "Bar (InterFaceGAN ratio >= 5x random" in text and "RANDOM" in text
