"""The CLI's spelling rules (one spelling per concept, across every command), --device, shipped models by name,
`train METHOD --help`, and help texts that mention only features that exist."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import click
import pytest
import torch
from click.testing import CliRunner

import ganedit
from ganedit.cli.main import cli as group
from ganedit.data.io import write_image

REPO = Path(__file__).resolve().parents[1]

# Commands that run a model on images: each must offer --device auto|cpu|cuda.
INFERENCE_COMMANDS = {"swap", "swap-grid", "swapae pca", "swapae direction", "swapae edit-texture", "swapae region",
                      "translate", "sample", "mix", "eval", "demo", "invert", "psp", "project", "pti", "edit",
                      "data indomain"}


def walk(cmd: click.Command = group, prefix: str = "") -> Iterator[Tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, f"{prefix} {name}".strip())
    else:
        yield prefix, cmd


def visible_options(cmd: click.Command) -> List[click.Option]:
    ctx = click.Context(cmd)
    out = []
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden and p.get_help_record(ctx) is not None:
            record = p.get_help_record(ctx)[0]
            # a --x/--no-x flag pair is one concept: its off-switch is not a second long name
            p_shown = [o for o in p.opts if re.search(rf"(^|[ ,/]){re.escape(o)}($|[ ,/=])", record)]
            out.append((p, p_shown))
    return out


def invoke(*args, ok: bool = True):
    result = CliRunner().invoke(group, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


# --------------------------------------------------------------------------------------------------- spelling


def test_one_spelling_per_concept_across_all_commands():
    long_to_short: Dict[str, Set[str]] = {}
    short_to_long: Dict[str, Set[str]] = {}
    commands = dict(walk())
    assert {"swap", "translate", "eval", "train", "data synth", "models"} <= set(commands)
    for path, cmd in commands.items():
        for option, shown in visible_options(cmd):
            longs = [o for o in shown if o.startswith("--")]
            shorts = [o for o in shown if not o.startswith("--")]
            assert len(longs) == 1, f"{path}: {shown} shows several long names"
            long = longs[0]
            assert long not in ("--output", "--batch-size", "--json"), f"{path} shows the old spelling {long}"
            long_to_short.setdefault(long, set()).update(shorts or {""})
            for s in shorts:
                short_to_long.setdefault(s, set()).add(long)
            if option.name == "out":
                assert shown == ["-o", "--out"], f"{path}: the output option is {shown}, not -o/--out"
    for short, longs in short_to_long.items():
        assert len(longs) == 1, f"{short} means {sorted(longs)} in different commands"
    for long, shorts in long_to_short.items():
        assert len(shorts) == 1, f"{long} has the short forms {sorted(shorts)} (empty = none) in different commands"
    assert short_to_long["-o"] == {"--out"} and short_to_long["-s"] == {"--size"} and short_to_long["-q"] == {"--quiet"}


def test_every_output_is_dash_o_and_workers_means_one_thing():
    for path, cmd in walk():
        names = {p.name for p in cmd.params}
        if path in ("data prepare", "data synth", "convert", "sample", "mix", "eval", "train", "demo"):
            assert "out" in names, f"{path} has no -o/--out"
        for p in cmd.params:
            if p.name == "workers":
                assert "0: none" in p.help, f"{path}: --workers help {p.help!r}"
            if p.name == "batch":
                assert "--batch" in p.opts
    usage = invoke("data", "synth", "--help").output
    assert "[OUT]" not in usage and "-o, --out" in usage


def test_old_spellings_still_parse(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write_image(torch.zeros(1, 3, 32, 32), d / "x.png")
    invoke("eval", a, b, "-m", "psnr", "--batch-size", "2", "--json", tmp_path / "s.json", "-q")
    assert (tmp_path / "s.json").is_file()
    invoke("eval", a, b, "-m", "psnr", "--batch", "2", "-o", tmp_path / "t.json", "--quiet")
    assert (tmp_path / "t.json").is_file()
    invoke("data", "prepare", a, tmp_path / "old.zip", "-s", "32")  # positional DEST, the older form
    invoke("data", "prepare", a, "-o", tmp_path / "new.zip", "--size", "32")
    assert (tmp_path / "old.zip").is_file() and (tmp_path / "new.zip").is_file()
    bad = invoke("data", "prepare", a, "-s", "32", ok=False)
    assert bad.exit_code != 0 and "-o/--out" in str(bad.exception or bad.output)


def test_data_synth_workers_zero_writes_in_process(tmp_path, monkeypatch):
    import ganedit.data.synthetic.export as export

    pools = []
    monkeypatch.setattr(export._Writer, "__init__", lambda self, workers: (pools.append(workers), setattr(self, "pool", None))[-1])
    invoke("data", "synth", "--n", "300", "--n-test", "1", "--size", "32", "--layout", "images", "--workers", "0", "-q", "-o", tmp_path / "w")
    invoke("data", "synth", "--n", "2", "--n-test", "1", "--size", "32", "--layout", "images", "--workers", "2", "-q", "-o", tmp_path / "v")
    assert pools == [0, 2]  # 0 = no worker processes even for a large set; N = N processes
    assert len(list((tmp_path / "w" / "images").glob("*.png"))) == 300


# ------------------------------------------------------------------------------------------------- help texts


# feature words -> the command or training method whose existence allows them (pSp and e4e come back as they land)
def test_train_method_help_shows_the_recipe_defaults():
    text = invoke("train", "pix2pix", "--help").output
    assert "pix2pix recipe defaults" in text
    assert re.search(r"lambda_L1\s+100\.0", text) and re.search(r"gan_mode\s+\"vanilla\"", text)
    assert re.search(r"workers\s+2", text)  # engine defaults too
    text = invoke("train", "tinygan", "--help").output
    assert "tinygan recipe defaults" in text and "lambda_L1" not in text
    assert "recipe defaults" not in invoke("train", "--help").output
    assert "unknown method 'nosuchmethod'" in invoke("train", "nosuchmethod", "--help").output


# ----------------------------------------------------------------------------------------------------- device


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from ganedit.models.pix2pix import UnetGenerator
    from ganedit.models.stylegan2 import StyleGAN2
    from ganedit.models.swapae import SwappingAutoencoder

    root = tmp_path_factory.mktemp("device")
    torch.manual_seed(0)
    ganedit.save(SwappingAutoencoder.small(64, width=8, texture_channels=16, with_discriminators=False), root / "sae")
    ganedit.save(UnetGenerator(num_downs=5, ngf=4), root / "unet")
    ganedit.save(StyleGAN2(generator=dict(size=16, style_dim=16, n_mlp=2, channel_multiplier=1, channel_max=16)), root / "sg2")
    for i in range(2):
        write_image(torch.rand(1, 3, 64, 64) * 2 - 1, root / "img" / f"{i}.png")
    return root


def test_device_option_on_every_inference_command():
    commands = dict(walk())
    for path in INFERENCE_COMMANDS:
        option = next((p for p in commands[path].params if p.name == "device"), None)
        assert option is not None, f"`ganedit {path}` has no --device"
        assert list(option.type.choices) == ["auto", "cpu", "cuda"]


def test_device_cuda_without_cuda_is_a_clear_error(models, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    img = models / "img" / "0.png"
    runs = [
        ("swap", "--model", models / "sae", "--structure", img, "--texture", img, "-o", tmp_path / "s.png"),
        ("translate", "--model", models / "unet", img, "-o", tmp_path / "t.png"),
        ("sample", models / "sg2", "--n", "1", "-o", tmp_path / "g.png"),
        ("eval", models / "img", models / "img", "-m", "psnr", "-q"),
    ]
    for args in runs:
        result = CliRunner().invoke(group, [str(a) for a in args] + ["--device", "cuda"], standalone_mode=False)
        assert isinstance(result.exception, ganedit.GaneditError), (args[0], result.exception)
        assert "--device cuda: CUDA is not available" in str(result.exception)
        assert not (tmp_path / "s.png").exists()
    for args in runs:  # the cpu path (and auto -> cpu) works
        invoke(*args, "--device", "cpu")
        invoke(*args, "--device", "auto")


def test_device_moves_the_model(models, tmp_path, monkeypatch):
    """With CUDA reported available, --device cuda must move the networks there (recorded by a spy that then
    runs them on the CPU, since this machine has no GPU)."""
    moved: List[str] = []
    real_to = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        target = kwargs.pop("device", args[0] if args else None)
        rest = args[1:] if args else ()
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            moved.append(type(self).__name__)
            return real_to(self, "cpu", *rest, **kwargs)
        return real_to(self, *args, **({"device": target} if target is not None and not args else {}), **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", spy)
    img = models / "img"
    invoke("swap", "--model", models / "sae", "--structure", img / "0.png", "--texture", img / "1.png", "-o", tmp_path / "s.png", "--device", "cuda")
    invoke("swap-grid", "--model", models / "sae", img, img, "-o", tmp_path / "g.png", "--device", "auto")
    invoke("translate", "--model", models / "unet", img, "-o", tmp_path / "t", "--device", "cuda")
    invoke("sample", models / "sg2", "--n", "2", "-o", tmp_path / "x.png", "--device", "cuda")
    invoke("mix", models / "sg2", "--rows", "1", "--cols", "2", "--range", "0-1", "-o", tmp_path / "m.png", "--device", "cuda")
    invoke("swapae", "pca", "--model", models / "sae", img, "-o", tmp_path / "pca.pt", "--components", "1", "--device", "cuda")
    invoke("swapae", "region", "--model", models / "sae", "--target", img / "0.png", "--rect", "0", "0", "32", "32", "-o", tmp_path / "r.png", "--device", "cuda")
    assert moved == ["SwappingAutoencoder", "SwappingAutoencoder", "UnetGenerator", "StyleGAN2", "StyleGAN2", "SwappingAutoencoder", "SwappingAutoencoder"]
    moved.clear()
    invoke("swap", "--model", models / "sae", "--structure", img / "0.png", "--texture", img / "1.png", "-o", tmp_path / "s.png", "--device", "cpu")
    assert moved == []


# ------------------------------------------------------------------------------------------------ named models


def test_shipped_models_by_name(tmp_path, monkeypatch):
    text = invoke("models").output
    assert re.search(r"swapae-synth64\s+swapae\.SwappingAutoencoder\s+64\s+\d+\.\dMB\s+built-in synthetic world", text)
    model = ganedit.load("swapae-synth64")
    assert type(model).__name__ == "SwappingAutoencoder" and model.config["image_size"] == 64
    img = tmp_path / "a.png"
    write_image(torch.rand(1, 3, 64, 64) * 2 - 1, img)
    monkeypatch.chdir(tmp_path)
    invoke("swap", "--model", "swapae-synth64", "--structure", img, "--texture", img, "-o", tmp_path / "s.png")
    assert (tmp_path / "s.png").is_file()
    invoke("convert", "swapae-synth64", "-o", tmp_path / "copy")
    assert ganedit.load(tmp_path / "copy").config == model.config
    bad = invoke("swap", "--model", "swapae-synth65", "--structure", img, "--texture", img, "-o", tmp_path / "x.png", ok=False)
    assert bad.exit_code == 2 and "neither a file or folder nor a shipped model" in bad.output and "swapae-synth64" in bad.output
    with pytest.raises(ganedit.GaneditError):
        ganedit.load("swapae-synth65")


def test_a_local_path_wins_over_a_name_and_new_folders_are_found(tmp_path, monkeypatch):
    from ganedit.formats import named
    from ganedit.models.pix2pix import UnetGenerator

    monkeypatch.chdir(tmp_path)
    ganedit.save(UnetGenerator(num_downs=5, ngf=2), tmp_path / "swapae-synth64")
    assert type(ganedit.load("swapae-synth64")).__name__ == "UnetGenerator"
    # shipping a model = one folder under assets/ (name: folder with - for _)
    assets = tmp_path / "assets"
    ganedit.save(UnetGenerator(num_downs=5, ngf=2), assets / "unet_tiny32")
    found = named.shipped_models(assets)
    assert list(found) == ["unet-tiny32"] and found["unet-tiny32"].method == "pix2pix.UnetGenerator"


def test_openmp_waiting_default_yields_to_the_users_choice():
    from ganedit.cli.main import default_openmp_wait

    env = {}
    default_openmp_wait(env)
    assert env == {"GOMP_SPINCOUNT": "100000"}
    for own in ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "0"}):
        env = dict(own)
        default_openmp_wait(env)
        assert env == own
