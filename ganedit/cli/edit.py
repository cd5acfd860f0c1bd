"""`ganedit edit`: invert (or read) codes, edit them, decode, write strips. Three modes:

* along a direction: one strip per input over ``--strength`` (``w + s * d`` on ``--layers``);
* ``--interpolate OTHER``: the latent path from each input to OTHER;
* ``--mix-with OTHER``: style mixing, the input with the ``--layers`` rows of OTHER.

An input is an image (inverted with ``--invert``), a latents file (every row), or a PTI file (its pivot, decoded
by its tuned generator). The arithmetic is ``ganedit.edit.latents``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import click

from ganedit.cli.project import (LPIPS_HELP, SPACE_HELP, device_option, encoder_codes, load_generator, read_images,
                                 unique_names)
from ganedit.errors import ConfigError, DataError


@dataclass
class Code:
    """One input ready to edit: its w+ [1, n_latent, dim], the noise to decode with, the generator that decodes
    it (a PTI result brings its own), and the input image when there is one."""

    name: str
    wplus: Any
    noise: Union[str, List[Any]]
    generator: Any
    image: Optional[Any] = None


def parse_strengths(text: str, n: int) -> List[float]:
    """"-3..3" (n evenly spaced values), "a,b,c" or "s" -> list of strengths."""
    import torch

    s = text.strip()
    try:
        if ".." in s:
            lo, hi = (float(x) for x in s.split("..", 1))
            if n < 2:
                raise ConfigError("--n must be at least 2 for a strength range")
            return [round(float(v), 6) for v in torch.linspace(lo, hi, n)]
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--strength must look like -3..3, 1.5 or -2,0,2; got {text!r}") from None


def parse_rows(text: Optional[str], n_latent: int, default: Optional[str] = None) -> Optional[range]:
    """coarse|middle|fine, "a-b" (inclusive) or "a" -> range of w+ rows; None -> ``default`` (None = all rows)."""
    from ganedit.cli.sample import RANGES, layer_range
    from ganedit.edit.latents import parse_layers

    text = text if text is not None else default
    if text is None:
        return None
    if text in RANGES:
        return range(*layer_range(text, n_latent))
    return parse_layers(text, n_latent)


def load_direction(path: str, G: Any, component: str) -> Tuple[Any, Optional[range], Optional[float], str]:
    """(direction [dim] or [n_latent, dim], the layers the file names or None, its sigma or None, its name).

    ``path`` may also name a shipped direction (MODEL/NAME, ``ganedit.edit.directions.resolve_direction``).

    A ganedit direction file (``ganedit directions ...``) is read by ``ganedit.edit.directions.load_direction``,
    which refuses it for a generator it does not fit; ``component`` is a vector's index or name. Any other file
    is read as plain tensors: one tensor, or a dict with ``direction`` ([dim] or one row per layer)."""
    import torch

    from ganedit.edit.directions import FORMAT_NAME, load_direction as load_direction_file
    from ganedit.formats.native import load_safetensors

    from ganedit.edit.directions import resolve_direction

    p = resolve_direction(path)
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as handle:
                tagged = (handle.metadata() or {}).get("format") == FORMAT_NAME
        except Exception:  # not safetensors: load_safetensors below names the problem
            tagged = False
        if tagged:
            directions = load_direction_file(p, G)
            i = directions.index(component)
            scale = None if directions.scales is None else float(directions.scales[i])
            return directions.vectors[i].float(), directions.layers, scale, directions.names[i]
        obj: Any = load_safetensors(p)
    else:
        from ganedit.formats.foreign import safe_torch_load

        obj = safe_torch_load(p)
    vector = obj if isinstance(obj, torch.Tensor) else obj.get("direction") if isinstance(obj, dict) else None
    if not isinstance(vector, torch.Tensor):
        raise DataError(f"{path}: no direction found (expected a ganedit direction file, one tensor, or a 'direction' tensor)")
    if vector.shape[-1] != G.style_dim or vector.dim() not in (1, 2) or (vector.dim() == 2 and vector.shape[0] != G.n_latent):
        raise ConfigError(f"{path}: direction of shape {tuple(vector.shape)} does not fit this generator "
                          f"([{G.style_dim}] or [{G.n_latent}, {G.style_dim}])")
    return vector.float(), None, None, p.stem


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors" and path.is_file()


def codes_for(inputs: Sequence[str], G: Any, invert: str, opts: dict) -> List[Code]:
    """Turn each input (image, latents file, PTI file) into :class:`Code` entries."""
    from ganedit.cli.project import image_files
    from ganedit.edit.latents import load_latents
    from ganedit.edit.pti import is_pti_file, load_tuned

    codes: List[Code] = []
    images: List[Path] = []
    for item in inputs:
        p = Path(item)
        if _is_safetensors(p) and is_pti_file(p):
            tuned, result = load_tuned(p, G)
            codes.append(Code(result.name if result.name else p.stem, result.pivot, "const", tuned))
        elif _is_safetensors(p):
            latents = load_latents(p, G)
            for i, name in enumerate(latents.names):
                noise = "const" if latents.noise is None else [n[i:i + 1] for n in latents.noise]
                codes.append(Code(Path(name).stem, latents.wplus[i:i + 1], noise, G.g_ema))
        else:
            images += image_files([item])
    if images:
        codes += invert_images(images, G, invert, opts)
    return codes


def invert_images(files: Sequence[Path], G: Any, invert: str, opts: dict) -> List[Code]:
    """Invert image files with ``invert``: project, pti, or an encoder checkpoint path."""
    import torch

    from ganedit.edit.projection import project
    from ganedit.edit.pti import pivotal_tuning

    names = unique_names(files)
    targets = read_images(files, G.size)
    if invert == "project":
        result = project(G, targets, space=opts["space"], steps=opts["steps"], noise=True, lpips=opts["lpips"])
        wplus, noise = result.wplus.cpu(), [m.cpu() for m in result.noise]
        return [Code(n, wplus[i:i + 1], [m[i:i + 1] for m in noise], G.g_ema, targets[i:i + 1])
                for i, n in enumerate(names)]
    if invert == "pti":
        out = []
        for name, target in zip(names, targets):
            result = pivotal_tuning(G, target[None], name, pivot_steps=opts["steps"], lpips=opts["lpips"])
            out.append(Code(name, result.pivot, "const", result.generator(G), target[None]))
        return out
    with torch.no_grad():
        wplus = encoder_codes(invert, G, targets)
    if wplus.dim() == 2:
        wplus = wplus.unsqueeze(1).repeat(1, G.n_latent, 1)
    return [Code(n, wplus[i:i + 1], "const", G.g_ema, targets[i:i + 1]) for i, n in enumerate(names)]


def _decode(code: Code, wplus: Any) -> Any:
    """Images of codes (kept on the CPU) by the code's generator, on that generator's device."""
    import torch

    device = next(code.generator.parameters()).device
    noise = code.noise
    if isinstance(noise, list):
        noise = [m.to(device).expand(wplus.shape[0], -1, -1, -1) for m in noise]
    with torch.no_grad():
        return code.generator.synthesis(wplus.to(device), noise=noise).cpu()


def _one(inputs: str, G: Any, invert: str, opts: dict, what: str) -> Code:
    found = codes_for([inputs], G, invert, opts)
    if len(found) != 1:
        raise ConfigError(f"{what} {inputs} holds {len(found)} codes; give one image or a one-row latents file")
    return found[0]


def _target(out: Path, name: str, single: bool) -> Path:
    if out.suffix and single:
        return out
    folder = out.parent / out.stem if out.suffix else out
    return folder / f"{name}.png"


def register(cli: click.Group) -> None:
    @cli.command("edit")
    @click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("--model", "model_path", required=True, help="StyleGAN2 checkpoint or a shipped model's name.")
    @click.option("-o", "--out", "output", required=True, type=click.Path(),
                  help="A .png for one input, or a folder (one <name>.png strip per input).")
    @click.option("--direction", default=None,
                  help="Direction file (`ganedit directions ...`, or a plain tensor file), or a shipped one by name: "
                       "MODEL/NAME, e.g. stylegan2-synth64/interfacegan_yaw.")
    @click.option("--component", default="0", show_default=True,
                  help="Which vector of a direction file: its index or its name (GANSpace/SeFa files hold many).")
    @click.option("--sigma/--raw", default=True, show_default=True,
                  help="Strengths in standard deviations of w along the direction (when the file records them) "
                       "or in raw units of w.")
    @click.option("--strength", default="-3..3", show_default=True, help="Strengths: a range a..b (see --n), a list a,b,c or one value.")
    @click.option("--n", "n_strengths", default=7, show_default=True, help="Number of strengths in a range.")
    @click.option("--layers", default=None, help="w+ rows to edit or mix: a-b (inclusive), coarse, middle, fine. "
                  "Default: the direction file's layers, else all (edit) / coarse (mix).")
    @click.option("--invert", default="project", show_default=True,
                  help="How images become codes: project, pti, or an ENCODER checkpoint (pSp/e4e).")
    # issue 14's spelling of --invert ENCODER, accepted but not shown (one spelling per concept in the help)
    @click.option("--encoder", "encoder_path", default=None, hidden=True)
    @click.option("--space", type=click.Choice(["w", "w+"]), default="w", show_default=True, help=SPACE_HELP)
    @click.option("--steps", default=500, show_default=True, help="Projection steps (the PTI pivot's too).")
    @click.option("--interpolate", "other_interp", default=None, type=click.Path(exists=True),
                  help="Instead of a direction: interpolate from each input to this image / latents file.")
    @click.option("--mix-with", "other_mix", default=None, type=click.Path(exists=True),
                  help="Instead of a direction: give each input the --layers rows of this image / latents file.")
    @click.option("--lpips-weights", type=click.Path(exists=True), default=None, help=LPIPS_HELP)
    @device_option()
    def edit_cmd(inputs: Tuple[str, ...], model_path: str, output: str, direction: Optional[str], component: str,
                 sigma: bool, strength: str, n_strengths: int, layers: Optional[str], invert: str, space: str, steps: int,
                 other_interp: Optional[str], other_mix: Optional[str], lpips_weights: Optional[str], device: str,
                 encoder_path: Optional[str] = None) -> None:
        """Edit INPUTS (images, latents files or PTI files) with the StyleGAN2 --model and write a strip per input:
        the input image (if any), then one decoded code per strength / alpha / mix.

        \b
        Examples:
          ganedit edit face.png --model G --direction smile.safetensors --strength -3..3 --layers 0-5 -o smile.png
          ganedit edit out/proj/latents.safetensors --model G -d dirs.safetensors --component 2 -o strips/
          ganedit edit a.png --model G --interpolate b.png --n 8 -o a_to_b.png
          ganedit edit a.png --model G --mix-with b.png --layers coarse -o mix.png
        """
        import torch

        from ganedit.data.io import write_grid
        from ganedit.edit.latents import interpolate, mix, strip

        if encoder_path is not None:
            if invert != "project" and invert != encoder_path:
                raise ConfigError(f"--encoder {encoder_path} and --invert {invert} disagree: give one of them")
            invert = encoder_path
        modes = [m for m in (direction, other_interp, other_mix) if m is not None]
        if len(modes) != 1:
            raise ConfigError("give exactly one of --direction, --interpolate, --mix-with")
        if invert not in ("project", "pti") and not Path(invert).exists():
            raise ConfigError(f"--invert must be project, pti or an encoder checkpoint path; {invert!r} is none of them")
        G = load_generator(model_path, device)
        opts = {"space": space, "steps": steps, "lpips": lpips_weights}
        # options and files first: a bad direction or range must not cost an inversion
        if direction is not None:
            vector, file_layers, scale, vector_name = load_direction(direction, G, component)
            rows = parse_rows(layers, G.n_latent) if layers is not None else file_layers
            values = parse_strengths(strength, n_strengths)
        elif other_mix is not None:
            rows = parse_rows(layers, G.n_latent, default="coarse")
        codes = codes_for(inputs, G, invert, opts)
        other = None
        if other_interp is not None or other_mix is not None:
            other = _one(other_interp or other_mix, G, invert, opts, "--interpolate" if other_interp else "--mix-with")
        out = Path(output)
        single = len(codes) == 1
        written = []
        for code in codes:
            if direction is not None:
                scaled = [v * (scale if sigma and scale else 1.0) for v in values]
                edited = strip(code.wplus, vector, scaled, rows)[:, 0]
                unit = " sigma" if sigma and scale else ""
                where = "all rows" if rows is None else f"rows {rows.start}-{rows.stop - 1}"
                label = f"{vector_name}: strengths {values[0]:g}..{values[-1]:g}{unit} on {where}"
            elif other_interp is not None:
                alphas = torch.linspace(0, 1, max(2, n_strengths)).tolist()
                edited = interpolate(code.wplus, other.wplus, alphas)[:, 0]
                label = f"{len(alphas)} steps to {other.name}"
            else:
                mixed = mix(code.wplus, other.wplus, rows)
                edited = torch.cat([code.wplus, other.wplus, mixed])
                label = f"{code.name} | {other.name} | {code.name} with rows {rows.start}-{rows.stop - 1} of {other.name}"
            cells = _decode(code, edited)
            if code.image is not None:
                cells = torch.cat([code.image, cells])
            target = _target(out, code.name, single)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_grid(cells, target, nrow=cells.shape[0])
            written.append(target)
            click.echo(f"wrote {target} ({label})")
        if not written:
            raise DataError("no codes found in the inputs")
