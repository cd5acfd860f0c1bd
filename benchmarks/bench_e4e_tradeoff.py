"""Distortion against editability (issue 14 §3): encoders into the same frozen StyleGAN2, compared on ground truth.

For each encoder (``--encoder LABEL=PATH``, e.g. pSp and e4e trained on the same decoder):

* distortion: PSNR / SSIM of the reconstruction of held-out in-domain images G(w+) (the exact answer exists)
  and of held-out synthetic-world images;
* editability, for each direction file (``--direction NAME=PATH``; the factor the attribute regressor reads is
  NAME): the inverted codes are edited by -s and +s (s = ``--strength`` standard deviations of sampled w along
  the direction when the file carries them) on the file's layers, decoded, and read by the regressor:
  - change: the target factor's change per unit strength, in units of its spread over the truth images;
  - leakage: the root mean square change of every other factor, in the same units, each counted on the images
    that show it before and after the edit, without the factors the target can hide (``edit_effect``);
    ratio = |change| / leakage;
  - LEC (latent editing consistency, the e4e paper): ||E(G(E(x) + delta)) - delta - E(x)|| over ||delta||,
    mean over images, both signs and w+ rows: 0 when the encoder reads its own edit back exactly;
  - LEC in pixels: ||G(E(G(E(x) + delta)) - delta) - G(E(x))|| over ||G(E(x) + delta) - G(E(x))||, the same
    round trip judged by the image it makes, so latent directions the generator hardly shows do not count;
  - W distance: the Mahalanobis distance of the edited rows under the mapping network's w statistics,
    divided by that of sampled w (1 = as typical as sampled w; the e4e paper's "distance from W").
* the LEC of a zero edit, ||E(G(E(x))) - E(x)|| over the same ||delta||: the part of the LEC that the encoder's
  round trip makes without any edit; and the LEC from the round trip, ||E(G(E(x) + delta)) - delta - E(G(E(x)))||
  over ||delta||: how far the edit itself is read back wrong;
* where the W distance comes from: the same distance of the unedited codes, row 0 (e4e's w0) apart from
  rows 1.. (e4e's w0 + delta_i), beside the truth codes' (the in-domain images' own w, about 1).
* the same editability on the world images: the e4e paper's setting (real images, no known code);
* optimisation inversion (``--projection w --projection w+``) as two more "encoders", on the first
  ``--project-n`` images: E(x) is a projection of x (``--project-steps`` steps from the mean latent, weight-free
  loss, the generator's stored noise maps so that the code alone makes the image, as with the encoders), and the
  LEC re-projects each edited image the same way. Every encoder is scored again on those images, side by side.
* bar (issue 14): e4e's edits leak less and its LEC is lower than pSp's, at a reconstruction cost no larger
  than the paper's (about 1-2 dB).

    python -m benchmarks.bench_e4e_tradeoff --encoder pSp=runs/psp/model --encoder e4e=runs/e4e/model \\
        --direction yaw=stylegan2-synth64/interfacegan_yaw --direction glasses=... [--n 32] \\
        [--projection w --projection w+ --project-n 16 --project-steps 300] [--write [--section S --title T]]

The first --encoder is the one every other is compared with (the bar lines).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.bench_psp_quality import HELDOUT_SEED, batched, scores  # noqa: E402
from benchmarks.common import machine_line, write_section  # noqa: E402


def _pair(text: str) -> Tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    return label, path


def w_statistics(G, n: int = 10000, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Mean and inverse covariance of sampled w, and the mean Mahalanobis distance of sampled w (the unit)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = torch.cat([G.mapping(torch.randn(1000, G.g_ema.style_dim, generator=g)) for _ in range(n // 1000)])
    mean = w.mean(0)
    cov = torch.cov((w - mean).T) + 1e-5 * torch.eye(w.shape[1])
    inv = torch.linalg.inv(cov)
    ref = mahalanobis(w[:2000], mean, inv).mean().item()
    return mean, inv, ref


def mahalanobis(w: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    d = w.reshape(-1, w.shape[-1]) - mean
    return ((d @ inv) * d).sum(1).clamp_min(0).sqrt()


def row_distances(wplus: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor, unit: float) -> torch.Tensor:
    """The mean W distance of each w+ row over the batch [n_rows] (1 = as typical as sampled w)."""
    return mahalanobis(wplus, mean, inv).reshape(wplus.shape[0], wplus.shape[1]).mean(0) / unit


def relative_drift(codes: torch.Tensor, reference: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Per image: ||codes - reference|| over ||delta||, each the mean over w+ rows (LEC: codes = E(G(E(x) + delta))
    - delta, reference = E(x))."""
    return (codes - reference).norm(dim=2).mean(1) / delta.norm(dim=2).mean(1).clamp_min(1e-8)


def code_spread(codes: torch.Tensor) -> float:
    """How far apart the codes of different images lie: the mean distance of a w+ row from that row's mean over
    the images."""
    return float((codes - codes.mean(0, keepdim=True)).norm(dim=2).mean())


def projection_encoder(G, space: str, steps: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Optimisation inversion as an encoder: images -> w+ by ``steps`` of projection from the mean latent in
    ``space`` ("w" or "w+"), with the weight-free loss and the generator's stored noise maps (the code alone makes
    the image, as it does for the encoders)."""
    from ganedit.edit.projection import project_batches

    def encode(images: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():  # the callers run under no_grad; projection needs the gradients
            return project_batches(G, images, batch_size=16, space=space, steps=steps, noise=False, lpips=False).wplus

    return encode


def image_drift(undone: torch.Tensor, reconstruction: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """Per image: the LEC in pixels, ||G(E(G(E(x) + delta)) - delta) - G(E(x))|| over ||G(E(x) + delta) - G(E(x))||:
    how far undoing the read-back edit lands from the reconstruction, against how far the edit moved the image.
    Unlike the latent LEC it ignores latent directions that the image does not show."""
    moved = (edited - reconstruction).flatten(1).norm(dim=1).clamp_min(1e-8)
    return (undone - reconstruction).flatten(1).norm(dim=1) / moved


def edit_scores(label: str, encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                images: torch.Tensor, directions, R, spread: Dict[str, float],
                w_stats: Tuple[torch.Tensor, torch.Tensor, float], strength: float, shown: int) -> Dict:
    """Editability of one encoder on ``images``: per-direction table rows, the mean leakage, LEC (latent and
    pixels), zero-edit LEC, LEC from the round trip and W distance, the grid rows, and the codes E(x) with their
    round trip E(G(E(x)))."""
    from ganedit.metrics.attributes import edit_effect, edit_readings

    mean_w, inv_cov, w_unit = w_stats
    with torch.no_grad():
        w_in = batched(encode, images)
        rec = batched(lambda w: decode(w).clamp(-1, 1), w_in)
        back_unedited = batched(encode, rec)  # E(G(E(x))): the round trip without an edit
    grid = [(f"{label} recon.", rec[:shown])]
    rows, leaks, lecs, pixel_lecs, floors, relatives, dists = [], [], [], [], [], [], []
    for factor, dirs in directions:
        if factor not in spread:
            raise SystemExit(f"the regressor reads no continuous/binary factor {factor!r}")
        sigmas = dirs.scales is not None
        readings, lec, pixel, floor, relative, dist = {}, [], [], [], [], []
        for sign in (-1.0, 1.0):
            edited = dirs.apply(w_in, 0, sign * strength, sigmas=sigmas)
            delta = edited - w_in
            with torch.no_grad():
                edited_images = batched(lambda w: decode(w).clamp(-1, 1), edited)
                readings[sign] = edit_readings(edited_images, R)
                back = batched(encode, edited_images)
                undone = batched(lambda w: decode(w).clamp(-1, 1), back - delta)
            grid.append((f"{factor} {sign * strength:+g}s", edited_images[:shown]))
            lec.append(relative_drift(back - delta, w_in, delta))
            pixel.append(image_drift(undone, rec, edited_images))
            floor.append(relative_drift(back_unedited, w_in, delta))
            relative.append(relative_drift(back - delta, back_unedited, delta))
            dist.append(mahalanobis(edited, mean_w, inv_cov).mean() / w_unit)
        change, leak, _ = edit_effect(readings[1.0], readings[-1.0], spread, factor, strength)
        c = change[factor]
        lec_v, dist_v = float(torch.cat(lec).mean()), float(torch.stack(dist).mean())
        leaks.append(leak)
        lecs.append(lec_v)
        pixel_lecs.append(float(torch.cat(pixel).mean()))
        floors.append(float(torch.cat(floor).mean()))
        relatives.append(float(torch.cat(relative).mean()))
        dists.append(dist_v)
        rows.append(f"| {label} | {factor} ({dirs.method}) | {c:+.3f} | {leak:.3f} | {abs(c) / leak:.1f} | {lec_v:.3f} "
                    f"| {pixel_lecs[-1]:.3f} | {dist_v:.2f} |")

    def mean(values: List[float]) -> float:
        return sum(values) / len(values)

    return {"rows": rows, "grid": grid, "codes": w_in, "round_trip": back_unedited, "reconstruction": rec,
            "summary": {"leak": mean(leaks), "lec": mean(lecs), "pixel_lec": mean(pixel_lecs), "lec_floor": mean(floors),
                        "lec_rel": mean(relatives), "dist": mean(dists)}}


def evaluate(label: str, encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
             truth: torch.Tensor, world: torch.Tensor, directions, R, spread: Dict[str, float],
             w_stats: Tuple[torch.Tensor, torch.Tensor, float], strength: float, shown: int,
             truth_codes: Optional[torch.Tensor] = None, edit_world: bool = True) -> Dict:
    """Distortion and editability of one encoder on ``truth`` (in-domain) and ``world`` images: the summary
    figures (editability on the in-domain images; with ``edit_world`` also on the world images, the real-image
    setting of the e4e paper, under ``world``), the per-direction table rows, the W-distance-by-row and
    code-spread rows, and the grid rows."""
    mean_w, inv_cov, w_unit = w_stats
    indomain = edit_scores(label, encode, decode, truth, directions, R, spread, w_stats, strength, shown)
    on_world = edit_scores(label, encode, decode, world, directions, R, spread, w_stats, strength, shown) if edit_world else None
    if on_world is not None:
        rec_world = on_world["reconstruction"]
    else:
        with torch.no_grad():
            rec_world = batched(lambda w: decode(w).clamp(-1, 1), batched(encode, world))
    d_in, d_world = scores(indomain["reconstruction"], truth), scores(rec_world, world)
    w_in, back_unedited = indomain["codes"], indomain["round_trip"]
    rows_dist = row_distances(w_in, mean_w, inv_cov, w_unit)
    own_spread, drift = code_spread(w_in), float((back_unedited - w_in).norm(dim=2).mean())
    from_truth = "" if truth_codes is None else f"{float((w_in - truth_codes).norm(dim=2).mean()):.2f}"
    result = {
        "rows": indomain["rows"], "grid": [("truth G(w+)", truth[:shown])] + indomain["grid"],
        "origin": f"| {label} | {float(rows_dist.mean()):.2f} | {float(rows_dist[0]):.2f} | {float(rows_dist[1:].mean()):.2f} "
                  f"| {float(rows_dist[1:].max()):.2f} |",
        "spread": f"| {label} | {own_spread:.2f} | {drift:.2f} | {drift / own_spread:.3f} | {from_truth} |",
        "summary": {"psnr": d_in["psnr"], "ssim": d_in["ssim"], "world_psnr": d_world["psnr"], **indomain["summary"]},
    }
    if on_world is not None:
        result["world"], result["world_rows"] = on_world["summary"], on_world["rows"]
    return result


def bar_line(first: str, second: str, indomain: Dict[str, Dict[str, float]], world: Dict[str, Dict[str, float]]) -> str:
    """The issue 14 bar for ``second`` (e4e) against ``first`` (pSp): less leakage and a lower LEC, judged on the
    in-domain edits and on the world edits, with the LEC in pixels beside it."""
    a, b = indomain[first], indomain[second]
    parts = [f"**{second} against {first}:** reconstruction {b['psnr'] - a['psnr']:+.2f} dB"]
    verdicts = []
    for name, table in (("in-domain", indomain), ("world", world)):
        a, b = table[first], table[second]
        met = b["leak"] < a["leak"] and b["lec"] < a["lec"]
        verdicts.append(f"{name}: {'met' if met else 'not met'}")
        parts.append(f"{name} edits: leakage {b['leak'] / a['leak']:.2f}x, LEC {b['lec'] / a['lec']:.2f}x, LEC in pixels "
                     f"{b['pixel_lec'] / a['pixel_lec']:.2f}x, W distance {b['dist'] / a['dist']:.2f}x")
    return "; ".join(parts) + f" (issue 14's bar: {second} leaks less and has the lower LEC: " + ", ".join(verdicts) + ")."


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=_pair, action="append", required=True, help="LABEL=PATH (repeat)")
    ap.add_argument("--direction", type=_pair, action="append", required=True,
                    help="FACTOR=PATH or FACTOR=MODEL/NAME (a shipped direction; repeat)")
    ap.add_argument("--regressor", default=None, help="attribute regressor (default: the shipped one)")
    ap.add_argument("--n", type=int, default=32, help="in-domain and world images")
    ap.add_argument("--strength", type=float, default=2.0, help="edit strength (sigmas of sampled w along d)")
    ap.add_argument("--grid", type=Path, default=None,
                    help="write one labelled grid per encoder here: truth, reconstruction, each direction at -s and +s")
    ap.add_argument("--projection", action="append", choices=["w", "w+"], default=[],
                    help="also score optimisation inversion in this space (repeat for both)")
    ap.add_argument("--project-n", type=int, default=16, help="images for the comparison with optimisation inversion")
    ap.add_argument("--project-steps", type=int, default=300, help="projection steps per inversion")
    ap.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section (--section)")
    ap.add_argument("--section", default="e4e-tradeoff", help="the BENCHMARKS.md section that --write replaces")
    ap.add_argument("--title", default="encoders on ground truth (issue 14 §3)", help="the section heading's second half")
    args = ap.parse_args(argv)

    from ganedit.cli.invert import load_encoder
    from ganedit.edit.directions import load_direction
    from ganedit.edit.indomain import decode, sample_codes
    from ganedit.metrics.attributes import edit_readings, nan_std
    from ganedit.metrics.groundtruth import training_images
    from ganedit.models.attributes import load_regressor
    from ganedit.models.stylegan2 import StyleGAN2

    try:
        from ganedit.edit.directions import resolve_direction
    except ImportError:  # older trees: paths only
        resolve_direction = Path  # type: ignore[assignment]

    t_start = time.perf_counter()
    torch.manual_seed(0)
    encoders = [(label, load_encoder(path), path) for label, path in args.encoder]
    first = encoders[0][1]
    G = StyleGAN2(generator=first.decoder.config, has_latent_avg=False)
    G.g_ema.load_state_dict(first.decoder.state_dict())
    with torch.no_grad():
        G.latent_avg.copy_(first.latent_avg.reshape(-1, G.g_ema.style_dim).mean(0))
    G.eval()
    for label, model, path in encoders[1:]:
        same = all(torch.equal(a, b) for a, b in zip(model.decoder.state_dict().values(), first.decoder.state_dict().values()))
        if not same:
            raise SystemExit(f"{path}: its decoder is not the one of {encoders[0][2]}; the encoders must share it")
    R = load_regressor(args.regressor).eval()
    directions = [(factor, load_direction(resolve_direction(path), G)) for factor, path in args.direction]

    codes = sample_codes(G, args.n, HELDOUT_SEED, mixing=0.5)
    truth = decode(G, codes["wplus"]).clamp(-1, 1)
    world = training_images(args.n, G.g_ema.size, HELDOUT_SEED, "x")
    stds = {k: nan_std(v) for k, v in edit_readings(truth, R).items()}
    spread = {k: max(std, 1e-6) for k, std in stds.items() if math.isfinite(std)}  # NaN: hidden in (almost) every image
    mean_w, inv_cov, w_unit = w_statistics(G)

    truth_dist = row_distances(codes["wplus"], mean_w, inv_cov, w_unit)
    origin = [f"| truth codes | {float(truth_dist.mean()):.2f} | {float(truth_dist[0]):.2f} | {float(truth_dist[1:].mean()):.2f} "
              f"| {float(truth_dist[1:].max()):.2f} |"]
    spreads = [f"| truth codes | {code_spread(codes['wplus']):.2f} | | | 0 |"]
    shown = min(8, args.n)
    w_stats = (mean_w, inv_cov, w_unit)
    rows: List[str] = []
    world_rows: List[str] = []
    summary: Dict[str, Dict[str, float]] = {}
    world_summary: Dict[str, Dict[str, float]] = {}
    grids: Dict[str, List[Tuple[str, torch.Tensor]]] = {}
    for label, model, path in encoders:
        model.eval()
        result = evaluate(label, model.encode, model.decode, truth, world, directions, R, spread, w_stats,
                          args.strength, shown, truth_codes=codes["wplus"])
        rows += result["rows"]
        world_rows += result["world_rows"]
        world_summary[label] = result["world"]
        origin.append(result["origin"])
        spreads.append(result["spread"])
        summary[label], grids[label] = result["summary"], result["grid"]

    against_projection: List[str] = []
    if args.projection:
        k = min(args.project_n, args.n)
        scored = [(label, model.encode, model.decode) for label, model, _ in encoders]
        scored += [(f"projection {space.upper()}", projection_encoder(G, space, args.project_steps), first.decode)
                   for space in args.projection]  # G is the encoders' shared decoder: codes decode as theirs do
        for label, encode, decode_fn in scored:
            t0 = time.perf_counter()
            result = evaluate(label, encode, decode_fn, truth[:k], world[:k], directions, R, spread, w_stats,
                              args.strength, shown, truth_codes=codes["wplus"][:k], edit_world=False)
            s = result["summary"]
            against_projection.append(
                f"| {label} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['world_psnr']:.2f} | {s['leak']:.3f} | {s['lec']:.3f} "
                f"| {s['pixel_lec']:.3f} | {s['lec_floor']:.3f} | {s['dist']:.2f} | {(time.perf_counter() - t0) / k:.2f} |")
            if label.startswith("projection"):
                grids[label] = result["grid"]

    lines = [f"Command: `python -m benchmarks.bench_e4e_tradeoff {' '.join(argv if argv is not None else sys.argv[1:])}`; "
             f"{args.n} in-domain images G(w+) (seed {HELDOUT_SEED}, style mixing 0.5) and {args.n} world images; edits at "
             f"+-{args.strength:g} sigma; {time.perf_counter() - t_start:.0f} s. {machine_line()}", "",
             "| encoder | in-domain PSNR (dB) | SSIM | world PSNR (dB) | mean leakage | mean LEC | LEC in pixels "
             "| mean W distance |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, s in summary.items():
        lines.append(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['world_psnr']:.2f} | {s['leak']:.3f} | {s['lec']:.3f} "
                     f"| {s['pixel_lec']:.3f} | {s['dist']:.2f} |")
    direction_header = ["| encoder | factor (method) | change | leakage | ratio | LEC | LEC in pixels | W distance |",
                        "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["", "Per direction, edits of the in-domain images (change and leakage per unit strength, in units of each "
              "factor's spread over the truth images; LEC relative to the edit's size; LEC in pixels: "
              "||G(E(G(E(x) + delta)) - delta) - G(E(x))|| over ||G(E(x) + delta) - G(E(x))||, blind to latent directions "
              "the image does not show; W distance 1 = as typical as sampled w):", ""] + direction_header + rows
    lines += ["", "The same edits of the world images (the e4e paper's setting: real images, whose codes nobody knows):", "",
              "| encoder | mean leakage | mean LEC | LEC in pixels | LEC of a zero edit | mean W distance |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {label} | {s['leak']:.3f} | {s['lec']:.3f} | {s['pixel_lec']:.3f} | {s['lec_floor']:.3f} | {s['dist']:.2f} |"
              for label, s in world_summary.items()]
    lines += [""] + direction_header + world_rows
    lines += ["", "Where the W distance comes from: the unedited codes of the in-domain images, by w+ row:", "",
              "| codes | all rows | row 0 | rows 1.. (mean) | rows 1.. (worst) |", "| --- | --- | --- | --- | --- |"] + origin
    lines += ["", "How much of the LEC the encoder's own round trip makes: the same ratio for a zero edit, "
              "||E(G(E(x))) - E(x)|| over each edit's ||delta||, and the LEC measured from the round trip instead of "
              "E(x), ||E(G(E(x) + delta)) - delta - E(G(E(x)))|| over ||delta|| (the edit's own inconsistency):", "",
              "| encoder | mean LEC | LEC of a zero edit | LEC from the round trip |", "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {s['lec']:.3f} | {s['lec_floor']:.3f} | {s['lec_rel']:.3f} |" for label, s in summary.items()]
    lines += ["", "The zero-edit drift in the latent's own units, beside how far apart each encoder puts different images "
              "(code spread: the mean distance of a w+ row from that row's mean over the images). An encoder that pulls "
              "every code towards the mean drifts less in absolute units for the same relative precision:", "",
              "| codes | code spread | zero-edit drift (E(G(E(x))) against E(x), per row) | drift / spread "
              "| distance from the truth code (per row) |", "| --- | --- | --- | --- | --- |"] + spreads
    labels = list(summary)
    if len(labels) >= 2:
        lines += [""] + [bar_line(labels[0], other, summary, world_summary) for other in labels[1:]]
    if against_projection:
        lines += ["", f"Against optimisation inversion, on the first {min(args.project_n, args.n)} images of each set: "
                  f"projection from the mean latent, {args.project_steps} steps, weight-free loss (pixel MSE on a 3-level "
                  "pyramid), the generator's stored noise maps; its LEC re-projects each edited image. Seconds per image "
                  "cover the inversions of the whole row (reconstruction, round trip, world image, every edit):", "",
                  "| inversion | in-domain PSNR (dB) | SSIM | world PSNR (dB) | mean leakage | mean LEC | LEC in pixels "
                  "| LEC of a zero edit | mean W distance | s / image |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += against_projection
    if args.grid is not None:
        from ganedit.cli.demo import labelled_rows

        args.grid.mkdir(parents=True, exist_ok=True)
        names = []
        for label, grid_rows in grids.items():
            name = f"edits_{''.join(ch if ch.isalnum() else '_' for ch in label.lower().replace('+', 'plus'))}.png"
            labelled_rows(grid_rows, args.grid / name)
            names.append(f"`{args.grid}/{name}`")
        lines += ["", f"Grids (the first {shown} in-domain images; rows: truth, reconstruction, each direction at -s and +s "
                  f"sigma, decoded from the encoder's codes): " + ", ".join(names) + "."]
    text = f"## Distortion against editability: {args.title}\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.section, text)


if __name__ == "__main__":
    main()
