"""Edit strips of the shipped StyleGAN2 (issue 15 §6): labelled PNG grids under docs/results/edit/.

Inputs are in-domain images (those of ``ganedit data indomain --seed S``: G(w+) with w+ known) and held-out
synthetic-world images. Each is projected (``ganedit.edit.projection``, W by default, noise maps optimised), then
edited along a direction and decoded with its own optimised noise. Every strip is one grid: a row per input, the
INPUT image (ground truth) in the first column, then one column per strength in sigmas of sampled w along the
direction (0 = the projection's reconstruction). Titles, row and column labels are drawn on the image; with a
regressor, the attribute an InterFaceGAN direction is meant to change is read from every cell and printed under
it. Also written: an interpolation strip and a style-mixing grid between two inverted images, and README.md
(what each file shows and the command that made it).

    python -m benchmarks.make_edit_strips                       # the shipped generator and its direction files
    python -m benchmarks.make_edit_strips --model runs/sg2/model --directions dirs/ --out /tmp/strips \\
        --strips interfacegan_yaw,ganspace:pc0,sefa:sefa1

A strip spec is ``FILE[:COMPONENT]``: a direction file of ``--directions`` (without .safetensors) and one of its
vectors (name or index; default the first).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

DEFAULT_STRIPS = ("interfacegan_yaw,interfacegan_glasses,interfacegan_hair_long,interfacegan_hair_volume,"
                  "interfacegan_smile,ganspace:pc0,ganspace:pc1,sefa:sefa0,sefa:sefa1")
DEFAULT_DIRECTIONS = "ganedit/assets/stylegan2_synth64_directions"
TEXT = (0, 0, 0)
LINE = 12  # pixels per line of the default bitmap font


@dataclass
class Inverted:
    """One input and its projection: the image (ground truth), w+ [1, L, D], the optimised noise maps."""

    label: str
    image: torch.Tensor
    wplus: torch.Tensor
    noise: List[torch.Tensor]


# ------------------------------------------------------------------------------------------------ drawing


def labelled_grid(cells: torch.Tensor, row_labels: Sequence[str], col_labels: Sequence[str], title: Sequence[str],
                  notes: Optional[Sequence[Sequence[str]]] = None, scale: int = 2, pad: int = 2) -> "Any":
    """A PIL image of ``cells`` [R, C, 3, H, W] (in [-1, 1]), upscaled ``scale`` x (nearest), with the title lines
    on top, a header with one label per column, a left margin with one label per row and, when given, one note
    line under every cell."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ganedit.data.io import to_uint8_hwc

    r, c, _, h, w = cells.shape
    if len(row_labels) != r or len(col_labels) != c:
        raise ValueError(f"{len(row_labels)} row / {len(col_labels)} column labels for a {r} x {c} grid")
    ch, cw = h * scale, w * scale
    note_h = LINE if notes is not None else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width_of = lambda text: int(probe.textlength(text))  # noqa: E731
    left = 8 + max(width_of(t) for t in row_labels)
    cell_w = max(cw, max(width_of(t) for t in col_labels) + 4)
    top = pad + LINE * len(title) + LINE + 2
    width = max(left + c * (cell_w + pad) + pad, 8 + max((width_of(t) for t in title), default=0))
    height = top + r * (ch + note_h + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(title):
        draw.text((4, pad + k * LINE), line, fill=TEXT)
    pixels = to_uint8_hwc(cells.reshape(r * c, *cells.shape[2:]).float().clamp(-1, 1))
    for j, label in enumerate(col_labels):
        x = left + j * (cell_w + pad)
        draw.text((x + (cell_w - width_of(label)) // 2, top - LINE - 1), label, fill=TEXT)
    for i, label in enumerate(row_labels):
        y = top + i * (ch + note_h + pad)
        draw.text((4, y + ch // 2 - LINE // 2), label, fill=TEXT)
        for j in range(c):
            x = left + j * (cell_w + pad) + (cell_w - cw) // 2
            tile = Image.fromarray(np.ascontiguousarray(pixels[i * c + j])).resize((cw, ch), Image.NEAREST)
            canvas.paste(tile, (x, y))
            if notes is not None and notes[i][j]:
                note = notes[i][j]
                draw.text((left + j * (cell_w + pad) + (cell_w - width_of(note)) // 2, y + ch), note, fill=TEXT)
    return canvas


# ------------------------------------------------------------------------------------------------ inputs


def load_inputs(G: Any, n_indomain: int, n_world: int, seed: int) -> "tuple[List[str], torch.Tensor]":
    """(labels, images [N, 3, size, size]): in-domain images 0..n-1 of ``seed``, then held-out world images."""
    import torch.nn.functional as F

    from ganedit.data.synthetic import heldout_seed, render, sample_appearance, sample_structure
    from ganedit.edit.indomain import decode, sample_codes

    labels, parts = [], []
    if n_indomain:
        codes = sample_codes(G, n_indomain, seed=seed)
        parts.append(decode(G, codes["wplus"]).clamp(-1, 1))
        labels += [f"in-domain {i}" for i in range(n_indomain)]
    if n_world:
        size = int(G.size)
        world = render(sample_structure(n_world, heldout_seed(seed)), sample_appearance(n_world, heldout_seed(seed)),
                       max(32, size)).image
        parts.append(F.adaptive_avg_pool2d(world, size) if world.shape[-1] != size else world)
        labels += [f"world {i}" for i in range(n_world)]
    return labels, torch.cat(parts)


def invert(G: Any, labels: Sequence[str], images: torch.Tensor, space: str, steps: int, lpips: Any) -> List[Inverted]:
    from ganedit.edit.projection import project

    result = project(G, images, space=space, steps=steps, noise=True, lpips=lpips)
    return [Inverted(label, images[i:i + 1], result.wplus[i:i + 1], [m[i:i + 1] for m in result.noise])
            for i, label in enumerate(labels)]


def decode_with(G: Any, item: Inverted, wplus: torch.Tensor) -> torch.Tensor:
    noise = [m.expand(wplus.shape[0], -1, -1, -1) for m in item.noise]
    with torch.no_grad():
        return G.synthesis(wplus, noise=noise).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------ strips


def direction_sigma(G: Any, directions: Any, i: int) -> float:
    """Standard deviation of sampled w along vector i: from the file, else measured (SeFa files carry none)."""
    from ganedit.edit.directions import projection_std

    if directions.scales is not None:
        return float(directions.scales[i])
    return float(projection_std(G, directions.vectors[i:i + 1])[0])


def reader(regressor: Any, factor: str, positive_class: Optional[int] = None) -> Callable[[torch.Tensor], List[str]]:
    """Cell notes: the regressor's reading of ``factor`` for each image: its value, the probability of a binary
    factor, the probability of ``positive_class`` of a categorical one (else its most likely class)."""
    from ganedit.models.attributes import FACTOR_BY_NAME, decode_outputs

    spec = FACTOR_BY_NAME[factor]

    @torch.no_grad()
    def read(images: torch.Tensor) -> List[str]:
        regressor.eval()
        raw = regressor(images.float())[factor]
        if spec.kind == "binary":
            return [f"p({spec.classes[1]}) {float(v):.2f}" for v in torch.sigmoid(raw[:, 0])]
        if spec.kind == "categorical":
            if positive_class is not None:
                probs = torch.softmax(raw, dim=1)[:, positive_class]
                return [f"p({spec.classes[positive_class]}) {float(v):.2f}" for v in probs]
            return [spec.classes[int(k)] for k in raw.argmax(1)]
        values = decode_outputs([spec], {factor: raw})[factor]
        return [f"{float(v):.2f}" for v in values]

    return read


def _fit_text(meta: Dict[str, Any]) -> str:
    """How an InterFaceGAN vector was fitted, for a strip's title (files made before ridge fits say nothing)."""
    if meta.get("fit") == "regression":
        text = f"ridge, held-out R2 {float(meta.get('validation_r2', float('nan'))):.2f}"
    else:
        text = f"val. acc. {float(meta.get('validation_accuracy', float('nan'))):.2f}"
    if meta.get("conditioned_on"):
        text += f", orthogonal to {len(meta['conditioned_on'])} other factors"
    if meta.get("layer_choice"):
        text += ", rows chosen on held-out samples"
    return text


def edit_strip(G: Any, items: List[Inverted], directions: Any, component: str, strengths: Sequence[float],
               read: Optional[Callable[[torch.Tensor], List[str]]], model_label: str, inversion: str) -> "Any":
    from ganedit.edit.latents import strip

    i = directions.index(component)
    sigma = direction_sigma(G, directions, i)
    rows, notes = [], []
    for item in items:
        codes = strip(item.wplus, directions.vectors[i], [s * sigma for s in strengths], directions.layers)[:, 0]
        edited = decode_with(G, item, codes)
        rows.append(torch.cat([item.image, edited]))
        if read is not None:
            notes.append([""] + read(edited))
    where = "all w+ rows" if directions.layers is None else f"w+ rows {directions.layers.start}-{directions.layers.stop - 1}"
    meta = directions.meta
    what = {"interfacegan": f"InterFaceGAN '{directions.names[i]}' (regressor labels, {meta.get('n_samples', '?')} "
                            f"samples, {_fit_text(meta)})",
            "ganspace": f"GANSpace component {directions.names[i]} (PCA of {meta.get('n_samples', '?')} sampled w)",
            "sefa": f"SeFa component {directions.names[i]} (modulation weights)"}.get(directions.method, directions.names[i])
    title = [f"{what}; {where}; 1 sigma = {sigma:.3f} (std of sampled w along it)",
             f"generator {model_label}; inputs inverted by {inversion}; decoded with each input's optimised noise"]
    if read is not None:
        title.append(f"under each cell: the attribute regressor's reading of {meta.get('factor', directions.names[i])}")
    cols = ["input"] + [("0 (recon.)" if s == 0 else f"{s:+g} sigma") for s in strengths]
    return labelled_grid(torch.stack(rows), [item.label for item in items], cols, title, notes if read else None)


def interpolation_grid(G: Any, pairs: List[tuple], n: int, model_label: str, inversion: str) -> "Any":
    from ganedit.edit.latents import interpolate

    alphas = torch.linspace(0, 1, n).tolist()
    rows = []
    for a, b in pairs:
        codes = interpolate(a.wplus, b.wplus, alphas)[:, 0]
        # each code is decoded with the noise of its nearer end
        halves = [decode_with(G, a if alpha < 0.5 else b, codes[k:k + 1]) for k, alpha in enumerate(alphas)]
        rows.append(torch.cat([a.image, *halves, b.image]))
    title = ["Latent interpolation (1 - a) w+_A + a w+_B between two inverted images",
             f"generator {model_label}; inputs inverted by {inversion}; each cell uses the noise maps of its nearer end"]
    cols = ["input A"] + [f"a={x:.2f}" for x in alphas] + ["input B"]
    return labelled_grid(torch.stack(rows), [f"{a.label} -> {b.label}" for a, b in pairs], cols, title)


def mixing_grid(G: Any, a: Inverted, b: Inverted, model_label: str, inversion: str) -> "Any":
    from ganedit.cli.sample import layer_range
    from ganedit.edit.latents import mix
    from ganedit.errors import ConfigError

    n_latent = a.wplus.shape[1]
    ranges = {}
    for k in ("coarse", "middle", "fine"):
        try:
            ranges[k] = range(*layer_range(k, n_latent))
        except ConfigError:  # a small generator has no fine layers
            pass
    rows, labels = [], []
    for base, donor in ((a, b), (b, a)):
        cells = [a.image, b.image, decode_with(G, base, base.wplus)]
        cells += [decode_with(G, base, mix(base.wplus, donor.wplus, rows_)) for rows_ in ranges.values()]
        rows.append(torch.cat(cells))
        labels.append(f"{base.label} + {donor.label}'s rows")
    title = ["Style mixing between two inverted images: a row's own w+ with some rows taken from the other's",
             f"generator {model_label}; inputs inverted by {inversion}; decoded with the row's own noise maps; "
             + ", ".join(f"{k} = w+ rows {r.start}-{r.stop - 1}" for k, r in ranges.items())]
    cols = ["input A", "input B", "own recon."] + [f"{k} from other" for k in ranges]
    return labelled_grid(torch.stack(rows), labels, cols, title)


def make_strips(G: Any, directions_dir: Path, out: Path, strips: Sequence[str], *, n_indomain: int = 4,
                n_world: int = 2, seed: int = 0, space: str = "w", steps: int = 500, strengths: Sequence[float] =
                (-3, -2, -1, 0, 1, 2, 3), regressor: Any = None, lpips: Any = None, model_label: str = "",
                command: str = "") -> List[Path]:
    """Write every strip, the interpolation strip and the mixing grid to ``out``; returns the files written."""
    from ganedit.edit.directions import load_direction

    began = time.time()
    labels, images = load_inputs(G, n_indomain, n_world, seed)
    items = invert(G, labels, images, space, steps, lpips)
    inversion = f"projection ({space.upper()}, {steps} steps)"
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    legend = [f"Generator {model_label}. Rows: {', '.join(labels)} (in-domain: `ganedit data indomain --seed {seed}` "
              f"images 0-{n_indomain - 1}; world: held-out synthetic-world images). Every input was inverted by "
              f"{inversion}. Columns: the input (ground truth), then strengths in sigmas of sampled w along the "
              "direction (0 = the reconstruction). Titles and labels are drawn on each image.", "",
              "| file | direction |", "|---|---|"]
    for spec in strips:
        name, _, component = spec.partition(":")
        directions = load_direction(directions_dir / f"{name}.safetensors", G)
        component = component or "0"
        factor = directions.meta.get("factor") if directions.method == "interfacegan" else None
        read = (reader(regressor, factor, directions.meta.get("positive_class"))
                if regressor is not None and factor else None)
        grid = edit_strip(G, items, directions, component, strengths, read, model_label, inversion)
        stem = name if not spec.partition(":")[2] else f"{name}_{directions.names[directions.index(component)]}"
        path = out / f"{stem}.png"
        grid.save(path, optimize=True)
        written.append(path)
        legend.append(f"| `{path.name}` | {directions.method} `{directions.names[directions.index(component)]}` "
                      f"from `{name}.safetensors` |")
    pairs = [(items[0], items[1])] + ([(items[n_indomain], items[n_indomain + 1])] if n_world >= 2 and n_indomain else [])
    for path, grid in ((out / "interpolation.png", interpolation_grid(G, pairs, 8, model_label, inversion)),
                       (out / "style_mixing.png", mixing_grid(G, items[0], items[1], model_label, inversion))):
        grid.save(path, optimize=True)
        written.append(path)
    legend += ["| `interpolation.png` | latent interpolation between two inverted images |",
               "| `style_mixing.png` | style mixing (coarse / middle / fine rows) between two inverted images |", ""]
    made = f"Made by `{command}` in {time.time() - began:.0f} s (projection included)." if command else ""
    (out / "README.md").write_text("\n".join(["# Edit strips", "", made, ""] + legend))
    return written


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="stylegan2-synth64", help="StyleGAN2 checkpoint or a shipped name.")
    parser.add_argument("--directions", default=DEFAULT_DIRECTIONS, help="Folder of direction files.")
    parser.add_argument("--strips", default=DEFAULT_STRIPS, help="Comma-separated FILE[:COMPONENT] specs.")
    parser.add_argument("--out", default="docs/results/edit")
    parser.add_argument("--n-indomain", type=int, default=4)
    parser.add_argument("--n-world", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", choices=["w", "w+"], default="w")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--regressor", default=None, help="Attribute regressor for the cell notes (default: the "
                        "shipped one; 'none' for no notes).")
    parser.add_argument("--lpips-weights", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.n_indomain + args.n_world < 2:
        parser.error("the interpolation and mixing grids need at least two inputs")
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2
    from ganedit.edit.latents import generator_fingerprint
    from ganedit.models.attributes import load_regressor

    torch.set_num_threads(args.threads)
    G = load_stylegan2(resolve_model(args.model))
    regressor = None if args.regressor == "none" else load_regressor(args.regressor)
    fp = generator_fingerprint(G)
    command = "python -m benchmarks.make_edit_strips " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    written = make_strips(G, Path(args.directions), Path(args.out), [s for s in args.strips.split(",") if s],
                          n_indomain=args.n_indomain, n_world=args.n_world, seed=args.seed, space=args.space,
                          steps=args.steps, regressor=regressor, lpips=args.lpips_weights,
                          model_label=f"{args.model} (weights {fp['hash']})", command=command.strip())
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
