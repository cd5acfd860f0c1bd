"""Scores built on the attribute regressor (``ganedit.models.attributes``).

- :func:`regressor_scores`: the regressor's own accuracy per factor on held-out world images (R^2 and MAE for
  continuous factors, mean circular error for angles and phases, accuracy beside the majority-class rate for
  discrete ones), counting only images where the factor is visible.
- :func:`factor_distances`: per-factor distance between two sets of predicted factors (generator samples
  against real images): Wasserstein-1 of the range-scaled values (continuous, mean over RGB for colours), the
  circular Wasserstein-1 as a fraction of the period (angles), total variation of the class frequencies
  (discrete; it is W1 under the 0/1 metric). 0 is a perfect match; each is at most 1.
- :func:`knn_precision_recall`: k-NN manifold precision and recall (Kynkäänniemi et al. 2019) in the
  regressor's feature space: precision = share of generated samples inside the real manifold (realism),
  recall = share of real samples inside the generated manifold (coverage).
- :func:`edit_readings`, :func:`edit_changes` and :func:`edit_effect`: what an edit changes, and how much it leaks into the other
  factors, counting a factor only on images that show it before and after the edit.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Tuple

import torch

from ganedit.models.attributes import (FACTOR_BY_NAME, FACTORS, HIDDEN_BY, AttributeRegressor, FactorSpec, decode_outputs,
                                       visibility)


def _circular_error(pred: torch.Tensor, true: torch.Tensor, period: float) -> torch.Tensor:
    d = torch.remainder(pred - true, period)
    return torch.minimum(d, period - d)


@torch.no_grad()
def regressor_scores(model: AttributeRegressor, n: int = 2000, seed: int = 0, domain_y_every: int = 0) -> Dict[str, Dict[str, float]]:
    """Per-factor accuracy on ``n`` held-out world images (domain X, or every k-th in domain Y)."""
    from ganedit.methods.attributes import heldout_batches

    was_training = model.training
    model.eval()
    preds: List[Dict[str, torch.Tensor]] = []
    trues: List[Dict[str, torch.Tensor]] = []
    shown: List[Dict[str, torch.Tensor]] = []
    for images, targets, visible in heldout_batches(n, seed, model.image_size, domain_y_every):
        preds.append(decode_outputs(model.specs, model(images)))
        trues.append(targets)
        shown.append(visible)
    model.train(was_training)
    cat = lambda parts, k: torch.cat([p[k] for p in parts])  # noqa: E731
    return {spec.name: score_factor(spec, cat(preds, spec.name), cat(trues, spec.name), cat(shown, spec.name)) for spec in model.specs}


def score_factor(spec: FactorSpec, pred: torch.Tensor, true: torch.Tensor, visible: torch.Tensor) -> Dict[str, float]:
    """The accuracy figures of one factor over the visible images."""
    p, t = pred[visible], true[visible]
    out: Dict[str, float] = {"n": int(visible.sum())}
    if spec.kind == "continuous":
        p2, t2 = p.reshape(len(p), spec.dims).double(), t.reshape(len(t), spec.dims).double()
        residual = ((p2 - t2) ** 2).sum(0)
        total = ((t2 - t2.mean(0)) ** 2).sum(0).clamp(min=1e-12)
        out["r2"] = float((1.0 - residual / total).mean())
        out["mae"] = float((p2 - t2).abs().mean())
        out["range"] = spec.hi - spec.lo
    elif spec.kind == "circular":
        err = _circular_error(p, t, spec.period)
        out["mae"] = float(err.mean())
        out["mae_fraction"] = float(err.mean() / spec.period)  # a random guess scores 0.25
    else:
        out["accuracy"] = float((p == t).double().mean())
        counts = torch.bincount(t, minlength=max(2, len(spec.classes)))
        out["chance"] = float(counts.max() / counts.sum().clamp(min=1))
    return out


def format_scores(scores: Dict[str, Dict[str, float]]) -> str:
    """A plain-text table of :func:`regressor_scores`."""
    lines = [f"{'factor':24s} {'kind':12s} {'n':>5s}  score"]
    for name, s in scores.items():
        spec = FACTOR_BY_NAME[name]
        if spec.kind == "continuous":
            text = f"R^2 {s['r2']:.3f}  MAE {s['mae']:.4f} (range {s['range']:.3g})"
        elif spec.kind == "circular":
            text = f"MAE {s['mae']:.3f} of period {spec.period:g} ({s['mae_fraction']:.3f}; random 0.25)"
        else:
            text = f"accuracy {s['accuracy']:.3f} (majority class {s['chance']:.3f})"
        lines.append(f"{name:24s} {spec.kind:12s} {s['n']:5d}  {text}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- comparing two image sets


def _w1_line(a: torch.Tensor, b: torch.Tensor, grid: int = 1000) -> float:
    """Wasserstein-1 between two 1-D samples of any sizes: mean |quantile_a - quantile_b| over a fine grid."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    q = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    return float((torch.quantile(a.double(), q) - torch.quantile(b.double(), q)).abs().mean())


def _w1_circle(a: torch.Tensor, b: torch.Tensor, bins: int = 256) -> float:
    """Wasserstein-1 on the unit circle (samples in [0, 1)): with D the difference of the two CDFs on a fine
    grid, W1 = mean |D - median(D)| (the best cut of the circle)."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    ha = torch.histc(a.double().remainder(1.0), bins, 0.0, 1.0) / len(a)
    hb = torch.histc(b.double().remainder(1.0), bins, 0.0, 1.0) / len(b)
    d = torch.cumsum(ha - hb, 0)
    return float((d - d.median()).abs().mean())


def factor_distances(pred_a: Dict[str, torch.Tensor], pred_b: Dict[str, torch.Tensor], specs: Sequence[FactorSpec] = FACTORS) -> Dict[str, float]:
    """Per-factor distance between the factor distributions of two image sets (see the module docstring).
    Factors hidden in an image (by its predicted factors, :func:`visibility`) are left out of that set; a factor
    hidden in every image of a set gets nan."""
    seen_a, seen_b = visibility(pred_a), visibility(pred_b)
    out: Dict[str, float] = {}
    for spec in specs:
        a, b = pred_a[spec.name][seen_a[spec.name]], pred_b[spec.name][seen_b[spec.name]]
        if spec.kind == "continuous":
            scale = spec.hi - spec.lo
            a2, b2 = a.reshape(len(a), spec.dims) / scale, b.reshape(len(b), spec.dims) / scale
            out[spec.name] = sum(_w1_line(a2[:, j], b2[:, j]) for j in range(a2.shape[1])) / a2.shape[1]
        elif spec.kind == "circular":
            out[spec.name] = _w1_circle(a / spec.period, b / spec.period)
        else:
            k = max(2, len(spec.classes))
            fa = torch.bincount(a, minlength=k).double() / max(1, len(a))
            fb = torch.bincount(b, minlength=k).double() / max(1, len(b))
            out[spec.name] = float(0.5 * (fa - fb).abs().sum())
    return out


def knn_precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> Dict[str, float]:
    """k-NN manifold precision and recall between feature sets [N, D] and [M, D] (each needs more than k rows).
    Each sample's ball reaches its k-th nearest neighbour within its own set."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"k-NN precision/recall with k={k} needs more than {k} samples per set, got {len(real)} and {len(fake)}")
    real, fake = real.double(), fake.double()

    def radii(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x)
        return d.kthvalue(k + 1, dim=1).values  # +1: the sample itself is its own nearest neighbour

    def covered(points: torch.Tensor, centres: torch.Tensor, r: torch.Tensor) -> float:
        inside = torch.cdist(points, centres) <= r[None, :]
        return float(inside.any(1).double().mean())

    r_real, r_fake = radii(real), radii(fake)
    return {"precision": covered(fake, real, r_real), "recall": covered(real, fake, r_fake), "k": k}


# ------------------------------------------------------------------------------------- scoring a generator


@torch.no_grad()
def _predict_with_features(model: AttributeRegressor, images: torch.Tensor, batch_size: int = 250) -> "tuple[Dict[str, torch.Tensor], torch.Tensor]":
    preds, feats = [], []
    for i in range(0, len(images), batch_size):
        raw, f = model.outputs_and_features(images[i:i + batch_size])
        feats.append(f)
        preds.append(decode_outputs(model.specs, raw))
    return {k: torch.cat([p[k] for p in preds]) for k in preds[0]}, torch.cat(feats)


def compare_sets(model: AttributeRegressor, real: torch.Tensor, other: torch.Tensor, k: int = 3) -> Dict[str, object]:
    """Per-factor distances and k-NN precision/recall of image set ``other`` against ``real`` (NCHW, [-1, 1])."""
    was_training = model.training
    model.eval()
    pred_real, feat_real = _predict_with_features(model, real)
    pred_other, feat_other = _predict_with_features(model, other)
    model.train(was_training)
    distances = factor_distances(pred_other, pred_real, model.specs)
    finite = [d for d in distances.values() if d == d]  # nan: a factor hidden in every image of one set
    return {"distances": distances, "mean_distance": sum(finite) / max(1, len(finite)),
            **knn_precision_recall(feat_real, feat_other, k)}


@torch.no_grad()
def score_generator(generator: object, model: AttributeRegressor, n: int = 2000, seed: int = 0, truncation: float = 1.0,
                    k: int = 3) -> Dict[str, Dict[str, object]]:
    """Score a StyleGAN2 (a wrapper with ``sample(n, truncation, seed)`` and ``size``) against ``n`` held-out
    world images: ``generator`` = its samples; ``real_floor`` = ``n`` other held-out images, the value a perfect
    generator reaches with this many samples (the sampling noise of the figures)."""
    from ganedit.methods.attributes import heldout_batches

    size = int(getattr(generator, "size"))
    real = torch.cat([b[0] for b in heldout_batches(n, seed, size)])
    floor = torch.cat([b[0] for b in heldout_batches(n, seed, size, start=n)])
    samples = generator.sample(n, truncation=truncation, seed=seed).clamp(-1.0, 1.0)  # type: ignore[attr-defined]
    return {"generator": compare_sets(model, real, samples, k), "real_floor": compare_sets(model, real, floor, k)}


@torch.no_grad()
def soft_predictions(images: torch.Tensor, model: AttributeRegressor, batch_size: int = 256) -> Dict[str, torch.Tensor]:
    """Every factor in its own units (``decode_outputs``), except that a binary factor is the regressor's
    probability instead of its 0/1 class: an edit moves it smoothly (a class flips only at the boundary, so a
    hard reading turns small effects into noise), and InterFaceGAN labels by scores and their extremes."""
    parts = []
    for i in range(0, len(images), batch_size):
        raw = model(images[i:i + batch_size].float())
        decoded = decode_outputs(model.specs, raw)
        for spec in model.specs:
            if spec.kind == "binary":
                decoded[spec.name] = torch.sigmoid(raw[spec.name][:, 0])
        parts.append(decoded)
    if not parts:
        raise ValueError("soft_predictions: got no images")
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def edit_readings(images: torch.Tensor, model: AttributeRegressor, hidden_as_nan: bool = True,
                  batch_size: int = 256) -> Dict[str, torch.Tensor]:
    """The factors an edit can move smoothly, as float [N] each (:func:`soft_predictions` of the continuous and
    binary factors, a colour as its mean over RGB); circular and categorical factors are left out.

    ``hidden_as_nan``: a factor the image hides (by the regressor's own reading: the frame colour without
    glasses, the stripe frequency of plain clothes, ...) reads NaN, since its value is whatever the regressor
    makes of pixels that do not show it (training never scored it there)."""
    values = soft_predictions(images, model, batch_size)
    shown = visibility(values) if hidden_as_nan and _has_hiders(values) else {}
    out: Dict[str, torch.Tensor] = {}
    for spec in model.specs:
        if spec.kind not in ("continuous", "binary"):
            continue
        v = values[spec.name].float()
        v = v.mean(1) if v.dim() == 2 else v
        out[spec.name] = torch.where(shown[spec.name], v, torch.full_like(v, float("nan"))) if spec.name in shown else v
    return out


def _has_hiders(values: Mapping[str, torch.Tensor]) -> bool:
    return all(k in values for k in ("glasses", "clothes_pattern", "bg_layout", "bg_pattern", "light_strength"))


def nan_std(x: torch.Tensor) -> float:
    """Standard deviation of the finite values of ``x`` (NaN where fewer than two)."""
    x = x[torch.isfinite(x)].double()
    return float(x.std()) if len(x) > 1 else float("nan")


def edit_changes(up: Mapping[str, torch.Tensor], down: Mapping[str, torch.Tensor], spread: Mapping[str, float],
                 step: float = 1.0) -> Dict[str, float]:
    """Per factor of ``spread``: the mean of up - down over the images that show it in both (readings of
    :func:`edit_readings` of the same images edited by ``+step`` and ``-step``), / (2 step), in units of its
    spread; NaN where no image shows it in both."""
    change: Dict[str, float] = {}
    for name, unit in spread.items():
        delta = (up[name] - down[name]).double()
        delta = delta[torch.isfinite(delta)]
        change[name] = float(delta.mean()) / (2 * step) / float(unit) if len(delta) and unit > 0 else float("nan")
    return change


def edit_effect(up: Mapping[str, torch.Tensor], down: Mapping[str, torch.Tensor], spread: Mapping[str, float],
                target: str, step: float = 1.0) -> Tuple[Dict[str, float], float, float]:
    """What an edit did, from readings (:func:`edit_readings`) of the same images edited by ``+step`` (``up``) and
    ``-step`` (``down``): ``(change, leakage, ratio)``.

    change: :func:`edit_changes`. leakage: the root mean square change of every other factor with a change,
    except the factors ``target`` can hide (``HIDDEN_BY``: they are part of it; an edit of glasses shows or hides
    the frame colour). ratio: |change of target| / leakage."""
    if target not in spread:
        raise KeyError(f"no reading of {target!r} to measure an edit of (readings: {', '.join(sorted(spread))})")
    change = edit_changes(up, down, spread, step)
    parts_of_target = set(HIDDEN_BY.get(target, ()))
    others = [v for k, v in change.items() if k != target and k not in parts_of_target and math.isfinite(v)]
    leak = math.sqrt(sum(v * v for v in others) / len(others)) if others else float("nan")
    c = change[target]
    return change, leak, abs(c) / leak if leak > 0 else float("inf")
