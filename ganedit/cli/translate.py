"""`ganedit translate`: run a pix2pix or CycleGAN generator on image files and folders."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

TEST_MODE_HELP = (
    "eval: model.eval() (running BatchNorm statistics, no dropout; official test.py --eval). "
    "official: the official default test behaviour, the net left in train mode (per-image BatchNorm statistics, "
    "dropout 0.5 on, so pix2pix outputs vary unless --seed is given). For InstanceNorm nets without dropout "
    "(CycleGAN) both are the same."
)


def _collect(inputs: Sequence[str], out: Path) -> List[Tuple[Path, Path]]:
    """(input file, output file) pairs. A file goes to OUT/<name>.png (or to OUT itself when OUT names an image
    and there is one input file); a folder's images are mirrored by relative path (under OUT/<folder name>/ when
    several inputs are given)."""
    from ganedit.data.io import is_image_name
    from ganedit.errors import DataError

    single_file_target = len(inputs) == 1 and Path(inputs[0]).is_file() and out.suffix != ""
    pairs: List[Tuple[Path, Path]] = []
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and is_image_name(p.name))
            if not files:
                raise DataError(f"{src}: no image files in this folder")
            base = out if len(inputs) == 1 else out / src.name
            pairs += [(p, (base / p.relative_to(src)).with_suffix(".png")) for p in files]
        elif src.is_file():
            pairs.append((src, out if single_file_target else out / (src.stem + ".png")))
        else:
            raise DataError(f"{src}: no such file or folder")
    targets: Dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in targets:
            raise DataError(f"{src} and {targets[dst]} would both be written to {dst}; rename one of them")
        targets[dst] = src
    return pairs


def load_translation_model(path: str, epoch: str = "latest"):
    """A native ganedit folder, an official .pth file, an official checkpoints/<name>/ folder, or a ganedit
    training run folder / checkpoint."""
    import ganedit
    from ganedit.formats.native import CONFIG_FILE
    from ganedit.formats.training_run import is_run_folder

    p = Path(path)
    if p.is_dir() and not (p / CONFIG_FILE).exists() and not is_run_folder(p):
        from ganedit.formats.convert_translation import load_experiment

        return load_experiment(p, epoch)
    return ganedit.load(p)


def translate_files(model_path: str, inputs: Sequence[str], out: str, direction: str = "AtoB", test_mode: str = "eval",
                    batch: int = 4, size: Optional[int] = None, seed: Optional[int] = None, epoch: str = "latest",
                    progress: bool = True) -> List[Path]:
    """Translate every input image and write the results; returns the written paths."""
    import torch
    from tqdm import tqdm

    from ganedit.data.io import read_image, write_image
    from ganedit.errors import ConfigError
    from ganedit.models.cyclegan import select_generator
    from ganedit.models.pix2pix import has_batch_norm, set_test_mode

    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    generator = select_generator(load_translation_model(model_path, epoch), direction)
    set_test_mode(generator, test_mode)
    generator.to(memory_format=torch.channels_last)
    # Official test mode normalises each image with its own BatchNorm statistics (test.py runs batch size 1), so
    # batching there would change the result: such nets run one image at a time.
    per_image = test_mode == "official" and has_batch_norm(generator)
    step = 1 if per_image else batch
    multiple = int(generator.size_multiple)
    in_nc = int(generator.config["input_nc"])
    if seed is not None:
        torch.manual_seed(seed)
    pairs = _collect(inputs, Path(out))
    pending: Dict[Tuple[int, int], List[Tuple[torch.Tensor, Path]]] = {}
    written: List[Path] = []

    def run(items: List[Tuple[torch.Tensor, Path]]) -> None:
        x = torch.cat([t for t, _ in items]).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = generator(x).contiguous()
        for i, (_, dst) in enumerate(items):
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_image(y[i : i + 1], dst)
            written.append(dst)

    for src, dst in tqdm(pairs, desc="translate", unit="img", disable=not progress or len(pairs) < 2):
        x = read_image(src, size, crop=False, allow_upscale=True)
        h, w = x.shape[-2:]
        if h % multiple or w % multiple:
            raise ConfigError(f"{src}: image is {w}x{h}, but this generator needs sides that are multiples of {multiple}; use --size N (e.g. --size 256)")
        if in_nc == 1:  # official single-channel nets read grayscale (PIL "L" weights)
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        elif in_nc != 3:
            raise ConfigError(f"the generator takes {in_nc} input channels; only 1- or 3-channel generators translate image files")
        group = pending.setdefault((h, w), [])
        group.append((x, dst))
        if len(group) == step:
            run(group)
            pending[(h, w)] = []
    for group in pending.values():
        if group:
            run(group)
    return written


def register(cli: click.Group) -> None:
    @cli.command("translate")
    @click.option("--model", "model_path", required=True, help="Native ganedit folder, official latest_net_G*.pth file, or official checkpoints/<name>/ folder.")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("-o", "--out", required=True, type=click.Path(), help="Output folder (or an image file name for a single input file).")
    @click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True,
                  help="CycleGAN: AtoB uses G_A, BtoA uses G_B. A single generator only supports AtoB.")
    @click.option("--test-mode", type=click.Choice(["eval", "official"]), default="eval", show_default=True, help=TEST_MODE_HELP)
    @click.option("--batch", type=int, default=4, show_default=True, help="Images per forward pass (same-size images are batched).")
    @click.option("--size", type=int, default=None, help="Resize every input to N x N (bicubic, as official test.py with load_size = crop_size = N). Default: keep the size; it must fit the network.")
    @click.option("--seed", type=int, default=None, help="Seed for the dropout of --test-mode official.")
    @click.option("--epoch", default="latest", show_default=True, help="Which <epoch>_net_G*.pth to use from an official checkpoints folder.")
    def translate(model_path: str, inputs: Tuple[str, ...], out: str, direction: str, test_mode: str, batch: int,
                  size: Optional[int], seed: Optional[int], epoch: str) -> None:
        """Translate images with a pix2pix or CycleGAN generator.

        Files and folders are accepted; a folder is processed in batches with a progress bar and its images are
        written under OUT with the same relative paths (as .png).

        \b
        Examples:
          ganedit translate --model checkpoints/horse2zebra/ photos/ -o zebras/ --direction AtoB
          ganedit translate --model facades_label2photo.pth label.png -o photo.png --size 256 --test-mode official --seed 0
        """
        written = translate_files(model_path, inputs, out, direction, test_mode, batch, size, seed, epoch)
        click.echo(f"wrote {len(written)} image(s) to {out}")
