"""The projection benchmark runs end to end on a tiny random generator (its figures are meaningless there)."""
from __future__ import annotations

import re


def test_bench_projection_smoke(capsys, tmp_path, monkeypatch):
    from benchmarks import bench_projection

    monkeypatch.setenv("GANEDIT_CACHE", str(tmp_path))
    bench_projection.main(["--random", "8", "--steps", "2", "--spaces", "w+", "--noise-modes", "const", "--n", "1",
                           "--timing-steps", "2", "--repeats", "1", "--pti-n", "1", "--pivot-steps", "2",
                           "--pti-steps", "2"])
    out = capsys.readouterr().out
    assert re.search(r"^\| w\+ \| const \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert re.search(r"^\| w\+ \| [\d.]+ / [\d.]+ \| [\d.]+ / [\d.]+ \| [\d.]+ / [\d.]+ \|$", out, re.M)
    row = re.search(r"^\| 0 \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| (\d+) \| (\d+) \| (\d+) \|$", out, re.M)
    assert row and int(row.group(1)) < int(row.group(3))  # the fp16 difference is smaller than the whole generator
