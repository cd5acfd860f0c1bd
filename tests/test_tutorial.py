"""docs/tutorial.md: every ```bash block runs, in order, in a fresh folder, at tiny sizes (fewer crops and
steps, small batches) so the commands on the page stay correct."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"

# page value -> test value; each must match at least once, so the test fails when the page changes under it
TINY = [
    (r"crops_per_photo = \d+", "crops_per_photo = 2"),
    (r"--steps \d+", "--steps 2"),
    (r"--batch \d+", "--batch 4"),
]


def bash_blocks(text: str) -> list:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def tiny_script(text: str) -> str:
    script = "\n".join(bash_blocks(text))
    for pattern, value in TINY:
        script, count = re.subn(pattern, value, script)
        assert count, f"docs/tutorial.md no longer contains {pattern!r}; update tests/test_tutorial.py"
    return script


def test_tutorial_has_the_promised_steps():
    text = TUTORIAL.read_text()
    script = "\n".join(bash_blocks(text))
    for command in ("ganedit data prepare", "ganedit train swapae", "ganedit swap ", "ganedit swap-grid",
                    "ganedit train pix2pix", "ganedit translate --model", "--aligned"):
        assert command in script, command
    assert "skimage" in script and "Official checkpoints" in text


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    pytest.importorskip("skimage", reason="the tutorial's stand-in photos come from scikit-image (a test extra)")
    script = tiny_script(TUTORIAL.read_text())
    prelude = (
        "set -euo pipefail\n"
        f'python() {{ "{sys.executable}" "$@"; }}\n'
        f'ganedit() {{ "{sys.executable}" -m ganedit "$@"; }}\n'
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", prelude + script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the files each step promises
    assert len(list((tmp_path / "photos").glob("*.jpg"))) == 16
    assert (tmp_path / "photos64.zip").is_file()
    for run in ("photos-swapae", "photos-pix2pix"):
        assert (tmp_path / "runs" / run / "model" / "config.json").is_file()
    assert (tmp_path / "swap_strip.png").is_file() and (tmp_path / "swap_grid.png").is_file()
    scores = json.loads((tmp_path / "results" / "scores.json").read_text())
    assert scores["n"] == 2 and len(list((tmp_path / "results" / "compare").glob("*.png"))) == 2
    assert "PSNR" in done.stdout and (tmp_path / "results" / "index.html").is_file()
    config = json.loads((tmp_path / "runs" / "photos-pix2pix" / "model" / "config.json").read_text())
    assert config["config"]["num_downs"] == 6  # 64 px pairs -> unet_64
