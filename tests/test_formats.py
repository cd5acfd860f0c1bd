import argparse
import json
import os
import pickle

import pytest
import torch

import ganedit
from ganedit.errors import CheckpointError
from ganedit.formats.foreign import safe_torch_load
from ganedit.formats.native import register_model


@register_model("test.tiny")
class Tiny(torch.nn.Module):
    def __init__(self, channels: int = 3, widths=(4, 8), act: str = "relu") -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, widths[0], 3)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return self.conv(x) * self.scale


def test_native_roundtrip_rebuilds_without_flags(tmp_path):
    model = Tiny(5, widths=(6, 2), act="gelu")
    assert model.config == {"channels": 5, "widths": [6, 2], "act": "gelu"}
    ganedit.save(model, tmp_path / "m")
    loaded = ganedit.load(tmp_path / "m")
    assert isinstance(loaded, Tiny) and loaded.config == model.config
    x = torch.randn(1, 5, 8, 8)
    assert torch.equal(loaded(x), model(x))
    assert not list(tmp_path.glob("m/.*tmp*"))


def test_native_mismatch_is_clear(tmp_path):
    ganedit.save(Tiny(3), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["channels"] = 4
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        ganedit.load(tmp_path / "m")


def test_native_unknown_module_is_not_imported(tmp_path):
    ganedit.save(Tiny(3), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"], cfg["module"] = "evil", "os"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown model type 'evil'"):
        ganedit.load(tmp_path / "m")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(CheckpointError):
        safe_torch_load(raw)


def test_namespace_is_allowed_and_corrupt_files_are_clear(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"args": argparse.Namespace(size=32), "g": {"w": torch.ones(2)}}, path)
    obj = safe_torch_load(path)
    assert obj["args"].size == 32
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            safe_torch_load(bad)
