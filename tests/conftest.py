"""Shared fixtures. Conformance data is read from ../shared/conformance (beside the checkout) or from
$GANEDIT_CONFORMANCE; tests that need it skip with a clear reason when it is absent (a user's clone)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def conformance_root() -> Path:
    env = os.environ.get("GANEDIT_CONFORMANCE")
    return Path(env) if env else REPO.parent / "shared" / "conformance"


@pytest.fixture(scope="session")
def conformance() -> Path:
    root = conformance_root()
    if not root.is_dir():
        pytest.skip(f"conformance data not found at {root} (set GANEDIT_CONFORMANCE to run these checks)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests run small tensors: a second intra-op thread only adds barriers, and on a shared 2-core
    # machine its spin-waiting made small steps 20x slower. Subprocess tests (torchrun) set their own.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> str:
    """A tiny StyleGAN2 generator saved as a native model (16 px, style_dim 8): the frozen decoder of the pSp / e4e
    training tests. Test files that mean something else by ``decoder`` define their own fixture, which wins."""
    import torch

    import ganedit
    from ganedit.models.stylegan2 import Generator

    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("dec") / "g"
    ganedit.save(Generator(16, 8, 2, channels={"4": 8, "8": 8, "16": 8}), path)
    return str(path)
