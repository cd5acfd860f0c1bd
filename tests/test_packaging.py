"""Issue 11 §7 packaging: license, metadata, py.typed, tensorboard optional, `./run demo` runtime-only."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_license_metadata_and_typing_marker(project):
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert project["license"] == "MIT"  # an SPDX expression (PEP 639), matching the LICENSE file
    assert project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639 forbids both
    assert "Typing :: Typed" in project["classifiers"] and "Programming Language :: Python :: 3" in project["classifiers"]
    assert {"Homepage", "Repository", "Issues"} <= set(project["urls"])
    assert (REPO / "ganedit" / "py.typed").exists()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ganedit"]
    assert "py.typed" in package_data


def test_tensorboard_is_an_optional_extra(project):
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]]
    assert "tensorboard" not in names
    assert any(d.startswith("tensorboard") for d in project["optional-dependencies"]["tensorboard"])


def test_training_without_tensorboard_falls_back_to_jsonl(tmp_path):
    """A process where `import tensorboard` fails (as when the extra is not installed) still trains, writes
    metrics.jsonl and says that TensorBoard logging is off."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorboard"] = None  # makes `import tensorboard` raise ImportError
        from ganedit.cli.main import main
        main(["train", "tinygan", "--data", "synthetic:8", "--steps", "2", "--batch", "4", "--workers", "0",
              "--set", "channels=4", "--set", "z_dim=4", "--snapshot-every", "0", "--log-every", "1",
              "--out", {str(tmp_path / "run")!r}])
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorboard logging is off" in result.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/G" in r for r in records)
    assert not (tmp_path / "run" / "tb").exists()
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


# --------------------------------------------------------------------------------------------------- ./run


def _fake_venv(root: Path) -> Path:
    """A venv whose python, pip and ganedit only record how they were called."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    log = root / "calls.log"
    for name in ("python", "pip", "ganedit"):
        tool = bin_dir / name
        tool.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{log}"\nexit 0\n')
        tool.chmod(0o755)
    return log


def _run(venv: Path, *args: str) -> None:
    env = {**os.environ, "GANEDIT_VENV": str(venv)}
    result = subprocess.run([str(REPO / "run"), *args], capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr


def _installs(log: Path) -> list:
    calls = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return [c for c in calls if c.startswith("pip install")]


def test_run_demo_installs_runtime_dependencies_only_and_test_adds_the_extras(tmp_path):
    venv = tmp_path / "venv"
    log = _fake_venv(venv)
    _run(venv, "demo")
    assert "ganedit demo" in log.read_text()
    assert _installs(log) == ["pip install -q -e ."]
    _run(venv, "demo")  # stamp current: nothing to install
    assert _installs(log) == []
    _run(venv, "test")  # a runtime install does not serve the tests
    assert _installs(log) == ["pip install -q -e .[test]"]
    _run(venv, "test")
    _run(venv, "demo")  # a test install serves the demo too
    assert _installs(log) == []
    assert (venv / ".ganedit-install-stamp").read_text().strip() == "test"
    os.utime(venv / ".ganedit-install-stamp", (0, 0))  # pyproject.toml is now newer: reinstall what is asked
    _run(venv, "demo")
    assert _installs(log) == ["pip install -q -e ."]
