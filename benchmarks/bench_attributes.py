"""The attribute regressor's accuracy per factor on held-out world images, and (with ``--generator``) a
generator's scores beyond SWD: per-factor distribution distances of its samples against real world images and
k-NN precision/recall in the regressor's feature space, beside the floor two real sets reach.

    python -m benchmarks.bench_attributes                         # the shipped regressor -> bench:attributes
    python -m benchmarks.bench_attributes --generator stylegan2-synth64 --write-generator   # -> bench:attributes-generator
    python -m benchmarks.bench_attributes --generator runs/sg2/model --no-write             # print only

Run with ``OMP_NUM_THREADS=1 taskset -c 0`` on a shared machine.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.common import machine_line, time_repeats, write_section  # noqa: E402

KIND_ORDER = ("continuous", "circular", "binary", "categorical")


def architecture_line(config: Dict) -> str:
    """One sentence on the regressor's stages (the detail factors are marked † in the table)."""
    detail = config.get("detail")
    if not detail:
        return "One stage: every factor from the global network."
    ch = ",".join(str(c) for c in detail["channels"])
    return (f"Two stages: the global network (channels {','.join(str(c) for c in config['channels'])}) reads every "
            f"factor and places the face window; the face-detail branch (a {detail['crop']}×{detail['crop']} crop "
            f"of it, channels {ch}) reads the factors marked †, from its features and the global ones.")


def accuracy_section(scores: Dict[str, Dict[str, float]], scores_y: Dict[str, Dict[str, float]], model_path: str,
                     meta: Dict, n: int, speed: Dict[str, float], command: str, config: Dict) -> str:
    from ganedit.models.attributes import FACTOR_BY_NAME

    fine = set((config.get("detail") or {}).get("factors", []))
    train = meta.get("train", {})
    runs = train.get("earlier_runs", []) + [train]
    trained = " + ".join(f"{r.get('seconds', 0) / 60:.0f} min ({r.get('steps_done', '?')} steps, {r.get('images_seen', '?')} images"
                         + (f", {r['cpu_seconds'] / 60:.0f} CPU-min" if "cpu_seconds" in r else "") + ")" for r in runs)
    lines = [
        "## Attribute regressor: accuracy per factor on held-out world images (64 px)",
        "",
        f"Command: `{command.strip()}`. Model: `{model_path}`, trained {trained} on one shared core"
        + f"; commands in ganedit/assets/README.md. {architecture_line(config)} {n} held-out images (seed 2**31), domain X; the X+Y column: every "
        f"4th image in domain Y. Only images where the factor is visible count (n). {machine_line()}",
        "",
        f"`predict_factors` speed: {n / speed['median']:.0f} img/s median, {n / speed['min']:.0f} best "
        f"({speed['repeats']} repeats of {n} images).",
        "",
        "| factor | kind | n | score | R² or accuracy (X+Y) | chance / scale |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KIND_ORDER:
        for name, s in scores.items():
            spec = FACTOR_BY_NAME[name]
            if spec.kind != kind:
                continue
            y = scores_y[name]
            label = f"{name} †" if name in fine else name
            if kind == "continuous":
                lines.append(f"| {label} | {kind} | {s['n']} | R² **{s['r2']:.3f}**, MAE {s['mae']:.4f} | {y['r2']:.3f} | range {s['range']:.3g} |")
            elif kind == "circular":
                lines.append(f"| {label} | {kind} | {s['n']} | error **{s['mae_fraction']:.3f}** of a period (MAE {s['mae']:.3f} of {spec.period:g}) | {y['mae_fraction']:.3f} | random 0.25 |")
            else:
                lines.append(f"| {label} | {kind} | {s['n']} | accuracy **{s['accuracy']:.3f}** | {y['accuracy']:.3f} | majority {s['chance']:.3f} |")
    r2 = [s["r2"] for name, s in scores.items() if FACTOR_BY_NAME[name].kind == "continuous"]
    acc = [s["accuracy"] for name, s in scores.items() if FACTOR_BY_NAME[name].kind in ("binary", "categorical")]
    lines += ["", f"Mean R² over the {len(r2)} continuous factors: **{sum(r2) / len(r2):.3f}**; mean accuracy over the "
              f"{len(acc)} discrete ones: **{sum(acc) / len(acc):.3f}**."]
    return "\n".join(lines)


def generator_section(result: Dict, generator: str, n: int, command: str) -> str:
    g, f = result["generator"], result["real_floor"]
    lines = [
        "## A generator scored by the attribute regressor (per-factor distances, k-NN precision/recall)",
        "",
        f"Command: `{command}`. Generator `{generator}`: {n} samples (truncation 1) against {n} held-out world "
        f"images; the floor is {n} other held-out images against the same ones. Distances: W1 of range-scaled "
        f"values (continuous), circular W1 in periods (angles), total variation (discrete); 0 is a perfect match. "
        f"Precision/recall: k-NN manifolds (k = {g['k']}) in the regressor's 256-d feature space. {machine_line()}",
        "",
        f"| | mean distance | precision | recall |",
        "|---|---|---|---|",
        f"| generator | **{g['mean_distance']:.4f}** | **{g['precision']:.3f}** | **{g['recall']:.3f}** |",
        f"| real images (floor) | {f['mean_distance']:.4f} | {f['precision']:.3f} | {f['recall']:.3f} |",
        "",
        "| factor | generator | floor |",
        "|---|---|---|",
    ]
    worst = sorted(g["distances"], key=lambda k: -g["distances"][k])
    lines += [f"| {name} | {g['distances'][name]:.4f} | {f['distances'][name]:.4f} |" for name in worst]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="regressor folder (default: the shipped one)")
    parser.add_argument("--n", type=int, default=2000, help="held-out images for the accuracy table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", default=None, help="StyleGAN2 checkpoint or shipped name to score")
    parser.add_argument("--gen-n", type=int, default=2000, help="generator samples (and real images) to compare")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--skip-accuracy", action="store_true", help="only score the generator")
    parser.add_argument("--write-generator", action="store_true", help="write the generator section (real figures only)")
    args = parser.parse_args()
    command = "python -m benchmarks.bench_attributes " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    torch.set_num_threads(1)

    from ganedit.metrics.attributes import format_scores, regressor_scores
    from ganedit.models.attributes import SHIPPED_REGRESSOR, load_regressor, predict_factors

    model = load_regressor(args.model)
    model_path = args.model or str(SHIPPED_REGRESSOR.relative_to(REPO))
    if not args.skip_accuracy:
        from ganedit.formats.native import read_config
        from ganedit.methods.attributes import heldout_batches

        scores = regressor_scores(model, args.n, args.seed)
        scores_y = regressor_scores(model, args.n, args.seed, domain_y_every=4)
        print(format_scores(scores))
        images = torch.cat([b[0] for b in heldout_batches(args.n, args.seed)])
        speed = time_repeats(lambda: predict_factors(images, model), repeats=3)
        record = read_config(args.model or SHIPPED_REGRESSOR)
        section = accuracy_section(scores, scores_y, model_path, record.get("meta", {}), args.n, speed, command,
                                   record.get("config", {}))
        print(section)
        if not args.no_write:
            write_section("attributes", section)
    if args.generator:
        from ganedit.cli.data_indomain import resolve_model
        from ganedit.cli.sample import load_stylegan2
        from ganedit.metrics.attributes import score_generator

        G = load_stylegan2(resolve_model(args.generator))
        result = score_generator(G, model, args.gen_n, args.seed)
        section = generator_section(result, args.generator, args.gen_n, command)
        print(section)
        if args.write_generator and not args.no_write:
            write_section("attributes-generator", section)


if __name__ == "__main__":
    main()
