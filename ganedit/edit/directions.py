"""Latent editing directions for StyleGAN2 in W: InterFaceGAN, GANSpace and SeFa, and their file format.

* :func:`interfacegan` fits a linear classifier (logistic regression, in torch) between latents with and without
  an attribute; the unit normal of its boundary is the direction. Labels come from a function of the generated
  images (e.g. the attribute regressor) or from the user, for given latents; ``fit="regression"`` fits ridge
  regression of the scores on every sample instead. :func:`project_out` makes a direction *conditional*:
  orthogonal to chosen other directions, so moving along it leaves them unchanged. :func:`choose_layers` restricts
  a direction to the rows of w+ where, measured on held-out generated images, it changes its attribute most for
  the least change of everything else the labeller reads.
* :func:`ganspace` is the PCA of sampled w: components ordered by variance.
* :func:`sefa` is closed form: the eigenvectors of ``A^T A`` where ``A`` stacks the (row-normalised) modulation
  weights of the chosen layers, i.e. the directions of w that change those layers' styles the most.

Every method returns a :class:`Directions`: K unit vectors [K, style_dim] with one name each, the rows of w+
(``layers``) they are meant for, and metadata. A direction file is one safetensors file:

  tensors   ``vectors`` [K, style_dim] float32 (unit rows); optional ``values`` [K] (method-specific: explained
            variance for GANSpace, eigenvalue for SeFa, validation accuracy for InterFaceGAN), optional
            ``scales`` [K] (standard deviation of sampled w along each vector: a strength of ``s * scale`` is
            ``s`` sigmas), optional ``mean`` [style_dim] (GANSpace's PCA centre).
  metadata  ``format`` = "ganedit.direction", ``format_version`` = "1", ``meta`` = JSON with ``method``,
            ``names`` (one per vector), ``layers`` ([first, last] rows of w+, inclusive, or null for all),
            ``attribute`` (InterFaceGAN) and ``generator`` (:func:`ganedit.edit.latents.generator_fingerprint`),
            plus the method's settings (sample count, seed, ...; ``layer_choice`` when :func:`choose_layers`
            picked the layers).

:func:`load_direction` refuses (CheckpointError naming the file) a generator of another shape and warns when only
its weights differ (a PTI-tuned generator, for instance), through :func:`ganedit.edit.latents.check_fits`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ganedit.edit.latents import check_fits, generator_fingerprint, stylegan_generator
from ganedit.errors import CheckpointError, ConfigError
from ganedit.formats.tagged import save_tagged

FORMAT_NAME = "ganedit.direction"
FORMAT_VERSION = 1
METHODS = ("interfacegan", "ganspace", "sefa", "custom")
FITS = ("classifier", "regression")

LabelsFn = Callable[[torch.Tensor], Union[torch.Tensor, Mapping[str, torch.Tensor]]]
Layers = Optional[Sequence[int]]


# ----------------------------------------------------------------------------------------------- container


@dataclass
class Directions:
    """K unit directions in W (``vectors`` [K, style_dim]) with their names and provenance."""

    vectors: torch.Tensor
    names: List[str]
    method: str
    layers: Optional[range] = None
    generator: Optional[Dict[str, Any]] = None
    values: Optional[torch.Tensor] = None
    scales: Optional[torch.Tensor] = None
    mean: Optional[torch.Tensor] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None

    def __post_init__(self) -> None:
        if self.vectors.dim() == 1:
            self.vectors = self.vectors.unsqueeze(0)
        if self.vectors.dim() != 2:
            raise ConfigError(f"direction vectors must be [K, style_dim], got shape {tuple(self.vectors.shape)}")
        if len(self.names) != self.vectors.shape[0]:
            raise ConfigError(f"{len(self.names)} names for {self.vectors.shape[0]} direction vectors")
        if self.method not in METHODS:
            raise ConfigError(f"direction method must be one of {METHODS}, got {self.method!r}")
        if self.layers is not None:
            self.layers = _as_range(self.layers)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def style_dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self, key: Union[int, str]) -> int:
        """Position of a vector given by its name or its index (negative counts from the end)."""
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            if key not in self.names:
                raise ConfigError(f"no direction named {key!r} (names: {', '.join(self.names[:12])}"
                                  f"{', ...' if len(self.names) > 12 else ''})")
            return self.names.index(key)
        i = int(key)
        if not -len(self) <= i < len(self):
            raise ConfigError(f"direction index {i} is out of range (this file has {len(self)})")
        return i % len(self)

    def vector(self, key: Union[int, str] = 0) -> torch.Tensor:
        """One unit direction [style_dim] by name or index."""
        return self.vectors[self.index(key)]

    def apply(self, w: torch.Tensor, key: Union[int, str], strength: "float | torch.Tensor",
              layers: Layers = None, sigmas: bool = False) -> torch.Tensor:
        """``w + strength * vector`` on ``layers`` (default: the file's layers; W codes become w+ when rows are
        chosen). With ``sigmas``, strength counts standard deviations of sampled w along the vector (``scales``)."""
        from ganedit.edit.latents import apply, to_wplus

        rows = self.layers if layers is None else _as_range(layers)
        scale = 1.0
        if sigmas:
            if self.scales is None:
                raise ConfigError(f"{self.method} directions carry no scales: give the strength in W units")
            scale = float(self.scales[self.index(key)])
        if rows is not None and w.dim() == 2:
            if self.generator is None or "n_latent" not in self.generator:
                raise ConfigError("editing chosen rows of W codes needs w+ codes (to_wplus) or a generator fingerprint")
            w = to_wplus(w, int(self.generator["n_latent"]))
        strength = strength * scale
        return apply(w, self.vector(key), strength, rows)

    def check_fits(self, G: Any) -> None:
        check_fits(self.generator, G, self.path)
        g = stylegan_generator(G)
        if self.style_dim != int(g.style_dim):
            raise _fit_error(self.path, f"vectors have {self.style_dim} dims, the generator's W has {g.style_dim}")
        if self.layers is not None and self.layers.stop > int(g.n_latent):
            raise _fit_error(self.path, f"layers {_layers_text(self.layers)} exceed the generator's {g.n_latent} rows of w+")


def _fit_error(where: Optional[str], problem: str) -> Exception:
    return CheckpointError(where, problem) if where else ConfigError(problem)


def _as_range(layers: Sequence[int]) -> range:
    if isinstance(layers, range) and layers.step == 1:
        return layers
    rows = sorted(int(r) for r in layers)
    if not rows or rows != list(range(rows[0], rows[-1] + 1)) or rows[0] < 0:
        raise ConfigError(f"layers must be a contiguous, non-empty range of w+ rows, got {list(layers)}")
    return range(rows[0], rows[-1] + 1)


def _layers_text(layers: Optional[range]) -> str:
    return "all" if layers is None else f"{layers.start}-{layers.stop - 1}"


def _canonical_sign(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each row so that its largest-magnitude coordinate is positive (eigenvectors have no sign)."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(vectors.gather(1, idx))
    sign[sign == 0] = 1
    return vectors * sign


# ----------------------------------------------------------------------------------------------- file format


def save_direction(path: "str | os.PathLike[str]", directions: Directions) -> Path:
    """Write ``directions`` to one safetensors file (replaced atomically)."""

    tensors = {"vectors": directions.vectors.detach().to("cpu", torch.float32).contiguous()}
    for name in ("values", "scales", "mean"):
        t = getattr(directions, name)
        if t is not None:
            tensors[name] = t.detach().to("cpu", torch.float32).reshape(-1).contiguous()
    record = {
        **_jsonable(directions.meta),
        "method": directions.method,
        "names": list(directions.names),
        "layers": None if directions.layers is None else [directions.layers.start, directions.layers.stop - 1],
        "generator": _jsonable(directions.generator),
    }
    return save_tagged(path, tensors, FORMAT_NAME, FORMAT_VERSION, record)


ASSETS = Path(__file__).resolve().parent.parent / "assets"


def shipped_directions(model: str) -> Path:
    """The folder of a shipped generator's direction files: ``stylegan2-synth64`` ->
    ganedit/assets/stylegan2_synth64_directions (it may not exist)."""
    return ASSETS / f"{model.replace('-', '_')}_directions"


def resolve_direction(spec: "str | os.PathLike[str]") -> Path:
    """A direction file given by its path, or a shipped one by name: ``MODEL/NAME`` (e.g.
    ``stylegan2-synth64/interfacegan_yaw``) is ``NAME.safetensors`` in :func:`shipped_directions` of MODEL."""
    p = Path(spec)
    if p.exists():
        return p
    model, _, name = str(spec).partition("/")
    folder = shipped_directions(model) if name and "/" not in name else None
    if folder is None or not folder.is_dir():
        raise CheckpointError(p, "no such direction file (a shipped direction is named MODEL/NAME, e.g. "
                                 "stylegan2-synth64/interfacegan_yaw)")
    found = folder / (name if name.endswith(".safetensors") else f"{name}.safetensors")
    if not found.is_file():
        names = sorted(f.stem for f in folder.glob("*.safetensors"))
        raise CheckpointError(p, f"no shipped direction {name!r} for {model} (shipped: {', '.join(names)})")
    return found


def load_direction(path: "str | os.PathLike[str]", generator: Any = None) -> Directions:
    """Read a direction file; with ``generator``, refuse it (CheckpointError) when it does not fit."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such direction file" if not p.exists() else "is not a file")
    try:
        with safe_open(str(p), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error type for a corrupt header
        raise CheckpointError(p, f"not a readable safetensors file ({str(exc)[:200]})") from None
    if header.get("format") != FORMAT_NAME:
        found = header.get("format") or "no format tag"
        raise CheckpointError(p, f"not a ganedit direction file ({found}; expected {FORMAT_NAME!r})")
    if int(header.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(p, f"direction format version {header['format_version']} is newer than this ganedit reads ({FORMAT_VERSION})")
    try:
        record = json.loads(header.get("meta", "{}"))
        vectors = tensors["vectors"]
        layers = record.pop("layers", None)
        directions = Directions(
            vectors=vectors, names=[str(n) for n in record.pop("names")], method=str(record.pop("method")),
            layers=None if layers is None else range(int(layers[0]), int(layers[1]) + 1),
            generator=record.pop("generator", None), values=tensors.get("values"), scales=tensors.get("scales"),
            mean=tensors.get("mean"), meta=record, path=str(p),
        )
    except (KeyError, TypeError, ValueError, IndexError, json.JSONDecodeError) as exc:
        raise CheckpointError(p, f"direction file is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    except ConfigError as exc:
        raise CheckpointError(p, str(exc)) from None
    if generator is not None:
        directions.check_fits(generator)
    return directions


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# ----------------------------------------------------------------------------------------------- sampling


@torch.no_grad()
def sample_w(G: Any, n: int, seed: int = 0, truncation: float = 1.0, batch_size: int = 1024) -> torch.Tensor:
    """n latents w [n, style_dim] from z ~ N(0, I) drawn with ``seed`` (truncated towards the average w)."""
    g = stylegan_generator(G)
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(int(n), int(g.style_dim), generator=gen)
    w_avg = _w_avg(G) if truncation < 1 else None
    out = [g.mapping(z[i:i + batch_size].to(device), truncation, w_avg) for i in range(0, int(n), batch_size)]
    return torch.cat(out).float().cpu() if out else torch.zeros(0, int(g.style_dim))


def _w_avg(G: Any) -> torch.Tensor:
    if hasattr(G, "w_avg"):
        return G.w_avg.reshape(1, -1)
    return stylegan_generator(G).mean_latent(4096, seed=0)


@torch.no_grad()
def render_w(G: Any, w: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Images of W codes [N, style_dim] with the generator's stored (constant) noise."""
    g = stylegan_generator(G)
    device = next(g.parameters()).device
    parts = [g.synthesis(w[i:i + batch_size].to(device), noise="const").cpu() for i in range(0, len(w), batch_size)]
    return torch.cat(parts)


# ----------------------------------------------------------------------------------------------- InterFaceGAN


def pick_attribute(labels: Union[torch.Tensor, Mapping[str, torch.Tensor]], attribute: Optional[str]) -> torch.Tensor:
    """One score or label per sample [N] from a tensor or a dict of factors.

    ``attribute`` names a key of the dict; ``name[i]`` picks column i of a vector-valued factor (e.g. an RGB
    colour ``color.hair[0]``)."""
    if isinstance(labels, Mapping):
        if not attribute:
            raise ConfigError(f"labels hold several factors; choose one with attribute= ({', '.join(sorted(labels))})")
        key, column = attribute, None
        if attribute.endswith("]") and "[" in attribute:
            key, col_text = attribute[:-1].split("[", 1)
            column = int(col_text)
        if key not in labels:
            raise ConfigError(f"unknown attribute {key!r} (known: {', '.join(sorted(labels))})")
        values = labels[key]
        if column is not None:
            if values.dim() != 2 or not 0 <= column < values.shape[1]:
                raise ConfigError(f"attribute {attribute!r}: {key} has shape {tuple(values.shape)}, no column {column}")
            values = values[:, column]
    else:
        values = labels
    values = torch.as_tensor(values)
    if values.dim() != 1:
        raise ConfigError(f"attribute {attribute or ''} has {tuple(values.shape)} values per sample: pick a column with name[i]")
    return values


def split_extremes(scores: torch.Tensor, fraction: float, positive_class: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(indices, binary targets) of the samples the classifier trains on.

    Integer labels are classes: with two classes (or ``positive_class`` against the rest) every sample is used.
    Float scores are ranked and only the top and bottom ``fraction`` are kept, as InterFaceGAN does, so the
    ambiguous middle does not blur the boundary."""
    n = scores.shape[0]
    if not torch.is_floating_point(scores) or positive_class is not None:
        classes = torch.unique(scores)
        if positive_class is None:
            if len(classes) != 2:
                raise ConfigError(f"integer labels need exactly two classes or a positive_class, found {len(classes)} "
                                  f"({classes.tolist()[:10]})")
            positive_class = int(classes.max())
        target = (scores == positive_class).float()
        if target.sum() == 0 or target.sum() == n:
            raise ConfigError(f"every sample has the same label (class {positive_class} is {'all' if target.sum() else 'absent'})")
        return torch.arange(n), target
    if not 0 < fraction <= 0.5:
        raise ConfigError(f"extreme fraction must be in (0, 0.5], got {fraction}")
    k = max(2, int(round(n * fraction)))
    if 2 * k > n:
        raise ConfigError(f"{n} samples are too few for two extremes of {k}")
    order = torch.argsort(scores.float())
    low, high = order[:k], order[-k:]
    if bool(scores[high].min() <= scores[low].max()):
        raise ConfigError("the scores do not vary between the extremes (is the attribute constant?)")
    idx = torch.cat([low, high])
    return idx, torch.cat([torch.zeros(k), torch.ones(k)])


def fit_linear_boundary(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-4, steps: int = 100,
                        val_fraction: float = 0.3, seed: int = 0) -> Tuple[torch.Tensor, float]:
    """Logistic regression on [N, D] features and 0/1 targets; returns (unit normal in the input space, pointing
    towards class 1; accuracy on a held-out ``val_fraction``, NaN when there is none).

    Features are standardised for the fit (so L-BFGS converges the same whatever the scale of W) and the normal
    is mapped back: a boundary ``a . (x - m) / s`` has the normal ``a / s`` in x."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(n * val_fraction) if n >= 20 else 0
    val, train = perm[:n_val], perm[n_val:]
    m, s = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
    xt = (x[train] - m) / s
    # class weights balance the loss when the two classes have different sizes
    pos = y[train].mean().clamp(1e-6, 1 - 1e-6)
    weight = torch.where(y[train] > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    a = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(xt @ a + b, y[train], reduction="none")).mean()
        loss = loss + l2 * a.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    normal = (a.detach() / s)
    if float(normal.norm()) < 1e-12:
        raise ConfigError("the classifier found no boundary (labels independent of w?)")
    accuracy = float("nan")
    if n_val:
        pred = ((x[val] - m) / s @ a.detach() + b.detach()) > 0
        accuracy = float((pred == (y[val] > 0.5)).double().mean())
    return (normal / normal.norm()).float(), accuracy


RIDGE_PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def fit_linear_regression(x: torch.Tensor, y: torch.Tensor, val_fraction: float = 0.3, seed: int = 0,
                          penalties: Sequence[float] = RIDGE_PENALTIES) -> Tuple[torch.Tensor, float]:
    """Ridge regression of scores y [N] on features x [N, D]; returns (unit coefficient vector in the input space,
    pointing towards higher scores; R² on a held-out ``val_fraction``, NaN when there is none).

    Unlike the classifier on the extremes it uses every sample, which matters when the score is noisy: the
    middle of the ranking still carries signal, and the extremes of a noisy score are partly noise. The penalty
    (per sample, on standardised features) is chosen among ``penalties`` by held-out R², then the fit is redone
    on all samples."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    if n < 3:
        raise ConfigError(f"regression needs at least 3 labelled latents, got {n}")
    if float(y.std()) < 1e-12:
        raise ConfigError("every sample has the same score (is the attribute constant?)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(n * val_fraction) if n >= 20 else 0
    val, train = perm[:n_val], perm[n_val:]

    def solve(rows: torch.Tensor, penalty: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m, s = x[rows].mean(0), x[rows].std(0).clamp_min(1e-8)
        xs, ym = (x[rows] - m) / s, y[rows].mean()
        gram = xs.T @ xs + penalty * len(rows) * torch.eye(x.shape[1], dtype=x.dtype)
        return torch.linalg.solve(gram, xs.T @ (y[rows] - ym)), m, s, ym

    best, r2 = float(penalties[0]), float("nan")
    if n_val:
        scored = []
        for penalty in penalties:
            a, m, s, ym = solve(train, float(penalty))
            residual = y[val] - ((x[val] - m) / s @ a + ym)
            scored.append((1 - float(residual.square().mean() / y[val].var(unbiased=False).clamp_min(1e-12)), penalty))
        r2, best = max(scored)
    a, _, s, _ = solve(torch.arange(n), float(best))
    coef = a / s
    if float(coef.norm()) < 1e-12:
        raise ConfigError("the regression found no direction (scores independent of w?)")
    return (coef / coef.norm()).float(), r2


def project_out(direction: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """The unit direction orthogonal to every vector of ``others`` (conditional editing: moving along the result
    leaves the linear scores of the other attributes unchanged)."""
    d = direction.double().reshape(-1)
    if not others:
        return (d / d.norm()).float()
    basis = torch.stack([o.double().reshape(-1) for o in others], dim=1)  # [D, k]
    if basis.shape[0] != d.shape[0]:
        raise ConfigError(f"conditions have {basis.shape[0]} dims, the direction {d.shape[0]}")
    q, _ = torch.linalg.qr(basis)  # orthonormal span of the conditions
    d = d - q @ (q.T @ d)
    norm = float(d.norm())
    if norm < 1e-6 * float(direction.double().norm()):
        raise ConfigError("the direction lies in the span of the conditions: nothing is left after projecting them out")
    return (d / norm).float()


def most_correlated(direction: torch.Tensor, others: Mapping[str, torch.Tensor], k: int = 1) -> List[str]:
    """The ``k`` names of ``others`` whose vectors are the most correlated with ``direction`` (largest |cosine|):
    the attributes InterFaceGAN's conditional manipulation conditions on (the paper measures how entangled two
    attributes are by the cosine of their boundaries' normals)."""
    d = direction.double().reshape(-1)
    cosine = {name: abs(float(d @ v.double().reshape(-1)) / max(float(d.norm() * v.double().norm()), 1e-12))
              for name, v in others.items()}
    return sorted(cosine, key=lambda name: -cosine[name])[:max(k, 0)]


@torch.no_grad()
def label_samples(G: Any, labels_fn: LabelsFn, n_samples: int = 20000, seed: int = 0, truncation: float = 1.0,
                  batch_size: int = 64) -> Tuple[torch.Tensor, Union[torch.Tensor, Dict[str, torch.Tensor]]]:
    """(w [n, style_dim], labels) for ``n_samples`` generated images, labelled by ``labels_fn`` batch by batch."""
    w = sample_w(G, n_samples, seed, truncation)
    values = [labels_fn(render_w(G, w[i:i + batch_size], batch_size)) for i in range(0, len(w), batch_size)]
    if not values:
        raise ConfigError("InterFaceGAN needs at least one sample")
    return w, _merge_labels(values)


def interfacegan(
    G: Any,
    labels: Union[LabelsFn, Tuple[torch.Tensor, Any]],
    attribute: Optional[str] = None,
    n_samples: int = 20000,
    extreme_fraction: float = 0.1,
    positive_class: Optional[int] = None,
    conditions: Optional[Mapping[str, torch.Tensor]] = None,
    layers: Layers = None,
    seed: int = 0,
    truncation: float = 1.0,
    batch_size: int = 64,
    fit: str = "classifier",
) -> Directions:
    """InterFaceGAN direction of one attribute.

    ``labels`` is either a function of images (NCHW in [-1, 1]) returning a tensor [N] or a dict of factors
    (``ganedit.models.attributes.predict_factors``), applied to ``n_samples`` generated images, or a pair
    ``(w [N, style_dim], labels [N] or dict)`` for the user's own latents (or samples labelled once with
    :func:`label_samples` and reused for several attributes). Float labels are scores (the top and bottom
    ``extreme_fraction`` are the two classes), integer labels are classes (see :func:`split_extremes`).
    ``conditions`` maps names to directions that the result is made orthogonal to (conditional editing).

    ``fit``: "classifier" (the paper: logistic regression on the extremes; ``values`` holds its validation
    accuracy) or "regression" (ridge regression of the scores on w over every sample, see
    :func:`fit_linear_regression`; ``values`` holds its held-out R²). Classes are regressed as 0/1 targets.
    """
    if fit not in FITS:
        raise ConfigError(f"fit must be one of {FITS}, got {fit!r}")
    if callable(labels):
        w, merged = label_samples(G, labels, n_samples, seed, truncation, batch_size)
        source = "generated"
    else:
        try:
            w, merged = labels
        except (TypeError, ValueError):
            raise ConfigError("labels must be a function of images or a pair (w, labels)") from None
        w = torch.as_tensor(w).float()
        if w.dim() == 3:  # w+ of the user's latents: InterFaceGAN works in W, so take the rows' mean
            w = w.mean(1)
        source = "given"
    scores = pick_attribute(merged, attribute)
    if scores.shape[0] != w.shape[0]:
        raise ConfigError(f"{scores.shape[0]} labels for {w.shape[0]} latents")
    if w.shape[1] != int(stylegan_generator(G).style_dim):
        raise ConfigError(f"latents have {w.shape[1]} dims, the generator's W has {stylegan_generator(G).style_dim}")
    is_score = torch.is_floating_point(scores) and positive_class is None
    if fit == "regression":
        idx = torch.arange(len(scores))
        target = scores.double() if is_score else split_extremes(scores, extreme_fraction, positive_class)[1]
        normal, accuracy = fit_linear_regression(w, target, seed=seed)
    else:
        idx, target = split_extremes(scores, extreme_fraction, positive_class)
        normal, accuracy = fit_linear_boundary(w[idx], target, seed=seed)
    raw = normal
    if conditions:
        normal = project_out(normal, list(conditions.values()))
    projections = w @ normal
    name = attribute or "attribute"
    quality = {"validation_r2": accuracy} if fit == "regression" else {"validation_accuracy": accuracy}
    return Directions(
        vectors=normal.unsqueeze(0), names=[name], method="interfacegan",
        layers=None if layers is None else _as_range(layers), generator=generator_fingerprint(G),
        values=torch.tensor([accuracy]), scales=projections.std().reshape(1),
        meta={"attribute": name, "labels": source, "n_samples": int(w.shape[0]), "n_trained": int(len(idx)),
              "fit": fit, "extreme_fraction": extreme_fraction if is_score and fit == "classifier" else None,
              "positive_class": positive_class, **quality, "seed": seed, "truncation": truncation,
              "conditioned_on": sorted(conditions) if conditions else [],
              "cosine_to_unconditioned": float(raw @ normal)},
    )


# ----------------------------------------------------------------------------------------------- layer choice


def smooth_readings(labels: Union[torch.Tensor, Mapping[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The readings of a label function that an edit can change smoothly, as float [N] each: float factors (a
    vector-valued one as ``name[i]`` per column); class labels are left out (a class flips only at a boundary,
    so the mean change of a class index says little). A plain tensor is the factor "attribute"."""
    if not isinstance(labels, Mapping):
        labels = {"attribute": labels}
    out: Dict[str, torch.Tensor] = {}
    for name, value in labels.items():
        value = torch.as_tensor(value)
        if not torch.is_floating_point(value):
            continue
        if value.dim() == 1:
            out[str(name)] = value.float()
        elif value.dim() == 2:
            out.update({f"{name}[{i}]": value[:, i].float() for i in range(value.shape[1])})
    return out


@torch.no_grad()
def layer_effects(G: Any, vector: torch.Tensor, labels_fn: LabelsFn, step: float, n_samples: int = 128,
                  seed: int = 0, truncation: float = 1.0, batch_size: int = 64) -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    """What moving one row of w+ along ``vector`` does, row by row, on ``n_samples`` latents drawn with ``seed``.

    Returns ``({reading: [n_latent]}, {reading: spread})``: for each row l, the mean change of every smooth
    reading of ``labels_fn`` (:func:`smooth_readings`) between ``w - step*vector`` and ``w + step*vector`` on row
    l alone, halved (the change per ``step``); and each reading's standard deviation over the unedited images.
    A reading may be NaN where an image does not show it (``ganedit.metrics.attributes.edit_readings``): the
    change counts the images that show it before and after, the spread those that show it unedited."""
    g = stylegan_generator(G)
    n_latent = int(g.n_latent)
    w = sample_w(G, n_samples, seed, truncation)
    base = smooth_readings(labels_fn(render_w(G, w, batch_size)))
    spread = {k: _finite_std(v) for k, v in base.items()}
    d = vector.reshape(1, -1).float()
    effects = {k: torch.zeros(n_latent) for k in base}
    for row in range(n_latent):
        moved = {}
        for sign in (1.0, -1.0):
            wplus = w.unsqueeze(1).repeat(1, n_latent, 1)
            wplus[:, row] += sign * step * d
            moved[sign] = smooth_readings(labels_fn(render_w(G, wplus, batch_size)))
        for k in effects:
            delta = moved[1.0][k] - moved[-1.0][k]
            delta = delta[torch.isfinite(delta)]
            effects[k][row] = float(delta.mean()) / 2 if len(delta) else 0.0
    return effects, spread


def _finite_std(values: torch.Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return float(finite.std()) if len(finite) > 1 else 0.0


def rank_layer_ranges(effects: Mapping[str, torch.Tensor], target: str, spread: Optional[Mapping[str, float]] = None,
                      min_rows: int = 1, tolerance: float = 0.05,
                      parts_of_target: Sequence[str] = ()) -> List[Tuple[range, float, float, float]]:
    """Every contiguous range of w+ rows (at least ``min_rows`` long) as ``(rows, change, leakage, ratio)``,
    the chosen one first, then by decreasing ratio.

    The effect of editing several rows is taken as the sum of the rows' effects (first order: for edits of about
    one sigma the readings respond nearly linearly), so one pass over single rows (:func:`layer_effects`) scores
    all ranges. Change and leakage are in units of each reading's ``spread``: change = the target's mean change,
    leakage = the root mean square change of every other reading except ``parts_of_target`` (readings that
    exist only with the target, such as the frame colour of glasses); ratio = |change| / leakage.

    The chosen range is, of the ranges whose ratio is within ``tolerance`` (relative) of the best, the one that
    changes the target most. Without it a single row would usually win: a sum of rows is never purer than its
    purest row unless their leakages cancel, yet one row alone changes the attribute little per sigma, so it
    needs large, out-of-distribution strengths; and ratios measured on a few samples differ by a few percent by
    chance anyway."""
    if target not in effects:
        raise ConfigError(f"no smooth reading named {target!r} to choose layers by (readings: {', '.join(sorted(effects))})")
    parts = set(parts_of_target)
    others = [k for k in effects if k != target and k not in parts]
    if not others:
        raise ConfigError("choosing layers needs readings of other factors than the target (to measure leakage)")
    scale = {k: max(float(spread[k]) if spread and k in spread else 1.0, 1e-12) for k in effects}
    n_latent = int(effects[target].numel())
    if not 1 <= min_rows <= n_latent:
        raise ConfigError(f"min_rows must be in 1..{n_latent}, got {min_rows}")
    cumulative = {k: torch.cat([torch.zeros(1), effects[k].double().cumsum(0)]) / scale[k] for k in effects}
    ranked = []
    for start in range(n_latent):
        for stop in range(start + min_rows, n_latent + 1):
            total = {k: float(c[stop] - c[start]) for k, c in cumulative.items()}
            leak = math.sqrt(sum(total[k] ** 2 for k in others) / len(others))
            change = total[target]
            ranked.append((range(start, stop), change, leak, abs(change) / leak if leak > 0 else float("inf")))
    ranked.sort(key=lambda r: -r[3])
    if not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance must be in [0, 1), got {tolerance}")
    near = [r for r in ranked if r[3] >= ranked[0][3] * (1 - tolerance)]
    best = max(near, key=lambda r: abs(r[1]))
    return [best] + [r for r in ranked if r is not best]


def choose_layers(G: Any, directions: Directions, labels_fn: LabelsFn, key: Union[int, str] = 0,
                  target: Optional[str] = None, n_samples: int = 128, seed: int = 1, strength: float = 1.0,
                  min_rows: int = 1, tolerance: float = 0.05, batch_size: int = 64,
                  parts_of_target: Sequence[str] = ()) -> Directions:
    """A copy of ``directions`` meant for the rows of w+ where the vector ``key`` changes ``target`` (default:
    the vector's name) most for the least change of everything else ``labels_fn`` reads.

    Data-driven (InterFaceGAN fits one vector in W, but an attribute usually lives in a few style layers, and an
    edit of every row also moves what the other rows control): on ``n_samples`` latents drawn with ``seed`` (use
    other samples than the ones the vector was fitted on), each row is edited by +-``strength`` sigmas alone
    (:func:`layer_effects`, sigma = the file's scale, else 1 in W), and the contiguous range with the best
    change / leakage ratio wins (:func:`rank_layer_ranges`; of ranges within ``tolerance`` of the best ratio, the
    one with the largest change; ``parts_of_target`` are readings not counted as leakage). The file records the choice (``meta.layer_choice``:
    the samples, the all-rows ratio and the chosen one)."""
    i = directions.index(key)
    vector = directions.vectors[i]
    name = target or directions.names[i]
    sigma = float(directions.scales[i]) if directions.scales is not None else 1.0
    effects, spread = layer_effects(G, vector, labels_fn, strength * sigma, n_samples, seed, batch_size=batch_size)
    ranked = rank_layer_ranges(effects, name, spread, min_rows, tolerance, parts_of_target)
    rows, change, leak, ratio = ranked[0]
    n_latent = int(stylegan_generator(G).n_latent)
    every = next(r for r in ranked if r[0] == range(0, n_latent))
    meta = dict(directions.meta)
    meta["layer_choice"] = {"target": name, "n_samples": int(n_samples), "seed": int(seed), "strength": strength,
                            "tolerance": tolerance, "rows": [rows.start, rows.stop - 1], "ratio": ratio, "change": change, "leakage": leak,
                            "all_rows_ratio": every[3], "readings": len(effects),
                            "parts_of_target": sorted(set(parts_of_target) & set(effects))}
    return Directions(directions.vectors, list(directions.names), directions.method,
                      None if rows == range(0, n_latent) else rows, directions.generator, directions.values,
                      directions.scales, directions.mean, meta, directions.path)


def combine(parts: Sequence[Directions]) -> Directions:
    """Several direction sets of one method and generator in one (e.g. one InterFaceGAN vector per attribute)."""
    if not parts:
        raise ConfigError("nothing to combine")
    first = parts[0]
    if any(p.method != first.method or p.layers != first.layers for p in parts):
        raise ConfigError("only directions of the same method and layers can share a file")

    def cat(name: str) -> Optional[torch.Tensor]:
        items = [getattr(p, name) for p in parts]
        return None if any(t is None for t in items) else torch.cat([t.reshape(-1) for t in items])

    names = [n for p in parts for n in p.names]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate direction names: {names}")
    meta = dict(first.meta)
    if len(parts) > 1:
        meta = {"parts": [dict(p.meta) for p in parts]}
        if first.method == "interfacegan":
            meta["attributes"] = names
    return Directions(torch.cat([p.vectors for p in parts]), names, first.method, first.layers, first.generator,
                      cat("values"), cat("scales"), None, meta)


def _merge_labels(parts: List[Union[torch.Tensor, Mapping[str, torch.Tensor]]]) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
    if isinstance(parts[0], Mapping):
        return {k: torch.cat([torch.as_tensor(p[k]).cpu() for p in parts]) for k in parts[0]}
    return torch.cat([torch.as_tensor(p).cpu().reshape(-1) for p in parts])


def read_labels_csv(path: "str | os.PathLike[str]", names: Sequence[str], attribute: Optional[str] = None) -> torch.Tensor:
    """Labels [len(names)] for the latents called ``names`` from a CSV with a header: a ``name`` column and one
    column per attribute (``attribute`` picks it; the only other column when None). Integers stay classes."""
    import csv

    p = Path(path)
    try:
        with open(p, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CheckpointError(p, f"cannot read the labels CSV ({exc})") from None
    if not rows:
        raise CheckpointError(p, "labels CSV has no rows")
    columns = list(rows[0].keys())
    if "name" not in columns:
        raise CheckpointError(p, f"labels CSV needs a 'name' column (has {columns})")
    value_columns = [c for c in columns if c != "name"]
    if attribute is None:
        if len(value_columns) != 1:
            raise CheckpointError(p, f"choose the attribute column: {value_columns}")
        attribute = value_columns[0]
    if attribute not in value_columns:
        raise CheckpointError(p, f"no column {attribute!r} (columns: {value_columns})")
    table = {str(r["name"]): r[attribute] for r in rows}
    missing = [n for n in names if n not in table]
    if missing:
        raise CheckpointError(p, f"no label for {len(missing)} latents (e.g. {', '.join(missing[:3])})")
    texts = [str(table[n]).strip() for n in names]
    try:
        if all(t.lstrip("-").isdigit() for t in texts):
            return torch.tensor([int(t) for t in texts])
        return torch.tensor([float(t) for t in texts])
    except ValueError as exc:
        raise CheckpointError(p, f"column {attribute!r} has a value that is not a number ({exc})") from None


# ----------------------------------------------------------------------------------------------- GANSpace


def ganspace(G: Any, n_samples: int = 20000, n_components: int = 32, layers: Layers = None, seed: int = 0,
             truncation: float = 1.0) -> Directions:
    """PCA of ``n_samples`` sampled w: the top ``n_components`` principal axes, by decreasing variance.
    ``values`` holds each component's variance, ``scales`` its standard deviation, ``mean`` the centre."""
    g = stylegan_generator(G)
    if not 1 <= n_components <= int(g.style_dim):
        raise ConfigError(f"n_components must be in 1..{g.style_dim}, got {n_components}")
    if n_samples < n_components + 1:
        raise ConfigError(f"GANSpace needs more samples ({n_samples}) than components ({n_components})")
    w = sample_w(G, n_samples, seed, truncation).double()
    mean = w.mean(0)
    cov = (w - mean).T @ (w - mean) / (len(w) - 1)
    variances, vectors = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(variances, descending=True)[:n_components]
    comps = _canonical_sign(vectors[:, order].T.contiguous())
    var = variances[order].clamp_min(0)
    total = float(variances.clamp_min(0).sum())
    return Directions(
        vectors=comps.float(), names=[f"pc{i}" for i in range(n_components)], method="ganspace",
        layers=None if layers is None else _as_range(layers), generator=generator_fingerprint(G),
        values=var.float(), scales=var.sqrt().float(), mean=mean.float(),
        meta={"n_samples": int(n_samples), "seed": seed, "truncation": truncation,
              "explained_variance_ratio": [float(v) / total for v in var] if total > 0 else None},
    )


# ----------------------------------------------------------------------------------------------- SeFa


def modulation_weights(G: Any, layers: Layers = None, include_torgb: bool = False) -> List[Tuple[str, int, torch.Tensor]]:
    """(module name, w+ row, effective weight [channels, style_dim]) of each styled layer whose row is in
    ``layers`` (all rows when None). ToRGB layers are left out unless asked: SeFa uses the convolutions."""
    g = stylegan_generator(G)
    found: List[Tuple[str, int, torch.Tensor]] = []

    def add(name: str, row: int, layer: Any) -> None:
        if layers is None or row in layers:
            mod = layer.conv.modulation
            found.append((name, row, (mod.weight * mod.scale).detach().float().cpu()))

    add("conv1", 0, g.conv1)
    if include_torgb:
        add("to_rgb1", 1, g.to_rgb1)
    for k, conv in enumerate(g.convs):
        add(f"convs.{k}", k + 1, conv)
    if include_torgb:
        for j, to_rgb in enumerate(g.to_rgbs):
            add(f"to_rgbs.{j}", 2 * j + 3, to_rgb)
    return found


def sefa(G: Any, layers: Layers = None, n_components: Optional[int] = None, include_torgb: bool = False) -> Directions:
    """Closed-form factorisation: eigenvectors of ``A^T A``, ``A`` = the modulation weights of the chosen layers
    stacked [sum of channels, style_dim], each row (one channel's affine map) normalised to unit length as in
    the SeFa paper, so that wide layers do not dominate by their scale. Ordered by decreasing eigenvalue."""
    g = stylegan_generator(G)
    rows = None if layers is None else _as_range(layers)
    found = modulation_weights(G, rows, include_torgb)
    if not found:
        raise ConfigError(f"no styled layer uses rows {_layers_text(rows)} of w+ (this generator has 0-{g.n_latent - 1})")
    a = torch.cat([w for _, _, w in found]).double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(a.T @ a)
    k = int(n_components or g.style_dim)
    if not 1 <= k <= int(g.style_dim):
        raise ConfigError(f"n_components must be in 1..{g.style_dim}, got {k}")
    order = torch.argsort(values, descending=True)[:k]
    comps = _canonical_sign(vectors[:, order].T.contiguous())
    return Directions(
        vectors=comps.float(), names=[f"sefa{i}" for i in range(k)], method="sefa", layers=rows,
        generator=generator_fingerprint(G), values=values[order].float(),
        meta={"modulations": [name for name, _, _ in found], "include_torgb": include_torgb},
    )


# ----------------------------------------------------------------------------------------------- measuring


@torch.no_grad()
def projection_std(G: Any, vectors: torch.Tensor, n_samples: int = 5000, seed: int = 0) -> torch.Tensor:
    """Standard deviation of sampled w along each unit vector [K]: the natural unit of a strength."""
    w = sample_w(G, n_samples, seed)
    return (w @ vectors.T).std(0)
