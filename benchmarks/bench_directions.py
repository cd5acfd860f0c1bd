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

Binary factors are read as the regressor's probability (``soft_factors``). Conditional InterFaceGAN (the paper's
conditional manipulation, ``--condition-k``) is also measured: each direction made orthogonal to the InterFaceGAN
directions of the factors its plain version leaks into most.

"Reads" is measured in the same run: the regressor's score on ``--check-n`` held-out world images (R² for a
continuous factor, Cohen's kappa, i.e. accuracy above chance, for a binary one) must reach ``--min-score``. A
factor it cannot read is neither a target nor counted in the leakage (its prediction would be noise, or worse, a
copy of other factors); the report lists it with its score.

For GANSpace and SeFa (first ``--components`` components each), the component with the best ratio for each
factor is reported. Circular and categorical factors (angles, hair kind, background layout/pattern) are not
measured.

``--save DIR`` also writes the directions as direction files (``ganedit.edit.directions`` format): one
``interfacegan_<name>.safetensors`` per attribute of ``--save-attributes`` (``factor=class`` for a categorical
factor: that class against the rest), ``ganspace.safetensors`` and ``sefa.safetensors``.

    python -m benchmarks.bench_directions --model stylegan2-synth64 --regressor ganedit/assets/attributes_synth64 \
        --save ganedit/assets/stylegan2_synth64_directions
    python -m benchmarks.bench_directions --random --no-write      # smoke test on tiny random networks
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
def soft_factors(images: torch.Tensor, R, batch_size: int = 256) -> Dict[str, torch.Tensor]:
    """``predict_factors`` with every binary factor as the regressor's probability instead of its 0/1 class: an
    edit's effect on it is then measured smoothly (a class flips only near the boundary, so a hard reading turns
    small effects into noise), and InterFaceGAN labels it by scores and their extremes, as in the paper."""
    from ganedit.models.attributes import decode_outputs

    parts = []
    for i in range(0, len(images), batch_size):
        raw = R(images[i:i + batch_size].float())
        out = decode_outputs(R.specs, raw)
        for spec in R.specs:
            if spec.kind == "binary":
                out[spec.name] = torch.sigmoid(raw[spec.name][:, 0])
        parts.append(out)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


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


def readable_factors(R, n: int, min_score: float, seed: int = 0) -> Dict[str, Tuple[str, float]]:
    """{factor: (score name, score)} of every continuous/binary factor on ``n`` held-out world images: R² of a
    continuous one, Cohen's kappa (accuracy above the majority class, scaled to 1) of a binary one."""
    from ganedit.metrics.attributes import regressor_scores
    from ganedit.models.attributes import FACTOR_BY_NAME

    out: Dict[str, Tuple[str, float]] = {}
    for name, s in regressor_scores(R, n=n, seed=seed).items():
        kind = FACTOR_BY_NAME[name].kind
        if kind == "continuous":
            out[name] = ("R²", s["r2"])
        elif kind == "binary":
            chance = s["chance"]
            out[name] = ("kappa", (s["accuracy"] - chance) / (1 - chance) if chance < 1 else 0.0)
    return out


def parse_saved(spec: str) -> Tuple[str, str, Optional[str]]:
    """"glasses" -> ("glasses", "glasses", None); "hair_kind=long" -> ("hair_long", "hair_kind", "long")."""
    factor, _, cls = spec.partition("=")
    if not cls:
        return factor, factor, None
    return f"{factor.split('_')[0]}_{cls}", factor, cls


def save_directions(G, folder: Path, w_train: torch.Tensor, labels: Dict[str, torch.Tensor], specs: List[str],
                    ganspace, sefa, args: argparse.Namespace) -> List[Path]:
    """Direction files for the shipped generator: one InterFaceGAN file per attribute spec, GANSpace, SeFa."""
    from ganedit.edit import directions as D
    from ganedit.models.attributes import FACTOR_BY_NAME

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        name, factor, cls = parse_saved(spec)
        if factor not in labels:
            raise SystemExit(f"--save-attributes: the regressor has no factor {factor!r}")
        positive = None
        if cls is not None:
            classes = FACTOR_BY_NAME[factor].classes
            if cls not in classes:
                raise SystemExit(f"--save-attributes: {factor} has no class {cls!r} (classes: {', '.join(classes)})")
            positive = classes.index(cls)
        d = D.interfacegan(G, (w_train, {name: D.pick_attribute(labels, factor)}), attribute=name,
                           extreme_fraction=args.extremes, positive_class=positive, seed=args.seed)
        d.meta["factor"] = factor
        d.meta["labelled_by"] = str(args.regressor or "the shipped attribute regressor")
        written.append(D.save_direction(folder / f"interfacegan_{name}.safetensors", d))
    written.append(D.save_direction(folder / "ganspace.safetensors", ganspace))
    written.append(D.save_direction(folder / "sefa.safetensors", sefa))
    return written


def run(args: argparse.Namespace) -> Dict:
    from ganedit.cli.data_indomain import resolve_model
    from ganedit.cli.sample import load_stylegan2
    from ganedit.edit import directions as D
    from ganedit.models.attributes import load_regressor

    torch.set_num_threads(args.threads)
    wall0, cpu0 = time.time(), time.process_time()
    if args.random:
        G, R = tiny_models(args.seed)
    else:
        G = load_stylegan2(resolve_model(args.model))
        R = load_regressor(args.regressor)
    R.eval()
    predict = lambda images: soft_factors(images, R)  # noqa: E731

    # which factors the regressor reads (--check-n 0: count them all; the default for a random smoke test, whose
    # regressor reads nothing)
    check_n = args.check_n if args.check_n is not None else (0 if args.random else 500)
    checked = readable_factors(R, check_n, args.min_score, args.seed) if check_n > 0 else {}

    # labelled samples for InterFaceGAN and a separate evaluation set
    w_train, labels = D.label_samples(G, predict, args.n_samples, seed=args.seed, batch_size=args.batch)
    if getattr(args, "save_only", False):  # the direction files alone, without measuring anything
        saved = save_directions(G, Path(args.save), w_train, _scalar_labels(labels),
                                [a for a in args.save_attributes.split(",") if a],
                                D.ganspace(G, args.n_samples, args.components, seed=args.seed),
                                D.sefa(G, n_components=args.components), args)
        return {"saved": [str(p) for p in saved], "seconds": time.time() - wall0}
    w_eval = D.sample_w(G, args.n_eval, seed=args.seed + 1)
    base = scalar_factors(predict, D.render_w(G, w_eval, args.batch))
    varied = {k: v.std() for k, v in base.items() if float(v.std()) > 1e-6}  # constant factors cannot be scored
    unread = {k: checked[k] for k in sorted(varied) if k in checked and checked[k][1] < args.min_score}
    spread = {k: v for k, v in varied.items() if k not in unread}
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
    scalar = _scalar_labels(labels)
    for f in targets:
        try:
            trainable[f] = D.interfacegan(G, (w_train, {f: D.pick_attribute(scalar, f)}), attribute=f,
                                          extreme_fraction=args.extremes, seed=args.seed)
        except Exception as exc:  # a factor the regressor never varies on these samples
            print(f"skip {f}: {exc}")
    changes_ifg = {}
    for f, d in trainable.items():
        change = changes_ifg[f] = evaluate(d.vector(0))
        results["interfacegan"][f] = score(change, f) + (d.meta["validation_accuracy"],)
        rs = [score(r, f) for r in randoms]
        results["random"][f] = (sum(abs(r[0]) for r in rs) / len(rs), sum(r[1] for r in rs) / len(rs),
                                sum(r[2] for r in rs) / len(rs))
    # conditional InterFaceGAN: orthogonal to the InterFaceGAN directions of the --condition-k factors the plain
    # direction leaks into most (the paper's conditional manipulation)
    results["conditional"] = {}
    for f, d in trainable.items() if args.condition_k > 0 else ():
        leaked = sorted((k for k in changes_ifg[f] if k != f and k in trainable), key=lambda k: -abs(changes_ifg[f][k]))
        chosen = leaked[:args.condition_k]
        if not chosen:
            continue
        v = D.project_out(d.vector(0), [trainable[k].vector(0) for k in chosen])
        results["conditional"][f] = score(evaluate(v), f) + (chosen,)
    comps_by_method = {"ganspace": D.ganspace(G, args.n_samples, args.components, seed=args.seed),
                       "sefa": D.sefa(G, n_components=args.components)}
    for method, comps in comps_by_method.items():
        changes = [evaluate(v) for v in comps.vectors]
        for f in targets:
            scored = [(score(c, f), i) for i, c in enumerate(changes)]
            (c, leak, ratio), i = max(scored, key=lambda x: x[0][2])
            results[method][f] = (comps.names[i], c, leak, ratio)
        # and the other way round: the factor each component changes most (for naming the strips' components)
        results[method + "_top"] = [(comps.names[i], max(c, key=lambda k: abs(c[k])), max(abs(v) for v in c.values()))
                                    for i, c in enumerate(changes)]
    if args.save:
        results["saved"] = [str(p) for p in save_directions(G, Path(args.save), w_train, scalar,
                                                            [a for a in args.save_attributes.split(",") if a],
                                                            comps_by_method["ganspace"], comps_by_method["sefa"], args)]
    results["factors"] = targets
    results["unread"] = unread
    results["checked"] = checked
    results["check_n"] = check_n
    results["seconds"] = time.time() - wall0
    results["cpu_seconds"] = time.process_time() - cpu0
    return results


def _scalar_labels(labels: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: (v.float().mean(1) if v.dim() == 2 else v) for k, v in labels.items()}


def report(results: Dict, args: argparse.Namespace, command: str) -> str:
    unread = results.get("unread", {})
    checked = results.get("checked", {})
    regressor = args.regressor or "ganedit/assets/attributes_synth64"
    what = ("Tiny RANDOM generator and regressor (a smoke test: these numbers mean nothing)." if args.random
            else f"Generator `{args.model}`, regressor `{regressor}`.")
    lines = [
        "## Editing directions: intended change vs leakage (attribute regressor)",
        "",
        f"Command: `{command}`. {what} "
        f"InterFaceGAN trained on {args.n_samples} labelled samples (extremes {args.extremes}); edits of +-{args.strength} sigma on "
        f"{args.n_eval} other samples; {args.random_dirs} random directions; GANSpace/SeFa: best of the first {args.components} "
        f"components. Change and leakage per 1 sigma, in units of each factor's spread; leakage = RMS change of the "
        f"{len(results['factors']) - 1} other factors the regressor reads. {machine_line()} "
        f"({results['seconds']:.0f} s wall, {results.get('cpu_seconds', float('nan')):.0f} s CPU)",
        "",
    ]
    if checked:
        lines += [f"Factors the regressor reads (score >= {args.min_score} on {results['check_n']} held-out world images; R² or "
                  f"binary kappa): {len(results['factors'])}. Not measured, unreadable: "
                  + (", ".join(f"{k} ({checked[k][0]} {checked[k][1]:.2f})" for k in unread) or "none") + ".", ""]
    lines += [
        "| factor | regressor score | InterFaceGAN change | leakage | ratio | val. acc. | random ratio | IFG / random | conditional IFG ratio | cond. / random | GANSpace best (ratio) | SeFa best (ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    conditional = results.get("conditional", {})
    verdicts = []
    for f in results["factors"]:
        ifg = results["interfacegan"].get(f)
        rnd = results["random"].get(f)
        gs, sf = results["ganspace"][f], results["sefa"][f]
        readable = f"{checked[f][0]} {checked[f][1]:.2f}" if f in checked else "-"
        if ifg is None:
            lines.append(f"| {f} | {readable} | - | - | - | - | - | - | - | - | {gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
            continue
        gain = ifg[2] / rnd[2] if rnd[2] > 0 else float("inf")
        cond = conditional.get(f)
        cond_gain = cond[2] / rnd[2] if cond and rnd[2] > 0 else float("nan")
        cond_text = f"{cond[2]:.2f} | {cond_gain:.1f}x" if cond else "- | -"
        lines.append(f"| {f} | {readable} | {ifg[0]:+.3f} | {ifg[1]:.3f} | {ifg[2]:.2f} | {ifg[3]:.2f} | {rnd[2]:.2f} | {gain:.1f}x | "
                     f"{cond_text} | {gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
        if f in BAR_FACTORS:
            verdicts.append(f"{f} {gain:.1f}x ({'met' if gain >= BAR else 'NOT met'}"
                            + (f"; conditional {cond_gain:.1f}x, {'met' if cond_gain >= BAR else 'NOT met'}" if cond else "")
                            + ")")
    missing = [f for f in BAR_FACTORS if f not in results["interfacegan"]]
    why = {f: (f" (regressor {checked[f][0]} {checked[f][1]:.2f})" if f in unread else "") for f in missing}
    lines += ["", f"Bar (InterFaceGAN ratio >= {BAR:.0f}x random for {', '.join(BAR_FACTORS)}): "
              + ("; ".join(verdicts) if verdicts else "not measured")
              + (f"; not measured: {', '.join(f + why[f] for f in missing)}" if missing else "") + "."]
    if conditional:
        lines += ["", f"Conditional InterFaceGAN: each direction made orthogonal to the InterFaceGAN directions of the "
                  f"{args.condition_k} factors its plain version leaks into most: "
                  + "; ".join(f"{f}: {', '.join(c[3])}" for f, c in conditional.items() if f in BAR_FACTORS) + "."]
    for method, title in (("ganspace", "GANSpace"), ("sefa", "SeFa")):
        top = results.get(method + "_top")
        if top:
            lines += ["", f"{title} components, the factor each changes most (change per sigma): "
                      + ", ".join(f"{name} {factor} {value:.2f}" for name, factor, value in top) + "."]
    if results.get("saved"):
        lines += ["", "Direction files written: " + ", ".join(f"`{Path(p).name}`" for p in results["saved"])
                  + f" in `{Path(results['saved'][0]).parent}`."]
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
    parser.add_argument("--condition-k", type=int, default=3, help="Conditional InterFaceGAN: project out the "
                        "directions of this many most-leaked factors (0: no conditional column).")
    parser.add_argument("--factors", default="", help="Comma-separated factors to report (default: all); leakage "
                        "always counts every factor the regressor reads.")
    parser.add_argument("--check-n", type=int, default=None, help="Held-out world images that decide which factors "
                        "the regressor reads (default 500; 0 or --random: count every factor).")
    parser.add_argument("--min-score", type=float, default=0.5, help="R² / binary kappa a factor needs to count as read.")
    parser.add_argument("--save", default=None, help="Folder to write direction files to (see the module docstring).")
    parser.add_argument("--save-attributes", default="yaw,glasses,hair_volume,hair_kind=long,smile",
                        help="InterFaceGAN directions written by --save (factor, or factor=class).")
    parser.add_argument("--save-only", action="store_true", help="Only write the --save files (no measurements, "
                        "no BENCHMARKS.md).")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_directions " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.save_only and not args.save:
        parser.error("--save-only needs --save DIR")
    results = run(args)
    if args.save_only:
        print("\n".join(f"wrote {p}" for p in results["saved"]) + f" ({results['seconds']:.0f} s)")
        return
    text = report(results, args, command)
    print(text)
    if not args.no_write:
        write_section("directions", text)


if __name__ == "__main__":
    main()
