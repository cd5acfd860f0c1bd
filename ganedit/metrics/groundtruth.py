"""Ground-truth scores on the synthetic world (DESIGN.md §4) and the baselines every method must beat.

Tasks with a known answer, built from held-out factors:
- swap:          A, B -> render(structure_A, appearance_B)
- translation:   x (domain X) -> y = render(structure_x, to_domain_y(appearance_x))  (and back)
- frontalization: image -> render(frontalize(structure), appearance)

Seed convention: training data uses seeds ``s`` in [0, 2**31) (``ganedit data synth --seed s``, default 0);
held-out data uses ``heldout_seed(s) = 2**31 + s``. Every image is a pure function of (seed, index), so the two
sets share no factors by construction. In the held-out swap set, pair ``i`` takes A = image ``2 i`` and
B = image ``2 i + 1`` of the held-out seed, so the first n pairs do not depend on n.

Baselines: ``copy`` returns A unchanged (structure right, appearance wrong); ``copy_b`` returns B (appearance
right, structure wrong: the true swap differs from B only in structure, so a swap must beat it); ``colour_transfer`` imposes the
per-channel mean and standard deviation of B on A in CIE Lab (Reinhard et al. 2001, in Lab as the issue asks);
``nearest_neighbour`` returns the training image closest to A in pixel L2 -- a retrieval baseline that
measures how much a method merely recalls its training set.

Scores are the mean per-image PSNR (dB) and SSIM of ``ganedit.metrics.image`` against the ground truth, with two
figures a blur cannot pass: ``sharpness`` (the output's gradient energy over the truth's, per image: 1 is right, a
blur far below, speckle far above) and, where the held-out set knows the truth's segmentation, the region PSNRs
``psnr_face``, ``psnr_hair``, ``psnr_background``, ``psnr_clothes`` (a flat background cannot carry them).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ganedit.data.synthetic.factors import HELDOUT_OFFSET, Appearance, Structure, heldout_seed  # noqa: F401 (re-exported)
from ganedit.data.synthetic.render import one_thread
from ganedit.metrics.image import psnr, ssim


def _single_threaded(fn: Callable) -> Callable:
    """Run fn on one intra-op thread: these are many small elementwise ops, where a second thread only adds
    synchronisation (and on a loaded machine makes them ~30x slower)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------------------------- colour spaces

# sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_DELTA = 6.0 / 29.0


def _apply3(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel dimension of [N,3,H,W]."""
    return torch.einsum("ij,njhw->nihw", m.to(x.dtype), x)


@_single_threaded
def srgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] sRGB in [-1, 1] -> CIE L*a*b* (D65): L in [0, 100], a and b roughly in [-128, 127]."""
    c = ((images.double() + 1.0) / 2.0).clamp(0.0, 1.0)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = _apply3(_RGB_TO_XYZ, linear) / _WHITE_D65.view(1, 3, 1, 1)
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=0.0) ** (1.0 / 3.0), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1).to(images.dtype)


@_single_threaded
def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`srgb_to_lab`; out-of-gamut colours are clamped to [-1, 1]."""
    lab = lab.double()
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], 1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE_D65.view(1, 3, 1, 1)
    linear = _apply3(_XYZ_TO_RGB, xyz).clamp(0.0, 1.0)
    c = torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1.0 / 2.4) - 0.055)
    return (c * 2.0 - 1.0).clamp(-1.0, 1.0).float()


# -------------------------------------------------------------------------------------------------- baselines


def copy_baseline(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Swap baseline: return A (the structure is right, the appearance is A's)."""
    return a.clone()


def copy_b_baseline(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Swap baseline: return B (the appearance is right, the structure is B's)."""
    return b.clone()


def match_statistics(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per image and channel, shift and scale x to the mean and (population) standard deviation of ref."""
    x, ref = x.double(), ref.double()
    mu_x, sd_x = x.mean((2, 3), keepdim=True), x.std((2, 3), unbiased=False, keepdim=True)
    mu_r, sd_r = ref.mean((2, 3), keepdim=True), ref.std((2, 3), unbiased=False, keepdim=True)
    return (x - mu_x) / (sd_x + eps) * sd_r + mu_r


@_single_threaded
def colour_transfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Swap baseline: per-image, per-channel mean and standard deviation of B imposed on A in CIE Lab
    (then back to sRGB; colours outside the sRGB gamut are clamped)."""
    return lab_to_srgb(match_statistics(srgb_to_lab(a), srgb_to_lab(b)))


class NearestNeighbour:
    """Retrieval baseline: for each query, the training image nearest in pixel L2 (optionally returning a
    paired target of that training image instead, e.g. its domain-Y rendering for translation)."""

    def __init__(self, train: torch.Tensor, targets: Optional[torch.Tensor] = None) -> None:
        if targets is not None and targets.shape[0] != train.shape[0]:
            raise ValueError(f"NearestNeighbour: {train.shape[0]} training images but {targets.shape[0]} targets")
        self.train = train.flatten(1).float()
        self.sq_norm = self.train.pow(2).sum(1)
        self.targets = train if targets is None else targets

    def indices(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries.flatten(1).float()
        if q.shape[1] != self.train.shape[1]:
            raise ValueError(f"NearestNeighbour: query images {tuple(queries.shape[1:])} do not match the training set")
        # ||q - t||^2 = ||q||^2 - 2 q.t + ||t||^2; ||q||^2 is the same for every t and drops out of the argmin.
        return (self.sq_norm[None] - 2.0 * q @ self.train.T).argmin(1)

    def __call__(self, a: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.targets[self.indices(a)].clone()


# ---------------------------------------------------------------------------------------------- held-out sets


@dataclasses.dataclass
class SwapPairs:
    """a, b, target: [N,3,H,W] in [-1, 1]; target = render(structure of a, appearance of b)."""

    a: torch.Tensor
    b: torch.Tensor
    target: torch.Tensor
    segmentation: Optional[torch.Tensor] = None  # [N,H,W] class ids of the target (A's structure)
    # render(structure A, A's appearance with B's colours): a reference, not a bar (``partial_swap`` below)
    colours_only: Optional[torch.Tensor] = None


@dataclasses.dataclass
class TranslationPairs:
    """x (domain X) and y (domain Y) renderings of the same structures: the answer for X -> Y and Y -> X."""

    x: torch.Tensor
    y: torch.Tensor
    segmentation: Optional[torch.Tensor] = None  # [N,H,W] class ids (x and y share their structure)


@dataclasses.dataclass
class FrontalizationPairs:
    """source: turned heads; target: the same factors with yaw 0."""

    source: torch.Tensor
    target: torch.Tensor
    segmentation: Optional[torch.Tensor] = None  # [N,H,W] class ids of the target


def _heldout_swap_factors(n: int, seed: int) -> Tuple[Structure, Appearance, Structure, Appearance]:
    """The factors of held-out swap pair i: A = image 2i, B = image 2i+1 of the held-out seed, as (A's structure,
    A's appearance, B's structure, B's appearance)."""
    from ganedit.data.synthetic import sample_appearance, sample_structure

    hs = heldout_seed(seed)
    st, ap = sample_structure(2 * n, hs), sample_appearance(2 * n, hs)
    ia, ib = torch.arange(0, 2 * n, 2), torch.arange(1, 2 * n, 2)
    return st[ia], ap[ia], st[ib], ap[ib]


def heldout_swap_pairs(n: int = 500, size: int = 64, seed: int = 0) -> SwapPairs:
    """n held-out swap pairs at `size` px. Example: ``pairs = heldout_swap_pairs(500, 64)``."""
    from ganedit.data.synthetic import render

    st_a, ap_a, st_b, ap_b = _heldout_swap_factors(n, seed)
    truth = render(st_a, ap_b, size)
    return SwapPairs(
        a=render(st_a, ap_a, size).image,
        b=render(st_b, ap_b, size).image,
        target=truth.image,
        segmentation=truth.segmentation,
        colours_only=render(st_a, _keep_from_a(ap_a, ap_b, NON_COLOUR_APPEARANCE), size).image,
    )


# The appearance factors that are not colours: pattern kinds, their frequencies, angles and phase, and the light.
# A swap model whose structure code is a spatial map tends to keep them from A (they are drawn in A's pixels),
# while the true swap takes them from B.
NON_COLOUR_APPEARANCE: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Appearance) if f.name != "colors")


def _keep_from_a(ap_a: Appearance, ap_b: Appearance, names: Sequence[str]) -> Appearance:
    """B's appearance with the factors in ``names`` taken from A."""
    unknown = sorted(set(names) - set(NON_COLOUR_APPEARANCE) - {"colors"})
    if unknown:
        raise ValueError(f"partial_swap: unknown appearance factors {unknown}; known: colors, {', '.join(NON_COLOUR_APPEARANCE)}")
    return ap_b.replace(**{name: getattr(ap_a, name) for name in names})


def partial_swap(n: int = 500, size: int = 64, seed: int = 0, keep_from_a: Sequence[str] = NON_COLOUR_APPEARANCE) -> torch.Tensor:
    """Pair i of ``heldout_swap_pairs(n, size, seed)`` rendered with A's structure and B's appearance except the
    appearance factors named in ``keep_from_a``, which stay A's: [N,3,H,W] in [-1, 1]. Scored against the true
    swap, it says how much a swap loses when only part of the appearance moves. The default keeps every factor but
    the colours (``SwapPairs.colours_only``); ``keep_from_a=()`` is the truth itself.
    Example: ``partial_swap(500, 64, keep_from_a=("light_angle", "light_strength"))``."""
    from ganedit.data.synthetic import render

    st_a, ap_a, _, ap_b = _heldout_swap_factors(n, seed)
    return render(st_a, _keep_from_a(ap_a, ap_b, keep_from_a), size).image


def heldout_translation_pairs(n: int = 500, size: int = 64, seed: int = 0) -> TranslationPairs:
    """n held-out paired renderings (x in domain X, y in domain Y, same structure)."""
    from ganedit.data.synthetic import render, sample_appearance, sample_structure, to_domain_y

    hs = heldout_seed(seed)
    st, ap = sample_structure(n, hs), sample_appearance(n, hs)
    x = render(st, ap, size)
    return TranslationPairs(x=x.image, y=render(st, to_domain_y(ap), size).image, segmentation=x.segmentation)


def heldout_frontalization_pairs(n: int = 500, size: int = 64, seed: int = 0) -> FrontalizationPairs:
    from ganedit.data.synthetic import frontalize, render, sample_appearance, sample_structure

    hs = heldout_seed(seed)
    st, ap = sample_structure(n, hs), sample_appearance(n, hs)
    front = render(frontalize(st), ap, size)
    return FrontalizationPairs(source=render(st, ap, size).image, target=front.image, segmentation=front.segmentation)


@dataclasses.dataclass
class ConditionPairs:
    """pSp-style tasks: condition -> the clean image. ``kind`` is sketch ([N,1,H,W]), segmentation ([N,H,W]
    class ids), lowres ([N,3,H/f,W/f]) or masked ([N,3,H,W] with one mid-grey rectangle)."""

    kind: str
    condition: torch.Tensor
    target: torch.Tensor


CONDITION_KINDS = ("sketch", "segmentation", "lowres", "masked")


def heldout_condition_pairs(n: int = 500, size: int = 64, kind: str = "sketch", seed: int = 0, lowres_factor: int = 4) -> ConditionPairs:
    """n held-out (condition, image) pairs, made exactly as ``ganedit data synth`` writes conditions_test/."""
    from ganedit.data.synthetic import render, sample_appearance, sample_structure
    from ganedit.data.synthetic.export import apply_masks, downsample, mask_boxes

    if kind not in CONDITION_KINDS:
        raise ValueError(f"condition kind must be one of {', '.join(CONDITION_KINDS)}, got {kind!r}")
    hs = heldout_seed(seed)
    r = render(sample_structure(n, hs), sample_appearance(n, hs), size)
    condition = {
        "sketch": lambda: r.sketch,
        "segmentation": lambda: r.segmentation,
        "lowres": lambda: downsample(r.image, lowres_factor),
        "masked": lambda: apply_masks(r.image, mask_boxes(hs, 0, n, size)),
    }[kind]()
    return ConditionPairs(kind, condition, r.image)


def training_images(n: int, size: int = 64, seed: int = 0, domain: str = "x") -> torch.Tensor:
    """The first n training images of `seed` (what ``ganedit data synth --seed`` writes to images/)."""
    from ganedit.data.synthetic import render, sample_appearance, sample_structure, to_domain_y

    heldout_seed(seed)  # validates the training seed
    st, ap = sample_structure(n, seed), sample_appearance(n, seed)
    return render(st, to_domain_y(ap) if domain == "y" else ap, size).image


# ------------------------------------------------------------------------------------------------------ scores


# Regions of the region PSNR: groups of the world's segmentation classes (ganedit.data.synthetic.CLASSES).
REGIONS: Dict[str, Tuple[str, ...]] = {
    "face": ("skin", "eyes", "lips", "glasses"),
    "hair": ("hair",),
    "background": ("background",),
    "clothes": ("clothes",),
}


def gradient_energy(images: torch.Tensor) -> torch.Tensor:
    """Per image [N], the mean squared difference between horizontal and between vertical neighbours."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return dx.pow(2).mean((1, 2, 3)) + dy.pow(2).mean((1, 2, 3))


def sharpness_ratio(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per image [N], the output's gradient energy over the ground truth's: 1 is right, a blur scores far below
    1 and speckle or ringing far above (PSNR alone rewards a blur, which is why this is reported beside it)."""
    return gradient_energy(outputs) / gradient_energy(targets).clamp_min(1e-8)


def region_psnr(outputs: torch.Tensor, targets: torch.Tensor, segmentation: torch.Tensor) -> Dict[str, float]:
    """Mean PSNR inside each region of the ground truth's segmentation ([N,H,W] class ids), over the images that
    show the region (at least 16 pixels), so that a large flat background cannot carry the score. NaN for a
    region no image shows."""
    from ganedit.data.synthetic import CLASSES

    err = (outputs.clamp(-1, 1) - targets.clamp(-1, 1)).pow(2).mean(1)  # [N,H,W]
    out: Dict[str, float] = {}
    for region, names in REGIONS.items():
        mask = torch.zeros_like(segmentation, dtype=torch.bool)
        for name in names:
            mask |= segmentation == CLASSES.index(name)
        count = mask.flatten(1).sum(1)
        shown = count >= 16
        if not bool(shown.any()):
            out[region] = float("nan")
            continue
        mse = (err * mask).flatten(1).sum(1)[shown] / count[shown]
        out[region] = float((10 * torch.log10(4.0 / mse.clamp_min(1e-10))).clamp(max=100.0).mean())
    return out


def _score(outputs: torch.Tensor, targets: torch.Tensor, segmentation: Optional[torch.Tensor] = None) -> Dict[str, float]:
    p, s = psnr(outputs, targets).clamp(max=100.0), ssim(outputs, targets)
    sharp = sharpness_ratio(outputs, targets)
    scores = {
        "psnr": float(p.mean()),
        "ssim": float(s.mean()),
        "psnr_std": float(p.std()) if p.numel() > 1 else 0.0,
        "ssim_std": float(s.std()) if s.numel() > 1 else 0.0,
        "sharpness": float(sharp.mean()),
        "sharpness_median": float(sharp.median()),
        "n": int(p.numel()),
    }
    if segmentation is not None:
        scores.update({f"psnr_{region}": v for region, v in region_psnr(outputs, targets, segmentation).items()})
    return scores


def score_outputs(outputs: torch.Tensor, targets: torch.Tensor, segmentation: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """The scores of ready-made outputs ([N,3,H,W] in [-1, 1]) against their targets, on one thread: PSNR, SSIM,
    sharpness and, given the targets' segmentation, the region PSNRs. Example: ``score_outputs(partial_swap(500, 64),
    pairs.target, pairs.segmentation)``."""
    with one_thread():
        return _score(outputs.float().clamp(-1.0, 1.0), targets, segmentation)


def _run_batched(fn: Callable[..., torch.Tensor], inputs: tuple, batch_size: int) -> torch.Tensor:
    outs = []
    n = inputs[0].shape[0]
    with torch.no_grad():
        for i in range(0, n, batch_size):
            out = fn(*(x[i : i + batch_size] for x in inputs))
            if out.shape != inputs[0][i : i + batch_size].shape:
                raise ValueError(f"method returned shape {tuple(out.shape)} for inputs {tuple(inputs[0][i : i + batch_size].shape)}")
            outs.append(out.detach().float().cpu().clamp(-1.0, 1.0))
    return torch.cat(outs, 0)


def score_swap(method_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pairs: SwapPairs, batch_size: int = 64) -> Dict[str, float]:
    """Mean PSNR/SSIM of method_fn(a, b) against the ground-truth swap, in batches of `batch_size` CPU tensors
    (a GPU method moves them itself; outputs may come back on any device). Outputs are clamped to [-1, 1], as
    when they are written to files; the PSNR of an exact answer (+inf) counts as 100 dB.
    Example: ``score_swap(lambda a, b: model.swap(a, b), heldout_swap_pairs(500, 64))``."""
    with one_thread():
        return _score(_run_batched(method_fn, (pairs.a, pairs.b), batch_size), pairs.target, pairs.segmentation)


def score_translation(
    method_fn: Callable[[torch.Tensor], torch.Tensor], pairs: TranslationPairs, direction: str = "x2y", batch_size: int = 64
) -> Dict[str, float]:
    """Mean PSNR/SSIM of method_fn(source) against the known translation; direction 'x2y' or 'y2x'."""
    if direction not in ("x2y", "y2x"):
        raise ValueError(f"direction must be 'x2y' or 'y2x', got {direction!r}")
    src, tgt = (pairs.x, pairs.y) if direction == "x2y" else (pairs.y, pairs.x)
    with one_thread():
        return _score(_run_batched(method_fn, (src,), batch_size), tgt, pairs.segmentation)


def score_frontalization(method_fn: Callable[[torch.Tensor], torch.Tensor], pairs: FrontalizationPairs, batch_size: int = 64) -> Dict[str, float]:
    with one_thread():
        return _score(_run_batched(method_fn, (pairs.source,), batch_size), pairs.target, pairs.segmentation)


def score_condition(method_fn: Callable[[torch.Tensor], torch.Tensor], pairs: ConditionPairs, batch_size: int = 64) -> Dict[str, float]:
    """Mean PSNR/SSIM of method_fn(condition) against the clean image (sketch/segmentation/lowres/masked -> image)."""
    with one_thread():
        outs = []
        with torch.no_grad():
            for i in range(0, pairs.target.shape[0], batch_size):
                outs.append(method_fn(pairs.condition[i : i + batch_size]).detach().float().cpu().clamp(-1.0, 1.0))
        out = torch.cat(outs, 0)
        if out.shape != pairs.target.shape:
            raise ValueError(f"method returned shape {tuple(out.shape)}, the targets are {tuple(pairs.target.shape)}")
        return _score(out, pairs.target)


def swap_baselines(pairs: SwapPairs, train: Optional[torch.Tensor] = None) -> Dict[str, Dict[str, float]]:
    """Scores of the swap baselines on `pairs`: copy (A), copy_b (B: the true swap differs from B only in
    structure, so a swap must beat it), colour_transfer, nearest_neighbour when a training set is given, and the
    reference colours_only (B's colours on A's patterns and light; not a method) when the pairs carry it."""
    out = {"copy": score_swap(copy_baseline, pairs), "copy_b": score_swap(copy_b_baseline, pairs),
           "colour_transfer": score_swap(colour_transfer, pairs)}
    if pairs.colours_only is not None:
        out["colours_only"] = score_outputs(pairs.colours_only, pairs.target, pairs.segmentation)
    if train is not None:
        out["nearest_neighbour"] = score_swap(NearestNeighbour(train), pairs)
    return out
