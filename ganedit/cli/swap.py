"""`ganedit swap`, `ganedit swap-grid` and the `ganedit swapae` group (pca, direction, edit-texture, region):
the Swapping Autoencoder's editing tools on image files. The work is done by ``ganedit.edit.swapae``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import click

from ganedit.cli._options import (batch_option, confirm_large, device_option, model_option, out_option, quiet_option,
                                  size_option, workers_option, yes_option)

NOISE_HELP = ("fixed: the same noise (from --seed) for every output of a structure image, as the official swap tool "
              "fixes it; random: fresh noise per run; zero: no noise.")
GRID_CONFIRM_ABOVE = 2000  # swap-grid asks before more swaps than this (a 200 x 200 grid is 40,000 decodes)
SIZE_HELP = ("Resize (centre crop, then resize) every image to N x N before encoding. Default: the model's training "
             "size. 0 keeps each file's size (sides must be multiples of the model's downsampling factor).")


# ------------------------------------------------------------------------------------------------ shared helpers


def _is_number(text: str) -> bool:
    try:
        float(text.split(",")[0])
        return True
    except ValueError:
        return False


class NumberList(click.Option):
    """An option that takes one or more numbers after it: ``--alpha 0 0.5 1``. Repeating the option and
    comma-separated values work too, so negative numbers are fine (``--strength -2 -1 0 1 2``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        kwargs.setdefault("callback", _parse_numbers)
        kwargs.setdefault("metavar", "X [X ...]")
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        # click has no "one or more values" option: extend the parser's handler to also take the numbers that
        # follow. If click's (private) parser layout changes, the option still works repeated or with commas.
        table = {**getattr(parser, "_short_opt", {}), **getattr(parser, "_long_opt", {})}
        for name in self.opts:
            opt = table.get(name)
            if opt is None or not hasattr(opt, "process"):
                continue
            original = opt.process

            def process(value: Any, state: Any, original: Any = original, dest: Any = getattr(opt, "dest", None)) -> None:
                original(value, state)
                rargs = getattr(state, "rargs", None)
                while dest is not None and rargs and _is_number(rargs[0]):
                    state.opts[dest].append(rargs.pop(0))

            opt.process = process


def _parse_numbers(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Optional[Tuple[float, ...]]:
    if not values:
        return None
    out: List[float] = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                try:
                    out.append(float(part))
                except ValueError:
                    raise click.BadParameter(f"{part!r} is not a number", ctx=ctx, param=param) from None
    return tuple(out)


def load_swapae(path: str, device: str = "cpu") -> Any:
    """A Swapping Autoencoder from a native folder, an official latest_checkpoint.pth, an official run folder
    (checkpoints/<name>/ holding latest_checkpoint.pth) or a shipped model's name, in eval mode on ``device``
    (auto | cpu | cuda)."""
    from ganedit.cli._options import resolve_device

    import ganedit
    from ganedit.errors import ConfigError
    from ganedit.formats.native import CONFIG_FILE
    from ganedit.models.swapae import SwappingAutoencoder

    p = Path(path)
    if p.is_dir() and not (p / CONFIG_FILE).exists() and (p / "latest_checkpoint.pth").exists():
        p = p / "latest_checkpoint.pth"
    model = ganedit.load(p)
    if not isinstance(model, SwappingAutoencoder):
        raise ConfigError(f"{path}: this is a {type(model).__name__} model, not a Swapping Autoencoder")
    return model.to(resolve_device(device)).eval()


def _size(model: Any, size: Optional[int]) -> Optional[int]:
    from ganedit.errors import ConfigError

    if size is None:
        size = int(getattr(model, "config", {}).get("image_size", 256))
    if size == 0:
        return None
    if size < 0 or size % model.downsampling:
        raise ConfigError(f"--size must be a positive multiple of {model.downsampling} for this model (got {size})")
    return size


def _read(model: Any, path: "str | Path", size: Optional[int]):
    from ganedit.data.io import read_image
    from ganedit.errors import ImageError

    x = read_image(path, size, allow_upscale=True)
    s = model.downsampling
    if x.shape[-1] % s or x.shape[-2] % s:
        raise ImageError(path, f"image is {x.shape[-1]}x{x.shape[-2]}, but this model needs sides that are multiples of {s}; use --size N")
    return x


def _read_set(model: Any, path: str, size: Optional[int]):
    """All images of a file, folder (recursive) or zip as one batch, and their names."""
    import torch

    from ganedit.data.datasets import open_image_dataset
    from ganedit.data.io import is_image_name

    p = Path(path)
    if p.is_file() and is_image_name(p.name):
        return _read(model, p, size), [p.stem]
    ds = open_image_dataset(p, size=size, allow_upscale=True)
    images = [ds[i]["image"] for i in range(len(ds))]
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        from ganedit.errors import DataError

        raise DataError(f"{path}: images have different sizes {sorted(shapes)[:3]}; use --size N")
    return torch.stack(images), [Path(n).stem for n in ds.names]


def _write(images, out: str, names: Sequence[str]) -> List[Path]:
    """One output per image: OUT with an image extension gets them side by side as one strip (no gaps, so it is
    exactly N widths wide); otherwise OUT is a folder and each image is written as <name>.png."""
    from ganedit.data.io import make_grid, write_image

    target = Path(out)
    if target.suffix:
        strip = images[0] if images.shape[0] == 1 else make_grid(images, nrow=images.shape[0], padding=0)
        write_image(strip, target)
        return [target]
    paths = []
    for x, name in zip(images, names):
        write_image(x, target / f"{name}.png")
        paths.append(target / f"{name}.png")
    return paths


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", disable=total < 2)
    return bar, bar.update


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="swap", disable=quiet or total < 2, dynamic_ncols=True)


def _matched_pairs(dir_a: str, dir_b: str) -> List[Tuple[Path, Path, str]]:
    """(A file, B file, name) for every relative path without extension present in both folders."""
    from ganedit.data.sources import list_images
    from ganedit.errors import DataError

    def by_name(root: str):
        table = {}
        for rel in list_images(root):
            key = str(Path(rel).with_suffix(""))
            if key in table:
                raise DataError(f"{root}: {table[key]} and {rel} have the same name; keep one")
            table[key] = rel
        return table

    a, b = by_name(dir_a), by_name(dir_b)
    common = sorted(set(a) & set(b))
    if not common:
        raise DataError(f"no file names in common between {dir_a} ({len(a)} images) and {dir_b} ({len(b)} images)")
    for root, names, other in ((dir_a, a, b), (dir_b, b, a)):
        lonely = sorted(set(names) - set(other))
        if lonely:
            shown = ", ".join(names[k] for k in lonely[:3]) + (" ..." if len(lonely) > 3 else "")
            click.echo(f"warning: {len(lonely)} image(s) in {root} have no partner and are skipped: {shown}", err=True)
    return [(Path(dir_a) / a[k], Path(dir_b) / b[k], k) for k in common]


def _swap_pairs(model: Any, pairs: Tuple[str, str], out: str, alphas: Sequence[float], size: Optional[int], batch: int,
                noise: Any, seed: int, quiet: bool) -> int:
    """Swap every matched pair, ``batch`` pairs per forward pass; returns the number of images written."""
    import torch

    from ganedit.data.io import write_image
    from ganedit.edit import swapae as E

    matched = _matched_pairs(*pairs)
    target, written = Path(out), 0
    with _bar(len(matched), "swap", quiet) as bar:
        for start in range(0, len(matched), batch):
            chunk = matched[start : start + batch]
            a = [_read(model, pa, size) for pa, _, _ in chunk]
            b = [_read(model, pb, size) for _, pb, _ in chunk]
            # Files of different sizes (--size 0) cannot share a batch: those run one pair at a time.
            same = len({tuple(x.shape) for x in a}) == 1 and len({tuple(x.shape) for x in b}) == 1
            groups = [(torch.cat(a), torch.cat(b), chunk)] if same else [(x, y, [c]) for x, y, c in zip(a, b, chunk)]
            for xa, xb, items in groups:
                images = E.swap(model, xa, xb, alphas, noise=noise, seed=seed, batch_size=batch).cpu()
                for i, (_, _, name) in enumerate(items):
                    for j, al in enumerate(alphas):
                        suffix = "" if len(alphas) == 1 else f"_{al:.2f}"
                        write_image(images[i, j], target / f"{name}{suffix}.png")
                        written += 1
            bar.update(len(chunk))
    return written


def _loader(path: str, size: Optional[int], max_images: Optional[int], batch: int, workers: int):
    """(DataLoader, number of images) over a folder or zip, in file order."""
    from torch.utils.data import DataLoader

    from ganedit.data.datasets import open_image_dataset

    ds = open_image_dataset(path, size=size, allow_upscale=True, max_items=max_images)
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers), len(ds)


# ---------------------------------------------------------------------------------------------------- commands


def register(cli: click.Group) -> None:
    model_opt = model_option("Native ganedit Swapping Autoencoder folder, official latest_checkpoint.pth, or the official checkpoints/<name>/ folder.")
    size_opt = size_option(SIZE_HELP, type=int, default=None)
    seed_opt = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fixed noise.")
    noise_opt = click.option("--noise", type=click.Choice(["fixed", "random", "zero"]), default="fixed", show_default=True, help=NOISE_HELP)
    device_opt = device_option()

    def noise_arg(noise: str):
        return None if noise == "fixed" else noise

    @cli.command("swap")
    @model_opt
    @click.option("--structure", type=click.Path(exists=True, dir_okay=False), help="Image that gives the structure (layout, geometry).")
    @click.option("--texture", type=click.Path(exists=True, dir_okay=False), help="Image that gives the texture (colours, materials, style).")
    @click.option("--pairs", type=click.Path(exists=True, file_okay=False), nargs=2, default=None, metavar="A_DIR B_DIR",
                  help="Swap many pairs in one run: the structure of A_DIR/x with the texture of B_DIR/x, files matched by "
                       "relative path without extension; writes OUT/x.png (instead of --structure/--texture).")
    @click.option("--alpha", cls=NumberList, help="Texture mix: 0 reconstructs the structure image, 1 is the full swap; several values give one output each. Default 1.")
    @out_option("An image file (several alphas: a strip, left to right) or a folder (one <A>_<B>_<alpha>.png per alpha; "
                "with --pairs, OUT/<name>.png or OUT/<name>_<alpha>.png).", required=True, type=click.Path())
    @batch_option(8, "Pairs per forward pass (--pairs).")
    @size_opt
    @seed_opt
    @noise_opt
    @device_opt
    @quiet_option("No progress bar.")
    def swap_cmd(model_path: str, structure: Optional[str], texture: Optional[str], pairs: Optional[Tuple[str, str]],
                 alpha: Optional[Tuple[float, ...]], out: str, batch: int, size: Optional[int], seed: int, noise: str,
                 device: str, quiet: bool) -> None:
        """Structure of one image with the texture of another.

        The texture codes are interpolated and renormalised (the official simple_swapping tool), and the noise is
        fixed per structure image, so the outputs for different alphas differ only by texture. --pairs swaps
        whole folders in one process (the model is loaded once, pairs are batched).

        \b
        Examples:
          ganedit swap --model swapae-synth64 --structure a.png --texture b.png -o swap.png
          ganedit swap --model latest_checkpoint.pth --structure a.png --texture b.png --alpha 0 0.25 0.5 0.75 1 -o strip.png
          ganedit swap --model runs/sae/model --pairs structures/ textures/ -o swaps/
        """
        from ganedit.edit import swapae as E
        from ganedit.errors import ConfigError

        single = (structure, texture) != (None, None)
        if single == (pairs is not None) or (single and None in (structure, texture)):
            raise ConfigError("give either --structure and --texture, or --pairs A_DIR B_DIR")
        model = load_swapae(model_path, device)
        n = _size(model, size)
        alphas = alpha or (1.0,)
        if pairs is not None:
            count = _swap_pairs(model, pairs, out, alphas, n, batch, noise_arg(noise), seed, quiet)
            click.echo(f"wrote {count} swap(s) to {out}")
            return
        a, b = _read(model, structure, n), _read(model, texture, n)
        images = E.swap(model, a, b, alphas, noise=noise_arg(noise), seed=seed)[0].cpu()
        names = [f"{Path(structure).stem}_{Path(texture).stem}_{al:.2f}" for al in alphas]
        written = _write(images, out, names)
        click.echo(f"wrote {len(alphas)} swap(s) to {written[0] if len(written) == 1 else out}")

    @cli.command("swap-grid")
    @model_opt
    @click.argument("structure_dir", type=click.Path(exists=True))
    @click.argument("texture_dir", type=click.Path(exists=True))
    @out_option("Grid image file.", required=True, type=click.Path())
    @batch_option(8, "Swaps per forward pass.")
    @size_opt
    @seed_opt
    @noise_opt
    @device_opt
    @quiet_option("No progress bar.")
    @yes_option()
    def swap_grid_cmd(model_path: str, structure_dir: str, texture_dir: str, out: str, batch: int, size: Optional[int], seed: int,
                      noise: str, device: str, quiet: bool, yes: bool) -> None:
        """Grid of every structure image with every texture image.

        The first row shows the texture images, the first column the structure images; cell (i, j) is structure i
        with texture j. STRUCTURE_DIR and TEXTURE_DIR are folders, zips or single image files. A grid of more than
        2000 swaps asks first (or needs --yes when there is no terminal).

        \b
        Example:
          ganedit swap-grid --model swapae-synth64 structures/ textures/ -o grid.png
        """
        import torch

        from ganedit.data.io import write_grid
        from ganedit.edit import swapae as E

        model = load_swapae(model_path, device)
        n = _size(model, size)
        sx, _ = _read_set(model, structure_dir, n)
        tx, _ = _read_set(model, texture_dir, n)
        if sx.shape[-2:] != tx.shape[-2:]:
            from ganedit.errors import ConfigError

            raise ConfigError(f"structure images are {sx.shape[-1]}x{sx.shape[-2]} but texture images {tx.shape[-1]}x{tx.shape[-2]}; use --size N")
        confirm_large(sx.shape[0] * tx.shape[0], f"swap-grid of {sx.shape[0]} structures x {tx.shape[0]} textures", yes, GRID_CONFIRM_ABOVE)
        bar = _bar(sx.shape[0] * tx.shape[0], "swap-grid", quiet)
        rows = []
        with bar:
            # One structure row at a time: the fixed noise depends on the seed and the size only, so rows
            # decoded separately are the same as one big call, and the bar moves.
            for i in range(sx.shape[0]):
                cells = E.swap_grid(model, sx[i : i + 1], tx, noise=noise_arg(noise), seed=seed, batch_size=batch)[0].cpu()
                rows.append(torch.cat([sx[i : i + 1], cells.to(sx)]))
                bar.update(tx.shape[0])
        blank = torch.ones_like(tx[:1])
        header = torch.cat([blank, tx])
        write_grid(torch.cat([header] + rows), out, nrow=tx.shape[0] + 1)
        click.echo(f"wrote a {sx.shape[0]}x{tx.shape[0]} swap grid to {out}")

    @cli.group("swapae")
    def swapae_group() -> None:
        """Swapping Autoencoder texture and region editing: pca, direction, edit-texture, region.

        \b
        Example:
          ganedit swapae pca --model runs/sae photos/ -o texture_pca.pt
          ganedit swapae edit-texture --model runs/sae a.png --direction texture_pca.pt --component 0 --sigma --strength -3 0 3 -o edit.png
        """

    @swapae_group.command("pca")
    @model_opt
    @click.argument("data", type=click.Path(exists=True))
    @click.option("-o", "--out", required=True, type=click.Path(), help="Output file: .pt (plain tensors) or .safetensors.")
    @click.option("--components", type=int, default=64, show_default=True, help="Number of principal directions kept (at most images - 1).")
    @batch_option(16, "Images per encoder pass.")
    @workers_option()
    @click.option("--max-images", type=int, default=None, help="Use only the first N images of DATA.")
    @click.option("--preview", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="Also write <OUT stem>_preview.png: this image edited along the first 5 components (rows) at -2, -1, 0, 1, 2 standard deviations (columns).")
    @size_opt
    @device_opt
    def pca_cmd(model_path: str, data: str, out: str, components: int, batch: int, workers: int, max_images: Optional[int], preview: Optional[str], size: Optional[int], device: str) -> None:
        """PCA directions of the texture codes of a dataset (folder or zip).

        Saves mean, components (orthonormal rows, by decreasing variance), explained variance and its ratio.
        Use a component with `ganedit swapae edit-texture --direction FILE --component K`.

        \b
        Example:
          ganedit swapae pca --model runs/sae data/train.zip -o texture_pca.pt --components 32
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path, device)
        loader, count = _loader(data, _size(model, size), max_images, batch, workers)
        bar, update = _progress(count, "encode")
        with bar:
            result = E.texture_pca(model, loader, components, batch_size=batch, progress=update)
        E.save_directions(result, out)
        if preview is not None:
            import torch

            from ganedit.data.io import write_grid

            x = _read(model, preview, _size(model, size))
            sigmas = (-2.0, -1.0, 0.0, 1.0, 2.0)
            rows = [E.edit_texture(model, x, result.direction(k, sigma=True), sigmas)[0].cpu() for k in range(min(5, result.components.shape[0]))]
            target = Path(out).with_name(Path(out).stem + "_preview.png")
            write_grid(torch.cat(rows), target, nrow=len(sigmas))
            click.echo(f"wrote {target}")
        ratios = ", ".join(f"{r:.3f}" for r in result.explained_variance_ratio[:5].tolist())
        click.echo(f"{result.n_samples} images, {result.components.shape[0]} components (variance ratio of the first: {ratios}); wrote {out}")

    @swapae_group.command("direction")
    @model_opt
    @click.argument("set_a", type=click.Path(exists=True))
    @click.argument("set_b", type=click.Path(exists=True))
    @click.option("-o", "--out", required=True, type=click.Path(), help="Output file: .pt (plain tensors) or .safetensors.")
    @batch_option(16, "Images per encoder pass.")
    @workers_option()
    @click.option("--max-images", type=int, default=None, help="Use only the first N images of each set.")
    @size_opt
    @device_opt
    def direction_cmd(model_path: str, set_a: str, set_b: str, out: str, batch: int, workers: int, max_images: Optional[int], size: Optional[int], device: str) -> None:
        """Mean-difference texture direction from image set A to image set B (folders or zips).

        direction = mean texture code of B - mean texture code of A; at strength 1 it moves A's mean onto B's.

        \b
        Example:
          ganedit swapae direction --model runs/sae paintings/ photos/ -o painting2photo.pt
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path, device)
        n = _size(model, size)
        (la, na), (lb, nb) = _loader(set_a, n, max_images, batch, workers), _loader(set_b, n, max_images, batch, workers)
        bar, update = _progress(na + nb, "encode")
        with bar:
            result = E.mean_difference(model, la, lb, batch_size=batch, progress=update)
        E.save_directions(result, out)
        cos = float((result.mean_a @ result.mean_b) / (result.mean_a.norm() * result.mean_b.norm()).clamp_min(1e-12))
        click.echo(f"{result.n_a} + {result.n_b} images; |direction| = {result.direction.norm():.4f}, cos(mean A, mean B) = {cos:.4f}; wrote {out}")

    @swapae_group.command("edit-texture")
    @model_opt
    @click.argument("image", type=click.Path(exists=True, dir_okay=False))
    @click.option("--direction", "direction_path", required=True, type=click.Path(exists=True, dir_okay=False), help="File from `swapae pca` or `swapae direction` (or a plain 1-D tensor).")
    @click.option("--component", type=int, default=None, help="PCA component index (default 0).")
    @click.option("--sigma", is_flag=True, help="PCA only: strengths in standard deviations of the component over its dataset.")
    @click.option("--strength", cls=NumberList, help="One or more strengths; 0 is the reconstruction. Default 1.")
    @click.option("-o", "--out", required=True, type=click.Path(), help="An image file (several strengths: a strip) or a folder.")
    @size_opt
    @device_opt
    @seed_opt
    @noise_opt
    def edit_texture_cmd(model_path: str, image: str, direction_path: str, component: Optional[int], sigma: bool, strength: Optional[Tuple[float, ...]],
                         out: str, size: Optional[int], seed: int, noise: str, device: str) -> None:
        """Global texture edit: texture + strength * direction (renormalised), decoded with the image's own structure.

        \b
        Examples:
          ganedit swapae edit-texture --model runs/sae a.png --direction painting2photo.pt --strength 0 0.5 1 -o edit.png
          ganedit swapae edit-texture --model runs/sae a.png --direction texture_pca.pt --component 2 --sigma --strength -3 -1.5 0 1.5 3 -o edits/
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path, device)
        direction = E.direction_vector(E.read_direction_file(direction_path), component, sigma)
        strengths = strength or (1.0,)
        x = _read(model, image, _size(model, size))
        images = E.edit_texture(model, x, direction, strengths, noise=noise_arg(noise), seed=seed)[0].cpu()
        tag = f"_c{component}" if component is not None else ""
        written = _write(images, out, [f"{Path(image).stem}{tag}_{s:+.2f}" for s in strengths])
        click.echo(f"wrote {len(strengths)} texture edit(s) to {written[0] if len(written) == 1 else out}")

    @swapae_group.command("region")
    @model_opt
    @click.option("--target", required=True, type=click.Path(exists=True, dir_okay=False), help="Image to edit (its texture is kept).")
    @click.option("--source", type=click.Path(exists=True, dir_okay=False), default=None, help="Image the structure comes from (default: the target itself, to move a region).")
    @click.option("--mask", type=click.Path(exists=True, dir_okay=False), default=None, help="Mask image over the source: white selects, grey blends (resized like the source).")
    @click.option("--rect", type=int, nargs=4, default=None, metavar="X0 Y0 X1 Y1", help="Rectangle in source pixels (after --size), ends exclusive.")
    @click.option("--mode", type=click.Choice(["blend", "copy"]), default="blend", show_default=True,
                  help="blend: soft blend of the codes under the mask, renormalised per position; copy: copy the code cells with at least --threshold of their pixels selected.")
    @click.option("--offset", type=int, nargs=2, default=(0, 0), show_default=True, metavar="DX DY", help="Move the region by this many pixels in the target (rounded to whole structure-code cells).")
    @click.option("--threshold", type=float, default=0.5, show_default=True, help="copy mode: fraction of a code cell that must be selected.")
    @click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output image file.")
    @size_opt
    @device_opt
    @seed_opt
    @noise_opt
    def region_cmd(model_path: str, target: str, source: Optional[str], mask: Optional[str], rect: Optional[Tuple[int, int, int, int]], mode: str,
                   offset: Tuple[int, int], threshold: float, out: str, size: Optional[int], seed: int, noise: str, device: str) -> None:
        """Region edit: blend or copy the structure code of a region, then decode with the target's texture.

        The mask is area-averaged to the structure code's grid (1/16 of the image for the official models, 1/8
        for small ones), so edits snap to that grid.

        \b
        Examples:
          ganedit swapae region --model runs/sae --target a.png --source b.png --mask sky.png -o edit.png
          ganedit swapae region --model runs/sae --target a.png --rect 0 0 32 32 --mode copy --offset 32 16 -o moved.png
        """
        from ganedit.data.io import read_image, write_image
        from ganedit.edit import swapae as E
        from ganedit.errors import ConfigError

        if (mask is None) == (rect is None):
            raise ConfigError("give exactly one of --mask or --rect")
        model = load_swapae(model_path, device)
        n = _size(model, size)
        tx = _read(model, target, n)
        sx = None if source is None else _read(model, source, n)
        src = tx if sx is None else sx
        if mask is not None:
            region: Any = E.image_to_mask(read_image(mask, tuple(src.shape[-2:]), allow_upscale=True, resize_filter="bilinear"))
        else:
            region = E.rect_mask(src.shape[-2], src.shape[-1], rect)
        kw = dict(offset=tuple(offset), noise=noise_arg(noise), seed=seed)
        if mode == "blend":
            y = E.blend_structure(model, tx, sx, region, **kw)
        else:
            y = E.copy_structure_region(model, tx, sx, region, threshold=threshold, **kw)
        write_image(y.cpu(), out)
        click.echo(f"wrote {out}")
