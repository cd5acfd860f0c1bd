"""`ganedit translate --aligned`: translate the A half of every A|B test image and compare with the B half.

Like the official pix2pix test.py, each pair is split (A = the left ``int(w/2)`` columns), the input half is
translated and the result is shown beside the input and the truth, in an HTML page. Unlike it, the scores are
computed too: PSNR and SSIM of every output against its truth, and their means.

Writes under OUT: ``compare/<name>.png`` (input | output | truth), ``output/<name>.png`` (the output alone, for
`ganedit eval`), ``scores.json`` and ``index.html``.
"""
from __future__ import annotations

import html
import json
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import click
import torch

ASPECT_TOLERANCE = 0.02  # an A|B file is 2:1 within this relative error, else a warning


def read_pair(path: Path, size: Optional[int], swap: bool) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """(input, truth, is_two_to_one) as [1, 3, H, W] tensors; ``size`` resizes each half to N x N (bicubic, as the
    official test does with load_size = crop_size = N)."""
    from ganedit.data.datasets import split_aligned
    from ganedit.data.io import load_rgb, pil_filter, pil_to_tensor
    from ganedit.errors import ImageError

    image = load_rgb(path)
    width, height = image.size
    two_to_one = abs(width / (2.0 * height) - 1.0) <= ASPECT_TOLERANCE
    try:
        a, b = split_aligned(image)
    except ImageError as exc:
        raise ImageError(path, exc.problem) from None
    if swap:
        a, b = b, a
    if size:
        a, b = (h.resize((size, size), pil_filter("bicubic")) for h in (a, b))
    elif a.size != b.size:  # odd width: the right half is one column wider; drop it so the two compare
        b = b.crop((0, 0) + a.size)
    return pil_to_tensor(a)[None], pil_to_tensor(b)[None], two_to_one


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def translate_aligned(generator: Callable[[torch.Tensor], torch.Tensor], files: List[Tuple[Path, str]], out: Path,
                      size: Optional[int], swap: bool, batch: int, prepare: Callable[[Path, torch.Tensor], torch.Tensor],
                      progress: bool = True) -> Dict[str, Any]:
    """Translate (file, name) pairs; ``prepare`` checks and converts an input (channels, size multiple).
    Returns the scores dict also written to OUT/scores.json."""
    from tqdm import tqdm

    from ganedit.data.io import make_grid, write_image
    from ganedit.metrics import psnr, ssim

    rows: List[Dict[str, Any]] = []
    not_two_to_one: List[str] = []
    pending: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]] = []

    def flush() -> None:
        x = torch.cat([p[1] for p in pending])
        with torch.inference_mode():
            y = generator(x).float().cpu().clamp(-1, 1)
        for i, (shown, _, truth, name) in enumerate(pending):
            out_i = _three_channels(y[i : i + 1])
            write_image(out_i, out / "output" / f"{name}.png")
            strip = make_grid(torch.cat([shown, out_i, truth]), nrow=3, padding=0)
            write_image(strip, out / "compare" / f"{name}.png")
            row: Dict[str, Any] = {"name": name, "psnr": float(psnr(out_i, truth).clamp(max=100.0)[0])}
            row["ssim"] = float(ssim(out_i, truth)[0]) if min(truth.shape[-2:]) >= 11 else float("nan")
            rows.append(row)
        pending.clear()

    for path, name in tqdm(files, desc="translate", unit="img", disable=not progress or len(files) < 2):
        a, b, two_to_one = read_pair(path, size, swap)
        if not two_to_one:
            not_two_to_one.append(str(path))
        x = prepare(path, a)
        if pending and (pending[0][1].shape != x.shape or len(pending) == batch):
            flush()
        pending.append((a, x, b, name))
    if pending:
        flush()
    if not_two_to_one:
        click.echo(f"warning: {len(not_two_to_one)} file(s) are not 2:1 (A|B pairs of square halves), e.g. "
                   f"{not_two_to_one[0]}; each was split at int(width/2) anyway", err=True)
    scores = {
        "n": len(rows),
        "psnr": sum(r["psnr"] for r in rows) / len(rows),
        "ssim": sum(r["ssim"] for r in rows) / len(rows),
        "images": rows,
    }
    with open(out / "scores.json", "w") as handle:
        json.dump(scores, handle, indent=2)
        handle.write("\n")
    write_index(out / "index.html", scores)
    return scores


def write_index(path: Path, scores: Dict[str, Any]) -> None:
    """An HTML page with one row per image: name, input | output | truth, PSNR, SSIM."""
    lines = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>ganedit translate</title>",
        "<style>td{padding:4px;font-family:sans-serif}img{image-rendering:pixelated}</style></head><body>",
        f"<h3>{scores['n']} pairs: mean PSNR {scores['psnr']:.2f} dB, mean SSIM {scores['ssim']:.4f}</h3>",
        "<table><tr><th>name</th><th>input | output | truth</th><th>PSNR (dB)</th><th>SSIM</th></tr>",
    ]
    for row in scores["images"]:
        src = urllib.parse.quote(f"compare/{row['name']}.png")
        lines.append(f"<tr><td>{html.escape(row['name'])}</td><td><img src='{src}'></td>"
                     f"<td>{row['psnr']:.2f}</td><td>{row['ssim']:.4f}</td></tr>")
    lines += ["</table></body></html>", ""]
    path.write_text("\n".join(lines))
