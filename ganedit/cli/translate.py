"""`ganedit translate`: run a pix2pix or CycleGAN generator on image files and folders."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import click

from ganedit.cli._options import batch_option, device_option, model_option, out_option, quiet_option, size_option

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


def prepare_generator(model_path: str, direction: str = "AtoB", test_mode: str = "eval", epoch: str = "latest",
                      device: str = "cpu", aligned: bool = False) -> Any:
    """The generator for ``direction``, in ``test_mode``, on ``device`` (auto | cpu | cuda). ``aligned``: the
    direction names the input half of A|B pairs, so a single generator (pix2pix trained BtoA) serves BtoA too."""
    import torch

    from ganedit.cli._options import resolve_device
    from ganedit.models.cyclegan import GeneratorPair, select_generator
    from ganedit.models.pix2pix import set_test_mode

    model = load_translation_model(model_path, epoch)
    if aligned and not isinstance(model, GeneratorPair):
        direction = "AtoB"
    generator = select_generator(model, direction)
    set_test_mode(generator, test_mode)
    return generator.to(resolve_device(device), memory_format=torch.channels_last)


def input_converter(generator: Any) -> Callable[[Path, Any], Any]:
    """A function (source path, [1, 3, H, W] image) -> the generator's input, on its device: checks the size
    multiple and makes grayscale for single-channel nets."""
    from ganedit.errors import ConfigError

    multiple = int(generator.size_multiple)
    in_nc = int(generator.config["input_nc"])
    device = next(generator.parameters()).device

    def convert(src: Path, x: Any) -> Any:
        h, w = x.shape[-2:]
        if h % multiple or w % multiple:
            raise ConfigError(f"{src}: image is {w}x{h}, but this generator needs sides that are multiples of {multiple}; use --size N (e.g. --size 256)")
        if in_nc == 1:  # official single-channel nets read grayscale (PIL "L" weights)
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        elif in_nc != 3:
            raise ConfigError(f"the generator takes {in_nc} input channels; only 1- or 3-channel generators translate image files")
        return x.to(device)

    return convert


def translate_files(model_path: str, inputs: Sequence[str], out: str, direction: str = "AtoB", test_mode: str = "eval",
                    batch: int = 4, size: Optional[int] = None, seed: Optional[int] = None, epoch: str = "latest",
                    progress: bool = True, device: str = "cpu") -> List[Path]:
    """Translate every input image and write the results; returns the written paths."""
    import torch
    from tqdm import tqdm

    from ganedit.data.io import read_image, write_image
    from ganedit.errors import ConfigError
    from ganedit.models.pix2pix import has_batch_norm

    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    generator = prepare_generator(model_path, direction, test_mode, epoch, device)
    # Official test mode normalises each image with its own BatchNorm statistics (test.py runs batch size 1), so
    # batching there would change the result: such nets run one image at a time.
    per_image = test_mode == "official" and has_batch_norm(generator)
    step = 1 if per_image else batch
    convert = input_converter(generator)
    if seed is not None:
        torch.manual_seed(seed)
    pairs = _collect(inputs, Path(out))
    pending: Dict[Tuple[int, int], List[Tuple[torch.Tensor, Path]]] = {}
    written: List[Path] = []

    def run(items: List[Tuple[torch.Tensor, Path]]) -> None:
        x = torch.cat([t for t, _ in items]).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = generator(x).contiguous().cpu()
        for i, (_, dst) in enumerate(items):
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_image(y[i : i + 1], dst)
            written.append(dst)

    for src, dst in tqdm(pairs, desc="translate", unit="img", disable=not progress or len(pairs) < 2):
        x = convert(src, read_image(src, size, crop=False, allow_upscale=True))
        h, w = x.shape[-2:]
        group = pending.setdefault((h, w), [])
        group.append((x, dst))
        if len(group) == step:
            run(group)
            pending[(h, w)] = []
    for group in pending.values():
        if group:
            run(group)
    return written


def aligned_files(inputs: Sequence[str]) -> List[Tuple[Path, str]]:
    """(file, output name) for every image of the aligned inputs (files or folders; a folder with a test/
    sub-folder means that one, as the official test phase)."""
    from ganedit.data.sources import list_images
    from ganedit.errors import DataError

    found: List[Tuple[Path, str]] = []
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            root = src / "test" if (src / "test").is_dir() else src
            names = list_images(root)
            if not names:
                raise DataError(f"{root}: no image files in this folder")
            prefix = "" if len(inputs) == 1 else f"{src.name}/"
            found += [(root / n, prefix + str(Path(n).with_suffix(""))) for n in names]
        else:
            found.append((src, src.stem))
    return found


def register(cli: click.Group) -> None:
    @cli.command("translate")
    @model_option("Native ganedit folder, official latest_net_G*.pth file, or official checkpoints/<name>/ folder.")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
    @out_option("Output folder (or an image file name for a single input file).", required=True, type=click.Path())
    @click.option("--aligned", is_flag=True,
                  help="INPUTS are A|B pairs (a folder's test/ sub-folder when there is one): translate the A half, write "
                       "input | output | truth side by side with an index.html and scores.json, print PSNR/SSIM.")
    @click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True,
                  help="CycleGAN: AtoB uses G_A, BtoA uses G_B. A single generator only supports AtoB. With --aligned, "
                       "BtoA also takes the B half as the input.")
    @click.option("--test-mode", type=click.Choice(["eval", "official"]), default="eval", show_default=True, help=TEST_MODE_HELP)
    @batch_option(4, "Images per forward pass (same-size images are batched).")
    @size_option("Resize every input to N x N (bicubic, as official test.py with load_size = crop_size = N). Default: keep the size; it must fit the network.",
                 type=click.IntRange(1), default=None)
    @click.option("--seed", type=int, default=None, help="Seed for the dropout of --test-mode official.")
    @click.option("--epoch", default="latest", show_default=True, help="Which <epoch>_net_G*.pth to use from an official checkpoints folder.")
    @device_option()
    @quiet_option("No progress bar.")
    def translate(model_path: str, inputs: Tuple[str, ...], out: str, aligned: bool, direction: str, test_mode: str, batch: int,
                  size: Optional[int], seed: Optional[int], epoch: str, device: str, quiet: bool) -> None:
        """Translate images with a pix2pix or CycleGAN generator.

        Files and folders are accepted; a folder is processed in batches with a progress bar and its images are
        written under OUT with the same relative paths (as .png). --aligned scores a model on A|B test pairs.

        \b
        Examples:
          ganedit translate --model checkpoints/horse2zebra/ photos/ -o zebras/ --direction AtoB
          ganedit translate --model facades_label2photo.pth label.png -o photo.png --size 256 --test-mode official --seed 0
          ganedit translate --model runs/p2p/model --aligned data/x2y/aligned -o results/   # then open results/index.html
        """
        if not aligned:
            written = translate_files(model_path, inputs, out, direction, test_mode, batch, size, seed, epoch, not quiet, device)
            click.echo(f"wrote {len(written)} image(s) to {out}")
            return
        import torch

        from ganedit.cli._aligned_report import translate_aligned
        from ganedit.models.pix2pix import has_batch_norm

        generator = prepare_generator(model_path, direction, test_mode, epoch, device, aligned=True)
        if seed is not None:
            torch.manual_seed(seed)
        step = 1 if test_mode == "official" and has_batch_norm(generator) else batch
        scores = translate_aligned(generator, aligned_files(inputs), Path(out), size, direction == "BtoA", step,
                                   input_converter(generator), progress=not quiet)
        click.echo(f"{scores['n']} pairs: PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} (output vs truth)")
        click.echo(f"wrote {Path(out) / 'index.html'}, compare/ (input | output | truth), output/, scores.json")
