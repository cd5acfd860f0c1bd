"""`ganedit swap`, `ganedit swap-grid` and the `ganedit swapae` group (pca, direction, edit-texture, region):
the Swapping Autoencoder's editing tools on image files. The work is done by ``ganedit.edit.swapae``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import click

NOISE_HELP = ("fixed: the same noise (from --seed) for every output of a structure image, as the official swap tool "
              "fixes it; random: fresh noise per run; zero: no noise.")
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


def load_swapae(path: str) -> Any:
    """A Swapping Autoencoder from a native folder, an official latest_checkpoint.pth, or an official run folder
    (checkpoints/<name>/ holding latest_checkpoint.pth), in eval mode."""
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
    return model.eval()


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


def _loader(path: str, size: Optional[int], max_images: Optional[int], batch: int, workers: int):
    """(DataLoader, number of images) over a folder or zip, in file order."""
    from torch.utils.data import DataLoader

    from ganedit.data.datasets import open_image_dataset
    from ganedit.errors import ConfigError

    if batch < 1 or workers < 0:
        raise ConfigError(f"--batch must be at least 1 and --workers at least 0 (got {batch}, {workers})")
    ds = open_image_dataset(path, size=size, allow_upscale=True, max_items=max_images)
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers), len(ds)


# ---------------------------------------------------------------------------------------------------- commands


def register(cli: click.Group) -> None:
    model_opt = click.option("--model", "model_path", required=True, help="Native ganedit Swapping Autoencoder folder, official latest_checkpoint.pth, or the official checkpoints/<name>/ folder.")
    size_opt = click.option("--size", type=int, default=None, help=SIZE_HELP)
    seed_opt = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fixed noise.")
    noise_opt = click.option("--noise", type=click.Choice(["fixed", "random", "zero"]), default="fixed", show_default=True, help=NOISE_HELP)

    def noise_arg(noise: str):
        return None if noise == "fixed" else noise

    @cli.command("swap")
    @model_opt
    @click.option("--structure", required=True, type=click.Path(exists=True, dir_okay=False), help="Image that gives the structure (layout, geometry).")
    @click.option("--texture", required=True, type=click.Path(exists=True, dir_okay=False), help="Image that gives the texture (colours, materials, style).")
    @click.option("--alpha", cls=NumberList, help="Texture mix: 0 reconstructs the structure image, 1 is the full swap; several values give one output each. Default 1.")
    @click.option("-o", "--out", required=True, type=click.Path(), help="An image file (several alphas: a strip, left to right) or a folder (one <A>_<B>_<alpha>.png per alpha).")
    @size_opt
    @seed_opt
    @noise_opt
    def swap_cmd(model_path: str, structure: str, texture: str, alpha: Optional[Tuple[float, ...]], out: str, size: Optional[int], seed: int, noise: str) -> None:
        """Structure of one image with the texture of another.

        The texture codes are interpolated and renormalised (the official simple_swapping tool), and the noise is
        fixed per structure image, so the outputs for different alphas differ only by texture.

        \b
        Examples:
          ganedit swap --model runs/sae --structure a.png --texture b.png -o swap.png
          ganedit swap --model latest_checkpoint.pth --structure a.png --texture b.png --alpha 0 0.25 0.5 0.75 1 -o strip.png
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path)
        n = _size(model, size)
        alphas = alpha or (1.0,)
        a, b = _read(model, structure, n), _read(model, texture, n)
        images = E.swap(model, a, b, alphas, noise=noise_arg(noise), seed=seed)[0]
        names = [f"{Path(structure).stem}_{Path(texture).stem}_{al:.2f}" for al in alphas]
        written = _write(images, out, names)
        click.echo(f"wrote {len(alphas)} swap(s) to {written[0] if len(written) == 1 else out}")

    @cli.command("swap-grid")
    @model_opt
    @click.argument("structure_dir", type=click.Path(exists=True))
    @click.argument("texture_dir", type=click.Path(exists=True))
    @click.option("-o", "--out", required=True, type=click.Path(), help="Grid image file.")
    @size_opt
    @seed_opt
    @noise_opt
    def swap_grid_cmd(model_path: str, structure_dir: str, texture_dir: str, out: str, size: Optional[int], seed: int, noise: str) -> None:
        """Grid of every structure image with every texture image.

        The first row shows the texture images, the first column the structure images; cell (i, j) is structure i
        with texture j. STRUCTURE_DIR and TEXTURE_DIR are folders, zips or single image files.

        \b
        Example:
          ganedit swap-grid --model runs/sae structures/ textures/ -o grid.png
        """
        import torch

        from ganedit.data.io import write_grid
        from ganedit.edit import swapae as E

        model = load_swapae(model_path)
        n = _size(model, size)
        sx, _ = _read_set(model, structure_dir, n)
        tx, _ = _read_set(model, texture_dir, n)
        if sx.shape[-2:] != tx.shape[-2:]:
            from ganedit.errors import ConfigError

            raise ConfigError(f"structure images are {sx.shape[-1]}x{sx.shape[-2]} but texture images {tx.shape[-1]}x{tx.shape[-2]}; use --size N")
        grid = E.swap_grid(model, sx, tx, noise=noise_arg(noise), seed=seed)  # (S, T, 3, H, W)
        blank = torch.ones_like(tx[:1])
        header = torch.cat([blank, tx])
        rows = [torch.cat([sx[i : i + 1], grid[i].to(sx)]) for i in range(sx.shape[0])]
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
    @click.option("--batch", type=int, default=16, show_default=True, help="Images per encoder pass.")
    @click.option("--workers", type=int, default=0, show_default=True, help="Data-loading worker processes.")
    @click.option("--max-images", type=int, default=None, help="Use only the first N images of DATA.")
    @click.option("--preview", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="Also write <OUT stem>_preview.png: this image edited along the first 5 components (rows) at -2, -1, 0, 1, 2 standard deviations (columns).")
    @size_opt
    def pca_cmd(model_path: str, data: str, out: str, components: int, batch: int, workers: int, max_images: Optional[int], preview: Optional[str], size: Optional[int]) -> None:
        """PCA directions of the texture codes of a dataset (folder or zip).

        Saves mean, components (orthonormal rows, by decreasing variance), explained variance and its ratio.
        Use a component with `ganedit swapae edit-texture --direction FILE --component K`.

        \b
        Example:
          ganedit swapae pca --model runs/sae data/train.zip -o texture_pca.pt --components 32
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path)
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
            rows = [E.edit_texture(model, x, result.direction(k, sigma=True), sigmas)[0] for k in range(min(5, result.components.shape[0]))]
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
    @click.option("--batch", type=int, default=16, show_default=True, help="Images per encoder pass.")
    @click.option("--workers", type=int, default=0, show_default=True, help="Data-loading worker processes.")
    @click.option("--max-images", type=int, default=None, help="Use only the first N images of each set.")
    @size_opt
    def direction_cmd(model_path: str, set_a: str, set_b: str, out: str, batch: int, workers: int, max_images: Optional[int], size: Optional[int]) -> None:
        """Mean-difference texture direction from image set A to image set B (folders or zips).

        direction = mean texture code of B - mean texture code of A; at strength 1 it moves A's mean onto B's.

        \b
        Example:
          ganedit swapae direction --model runs/sae paintings/ photos/ -o painting2photo.pt
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path)
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
    @seed_opt
    @noise_opt
    def edit_texture_cmd(model_path: str, image: str, direction_path: str, component: Optional[int], sigma: bool, strength: Optional[Tuple[float, ...]],
                         out: str, size: Optional[int], seed: int, noise: str) -> None:
        """Global texture edit: texture + strength * direction (renormalised), decoded with the image's own structure.

        \b
        Examples:
          ganedit swapae edit-texture --model runs/sae a.png --direction painting2photo.pt --strength 0 0.5 1 -o edit.png
          ganedit swapae edit-texture --model runs/sae a.png --direction texture_pca.pt --component 2 --sigma --strength -3 -1.5 0 1.5 3 -o edits/
        """
        from ganedit.edit import swapae as E

        model = load_swapae(model_path)
        direction = E.direction_vector(E.read_direction_file(direction_path), component, sigma)
        strengths = strength or (1.0,)
        x = _read(model, image, _size(model, size))
        images = E.edit_texture(model, x, direction, strengths, noise=noise_arg(noise), seed=seed)[0]
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
    @seed_opt
    @noise_opt
    def region_cmd(model_path: str, target: str, source: Optional[str], mask: Optional[str], rect: Optional[Tuple[int, int, int, int]], mode: str,
                   offset: Tuple[int, int], threshold: float, out: str, size: Optional[int], seed: int, noise: str) -> None:
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
        model = load_swapae(model_path)
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
        write_image(y, out)
        click.echo(f"wrote {out}")
