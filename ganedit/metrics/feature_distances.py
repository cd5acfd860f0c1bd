"""Fréchet Inception Distance (Heusel et al. 2017) and Kernel Inception Distance (Bińkowski et al. 2018).

Both compare two sets through the features of a network: by default the 2048-d pool features of the FID
Inception-v3 (``ganedit.metrics.inception``, filled from a local file). Any callable ``images -> [N, D]``
features can be used instead (``extractor=``), e.g. when the Inception weights are not available: the
figures then measure the same kind of distance but are NOT comparable with published FID/KID values, which
are defined by the Inception-v3 of the TensorFlow reference implementation.

FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)); the trace of the matrix square root is
computed in float64 as the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a symmetric
positive semi-definite matrix with the same eigenvalues as S_a S_b, so no complex parts or failed iterations
(scipy.linalg.sqrtm's trouble spots) can appear.

KID = the unbiased estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3,
averaged over random subsets (default 100 subsets of 1000, fewer when the sets are smaller), with its std.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Optional, Tuple, Union

import torch

Extractor = Callable[[torch.Tensor], torch.Tensor]
Images = Union[torch.Tensor, Iterable[torch.Tensor]]


def feature_statistics(features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and covariance [D, D] (unbiased, as numpy.cov) of [N, D] features, in float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_statistics: need [N >= 2, D] features, got {tuple(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix; negative eigenvalues from rounding are set to 0."""
    vals, vecs = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b)."""
    mu_a, mu_b, sigma_a, sigma_b = (t.double() for t in (mu_a, mu_b, sigma_a, sigma_b))
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + sigma_a.trace() + sigma_b.trace() - 2 * tr_covmean
    return float(value)


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID between two [N, D] feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    k = x @ y.T / x.shape[1] + 1
    return k * k * k  # two products: torch's integer power of float64 tensors is ~100x slower on CPU


def kid_from_features(features_a: torch.Tensor, features_b: torch.Tensor, num_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
    """KID (mean, std over subsets) between two [N, D] feature sets; subsets are drawn without replacement."""
    a, b = features_a.double(), features_b.double()
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"kid: need at least 2 features per set, got {a.shape[0]} and {b.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]
        k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        # Unbiased: the diagonals k(x_i, x_i) are left out of the within-set means.
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append(within - 2 * k_xy.mean())
    t = torch.stack(values)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def extract_features(images: Images, extractor: Extractor, batch_size: int = 32,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """[N, D] float64 features of an image tensor (split into batches) or of an iterable of batches."""
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    if device is None and isinstance(extractor, torch.nn.Module):
        params = list(extractor.parameters())
        device = params[0].device if params else None
    out = []
    with torch.no_grad():
        for batch in batches:
            if device is not None:
                batch = batch.to(device)
            feats = extractor(batch)
            out.append(feats.reshape(feats.shape[0], -1).double().cpu())
    return torch.cat(out)


def _resolve(extractor: Optional[Extractor], inception_weights: "str | os.PathLike[str] | None") -> Extractor:
    if extractor is not None:
        return extractor
    from ganedit.metrics.inception import load_inception

    return load_inception(inception_weights)


def fid(images_a: Images, images_b: Images, extractor: Optional[Extractor] = None,
        inception_weights: "str | os.PathLike[str] | None" = None, batch_size: int = 32) -> float:
    """FID between two image sets in [-1, 1] (Inception-v3 pool features unless ``extractor`` is given)."""
    net = _resolve(extractor, inception_weights)
    return fid_from_features(extract_features(images_a, net, batch_size), extract_features(images_b, net, batch_size))


def kid(images_a: Images, images_b: Images, extractor: Optional[Extractor] = None,
        inception_weights: "str | os.PathLike[str] | None" = None, batch_size: int = 32, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
    """KID (mean, std) between two image sets in [-1, 1] (Inception-v3 pool features unless ``extractor``)."""
    net = _resolve(extractor, inception_weights)
    fa, fb = extract_features(images_a, net, batch_size), extract_features(images_b, net, batch_size)
    return kid_from_features(fa, fb, num_subsets, subset_size, seed)
