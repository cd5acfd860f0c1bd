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

Binary factors are read as the regressor's probability, and a factor only where the image shows it
(``ganedit.metrics.attributes.edit_readings``, ``edit_effect``): an image without glasses has no frame colour, so
the frame colour's change counts on the images with glasses before and after the edit; and the factors a target
can hide are part of it, not leakage (an edit of glasses shows a frame colour where there was none).

Four fits of each factor's direction are measured (``fit_variants``): the paper's classifier on the extremes,
ridge regression of the score on every sample, and that ridge direction made orthogonal to the ridge direction of
the most correlated other factor (the paper's conditional manipulation) or to those of every other factor the
regressor reads (conditional manipulation against all of them); never to a factor the target hides. For
``--layer-factors`` each variant is also restricted to the contiguous w+ rows
``ganedit.edit.directions.choose_layers`` picks on ``--layer-samples`` held-out latents, the variant with the best
held-out ratio is selected, and its ratio is compared with random directions edited on the same rows. Seeds: fitting ``seed``, evaluation ``seed + 1``, sigma ``seed + 2``, random directions ``seed + 3``,
layer choice ``seed + 4``: disjoint samples.

"Reads" is measured in the same run: the regressor's score on ``--check-n`` held-out world images (R² for a
continuous factor, Cohen's kappa, i.e. accuracy above chance, for a binary one) must reach ``--min-score``. A
factor it cannot read is neither a target nor counted in the leakage (its prediction would be noise, or worse, a
copy of other factors); the report lists it with its score.

For GANSpace and SeFa (first ``--components`` components each), the component with the best ratio for each
factor is reported. Circular and categorical factors (angles, hair kind, background layout/pattern) are not
measured.

``--save DIR`` also writes the directions as direction files (``ganedit.edit.directions`` format): one
``interfacegan_<name>.safetensors`` per attribute of ``--save-attributes`` (``factor=class`` for a categorical
factor: that class against the rest), ``ganspace.safetensors`` and ``sefa.safetensors``. With ``--layers auto``
(the default) each InterFaceGAN file holds its attribute's selected variant on its chosen rows.

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


Readings = Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]


@torch.no_grad()
def measure(G, read: Callable[[torch.Tensor], Dict[str, torch.Tensor]], w: torch.Tensor, d: torch.Tensor, step: float,
            batch: int, rows: Optional[range] = None) -> Readings:
    """The readings (``read``: ``edit_readings`` of the regressor) of w + step d and of w - step d (on the w+
    ``rows`` only, when given)."""
    from ganedit.edit.directions import render_w
    from ganedit.edit.latents import apply, to_wplus

    if rows is not None:
        w = to_wplus(w, int(G.n_latent))
    ups, downs = [], []
    for i in range(0, len(w), batch):
        chunk = w[i:i + batch]
        ups.append(read(render_w(G, apply(chunk, d, step, rows), batch)))
        downs.append(read(render_w(G, apply(chunk, d, -step, rows), batch)))
    return ({k: torch.cat([u[k] for u in ups]) for k in ups[0]}, {k: torch.cat([v[k] for v in downs]) for k in downs[0]})


def score(readings: Readings, spread: Dict[str, float], target: str, strength: float = 1.0) -> Tuple[float, float, float]:
    """(change of target, leakage, |change| / leakage) per unit strength (``edit_effect``: a factor counts on the
    images that show it before and after; the factors the target hides are part of it)."""
    from ganedit.metrics.attributes import edit_effect

    change, leak, ratio = edit_effect(readings[0], readings[1], spread, target, strength)
    return change[target], leak, ratio


def changes_of(readings: Readings, spread: Dict[str, float], strength: float = 1.0) -> Dict[str, float]:
    """Every factor's change per unit strength, in units of its spread."""
    from ganedit.metrics.attributes import edit_changes

    return edit_changes(readings[0], readings[1], spread, strength)


def tiny_models(seed: int = 0):
    """A random 16 px generator and a random regressor, for checking that the benchmark runs."""
    from ganedit.models.attributes import AttributeRegressor
    from ganedit.models.stylegan2 import StyleGAN2

    torch.manual_seed(seed)
    G = StyleGAN2({"size": 16, "style_dim": 64, "n_mlp": 2, "channel_base": 128, "channel_max": 16}).eval()
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


VARIANTS = ("classifier", "ridge", "ridge_top", "ridge_cond")
VARIANT_TITLES = {"classifier": "InterFaceGAN (classifier on the extremes)", "ridge": "ridge regression on all samples",
                  "ridge_top": "ridge, orthogonal to the ridge direction of the most correlated other factor",
                  "ridge_cond": "ridge, orthogonal to every other factor's ridge direction"}


def fit_variants(G, w_train: torch.Tensor, scores: torch.Tensor, name: str, others: Dict[str, torch.Tensor],
                 args: argparse.Namespace, positive: Optional[int] = None) -> Dict[str, "object"]:
    """The ways of fitting one attribute's direction (``VARIANTS``), as Directions: the paper's classifier on the
    extremes, ridge regression on every sample, ridge made orthogonal to the ridge direction of the other factor
    most correlated with it (the paper's conditional manipulation, which conditions on the attribute whose
    boundary is closest), and ridge made orthogonal to all of ``others`` (the ridge directions of every other
    factor the regressor reads). The factors the attribute can hide (the frame colour of glasses) are never
    conditioned on: they are part of it."""
    from ganedit.edit import directions as D
    from ganedit.errors import ConfigError
    from ganedit.models.attributes import HIDDEN_BY

    pair = (w_train, {name: scores})
    out = {"classifier": D.interfacegan(G, pair, attribute=name, extreme_fraction=args.extremes,
                                        positive_class=positive, seed=args.seed),
           "ridge": D.interfacegan(G, pair, attribute=name, positive_class=positive, seed=args.seed, fit="regression")}
    others = {k: v for k, v in others.items() if k not in HIDDEN_BY.get(name, ())}
    if others:
        top = D.most_correlated(out["ridge"].vector(0), others, k=1)
        out["ridge_top"] = D.interfacegan(G, pair, attribute=name, positive_class=positive, seed=args.seed,
                                          fit="regression", conditions={k: others[k] for k in top})
        try:
            out["ridge_cond"] = D.interfacegan(G, pair, attribute=name, positive_class=positive, seed=args.seed,
                                               fit="regression", conditions=others)
        except ConfigError as exc:  # as many other factors as dimensions of W: nothing is left
            print(f"no ridge direction orthogonal to the other factors for {name}: {exc}")
    return out


def choose_variant(G, variants: Dict[str, "object"], reads, target: str, args: argparse.Namespace):
    """Each variant restricted to its own best w+ rows (``choose_layers`` on ``--layer-samples`` latents of seed
    ``seed + 4``, disjoint from the fitting and evaluation samples, read by the same regressor), and the variant
    whose held-out ratio is best: (name, {variant: Directions with layers})."""
    from ganedit.edit import directions as D
    from ganedit.models.attributes import HIDDEN_BY

    chosen = {k: D.choose_layers(G, d, reads, target=target, n_samples=args.layer_samples, seed=args.seed + 4,
                                 batch_size=args.batch, parts_of_target=HIDDEN_BY.get(target, ()))
              for k, d in variants.items()}
    best = max(chosen, key=lambda k: chosen[k].meta["layer_choice"]["ratio"])
    return best, chosen


def save_directions(G, folder: Path, w_train: torch.Tensor, labels: Dict[str, torch.Tensor], specs: List[str],
                    ganspace, sefa, args: argparse.Namespace, ridge: Dict[str, torch.Tensor], reads,
                    selected: Optional[Dict[str, Tuple[str, "object"]]] = None) -> List[Path]:
    """Direction files for the shipped generator: one InterFaceGAN file per attribute spec, GANSpace, SeFa.

    With ``--layers auto`` each attribute's file holds the variant (classifier / ridge / ridge orthogonal to the
    other factors) and w+ rows chosen on held-out samples (:func:`choose_variant`); ``selected`` reuses choices
    the measurements already made. A target the regressor gives no smooth reading of (a class of a categorical
    factor) keeps the classifier on all rows."""
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
        scores = D.pick_attribute(labels, factor)
        if selected and name in selected:
            variant, d = selected[name]
        elif args.layers == "auto" and cls is None:
            others = {k: v for k, v in ridge.items() if k != factor}
            variant, chosen = choose_variant(G, fit_variants(G, w_train, scores, name, others, args), _with(reads, factor),
                                             factor, args)
            d = chosen[variant]
        else:
            variant, d = "classifier", D.interfacegan(G, (w_train, {name: scores}), attribute=name,
                                                      extreme_fraction=args.extremes, positive_class=positive, seed=args.seed)
        d.meta["variant"] = variant
        d.meta["factor"] = factor
        d.meta["labelled_by"] = str(args.regressor or "the shipped attribute regressor")
        written.append(D.save_direction(folder / f"interfacegan_{name}.safetensors", d))
    written.append(D.save_direction(folder / "ganspace.safetensors", ganspace))
    written.append(D.save_direction(folder / "sefa.safetensors", sefa))
    return written


def _with(reads, factor: str):
    """The layer-choice labeller ``reads`` with ``factor`` added as a reading (a factor too poorly read to be
    measured can still be shipped: its own reading is the target, the measured factors are the leakage)."""
    def labels(images: torch.Tensor) -> Dict[str, torch.Tensor]:
        return reads(images, extra=factor)
    return labels


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
    from ganedit.metrics.attributes import edit_readings, nan_std, soft_predictions

    predict = lambda images: soft_predictions(images, R)  # noqa: E731  (labels for fitting: every image counts)
    read = lambda images: edit_readings(images, R)  # noqa: E731  (measuring: NaN where the image hides a factor)

    # which factors the regressor reads (--check-n 0: count them all; the default for a random smoke test, whose
    # regressor reads nothing)
    check_n = args.check_n if args.check_n is not None else (0 if args.random else 500)
    checked = readable_factors(R, check_n, args.min_score, args.seed) if check_n > 0 else {}

    # labelled samples (seed) fit the directions; other seeds: evaluation (seed + 1), sigma (seed + 2), random
    # directions (seed + 3), the layer choice (seed + 4)
    w_train, labels = D.label_samples(G, predict, args.n_samples, seed=args.seed, batch_size=args.batch)
    scalar = _scalar_labels(labels)
    unread = {k: checked[k] for k in sorted(scalar) if k in checked and checked[k][1] < args.min_score}
    smooth = _smooth_factor_names(scalar)
    measured = sorted(k for k in smooth if k not in unread and float(scalar[k].std()) > 1e-6)

    def reads(images: torch.Tensor, extra: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """The factors the regressor reads (the layer choice's readings; the same labeller as the fit)."""
        return {k: v for k, v in read(images).items() if k in measured or k == extra}

    ridge: Dict[str, torch.Tensor] = {}
    for f in measured:  # every read factor's ridge direction: what "orthogonal to the other factors" means
        try:
            ridge[f] = D.interfacegan(G, (w_train, {f: scalar[f]}), attribute=f, seed=args.seed, fit="regression").vector(0)
        except Exception as exc:  # a factor the regressor never varies on these samples
            print(f"no ridge direction for {f}: {exc}")
    specs = [a for a in args.save_attributes.split(",") if a]
    if getattr(args, "save_only", False):  # the direction files alone, without measuring anything
        saved = save_directions(G, Path(args.save), w_train, scalar, specs,
                                D.ganspace(G, args.n_samples, args.components, seed=args.seed),
                                D.sefa(G, n_components=args.components), args, ridge, reads)
        return {"saved": [str(p) for p in saved], "seconds": time.time() - wall0}
    w_eval = D.sample_w(G, args.n_eval, seed=args.seed + 1)
    base = read(D.render_w(G, w_eval, args.batch))
    spread = {k: nan_std(base[k]) for k in measured if nan_std(base[k]) > 1e-6}  # constant factors cannot be scored
    factors = sorted(spread)
    targets = [f for f in factors if not args.factors or f in args.factors.split(",")]
    all_w = D.sample_w(G, 5000, seed=args.seed + 2)

    def sigma(d: torch.Tensor) -> float:
        return float((all_w @ d).std())

    def evaluate(d: torch.Tensor, rows: Optional[range] = None):
        return measure(G, read, w_eval, d, args.strength * sigma(d), args.batch, rows)

    def scored(readings, f: str) -> Tuple[float, float, float]:
        return score(readings, spread, f, args.strength)

    gen = torch.Generator().manual_seed(args.seed + 3)
    random_vectors = [v / v.norm() for v in torch.randn(args.random_dirs, G.style_dim, generator=gen)]
    random_changes: Dict[Optional[Tuple[int, int]], list] = {}

    def random_ratio(f: str, rows: Optional[range] = None) -> Tuple[float, float, float]:
        """Mean (|change|, leakage, ratio) of the random directions for f, edited on the same rows."""
        key = None if rows is None else (rows.start, rows.stop)
        if key not in random_changes:
            random_changes[key] = [evaluate(v, rows) for v in random_vectors]
        rs = [scored(r, f) for r in random_changes[key]]
        return (sum(abs(r[0]) for r in rs) / len(rs), sum(r[1] for r in rs) / len(rs), sum(r[2] for r in rs) / len(rs))

    results: Dict[str, Dict] = {"interfacegan": {}, "random": {}, "ganspace": {}, "sefa": {}, "ridge": {},
                                "conditional": {}, "layered": {}, "selected": {}, "conditioned_on": {}}
    fitted: Dict[str, Dict] = {}
    for f in targets:
        try:
            fitted[f] = fit_variants(G, w_train, scalar[f], f, {k: v for k, v in ridge.items() if k != f}, args)
        except Exception as exc:  # a factor the regressor never varies on these samples
            print(f"skip {f}: {exc}")
    for f, variants in fitted.items():
        d = variants["classifier"]
        results["interfacegan"][f] = scored(evaluate(d.vector(0)), f) + (d.meta["validation_accuracy"],)
        results["random"][f] = random_ratio(f)
        results["ridge"][f] = scored(evaluate(variants["ridge"].vector(0)), f) + (variants["ridge"].meta["validation_r2"],)
        if "ridge_cond" in variants:
            results["conditional"][f] = scored(evaluate(variants["ridge_cond"].vector(0)), f)
    # layer-restricted: every variant on its own held-out-chosen rows, and the variant the held-out ratio picks
    layer_factors = [f for f in fitted if f in args.layer_factors.split(",")] if args.layer_factors else []
    for f in layer_factors:
        if "ridge_top" in fitted[f]:
            results["conditioned_on"][f] = fitted[f]["ridge_top"].meta["conditioned_on"]
        best, chosen = choose_variant(G, fitted[f], reads, f, args)
        results["layered"][f] = {}
        for k, d in chosen.items():
            choice = d.meta["layer_choice"]
            results["layered"][f][k] = (d.layers, choice["ratio"]) + scored(evaluate(d.vector(0), d.layers), f)
        rows = chosen[best].layers
        results["selected"][f] = (best, rows, results["layered"][f][best][4], random_ratio(f, rows)[2],
                                  results["random"][f][2])
        fitted[f]["selected"] = (best, chosen[best])
    comps_by_method = {"ganspace": D.ganspace(G, args.n_samples, args.components, seed=args.seed),
                       "sefa": D.sefa(G, n_components=args.components)}
    for method, comps in comps_by_method.items():
        readings = [evaluate(v) for v in comps.vectors]
        for f in targets:
            (c, leak, ratio), i = max(((scored(r, f), i) for i, r in enumerate(readings)), key=lambda x: x[0][2])
            results[method][f] = (comps.names[i], c, leak, ratio)
        # and the other way round: the factor each component changes most (for naming the strips' components)
        changes = [{k: v for k, v in changes_of(r, spread, args.strength).items() if math.isfinite(v)} for r in readings]
        results[method + "_top"] = [(comps.names[i], max(c, key=lambda k: abs(c[k])), max(abs(v) for v in c.values()))
                                    for i, c in enumerate(changes)]
    if args.save:
        selected = {f: v["selected"] for f, v in fitted.items() if "selected" in v}
        results["saved"] = [str(p) for p in save_directions(G, Path(args.save), w_train, scalar, specs,
                                                            comps_by_method["ganspace"], comps_by_method["sefa"], args,
                                                            ridge, reads, selected)]
    results["factors"] = targets
    results["unread"] = unread
    results["checked"] = checked
    results["check_n"] = check_n
    results["seconds"] = time.time() - wall0
    results["cpu_seconds"] = time.process_time() - cpu0
    return results


def _smooth_factor_names(labels: Dict[str, torch.Tensor]) -> List[str]:
    """The continuous and binary factors (those ``edit_readings`` reads) among ``labels``."""
    from ganedit.models.attributes import FACTOR_BY_NAME

    return [k for k in labels if (FACTOR_BY_NAME[k].kind if k in FACTOR_BY_NAME else "continuous") in ("continuous", "binary")]


def _scalar_labels(labels: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: (v.float().mean(1) if v.dim() == 2 else v) for k, v in labels.items()}


def _rows_text(rows: Optional[range]) -> str:
    return "all" if rows is None else f"{rows.start}-{rows.stop - 1}"


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
        f"Directions fitted on {args.n_samples} labelled samples (seed {args.seed}; the classifier on the extremes "
        f"{args.extremes}, ridge on all of them); edits of +-{args.strength} sigma on {args.n_eval} other samples "
        f"(seed {args.seed + 1}); {args.random_dirs} random directions; GANSpace/SeFa: best of the first {args.components} "
        f"components. Change and leakage per 1 sigma, in units of each factor's spread; leakage = RMS change of the "
        f"{len(results['factors']) - 1} other factors the regressor reads, each counted on the images that show it "
        f"before and after the edit, and without the factors the target can hide (glasses: the frame colour). {machine_line()} "
        f"({results['seconds']:.0f} s wall, {results.get('cpu_seconds', float('nan')):.0f} s CPU)",
        "",
    ]
    if checked:
        lines += [f"Factors the regressor reads (score >= {args.min_score} on {results['check_n']} held-out world images; R² or "
                  f"binary kappa): {len(results['factors'])}. Not measured, unreadable: "
                  + (", ".join(f"{k} ({checked[k][0]} {checked[k][1]:.2f})" for k in unread) or "none") + ".", ""]
    lines += [
        "All rows of w+ edited. InterFaceGAN = the paper's classifier on the extremes; ridge = ridge regression of the "
        "score on w over every sample (val. = held-out R²); ridge ⊥ others = the ridge direction made orthogonal to "
        "the ridge directions of every other factor the regressor reads (conditional editing against all of them).",
        "",
        "| factor | regressor score | InterFaceGAN change | leakage | ratio | val. acc. | random ratio | IFG / random | ridge ratio (val. R²) | ridge / random | ridge ⊥ others ratio | ⊥ / random | GANSpace best (ratio) | SeFa best (ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    conditional, ridge = results.get("conditional", {}), results.get("ridge", {})

    def gain(ratio: float, base: float) -> str:
        return f"{ratio / base:.1f}x" if base > 0 else "-"

    for f in results["factors"]:
        ifg = results["interfacegan"].get(f)
        rnd = results["random"].get(f)
        gs, sf = results["ganspace"][f], results["sefa"][f]
        readable = f"{checked[f][0]} {checked[f][1]:.2f}" if f in checked else "-"
        if ifg is None:
            lines.append(f"| {f} | {readable} | - | - | - | - | - | - | - | - | - | - | {gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
            continue
        rg, cond = ridge.get(f), conditional.get(f)
        rg_text = f"{rg[2]:.2f} ({rg[3]:.2f}) | {gain(rg[2], rnd[2])}" if rg else "- | -"
        cond_text = f"{cond[2]:.2f} | {gain(cond[2], rnd[2])}" if cond else "- | -"
        lines.append(f"| {f} | {readable} | {ifg[0]:+.3f} | {ifg[1]:.3f} | {ifg[2]:.2f} | {ifg[3]:.2f} | {rnd[2]:.2f} | "
                     f"{gain(ifg[2], rnd[2])} | {rg_text} | {cond_text} | {gs[0]} ({gs[3]:.2f}) | {sf[0]} ({sf[3]:.2f}) |")
    layered, selected = results.get("layered", {}), results.get("selected", {})
    conditioned = results.get("conditioned_on", {})
    if layered:
        lines += [
            "",
            f"Layer-restricted (`choose_layers`, for {', '.join(layered)}): each direction edits only the contiguous "
            f"w+ rows where, on {args.layer_samples} held-out latents (seed {args.seed + 4}: neither the fitting nor the "
            f"evaluation samples) read by the same regressor, its change / leakage ratio is best (rows scored one at a "
            f"time, ranges as sums); the variant with the best held-out ratio is the one selected. Its ratio is compared "
            f"with the random directions edited on the SAME rows (the fair baseline: restricting rows alone changes "
            f"the ratio a direction gets), and, for reference, with the random directions on all rows. Variants: "
            + "; ".join(f"{k} = {VARIANT_TITLES[k]}" for k in VARIANTS) + ".",
            "",
            "| factor | variant | rows | held-out ratio | change | leakage | ratio | selected | / random, same rows | / random, all rows |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f, by_variant in layered.items():
            best, rows, ratio, rnd_rows, rnd_all = selected[f]
            for k, (vrows, held, change, leak, vratio) in by_variant.items():
                mark = "yes" if k == best else ""
                tail = f"{gain(ratio, rnd_rows)} (random {rnd_rows:.2f}) | {gain(ratio, rnd_all)}" if k == best else " | "
                label = f"{k} (⊥ {', '.join(conditioned[f])})" if k == "ridge_top" and conditioned.get(f) else k
                lines.append(f"| {f} | {label} | {_rows_text(vrows)} | {held:.2f} | {change:+.3f} | {leak:.3f} | {vratio:.2f} | "
                             f"{mark} | {tail} |")
    verdicts = []
    for f in BAR_FACTORS:
        ifg, rnd = results["interfacegan"].get(f), results["random"].get(f)
        if ifg is None:
            continue
        g = ifg[2] / rnd[2] if rnd[2] > 0 else float("inf")
        text = f"{f}: classifier, all rows {g:.1f}x ({'met' if g >= BAR else 'NOT met'})"
        if f in selected:
            best, rows, ratio, rnd_rows, rnd_all = selected[f]
            gs = ratio / rnd_rows if rnd_rows > 0 else float("inf")
            text += (f"; selected ({best}, rows {_rows_text(rows)}) {gs:.1f}x the random directions on the same rows "
                     f"({'met' if gs >= BAR else 'NOT met'})")
        verdicts.append(text)
    missing = [f for f in BAR_FACTORS if f not in results["interfacegan"]]
    why = {f: (f" (regressor {checked[f][0]} {checked[f][1]:.2f})" if f in unread else "") for f in missing}
    lines += ["", f"Bar (InterFaceGAN ratio >= {BAR:.0f}x random for {', '.join(BAR_FACTORS)}): "
              + ("; ".join(verdicts) if verdicts else "not measured")
              + (f"; not measured: {', '.join(f + why[f] for f in missing)}" if missing else "") + "."]
    for method, title in (("ganspace", "GANSpace"), ("sefa", "SeFa")):
        top = results.get(method + "_top")
        if top:
            lines += ["", f"{title} components, the factor each changes most (change per sigma): "
                      + ", ".join(f"{name} {factor} {value:.2f}" for name, factor, value in top) + "."]
    if results.get("saved"):
        lines += ["", "Direction files written: " + ", ".join(f"`{Path(p).name}`" for p in results["saved"])
                  + f" in `{Path(results['saved'][0]).parent}`"
                  + (" (InterFaceGAN files: the selected variant on its chosen rows where measured above; others chosen "
                     "the same way, on the same held-out samples)" if args.layers == "auto" else "") + "."]
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
    parser.add_argument("--layer-factors", default=",".join(BAR_FACTORS), help="Factors whose directions are also "
                        "measured layer-restricted (comma-separated; empty: none). Each costs about "
                        "3 x (2 x n_latent + 1) x --layer-samples renders, plus the random directions on its rows.")
    parser.add_argument("--layer-samples", type=int, default=64, help="Held-out latents the layer choice reads.")
    parser.add_argument("--layers", choices=("auto", "all"), default="auto", help="--save: auto = each attribute's "
                        "variant and w+ rows chosen on the held-out samples; all = the classifier on all rows.")
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
