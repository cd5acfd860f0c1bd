"""`ganedit invert` (encoder inversion: reconstructions + a latents file) and `ganedit psp` (task inference with
multi-modal style mixing and ReStyle steps). The work is done by the model's own surface (``encode``,
``decode``, ``style_mix``, ``restyle_steps``); this module only reads files, prepares task inputs and writes."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import click

from ganedit.cli._options import device_option

TASK_HELP = ("What the model reads: encode (RGB), sketch (grey edge map, 1 channel), segmentation (label map: "
             "pixel value = class, one-hot to label_nc channels), super_resolution (the low-res image, resized), "
             "frontalize (RGB), inpaint (RGB with --mask: 4 channels = masked image + mask). Default: the model's task.")


def load_encoder(path: str):
    """A PSP / E4E model from a native folder or an official pSp / e4e .pt file, in eval mode."""
    import ganedit
    from ganedit.errors import ConfigError
    from ganedit.models.psp import PSP

    model = ganedit.load(path)
    if not isinstance(model, PSP):
        raise ConfigError(f"{path}: a {type(model).__name__} is not an encoder (expected a pSp or e4e model)")
    return model.eval()


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Image files named directly or found (not recursively) in the given folders, sorted by name."""
    from ganedit.data.io import is_image_name
    from ganedit.errors import DataError

    files: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f.name)))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError(f"no images found in {', '.join(inputs)}")
    return files


def _label_map(path: Path, size: int):
    """A label image (pixel value = class index) as a long tensor [1, size, size] (nearest resize)."""
    import numpy as np
    import torch
    from PIL import Image

    from ganedit.errors import ImageError

    try:
        with Image.open(path) as im:
            im = im if im.mode in ("L", "P", "I") else im.convert("L")
            labels = np.asarray(im.resize((size, size), Image.NEAREST), dtype=np.int64)
    except OSError as exc:
        raise ImageError(path, f"cannot read label map: {exc}") from None
    return torch.from_numpy(labels.copy())[None]


def task_input(model, path: Path, task: str, mask=None):
    """The encoder input [1, input_nc, S, S] for one file and task (S = the encoder's input size)."""
    import torch
    import torch.nn.functional as F

    from ganedit.data.io import read_image
    from ganedit.errors import ConfigError, ImageError

    size = model.input_size
    if task == "segmentation":
        labels = _label_map(path, size)
        if int(labels.max()) >= model.label_nc:
            raise ImageError(path, f"label {int(labels.max())} is outside the model's {model.label_nc} classes")
        x = F.one_hot(labels, model.label_nc).permute(0, 3, 1, 2).float()
    else:
        x = read_image(path, size, allow_upscale=True)
        if task == "sketch":
            x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        elif task == "inpaint":
            if mask is None:
                raise ConfigError("the inpaint task needs --mask (white = missing pixels)")
            x = torch.cat([x * (1 - mask), mask], 1)
    # a ReStyle encoder reads the task input plus the current RGB reconstruction
    expected = model.encoder.input_nc - (3 if model.restyle else 0)
    if x.shape[1] != expected:
        raise ConfigError(f"task {task!r} gives {x.shape[1]} input channels but the model expects {expected}")
    return x


def _read_mask(path: Optional[str], size: int):
    if path is None:
        return None
    from ganedit.data.io import read_image

    return (read_image(path, size, allow_upscale=True).mean(1, keepdim=True) > 0).float()


def _known_at(files: Sequence[Path], hole, size: int):
    """The inpaint input (masked RGB + the mask ``hole`` [1, 1, size, size]) of each file at the decoder's output
    size, so that the known pixels written back are the file's own, not a resized copy."""
    import torch

    from ganedit.data.io import read_image

    return torch.cat([torch.cat([read_image(f, size, allow_upscale=True) * (1 - hole), hole], 1) for f in files])


def _low_res(path: Path, out_side: int):
    """A super-resolution input file at its own size [1, 3, h, w]; refused when it does not divide the output."""
    from ganedit.data.io import image_size, read_image
    from ganedit.errors import ImageError

    w, h, _ = image_size(path)
    if w != h or out_side % w:
        raise ImageError(path, f"--back-projection needs a square low-res image whose side divides the output's {out_side} px, got {w}x{h}")
    return read_image(path, w)


def invert_files(model_path: str, inputs: Sequence[str], out: str, batch: int = 8, task: Optional[str] = None,
                 mask: Optional[str] = None, mix: int = 0, mix_alpha: Optional[float] = None,
                 latent_mask: Optional[str] = None, iters: int = 0, seed: int = 0, device: str = "cpu",
                 keep_known: bool = True, back_projection: bool = False) -> Tuple[Path, int]:
    """Encode every image, write OUT/<name>.png (decoder output) and OUT/latents.safetensors; with ``mix`` also
    OUT/<name>_mix<k>.png (and latents_mix.safetensors), with ``iters`` (ReStyle) OUT/<name>_iter<k>.png.
    Inpainting with ``keep_known`` writes the input's own pixels outside the hole (the decoder fills the hole);
    the raw decoder image is then OUT/<name>_decoded.png. Super-resolution with ``back_projection`` corrects the
    output so that its downsampling matches the low-resolution file (read at its own size; the factor is the
    output side over the file's side), and writes the raw decoder image to OUT/<name>_decoded.png."""
    import torch

    from ganedit.data.io import write_image
    from ganedit.edit.latents import generator_fingerprint, save_latents
    from ganedit.models.psp import back_project, keep_known_pixels
    from ganedit.errors import ConfigError

    from ganedit.cli._options import resolve_device

    dev = resolve_device(device)
    model = load_encoder(model_path).to(dev)
    task = task or model.task
    if iters and not model.restyle:
        raise ConfigError(f"--iters needs a ReStyle encoder (restyle=True); {model_path} reads the image alone")
    if mix and not latent_mask:
        latent_mask = f"{min(7, model.n_latent - 1)}-{model.n_latent - 1}"  # official multi-modal default: fine rows
    files = collect_images(inputs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_t = _read_mask(mask, model.input_size)
    mask_t = mask_t.to(dev) if mask_t is not None else None
    hole_out = _read_mask(mask, model.decoder.size) if task == "inpaint" and keep_known and mask else None
    codes, mixed_codes, mixed_names = [], [], []
    with torch.no_grad():
        for start in range(0, len(files), batch):
            chunk = files[start:start + batch]
            x = torch.cat([task_input(model, f, task, mask_t) for f in chunk]).to(dev)
            if model.restyle:
                steps = model.restyle_steps(x, iters or model.restyle_iters)
                wplus = steps[-1][0]
                if iters:
                    for k, (_, images) in enumerate(steps):
                        for f, img in zip(chunk, images):
                            write_image(img, out_dir / f"{f.stem}_iter{k}.png")
            else:
                wplus = model.encode(x)
            decoded = final = model.decode(wplus)
            if task == "inpaint" and keep_known:
                final = keep_known_pixels(_known_at(chunk, hole_out, decoded.shape[-1]).to(dev), decoded)
            elif task == "super_resolution" and back_projection:
                final = torch.cat([back_project(img[None], _low_res(f, img.shape[-1]).to(dev)) for f, img in zip(chunk, decoded)])
            if final is not decoded:  # the raw decoder image goes beside the written output
                for f, img in zip(chunk, decoded):
                    write_image(img, out_dir / f"{f.stem}_decoded.png")
            for f, img in zip(chunk, final):
                write_image(img, out_dir / f"{f.stem}.png")
            codes.append(wplus.cpu())
            if mix:
                mixed = model.mix_latents(wplus, mix, latent_mask, mix_alpha, seed)
                for f, per_input in zip(chunk, mixed):
                    for k, img in enumerate(model.decode(per_input)):
                        write_image(img, out_dir / f"{f.stem}_mix{k:02d}.png")
                    mixed_names += [f"{f.stem}_mix{k:02d}" for k in range(mix)]
                mixed_codes.append(mixed.reshape(-1, *mixed.shape[2:]).cpu())
    meta = {"source": f"{type(model).__name__} {model_path}", "generator": generator_fingerprint(model.decoder), "task": task}
    path = save_latents(out_dir / "latents.safetensors", torch.cat(codes), names=[f.stem for f in files], meta=meta)
    if mix:
        save_latents(out_dir / "latents_mix.safetensors", torch.cat(mixed_codes), names=mixed_names,
                     meta={**meta, "mix_alpha": mix_alpha, "latent_mask": latent_mask, "seed": seed})
    return path, len(files)


def register(cli: click.Group) -> None:
    @cli.command("invert")
    @click.option("--model", "model_path", required=True, help="pSp / e4e encoder: native folder or official .pt file.")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path())
    @click.option("-o", "--out", required=True, type=click.Path(), help="Output folder.")
    @click.option("--batch", default=8, show_default=True, help="Images per forward pass.")
    @device_option()
    def invert(model_path: str, inputs: Tuple[str, ...], out: str, batch: int, device: str) -> None:
        """Invert images with an encoder: OUT/<name>.png reconstructions and OUT/latents.safetensors (w+ codes,
        loadable by the editing tools).

        \b
        Example:
          ganedit invert --model e4e_ffhq_encode.pt faces/ -o out/inverted
        """
        path, n = invert_files(model_path, inputs, out, batch=batch, task="encode", device=device)
        click.echo(f"inverted {n} images -> {path.parent} (codes in {path.name})")

    @cli.command("psp")
    @click.option("--model", "model_path", required=True, help="pSp model: native folder or official .pt file.")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path())
    @click.option("-o", "--out", required=True, type=click.Path(), help="Output folder.")
    @click.option("--task", type=click.Choice(["encode", "sketch", "segmentation", "super_resolution", "frontalize", "inpaint"]),
                  default=None, help=TASK_HELP)
    @click.option("--mask", type=click.Path(exists=True), default=None, help="Inpainting mask image (white = missing).")
    @click.option("--mix", default=0, show_default=True, help="Multi-modal synthesis: N outputs per input with random styles.")
    @click.option("--mix-alpha", type=float, default=None, help="Blend of the random styles (1 = replace; default: replace).")
    @click.option("--latent-mask", default=None, help="w+ rows taken from the random w, e.g. 8-17 (default: rows 7 to the last).")
    @click.option("--iters", default=0, show_default=True, help="ReStyle encoders: refinement steps, each step's image written.")
    @click.option("--seed", default=0, show_default=True, help="Seed of the random styles of --mix.")
    @click.option("--keep-known/--decoder-only", default=True, show_default=True,
                  help="Inpainting: keep the input's pixels outside the mask (the raw decoder image goes to <name>_decoded.png).")
    @click.option("--back-projection", is_flag=True, default=False,
                  help="Super-resolution: correct the output so that its downsampling matches the low-res file (raw image: <name>_decoded.png).")
    @click.option("--batch", default=8, show_default=True, help="Images per forward pass.")
    @device_option()
    def psp(model_path: str, inputs: Tuple[str, ...], out: str, task: Optional[str], mask: Optional[str], mix: int,
            mix_alpha: Optional[float], latent_mask: Optional[str], iters: int, seed: int, keep_known: bool,
            back_projection: bool, batch: int, device: str) -> None:
        """Run a pSp model on images: OUT/<name>.png, latents.safetensors, and with --mix N the outputs
        <name>_mix<k>.png, with --iters K the ReStyle steps <name>_iter<k>.png.

        \b
        Examples:
          ganedit psp --model psp_celebs_sketch_to_face.pt --task sketch sketches/ -o out/faces --mix 4 --latent-mask 8-17
          ganedit psp --model restyle_psp.pt photos/ -o out/restyle --iters 5
        """
        path, n = invert_files(model_path, inputs, out, batch=batch, task=task, mask=mask, mix=mix, mix_alpha=mix_alpha,
                               latent_mask=latent_mask, iters=iters, seed=seed, device=device, keep_known=keep_known,
                               back_projection=back_projection)
        click.echo(f"ran {n} images -> {path.parent}")
