"""benchmarks/common.run_clock: training minutes at a step, from a run's metrics.jsonl, without a resume's pause."""
from __future__ import annotations

import json

import pytest

from benchmarks.common import run_clock


def write_rows(folder, rows):
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_run_clock_counts_training_time_only(tmp_path):
    rows = [{"step": 10, "time": 1000.0 + 60}, {"step": 20, "time": 1000.0 + 120},  # 6 s a step: step 0 at 1000
            {"step": 20, "event": "stopped", "time": 1000.0 + 120},
            {"step": 20, "event": "resume", "time": 50000.0},  # hours later
            {"step": 30, "time": 50000.0 + 60}, {"step": 40, "time": 50000.0 + 120}]
    write_rows(tmp_path, rows)
    clock = run_clock(tmp_path)
    assert clock(10) == pytest.approx(1.0) and clock(20) == pytest.approx(2.0)
    assert clock(40) == pytest.approx(4.0)  # the pause between the sessions is not training
    assert clock(35) == pytest.approx(3.5)  # between two rows: interpolated
