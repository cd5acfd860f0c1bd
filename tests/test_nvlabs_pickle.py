"""NVlabs stylegan2-ada .pkl files: converted without running their code, and reproducing the official outputs.

tests/data/nvlabs/stylegan2ada_tiny.pkl and its outputs were made by the official stylegan2-ada-pytorch code
(tests/data/nvlabs/make_nvlabs_pickle.py; CPU reference ops)."""
from __future__ import annotations

import io
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from ganedit.errors import CheckpointError
from ganedit.formats import nvlabs_pickle as nv

DATA = Path(__file__).resolve().parent / "data" / "nvlabs"
PKL = DATA / "stylegan2ada_tiny.pkl"


def reference():
    from safetensors.torch import load_file

    return load_file(str(DATA / "stylegan2ada_tiny_outputs.safetensors"))


def check_outputs(model) -> None:
    ref = reference()
    with torch.no_grad():
        w = model.mapping(ref["z"])
        assert torch.allclose(w, ref["ws"][:, 0], atol=1e-5)
        assert torch.allclose(model.w_avg, ref["w_avg"])
        img = model.synthesis(w, noise="const")
        assert (img - ref["img"]).abs().max() < 1e-4, float((img - ref["img"]).abs().max())
        w07 = model.mapping(ref["z"], truncation=0.7)
        assert torch.allclose(w07, ref["ws_psi07"][:, 0], atol=1e-5)
        assert (model.synthesis(w07, noise="const") - ref["img_psi07"]).abs().max() < 1e-4
    assert float(ref["img"].std()) > 0.1  # the reference is not a flat image that anything would match
    if hasattr(model, "d"):
        with torch.no_grad():
            assert torch.allclose(model.d(ref["img"]), ref["d_logits"], atol=1e-5)


def test_nvlabs_pickle_converts_and_reproduces_official_outputs():
    import ganedit

    before = set(sys.modules)
    model = ganedit.load(PKL)
    new = set(sys.modules) - before
    # nothing from the file was imported or executed: persistence would create _imported_module_* modules
    assert not [m for m in new if m.startswith(("_imported_module_", "torch_utils", "dnnlib", "training"))]
    assert model.g_ema.channels == {4: 16, 8: 16, 16: 8} and model.n_latent == 6 and model.style_dim == 32
    assert hasattr(model, "g")  # the training generator G comes along as g
    assert model.checkpoint_meta["discriminator"] == "converted" and model.d.channels == {16: 8, 8: 16, 4: 16}
    assert "conv_clamp=256" in model.checkpoint_meta["notes"][0]
    check_outputs(model)


def test_convert_cli_writes_a_native_folder(tmp_path):
    import ganedit
    from ganedit.cli.main import main

    main(["convert", str(PKL), str(tmp_path / "native")])
    check_outputs(ganedit.load(tmp_path / "native"))


def test_refuses_stylegan3_and_conditional_generators():
    obj = nv.read_nvlabs_pickle(PKL)
    G = obj["G_ema"]
    synthesis = G.child("synthesis")
    synthesis.state["_modules"]["input"] = nv.PersistentObject("SynthesisInput", {})
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        nv.convert_object({"G_ema": G}, "sg3.pkl")
    del synthesis.state["_modules"]["input"]
    G.state["c_dim"] = 10
    with pytest.raises(CheckpointError, match="conditional"):
        nv.convert_object({"G_ema": G}, "cond.pkl")


# ------------------------------------------------------------------------------------------- malicious files


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    bad = _System(f"touch {marker}") if payload == "system" else _Eval(f"open({str(marker)!r}, 'w').write('x')")
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": bad}))
    with pytest.raises(CheckpointError, match=r"evil\.pkl: refused to load.*(system|eval)"):
        nv.read_nvlabs_pickle(path)
    import ganedit

    with pytest.raises(CheckpointError, match="refused"):
        ganedit.load(path)
    assert not marker.exists()
    # control: an ordinary unpickler does run the payload, so the check above can fail
    if payload == "system":
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_embedded_source_is_never_executed(tmp_path, monkeypatch):
    """A file shaped exactly like an NVlabs snapshot whose embedded module source would write a file."""
    marker = tmp_path / "pwned"
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # the pickler only records this function's name
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)

    class Persistent:
        def __reduce__(self):
            src = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator:\n    pass\n"
            return (_reconstruct_persistent_obj, (dict(type="class", version=6, module_src=src, class_name="Generator",
                                                       state={"z_dim": 4, "_modules": {}}),))

    path = tmp_path / "source.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Persistent()}))
    obj = nv.read_nvlabs_pickle(path)
    assert isinstance(obj["G_ema"], nv.PersistentObject) and "open(" in obj["G_ema"].module_src
    with pytest.raises(CheckpointError, match="not a stylegan2-ada generator"):
        nv.convert_object(obj, path)
    assert not marker.exists()


def test_malicious_tensor_storage_is_refused(tmp_path, monkeypatch):
    """torch.storage._load_from_bytes is allowed, but its bytes are read with weights_only=True."""
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(_System(f"touch {marker}"), inner, _use_new_zipfile_serialization=False)

    def _load_from_bytes(b):
        raise AssertionError("never called")

    _load_from_bytes.__module__ = "torch.storage"
    _load_from_bytes.__qualname__ = "_load_from_bytes"
    monkeypatch.setattr(torch.storage, "_load_from_bytes", _load_from_bytes)

    class Storage:
        def __reduce__(self):
            return (_load_from_bytes, (inner.getvalue(),))

    path = tmp_path / "storage.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Storage()}))
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="storage.pkl.*not plain data"):
        nv.read_nvlabs_pickle(path)
    assert not marker.exists()


def test_truncated_and_tensorflow_pickles_get_clear_errors(tmp_path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(PKL.read_bytes()[: 5000])
    with pytest.raises(CheckpointError, match="cut.pkl: not a readable NVlabs pickle"):
        nv.read_nvlabs_pickle(cut)
    tf = tmp_path / "tf.pkl"
    # the first bytes of a TensorFlow-era pickle: a dnnlib.tflib Network object
    tf.write_bytes(b"\x80\x03cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01.")
    with pytest.raises(CheckpointError, match="TensorFlow-era"):
        nv.read_nvlabs_pickle(tf)
    import ganedit

    with pytest.raises(CheckpointError, match="tf.pkl: refused.*TensorFlow-era"):
        ganedit.load(tf)  # found by its content, through the foreign-checkpoint dispatch


def test_numpy_values_and_plain_containers_load():
    import numpy as np

    data = pickle.dumps({"gain": np.float64(0.25), "filter": np.arange(4, dtype=np.float32), "n": 3})
    out = nv._RestrictedUnpickler(io.BytesIO(data)).load()
    assert out["gain"] == 0.25 and out["filter"].tolist() == [0, 1, 2, 3] and out["n"] == 3
