"""pSp / e4e losses beyond L2: the ArcFace IR-SE50 identity loss and the MoCo v2 similarity loss read from state
dicts in the official key layouts (written here with random values), the face-crop losses of frontalization, the
clear skip when weights are missing, and the per-task official loss weights that --set overrides."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from click.testing import CliRunner

from ganedit.cli.main import cli as group
from ganedit.errors import CheckpointError, ConfigError
from ganedit.methods import get_method
from ganedit.methods.psp import TASK_LOSSES, PSPMethod
from ganedit.metrics.identity_net import ArcFaceIRSE50, IdentityLoss, arcface_arch, face_box, load_arcface
from ganedit.metrics.lpips_net import LPIPS
from ganedit.metrics.moco_net import MocoLoss, ResNet50Features, load_moco
from ganedit.metrics.weights import MissingWeightsError
from ganedit.train.config import parse_sets, resolve
from ganedit.train.loop import train

FAST = {"workers": 0, "device": "cpu", "tensorboard": False, "quiet": True, "log_every": 1, "snapshot_every": 0,
        "checkpoint_every": 0, "data": "synthetic:4", "size": 32, "input_size": 32, "batch": 2, "units": [1, 1, 1, 1],
        "depths": [4, 6, 8, 10], "input_width": 4, "se_reduction": 2, "lpips_lambda": 0.0}
E4E_FAST = {**FAST, "progressive_start": 1, "progressive_step_every": 1, "w_pool_size": 2, "d_reg_every": 2}


# -- state dicts in the official layouts, enumerated from the official code's structure (not from our modules) --
def arcface_shapes(width=64, depths=(64, 128, 256, 512), units=(3, 4, 14, 3), se=16, embedding=512):
    """Key -> shape of TreB1eN's Backbone(112, 50, 'ir_se') state dict (``model_ir_se50.pth``) at these widths."""
    shapes = {}

    def bn(prefix, c):
        shapes.update({f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["input_layer.0.weight"] = (width, 3, 3, 3)
    bn("input_layer.1", width)
    shapes["input_layer.2.weight"] = (width,)
    unit, cin = 0, width
    for depth, count in zip(depths, units):
        for _ in range(count):
            p = f"body.{unit}"
            if cin != depth:  # conv shortcut; otherwise MaxPool2d(1, stride), no state
                shapes[f"{p}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
                bn(f"{p}.shortcut_layer.1", depth)
            bn(f"{p}.res_layer.0", cin)
            shapes[f"{p}.res_layer.1.weight"] = (depth, cin, 3, 3)
            shapes[f"{p}.res_layer.2.weight"] = (depth,)
            shapes[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
            bn(f"{p}.res_layer.4", depth)
            shapes[f"{p}.res_layer.5.fc1.weight"] = (depth // se, depth, 1, 1)
            shapes[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // se, 1, 1)
            unit, cin = unit + 1, depth
    bn("output_layer.0", depths[-1])
    shapes["output_layer.3.weight"] = (embedding, depths[-1] * 7 * 7)
    shapes["output_layer.3.bias"] = (embedding,)
    bn("output_layer.4", embedding)
    return shapes


def resnet50_shapes():
    """Key -> shape of torchvision's resnet50 state dict without ``fc`` (MoCo's ``encoder_q`` backbone)."""
    shapes = {}

    def bn(prefix, c):
        shapes.update({f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    cin = 64
    for layer, (count, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), 1):
        for k in range(count):
            p = f"layer{layer}.{k}"
            shapes[f"{p}.conv1.weight"] = (width, cin, 1, 1)
            bn(f"{p}.bn1", width)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            bn(f"{p}.bn2", width)
            shapes[f"{p}.conv3.weight"] = (width * 4, width, 1, 1)
            bn(f"{p}.bn3", width * 4)
            if k == 0:
                shapes[f"{p}.downsample.0.weight"] = (width * 4, cin, 1, 1)
                bn(f"{p}.downsample.1", width * 4)
            cin = width * 4
    return shapes


def random_state(shapes, seed=0):
    """Random values that keep activations at a sane scale: He-scaled weights, BN variances around 1."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2:
            state[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:]))
        elif key.endswith(".weight") and ("bn" in key or key.split(".")[-2].isdigit()):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)  # BN / PReLU scales
        else:
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


SMALL_ARC = {"width": 8, "depths": (8, 12, 16, 24), "units": (1, 2, 1, 1), "se": 4, "embedding": 32}


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("GANEDIT_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def small_arcface(tmp_path_factory):
    """A stand-in ArcFace file: the official key layout at small widths, written as the official .pth is."""
    path = tmp_path_factory.mktemp("arc") / "model_ir_se50.pth"
    torch.save(random_state(arcface_shapes(**SMALL_ARC), seed=1), path)
    return path


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "loss/total" in line]


# -- identity ------------------------------------------------------------------------------------------------------
def test_arcface_has_the_official_ir_se50_layout():
    with torch.device("meta"):  # shapes only: nothing allocated
        own = {k: tuple(v.shape) for k, v in ArcFaceIRSE50().state_dict().items()}
    assert own == arcface_shapes()  # 24 units, Linear 25088 -> 512, BatchNorm1d(512): every key and shape
    assert arcface_arch({k: torch.empty(s, device="meta") for k, s in own.items()}, "f") == {
        "width": 64, "depths": [64, 128, 256, 512], "units": [3, 4, 14, 3], "se_reduction": 16, "embedding": 512}


def test_identity_loss_from_an_official_layout_file(small_arcface):
    net = load_arcface(small_arcface)
    state = torch.load(small_arcface, weights_only=True)
    assert torch.equal(net.state_dict()["body.1.res_layer.3.weight"], state["body.1.res_layer.3.weight"])
    loss = IdentityLoss(net)
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert abs(float(loss(a, a))) < 1e-5  # identical images: 1 - cos = 0
    assert float(loss(a, b)) > 1e-3
    framed = a.clone()  # the loss reads the face box only
    top, bottom, left, right = face_box(64)
    framed[:, :, bottom:] = -1.0
    framed[:, :, :, :left] = 1.0
    assert abs(float(loss(framed, a))) < 1e-5
    emb = net(torch.rand(3, 3, 112, 112))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))  # unit embeddings
    # the loss reaches the output image, not the target or the fixed network
    out = b.clone().requires_grad_(True)
    target = a.clone().requires_grad_(True)
    loss(out, target).backward()
    assert out.grad.abs().sum() > 0 and target.grad is None
    assert all(p.grad is None for p in net.parameters())
    # an old-torch file without num_batches_tracked loads too; a file of another network is a clear error
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, small_arcface.parent / "old.pth")
    load_arcface(small_arcface.parent / "old.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, small_arcface.parent / "other.pth")
    with pytest.raises(CheckpointError, match="ArcFace"):
        load_arcface(small_arcface.parent / "other.pth")


def test_missing_identity_weights_name_the_file(empty_cache, tmp_path):
    with pytest.raises(MissingWeightsError, match="model_ir_se50.pth") as info:
        load_arcface()
    assert str(empty_cache / "identity") in str(info.value) and "id_weights" in str(info.value)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_arcface(tmp_path / "nope.pth")
    # found in the cache folder under its official name
    torch.save(random_state(arcface_shapes(**SMALL_ARC)), empty_cache / "model_ir_se50.pth")
    assert load_arcface().arch["embedding"] == 32


# -- crop losses -----------------------------------------------------------------------------------------------------
def test_face_box_scales_with_the_image():
    assert face_box(256) == (35, 223, 32, 220)  # pSp's crop of its 256-px outputs
    assert face_box(64) == (9, 56, 8, 55) and face_box(1024) == (140, 892, 128, 880)


def test_crop_losses_see_only_the_crop():
    method = PSPMethod({**PSPMethod.defaults, "l2_lambda_crop": 0.5, "lpips_lambda_crop": 0.8})
    method.lpips = LPIPS("alex")  # random weights: enough to see which pixels the term reads
    torch.manual_seed(0)
    out, target = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    top, bottom, left, right = face_box(64)
    logs = {}
    base = method.crop_losses(out, target, logs)
    assert set(logs) == {"loss/l2_crop", "loss/lpips_crop"}
    torch.testing.assert_close(base, 0.5 * logs["loss/l2_crop"] + 0.8 * logs["loss/lpips_crop"])
    outside = out.clone()
    outside[:, :, :top] = 1.0
    outside[:, :, :, right:] = -1.0
    torch.testing.assert_close(method.crop_losses(outside, target, {}), base)
    inside = out.clone()
    inside[:, :, top + 5:top + 15, left + 5:left + 15] = 1.0
    assert not torch.allclose(method.crop_losses(inside, target, {}), base)


# -- per-task defaults -----------------------------------------------------------------------------------------------
def test_task_defaults_follow_the_official_readme_and_set_wins():
    psp = get_method("psp")
    front = resolve(psp, {"task": "frontalize"})
    assert {k: front[k] for k in TASK_LOSSES["frontalize"]} == {
        "l2_lambda": 0.001, "lpips_lambda": 0.08, "id_lambda": 1.0, "w_norm_lambda": 0.005,
        "l2_lambda_crop": 0.01, "lpips_lambda_crop": 0.8}
    enc = resolve(psp, {})
    assert (enc["l2_lambda"], enc["lpips_lambda"], enc["id_lambda"], enc["w_norm_lambda"]) == (1.0, 0.8, 0.1, 0.0)
    for task in ("sketch", "segmentation"):
        cfg = resolve(psp, {"task": task})
        assert (cfg["id_lambda"], cfg["w_norm_lambda"], cfg["lpips_lambda"], cfg["l2_lambda"]) == (0.0, 0.005, 0.8, 1.0)
    sr = resolve(psp, {"task": "super_resolution"})
    assert (sr["id_lambda"], sr["w_norm_lambda"], sr["l2_lambda_crop"]) == (0.1, 0.005, 0.0)
    # explicit values win over the task's, whichever way they are given
    mine = resolve(psp, {**parse_sets(["task=frontalize", "id_lambda=0.25", "l2_lambda_crop=0"])})
    assert (mine["id_lambda"], mine["l2_lambda_crop"], mine["lpips_lambda_crop"]) == (0.25, 0.0, 0.8)
    every = {k: 0.5 for k in ("l2_lambda", "lpips_lambda", "id_lambda", "w_norm_lambda", "l2_lambda_crop", "lpips_lambda_crop")}
    assert all(resolve(psp, {"task": "frontalize", **every})[k] == 0.5 for k in every)
    with pytest.raises(ConfigError, match="id_lambda and moco_lambda"):
        resolve(psp, {"moco_lambda": 0.5})  # encode's id 0.1 plus MoCo: the official code refuses both
    with pytest.raises(ConfigError, match="l2_lambda_crop"):
        resolve(psp, {"l2_lambda_crop": -1})
    # e4e keeps its own recipe for every task and has one similarity weight
    e4e = resolve(get_method("e4e"), {"task": "sketch"})
    assert e4e["similarity_lambda"] == 0.5 and e4e["w_norm_lambda"] == 0.0 and "id_lambda" not in e4e
    with pytest.raises(ConfigError, match="similarity"):
        resolve(get_method("e4e"), {"similarity": "clip"})


def test_dry_run_prints_the_task_values(tmp_path):
    result = CliRunner().invoke(group, ["train", "psp", "--out", str(tmp_path / "r"), "--set", "task=sketch",
                                        "--set", "l2_lambda=2", "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output[result.output.index("{"):])
    assert (cfg["w_norm_lambda"], cfg["id_lambda"], cfg["l2_lambda"]) == (0.005, 0.0, 2.0)


# -- training --------------------------------------------------------------------------------------------------------
def test_training_without_identity_weights_says_so_and_skips_the_term(tmp_path, decoder, empty_cache, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="ganedit"):
        train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 2})
    skipped = [r.getMessage() for r in caplog.records if "identity loss skipped" in r.getMessage()]
    assert len(skipped) == 1 and "model_ir_se50.pth" in skipped[0]
    rows = _rows(run)
    assert len(rows) == 2 and all("loss/id" not in r for r in rows)
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["id_lambda"] == 0.1 and saved["task"] == "encode"  # the value asked for, the term skipped


def test_training_with_identity_weights_adds_the_term(tmp_path, decoder, small_arcface):
    run = tmp_path / "run"
    train("psp", {**FAST, "decoder": decoder, "out": str(run), "steps": 2, "id_weights": str(small_arcface),
                  "id_lambda": 0.5, "task": "frontalize", "data": "synthetic:2"})
    rows = _rows(run)
    assert len(rows) == 2
    for r in rows:  # frontalize: l2 0.001, id 0.5 (set), l2_crop 0.01, w_norm 0.005; LPIPS off (lpips_lambda 0)
        assert r["loss/id"] > 0
        want = 0.001 * r["loss/l2"] + 0.5 * r["loss/id"] + 0.01 * r["loss/l2_crop"] + 0.005 * r["loss/w_norm"]
        assert r["loss/total"] == pytest.approx(want, rel=1e-5)


def test_e4e_similarity_identity_and_missing_moco(tmp_path, decoder, small_arcface, empty_cache, caplog):
    run = tmp_path / "id"
    train("e4e", {**E4E_FAST, "decoder": decoder, "out": str(run), "steps": 1, "id_weights": str(small_arcface)})
    assert _rows(run)[0]["loss/id"] > 0
    run = tmp_path / "moco"
    with caplog.at_level(logging.WARNING, logger="ganedit"):
        train("e4e", {**E4E_FAST, "decoder": decoder, "out": str(run), "steps": 1, "similarity": "moco"})
    assert any("MoCo similarity loss skipped" in r.getMessage() and "moco_v2_800ep_pretrain" in r.getMessage()
               for r in caplog.records)
    assert all("loss/moco" not in r and "loss/id" not in r for r in _rows(run))


# -- MoCo ------------------------------------------------------------------------------------------------------------
def test_moco_loads_the_query_encoder_of_a_moco_v2_checkpoint(tmp_path):
    shapes = resnet50_shapes()
    with torch.device("meta"):
        assert {k: tuple(v.shape) for k, v in ResNet50Features().state_dict().items()} == shapes
    query = random_state(shapes, seed=2)
    state = {f"module.encoder_q.{k}": v for k, v in query.items()}
    # the key encoder (same layout, other values) must not be what loads; two of its keys stand for all
    state.update({f"module.encoder_k.{k}": torch.randn(shapes[k]) for k in ("conv1.weight", "layer2.0.conv2.weight")})
    state.update({"module.encoder_q.fc.0.weight": torch.randn(8, 2048), "module.encoder_q.fc.0.bias": torch.zeros(8),
                  "module.encoder_q.fc.2.weight": torch.randn(4, 8), "module.encoder_q.fc.2.bias": torch.zeros(4),
                  "module.queue": torch.randn(4, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)})
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    net = load_moco(path)
    assert torch.equal(net.state_dict()["layer2.0.conv2.weight"], query["layer2.0.conv2.weight"])  # encoder_q, not _k
    loss = MocoLoss(net)
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1  # one image each: a full ResNet-50 at 224
    assert abs(float(loss(a, a))) < 1e-5 and float(loss(a, b)) > 1e-4
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(64, 3, 7, 7)}}, tmp_path / "moco_part.pth")
    with pytest.raises(CheckpointError, match="missing"):
        load_moco(tmp_path / "moco_part.pth")


def test_lpips_crop_term_skipped_when_the_crop_is_too_small(tmp_path, decoder, empty_cache, caplog):
    """Frontalize at 32 px with LPIPS weights present: the 24-px face crop is below AlexNet's 31 px, so that one
    term is skipped with a log line; LPIPS on the whole image and the L2 crop term stay."""
    torch.save(LPIPS("alex").state_dict(), empty_cache / "lpips_alex.pth")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="ganedit"):
        train("psp", {**{k: v for k, v in FAST.items() if k != "lpips_lambda"}, "decoder": decoder, "out": str(run),
                      "steps": 1, "task": "frontalize", "data": "synthetic:2"})
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "LPIPS crop loss skipped: the face crop is 24 px at size 32" in messages
    assert "identity loss skipped" in messages  # the cache holds no ArcFace file
    row = _rows(run)[0]
    assert "loss/lpips_crop" not in row and row["loss/lpips"] > 0
    want = 0.001 * row["loss/l2"] + 0.08 * row["loss/lpips"] + 0.01 * row["loss/l2_crop"] + 0.005 * row["loss/w_norm"]
    assert row["loss/total"] == pytest.approx(want, rel=1e-5)
