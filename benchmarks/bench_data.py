"""Data-loading throughput: images/s of the folder and zip datasets at 64 and 256 px through a DataLoader
with 0 and 2 worker processes (batch 32, decode + to-tensor + random flip, persistent workers so the figure
is the steady state, not process start-up).

The images are made in a temporary folder: 512 crops of scikit-image's bundled photos (random position and
scale, so the PNGs compress like photos), written as PNG files and as a zip by ``ganedit data prepare``.

    python -m benchmarks.bench_data [--n 512] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks.common import machine_line, time_repeats, write_section
from ganedit.data.datasets import ImageFolderDataset, ZipDataset
from ganedit.data.prepare import prepare_zip
from ganedit.data.transforms import Transform


def _photos() -> List[np.ndarray]:
    try:
        from skimage import data as samples

        return [np.asarray(getattr(samples, n)()) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    except Exception:  # scikit-image absent: smooth random fields stand in for photos
        rng = np.random.default_rng(0)
        small = (rng.random((4, 16, 16, 3)) * 255).astype(np.uint8)
        return [np.asarray(Image.fromarray(s).resize((512, 512), Image.Resampling.BICUBIC)) for s in small]


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = _photos()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y : y + side, x : x + side]).convert("RGB")
        crop.resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.png")


def images_per_second(dataset, workers: int, repeats: int, batch: int = 32) -> Dict[str, float]:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)

    def epoch() -> None:
        for b in loader:
            assert b["image"].dtype == torch.float32

    t = time_repeats(epoch, repeats=repeats, warmup=1)
    n = len(dataset)
    return {"best": n / t["min"], "median": n / t["median"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="images per dataset")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 256):
            folder = Path(tmp) / f"png{size}"
            make_images(folder, args.n, size)
            zip_path = Path(tmp) / f"d{size}.zip"
            prepare_zip(folder, zip_path, size, progress=False)
            flip = Transform(flip=True)
            for kind, ds in (
                ("folder", ImageFolderDataset(folder, transform=flip, seed=0)),
                ("zip", ZipDataset(zip_path, transform=flip, seed=0)),
            ):
                for workers in (0, 2):
                    r = images_per_second(ds, workers, args.repeats)
                    print(f"{kind:6s} {size:4d}px workers={workers}: {r['best']:8.0f} img/s best, {r['median']:8.0f} median")
                    rows.append(f"| {kind} | {size} | {workers} | {r['best']:.0f} | {r['median']:.0f} |")
    md = "\n".join(
        [
            "## Data loading (`ganedit.data`)",
            "",
            f"Command: `python -m benchmarks.bench_data --n {args.n} --repeats {args.repeats}`  ",
            f"Machine: {machine_line()}  ",
            f"{args.n} crops of scikit-image photos per dataset (folder: PNG at Pillow's default level 6; zip: "
            "made by `ganedit data prepare`, PNG level 0); DataLoader batch 32, shuffled, decode + to tensor + "
            f"random flip; persistent workers; images/s from the best and the median of {args.repeats} epochs "
            f"after one warm-up epoch. Load average when finished: {os.getloadavg()[0]:.1f} (other jobs share "
            "the cores, so the worker figures are lower bounds).",
            "",
            "| dataset | px | workers | img/s (best) | img/s (median) |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("data", md)


if __name__ == "__main__":
    main()
