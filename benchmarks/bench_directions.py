"""Latent editing directions against the attribute regressor (issue 15 §6): InterFaceGAN, GANSpace, SeFa and a
random direction, on one StyleGAN2 generator.

For every scalar factor the regressor reads (continuous and binary factors; a colour counts as its mean of RGB),
each direction d edits ``--n-eval`` sampled latents to ``w - s d`` and ``w + s d`` with ``s`` = ``--strength``
times the standard deviation of sampled w along d (so every method moves equally far in its own direction's
natural unit), and the regressor reads both edits. Per unit strength (1 sigma) and in units of each factor's
spread over the samples:

* change: the mean change of the intended factor;
* leakage: the root mean square change of every other factor;
* ratio: |change| / leakage. The baseline is the mean ratio of ``--random`` random unit directions for the same
  factor. The bar (issue 15 §6): InterFaceGAN's ratio is at least 5x the random one for smile, yaw and glasses.

For GANSpace and SeFa (first ``--components`` components each), the component with the best ratio for each
factor is reported. Circular and categorical factors (angles, hair kind, background layout/pattern) are not
measured.

    python -m benchmarks.bench_directions --model stylegan2-synth64 --regressor ganedit/assets/attributes_synth64
    python -m benchmarks.bench_directions --random --no-write      # smoke test on tiny random networks
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.common import machine_line, write_section  # noqa: E402

BAR = 5.0
BAR_FACTORS = ("smile", "yaw", "glasses")


def scalar_factors(predict: Callable[[torch.Tensor], Dict[str, torch.Tensor]], images: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The regressor's continuous/binary factors as float [N] each (colours as mean RGB)."""
    from ganedit.models.attributes import FACTOR_BY_NAME

    out: Dict[str, torch.Tensor] = {}
    for name, value in predict(images).items():
        kind = FACTOR_BY_NAME[name].kind if name in FACTOR_BY_NAME else "continuous"
        if kind not in ("continuous", "binary"):
            continue
        out[name] = value.float().mean(1) if value.dim() == 2 else value.float()
    return out


@torch.no_grad()
def measure(G, predict, w: torch.Tensor, d: torch.Tensor, step: float, spread: Dict[str, torch.Tensor],
            batch: int) -> Dict[str, float]:
    """Mean change per unit strength of each factor (in units of its spread) between w - step d and w + step d."""
    from ganedit.edit.directions import render_w

    ups, downs = [], []
    for i in range(0, len(w), batch):
        chunk = w[i:i + batch]
        ups.append(scalar_factors(predict, render_w(G, chunk + step * d, batch)))
        downs.append(scalar_factors(predict, render_w(G, chunk - step * d, batch)))
    change = {}
    for name in spread:
        delta = torch.cat([u[name] for u in ups]) - torch.cat([v[name] for v in downs])
        change[name] = float(delta.mean()) / 2 / float(spread[name])
    return change


def score(change: Dict[str, float], target: str) -> Tuple[float, float, float]:
    """(change of target, RMS change of the others, |change| / leakage)."""
    others = [v for k, v in change.items() if k != target]
    leak = math.sqrt(sum(v * v for v in others) / len(others)) if others else float("nan")
    c = change[target]
    return c, leak, abs(c) / leak if leak > 0 else float("inf")


def tiny_models(seed: int = 0):
    """A random 16 px generator and a random regressor, for checking that the benchmark runs."""
    from ganedit.models.attributes import AttributeRegressor
    from ganedit.models.stylegan2 import StyleGAN2

    torch.manual_seed(seed)
    G = StyleGAN2({"size": 16, "style_dim": 32, "n_mlp": 2, "channel_base": 128, "channel_max": 16}).eval()
    G.latent_avg.copy_(G.g_ema.mean_latent(512, seed=0).reshape(-1))
    R = AttributeRegressor(channels=(4, 4, 8, 8, 8), feature_dim=16).eval()
    return G, R


def run(args: argparse.Namespace) -> Dict:
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2
    from ganedit.edit import directions as D
    from ganedit.models.attributes import load_regressor, predict_factors

    torch.set_num_threads(args.threads)
    if args.random:
        G, R = tiny_models(args.seed)
    else:
        G = load_stylegan2(resolve_model(args.model))
        R = load_regressor(args.regressor)
    predict = lambda images: predict_factors(images, R)  # noqa: E731
    t0 = time.time()

    # labelled samples for InterFaceGAN and a separate evaluation set
    w_train, labels = D.label_samples(G, predict, args.n_samples, seed=args.seed, batch_size=args.batch)
    w_eval = D.sample_w(G, args.n_eval, seed=args.seed + 1)
    base = scalar_factors(predict, D.render_w(G, w_eval, args.batch))
    spread = {k: v.std() for k, v in base.items() if float(v.std()) > 1e-6}  # constant factors cannot be scored
    factors = sorted(spread)
    targets = [f for f in factors if not args.factors or f in args.factors.split(",")]
    all_w = D.sample_w(G, 5000, seed=args.seed + 2)

    def sigma(d: torch.Tensor) -> float:
        return float((all_w @ d).std())

    def evaluate(d: torch.Tensor) -> Dict[str, float]:
        return measure(G, predict, w_eval, d, args.strength * sigma(d), spread, args.batch)

    results: Dict[str, Dict] = {"interfacegan": {}, "random": {}, "ganspace": {}, "sefa": {}}
    gen = torch.Generator().manual_seed(args.seed + 3)
    randoms = [evaluate(v / v.norm()) for v in torch.randn(args.random_dirs, G.style_dim, generator=gen)]
    trainable = {}
    for f in targets:
        values = D.pick_attribute(_scalar_labels(labels), f)
        try:
            trainable[f] = D.interfacegan(G, (w_train, {f: values}), attribute=f, extreme_fraction=args.extremes,
                                          seed=args.seed)
        except Exception as exc:  # a factor the regressor never varies on these samples
            print(f"skip {f}: {exc}")
    for f, d in trainable.items():
        change = evaluate(d.vector(0))
        results["interfacegan"][f] = score(change, f) + (d.meta["validation_accuracy"],)
        rs = [score(r, f) for r in randoms]
        results["random"][f] = (sum(abs(r[0]) for r in rs) / len(rs), sum(r[1] for r in rs) / len(rs),
                                sum(r[2] for r in rs) / len(rs))
    for method, comps in (("ganspace", D.ganspace(G, args.n_samples, args.components, seed=args.seed)),
                          ("sefa", D.sefa(G, n_components=args.components))):
        changes = [evaluate(v) for v in comps.vectors]
        for f in targets:
            scored = [(score(c, f), i) for i, c in enumerate(changes)]
            (c, leak, ratio), i = max(scored, key=lambda x: x[0][2])
            results[method][f] = (comps.names[i], c, leak, ratio)
    results["factors"] = targets
    results["seconds"] = time.time() - t0
    return results


def _scalar_labels(labels: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: (v.float().mean(1) if v.dim() == 2 else v) for k, v in labels.items()}


def report(results: Dict, args: argparse.Namespace, command: str) -> str:
    lines = [
        "## Editing directions: intended change vs leakage (attribute regressor)",
        "",
        f"Command: `{command}`. {'Tiny RANDOM generator and regressor (a smoke test: these numbers mean nothing).' if args.random else f'Generator `{args.model}`, regressor `{args.regressor}`.'} "
        f"InterFaceGAN trained on {args.n_samples} labelled samples (extremes {args.extremes}); edits of +-{args.strength} sigma on "
        f"{args.n_eval} other samples; {args.random_dirs} random directions; GANSpace/SeFa: best of the first {args.components} "
        f"components. Change and leakage per 1 sigma, in units of each factor's spread. {machine_line()} "
        f"({results['seconds']:.0f} s)",
        "",
        "| factor | InterFaceGAN change | leakage | ratio | val. acc. | random ratio | IFG / random | GANSpace best (ratio) | SeFa best (ratio) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for f in results["factors"]:
        ifg = results["interfacegan"].get(f)
        rnd = results["random"].get(f)
        gs, sf = results["ganspace"][f], results["sefa"][f]
        if ifg is None:
            lines.append(f"| {f} | - | - | - | - | - | - | {gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
            continue
        gain = ifg[2] / rnd[2] if rnd[2] > 0 else float("inf")
        lines.append(f"| {f} | {ifg[0]:+.3f} | {ifg[1]:.3f} | {ifg[2]:.2f} | {ifg[3]:.2f} | {rnd[2]:.2f} | {gain:.1f}x | "
                     f"{gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
        if f in BAR_FACTORS:
            verdicts.append(f"{f} {gain:.1f}x ({'met' if gain >= BAR else 'NOT met'})")
    missing = [f for f in BAR_FACTORS if f not in results["interfacegan"]]
    lines += ["", f"Bar (InterFaceGAN ratio >= {BAR:.0f}x random for {', '.join(BAR_FACTORS)}): "
              + ("; ".join(verdicts) if verdicts else "not measured")
              + (f"; not measured: {', '.join(missing)}" if missing else "") + "."]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="stylegan2-synth64", help="StyleGAN2 checkpoint (or a shipped asset name).")
    parser.add_argument("--regressor", default=None, help="Attribute regressor folder (default: the shipped one).")
    parser.add_argument("--random", action="store_true", help="Tiny random generator and regressor (smoke test).")
    parser.add_argument("--n-samples", type=int, default=20000, help="Labelled samples for InterFaceGAN and GANSpace.")
    parser.add_argument("--n-eval", type=int, default=256, help="Samples every direction is evaluated on.")
    parser.add_argument("--extremes", type=float, default=0.1)
    parser.add_argument("--strength", type=float, default=1.0, help="Edit size in sigmas of w along the direction.")
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--random-dirs", type=int, default=8)
    parser.add_argument("--factors", default="", help="Comma-separated factors to report (default: all); leakage "
                        "always counts every factor.")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_directions " + " ".join(sys.argv[1:] if argv is None else argv)
    results = run(args)
    text = report(results, args, command)
    print(text)
    if not args.no_write:
        write_section("directions", text)


if __name__ == "__main__":
    main()
