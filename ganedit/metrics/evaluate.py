"""Scoring one folder of images against another: what ``ganedit eval`` runs.

Full-reference metrics (psnr, ssim, ms-ssim, lpips) compare files paired by their relative path without the
extension (``a/x.png`` pairs with ``a/x.jpg``); every file must have its partner. Distribution metrics (swd, fid,
kid) compare the two sets as wholes and need no pairing. Images are streamed in batches, so folders larger than
memory work; pretrained networks are loaded before any image is read, so a missing weight file fails at once.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ganedit.errors import ConfigError, DataError

FULL_REFERENCE = ("psnr", "ssim", "ms-ssim", "lpips")
DISTRIBUTION = ("swd", "fid", "kid")
ALL_METRICS = FULL_REFERENCE + DISTRIBUTION


@dataclass
class EvalOptions:
    size: Optional[int] = None  # resize (centre crop + resize) every image to size x size
    batch_size: int = 16
    device: str = "cpu"
    seed: int = 0  # SWD patch positions and directions, KID subsets
    lpips_net: str = "alex"
    lpips_weights: Optional[str] = None
    inception_weights: Optional[str] = None
    ms_ssim_scales: Optional[int] = None  # None: as many of the 5 standard scales as the images allow
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    swd_nhoods: int = 128
    swd_dir_repeats: int = 4
    swd_dirs_per_repeat: int = 128


def parse_metrics(text: str) -> List[str]:
    """'psnr,ssim,swd' -> ['psnr', 'ssim', 'swd']; 'all' gives every metric; unknown names are a ConfigError."""
    names = [n.strip().lower().replace("_", "-") for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(ALL_METRICS)
    names = ["ms-ssim" if n == "msssim" else n for n in names]
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL_METRICS)} or 'all'")
    return list(dict.fromkeys(names))


def list_images(folder: "str | os.PathLike[str]") -> Dict[str, Path]:
    """Image files under ``folder`` (recursive), keyed by relative path without extension."""
    from ganedit.data.io import is_image_name

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found: Dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not is_image_name(path.name) or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        if path.is_symlink() and not path.exists():
            # Skipping it would score a different set than the user meant (every metric, swd included, refuses it).
            raise DataError(f"{path}: broken symbolic link (its target is missing, or the links form a loop)")
        if path.is_file():
            key = path.relative_to(root).with_suffix("").as_posix()
            if key in found:
                raise DataError(f"{root}: {found[key].name} and {path.name} have the same name up to the extension; "
                                "pairing by name needs one file per name")
            found[key] = path
    if not found:
        raise DataError(f"{root}: no image files found (PNG, JPEG, WebP, BMP, TIFF, GIF, PPM)")
    return found


def match_pairs(a: Dict[str, Path], b: Dict[str, Path], dir_a: str, dir_b: str) -> List[Tuple[str, Path, Path]]:
    """Pairs (key, path_a, path_b) of files with the same relative name; a DataError lists the unmatched ones."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def show(keys: List[str], where: str, other: str) -> str:
            listed = ", ".join(keys[:10]) + (f", ... ({len(keys) - 10} more)" if len(keys) > 10 else "")
            return f"\n  {len(keys)} in {where} without a partner in {other}: {listed}" if keys else ""

        raise DataError(
            "full-reference metrics pair images by relative path (extension ignored) and some have no partner:"
            + show(only_a, dir_a, dir_b) + show(only_b, dir_b, dir_a)
            + "\n  Rename or remove them, or ask only for distribution metrics (swd, fid, kid)."
        )
    return [(k, a[k], b[k]) for k in sorted(a)]


def _read(path: Path, size: Optional[int]) -> torch.Tensor:
    from ganedit.data.io import read_image

    return read_image(path, size, allow_upscale=True) if size else read_image(path)


def _pair_batches(pairs: Sequence[Tuple[str, Path, Path]], size: Optional[int], batch_size: int
                  ) -> Iterator[Tuple[List[str], torch.Tensor, torch.Tensor]]:
    """Batches of consecutive pairs that share one image size (a change of size starts a new batch)."""
    keys: List[str] = []
    xs: List[torch.Tensor] = []
    ys: List[torch.Tensor] = []
    for key, pa, pb in pairs:
        x, y = _read(pa, size), _read(pb, size)
        if x.shape != y.shape:
            raise DataError(f"{pa} is {x.shape[-1]}x{x.shape[-2]} but {pb} is {y.shape[-1]}x{y.shape[-2]}; "
                            "full-reference metrics need equal sizes (pass --size N to resize both)")
        if xs and (x.shape != xs[0].shape or len(xs) == batch_size):
            yield keys, torch.cat(xs), torch.cat(ys)
            keys, xs, ys = [], [], []
        keys.append(key)
        xs.append(x)
        ys.append(y)
    if xs:
        yield keys, torch.cat(xs), torch.cat(ys)


def _set_batches(paths: Sequence[Path], size: Optional[int], batch_size: int) -> Iterator[torch.Tensor]:
    batch: List[torch.Tensor] = []
    for path in paths:
        x = _read(path, size)
        if batch and (x.shape != batch[0].shape or len(batch) == batch_size):
            yield torch.cat(batch)
            batch = []
        batch.append(x)
    if batch:
        yield torch.cat(batch)


class _SetAccumulator:
    """SWD descriptors and network features of one image set, fed batch by batch."""

    def __init__(self, name: str, count: int, options: EvalOptions, want_swd: bool,
                 extractor: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.name, self.count, self.options = name, count, options
        self.want_swd, self.extractor = want_swd, extractor
        self.swd: Any = None
        self.features: List[torch.Tensor] = []

    def add(self, images: torch.Tensor) -> None:
        if self.want_swd:
            from ganedit.metrics.sliced_wasserstein import SWDDescriptors

            if self.swd is None:
                try:
                    self.swd = SWDDescriptors(self.count, tuple(images.shape[-2:]), seed=self.options.seed,
                                              nhoods_per_image=self.options.swd_nhoods)
                except ValueError as exc:
                    raise DataError(f"{self.name}: {exc}; pass --size N (at least 16)") from None
            if tuple(images.shape[-2:]) != self.swd.image_size:
                raise DataError(f"{self.name}: swd needs all images of a set at one size, found {self.swd.image_size} "
                                f"and {tuple(images.shape[-2:])}; pass --size N")
            self.swd.add(images)
        if self.extractor is not None:
            feats = self.extractor(images)
            self.features.append(feats.reshape(feats.shape[0], -1).double().cpu())


def _ms_ssim_scales(paths: Sequence[Path], options: EvalOptions) -> int:
    from ganedit.data.io import image_size
    from ganedit.metrics.image import MS_SSIM_BETAS, ms_ssim_max_scales

    if options.size:
        side = options.size
    else:
        side = min(min(image_size(p)[:2]) for p in paths)
    fits = min(len(MS_SSIM_BETAS), ms_ssim_max_scales(side, side))
    scales = options.ms_ssim_scales or fits
    if fits < 1 or scales > fits:
        raise DataError(f"ms-ssim with {scales} scales needs images of at least {11 * 2 ** (max(scales, 1) - 1)} px; "
                        f"the smallest here is {side} px (pass --size N or fewer --ms-ssim-scales)")
    return scales


def _finite(value: float) -> Any:
    """JSON has no infinities: identical images give PSNR +inf, written as the string "inf"."""
    return value if math.isfinite(value) else str(value)


def evaluate_folders(dir_a: "str | os.PathLike[str]", dir_b: "str | os.PathLike[str]", metrics: Sequence[str],
                     options: Optional[EvalOptions] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Score DIR_B against DIR_A with the named metrics; returns a JSON-ready dict (see ``ganedit eval``).

    ``progress(n, total)`` is called after every batch with the number of images just read and the total."""
    options = options or EvalOptions()
    for m in metrics:
        if m not in ALL_METRICS:
            raise ConfigError(f"unknown metric {m!r}; choose from {', '.join(ALL_METRICS)}")
    device = torch.device(options.device)
    # Networks first: a missing weight file should stop us before minutes of image reading.
    lpips_model = inception = None
    if "lpips" in metrics:
        from ganedit.metrics.lpips_net import load_lpips

        lpips_model = load_lpips(options.lpips_net, options.lpips_weights).to(device)
    if "fid" in metrics or "kid" in metrics:
        from ganedit.metrics.inception import load_inception

        inception = load_inception(options.inception_weights).to(device)

    files_a, files_b = list_images(dir_a), list_images(dir_b)
    full_ref = [m for m in metrics if m in FULL_REFERENCE]
    pairs = match_pairs(files_a, files_b, str(dir_a), str(dir_b)) if full_ref else None
    paths_a = [p for _, p, _ in pairs] if pairs else [files_a[k] for k in sorted(files_a)]
    paths_b = [p for _, _, p in pairs] if pairs else [files_b[k] for k in sorted(files_b)]
    scales = _ms_ssim_scales(paths_a + paths_b, options) if "ms-ssim" in metrics else None

    def extractor(images: torch.Tensor) -> torch.Tensor:
        return inception(images.to(device))  # type: ignore[misc]

    sets = [_SetAccumulator(str(d), len(p), options, "swd" in metrics, extractor if inception is not None else None)
            for d, p in ((dir_a, paths_a), (dir_b, paths_b))]
    per_image: Dict[str, Dict[str, float]] = {}
    total = len(paths_a) + len(paths_b)

    with torch.no_grad():
        if pairs is not None:
            from ganedit.metrics.image import ms_ssim, psnr, ssim

            for keys, x, y in _pair_batches(pairs, options.size, options.batch_size):
                values: Dict[str, torch.Tensor] = {}
                try:
                    if "psnr" in metrics:
                        values["psnr"] = psnr(x, y)
                    if "ssim" in metrics:
                        values["ssim"] = ssim(x, y)
                    if "ms-ssim" in metrics:
                        values["ms-ssim"] = ms_ssim(x, y, scales=scales)
                except ValueError as exc:  # images too small for the window, ...
                    raise DataError(f"{keys[0]} (and its batch): {exc}; pass --size N to resize") from None
                if lpips_model is not None:
                    values["lpips"] = lpips_model(x.to(device), y.to(device)).cpu()
                for i, key in enumerate(keys):
                    per_image[key] = {name: float(v[i]) for name, v in values.items()}
                if sets[0].want_swd or sets[0].extractor is not None:
                    sets[0].add(x)
                    sets[1].add(y)
                if progress:
                    progress(2 * len(keys), total)
        elif sets[0].want_swd or sets[0].extractor is not None:
            for acc, paths in zip(sets, (paths_a, paths_b)):
                for batch in _set_batches(paths, options.size, options.batch_size):
                    acc.add(batch)
                    if progress:
                        progress(batch.shape[0], total)

    result: Dict[str, Any] = {
        "dir_a": str(dir_a), "dir_b": str(dir_b), "size": options.size, "count_a": len(paths_a),
        "count_b": len(paths_b), "pairs": len(pairs) if pairs is not None else None, "metrics": {}, "details": {},
    }
    for name in full_ref:
        values_list = [v[name] for v in per_image.values()]
        result["metrics"][name] = _finite(sum(values_list) / len(values_list))
    if "ms-ssim" in metrics:
        result["details"]["ms-ssim"] = {"scales": scales, "standard": scales == 5}
    if "lpips" in metrics:
        result["details"]["lpips"] = {"net": options.lpips_net}
    if "swd" in metrics:
        from ganedit.metrics.sliced_wasserstein import swd_from_descriptors

        if sets[0].swd.image_size != sets[1].swd.image_size:
            raise DataError(f"swd needs both sets at one size: {dir_a} has {sets[0].swd.image_size}, {dir_b} has "
                            f"{sets[1].swd.image_size}; pass --size N")
        swd = swd_from_descriptors(sets[0].swd.finalize(), sets[1].swd.finalize(), sets[0].swd.sizes,
                                   options.swd_dir_repeats, options.swd_dirs_per_repeat, options.seed)
        result["metrics"]["swd"] = swd.mean
        result["details"]["swd"] = {"levels": {str(k): v for k, v in swd.levels.items()}, "scale": "x1e3"}
    if inception is not None:
        from ganedit.metrics.feature_distances import fid_from_features, kid_from_features

        fa, fb = torch.cat(sets[0].features), torch.cat(sets[1].features)
        if "fid" in metrics:
            result["metrics"]["fid"] = fid_from_features(fa, fb)
            result["details"]["fid"] = {"features": "inception-v3 pool (2048)"}
        if "kid" in metrics:
            mean, std = kid_from_features(fa, fb, options.kid_subsets, options.kid_subset_size, options.seed)
            result["metrics"]["kid"] = mean
            result["details"]["kid"] = {"std": std, "subsets": options.kid_subsets,
                                        "subset_size": min(options.kid_subset_size, fa.shape[0], fb.shape[0])}
    if per_image:
        result["per_image"] = {k: {n: _finite(v) for n, v in d.items()} for k, d in per_image.items()}
    # Keep the metrics in the order they were asked for.
    result["metrics"] = {m: result["metrics"][m] for m in metrics}
    return result


def format_table(result: Dict[str, Any]) -> str:
    """A plain-text table of a result of ``evaluate_folders``."""
    rows = []
    n_pairs, na, nb = result.get("pairs"), result["count_a"], result["count_b"]
    details = result["details"]
    for name, value in result["metrics"].items():
        shown = value if isinstance(value, str) else (f"{value:.4f}" if abs(value) < 10 else f"{value:.3f}")
        if name == "psnr":
            note = f"dB, mean of {n_pairs} pairs"
        elif name in ("ssim",):
            note = f"mean of {n_pairs} pairs"
        elif name == "ms-ssim":
            s = details["ms-ssim"]["scales"]
            note = f"mean of {n_pairs} pairs, {s} scales" + ("" if s == 5 else " (not the standard 5: images too small)")
        elif name == "lpips":
            note = f"{details['lpips']['net']}, mean of {n_pairs} pairs"
        elif name == "swd":
            levels = " / ".join(f"{k}px {v:.2f}" for k, v in details["swd"]["levels"].items())
            note = f"x1e3, mean of levels {levels}; {na} vs {nb} images"
        elif name == "fid":
            note = f"Inception-v3; {na} vs {nb} images"
        else:
            k = details["kid"]
            note = f"+- {k['std']:.4f} over {k['subsets']} subsets of {k['subset_size']}"
        rows.append((name, shown, note))
    width = max(len(r[1]) for r in rows) if rows else 5
    lines = [f"{'metric':<8} {'value':>{width}}  notes"]
    lines += [f"{n:<8} {v:>{width}}  {note}" for n, v, note in rows]
    return "\n".join(lines)
