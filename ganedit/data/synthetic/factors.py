"""The factors of the synthetic world: structure (geometry, layout) and appearance (colour, texture, light).

Both are batched dataclasses of tensors whose first dimension is the image. They are sampled independently,
so any structure can be rendered with any appearance (``render(structure_i, appearance_j)``).

Units: positions and sizes are in *image units*: the image spans [-1, 1] in x (left to right) and in y (top to
bottom) at every resolution. Feature sizes are relative to the face (``face_size`` is the half-height ``b`` of
the face ellipse, ``a = b * face_aspect`` its half-width).

Colours are HSV triples quantised to multiples of 1/4096 so that the domain mapping X -> Y (hue rotations by
dyadic amounts, value halving) is exact in float32 and its inverse restores the factors bit for bit.

Seeds (see ``ganedit.data.synthetic`` for the full convention): image ``i`` of seed ``s`` is a pure function
of (s, i) -- drawing it alone or in any batch gives the same factors.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Dict, List, Sequence, Tuple, Type, TypeVar

import torch

from ganedit.data.synthetic.random import indices, uniform_table

T = TypeVar("T", bound="FactorBatch")

HUE_STEPS = 4096  # hue, saturation and value live on this grid (exact arithmetic for the domain mapping)
ANGLE_STEPS = 64  # orientations are indices: pattern angle k * pi / 64, light angle k * 2 pi / 64

# Colour slots of Appearance.colors (dimension 1); the renderer derives shadows (neck, nose, brows) from them.
COLOR_SLOTS: Tuple[str, ...] = (
    "skin", "hair", "eyes", "lips", "clothes", "clothes_alt", "background", "background_alt", "background_far", "frame",
)
HAIR_KINDS: Tuple[str, ...] = ("short", "long", "bob", "bun")
BG_LAYOUTS: Tuple[str, ...] = ("plain", "floor", "panel")  # background layout: none, horizontal split, vertical split
BG_PATTERNS: Tuple[str, ...] = ("stripes", "checks", "dots", "gradient")
CLOTHES_PATTERNS: Tuple[str, ...] = ("plain", "stripes")
DOMAIN_X_PATTERNS = (0, 1, 3)  # domain X never has dots; its image under to_domain_y never has stripes


class FactorBatch:
    """Mixin for dataclasses whose fields are tensors with a leading batch dimension."""

    def __len__(self) -> int:
        return int(next(iter(self.tensors().values())).shape[0])

    def tensors(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __getitem__(self: T, index: Any) -> T:
        """Index or slice the batch: ``s[3:5]``, ``s[torch.tensor([0, 2])]``; an int keeps a batch of 1."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return type(self)(**{k: v[index] for k, v in self.tensors().items()})

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields replaced; python numbers are broadcast to the batch."""
        current = self.tensors()
        unknown = set(changes) - set(current)
        if unknown:
            raise KeyError(f"unknown factor(s) {sorted(unknown)} of {type(self).__name__}")
        out = dict(current)
        for k, new in changes.items():
            new = torch.as_tensor(new, dtype=current[k].dtype)
            out[k] = new.expand_as(current[k]).clone() if new.dim() < current[k].dim() else new
        return type(self)(**out)

    @classmethod
    def cat(cls: Type[T], batches: Sequence[T]) -> T:
        if not batches:
            raise ValueError(f"{cls.__name__}.cat needs at least one batch")
        names = batches[0].tensors().keys()
        return cls(**{k: torch.cat([b.tensors()[k] for b in batches], 0) for k in names})

    def equal(self, other: "FactorBatch") -> bool:
        return type(self) is type(other) and all(torch.equal(v, other.tensors()[k]) for k, v in self.tensors().items())

    def to_dict(self) -> Dict[str, list]:
        """Plain lists (JSON-serialisable), one entry per image."""
        return {k: v.tolist() for k, v in self.tensors().items()}

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        missing = set(fields) - set(data)
        if missing:
            raise KeyError(f"{cls.__name__}: missing factor(s) {sorted(missing)}")
        dtypes: Dict[str, torch.dtype] = cls.DTYPES  # type: ignore[attr-defined]
        return cls(**{k: torch.as_tensor(data[k], dtype=dtypes.get(k, torch.float32)) for k in fields})


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x * HUE_STEPS) / HUE_STEPS


# ------------------------------------------------------------------------------------------------ structure


@dataclasses.dataclass
class Structure(FactorBatch):
    """Geometry and layout; every field is a [N] tensor (float32 unless listed in DTYPES)."""

    face_x: torch.Tensor  # face centre, image units
    face_y: torch.Tensor
    face_size: torch.Tensor  # half-height b of the face ellipse
    face_aspect: torch.Tensor  # a / b
    yaw: torch.Tensor  # head turn in radians (positive: features move to the image's right); 0 = frontal
    eye_size: torch.Tensor  # half-width of an eye, relative to b
    eye_spacing: torch.Tensor  # half-distance between the eyes, relative to a
    eye_height: torch.Tensor  # eye line relative to b (negative: above the face centre)
    brow_raise: torch.Tensor  # gap between eye and brow, relative to b
    brow_tilt: torch.Tensor  # slope of the brows (positive: outer ends lower)
    nose_length: torch.Tensor  # relative to b
    mouth_width: torch.Tensor  # half-width, relative to a
    mouth_y: torch.Tensor  # relative to b (below the centre)
    smile: torch.Tensor  # mouth curvature: positive smiles, negative frowns
    lip_thickness: torch.Tensor  # relative to b
    hair_kind: torch.Tensor  # int64 index into HAIR_KINDS
    hair_volume: torch.Tensor  # hair ellipse / face ellipse
    fringe: torch.Tensor  # hairline height at the centre, relative to b (negative: above the centre)
    fringe_tilt: torch.Tensor  # side-swept fringe slope
    glasses: torch.Tensor  # int64 0/1
    glasses_size: torch.Tensor  # lens radius / eye half-width
    body_width: torch.Tensor  # shoulder half-width, image units
    neck_width: torch.Tensor  # relative to a
    bg_layout: torch.Tensor  # int64 index into BG_LAYOUTS
    bg_split: torch.Tensor  # where the background splits, in [0, 1)

    DTYPES: ClassVar[Dict[str, torch.dtype]] = {"hair_kind": torch.int64, "glasses": torch.int64, "bg_layout": torch.int64}


# Continuous structure factors: uniform in [lo, hi).
_STRUCTURE_RANGES: Dict[str, Tuple[float, float]] = {
    "face_x": (-0.12, 0.12), "face_y": (-0.16, 0.0), "face_size": (0.36, 0.47), "face_aspect": (0.72, 0.88),
    "yaw": (-0.5, 0.5), "eye_size": (0.13, 0.19), "eye_spacing": (0.32, 0.44), "eye_height": (-0.22, -0.06),
    "brow_raise": (0.08, 0.2), "brow_tilt": (-0.35, 0.35), "nose_length": (0.14, 0.26), "mouth_width": (0.24, 0.44),
    "mouth_y": (0.4, 0.56), "smile": (-0.6, 1.0), "lip_thickness": (0.035, 0.07), "hair_volume": (1.06, 1.2),
    "fringe": (-0.8, -0.4), "fringe_tilt": (-0.35, 0.35), "glasses_size": (1.25, 1.6), "body_width": (0.55, 0.9),
    "neck_width": (0.2, 0.3), "bg_split": (0.0, 1.0),
}
GLASSES_PROBABILITY = 0.35


def _seed_of(seed: "int | torch.Generator") -> int:
    """A seed, or a torch.Generator from which one seed is drawn (then chunking must reuse that seed)."""
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, HELDOUT_OFFSET, (1,), generator=seed))
    return int(seed)


def _index_of(u: torch.Tensor, count: int) -> torch.Tensor:
    return (u * count).floor().to(torch.int64).clamp_(max=count - 1)


def sample_structure(n: int, seed: "int | torch.Generator" = 0, start: int = 0) -> Structure:
    """Structure factors of images ``start .. start+n-1`` of ``seed`` (independent of n: chunking is free)."""
    names = list(_STRUCTURE_RANGES) + ["hair_kind", "glasses", "bg_layout"]
    u = uniform_table(_seed_of(seed), indices(n, start), ["structure." + k for k in names])
    col = {k: u[:, j] for j, k in enumerate(names)}
    fields = {k: lo + (hi - lo) * col[k] for k, (lo, hi) in _STRUCTURE_RANGES.items()}
    return Structure(
        **fields,
        hair_kind=_index_of(col["hair_kind"], len(HAIR_KINDS)),
        glasses=(col["glasses"] < GLASSES_PROBABILITY).to(torch.int64),
        bg_layout=_index_of(col["bg_layout"], len(BG_LAYOUTS)),
    )


# Seed convention: training data uses seeds in [0, 2**31); the held-out data of training seed s uses seed
# 2**31 + s. Images are pure functions of (seed, index), so the two sets share no image by construction.
HELDOUT_OFFSET = 1 << 31


def heldout_seed(seed: int = 0) -> int:
    """The held-out seed that goes with training seed `seed` (2**31 + seed)."""
    from ganedit.errors import ConfigError

    if not 0 <= int(seed) < HELDOUT_OFFSET:
        raise ConfigError(f"training seeds are integers in [0, 2**31), got {seed}")
    return HELDOUT_OFFSET + int(seed)


def frontalize(structure: Structure) -> Structure:
    """The frontal ground truth: the same structure with yaw 0 (DESIGN.md §4, frontalization task)."""
    return structure.replace(yaw=0.0)


# ----------------------------------------------------------------------------------------------- appearance


@dataclasses.dataclass
class Appearance(FactorBatch):
    """Colour, texture and light. ``colors`` is [N, len(COLOR_SLOTS), 3] HSV in [0, 1]; the rest are [N]."""

    colors: torch.Tensor
    bg_pattern: torch.Tensor  # int64 index into BG_PATTERNS
    bg_freq: torch.Tensor  # pattern cycles per image width
    bg_angle: torch.Tensor  # int64 k: pattern orientation k * pi / ANGLE_STEPS
    bg_phase: torch.Tensor  # pattern offset in cycles, [0, 1)
    clothes_pattern: torch.Tensor  # int64 index into CLOTHES_PATTERNS
    clothes_freq: torch.Tensor  # stripe cycles per image height
    light_angle: torch.Tensor  # int64 k: light comes from direction k * 2 pi / ANGLE_STEPS
    light_strength: torch.Tensor  # relative brightness change across the face, [0, 0.35]

    DTYPES: ClassVar[Dict[str, torch.dtype]] = {
        "bg_pattern": torch.int64, "bg_angle": torch.int64, "clothes_pattern": torch.int64, "light_angle": torch.int64,
    }

    def rgb(self) -> torch.Tensor:
        """[N, slots, 3] RGB in [0, 1]."""
        return hsv_to_rgb(self.colors)


# Hue ranges (lo, hi) per slot for domain X; None = any hue.
_HSV_RANGES: Dict[str, Tuple[Tuple[float, float] | None, Tuple[float, float], Tuple[float, float]]] = {
    "skin": ((0.025, 0.11), (0.2, 0.62), (0.35, 0.96)),
    "hair": ((0.02, 0.12), (0.3, 0.85), (0.08, 0.85)),
    "eyes": (None, (0.35, 0.9), (0.2, 0.65)),
    "lips": ((0.94, 1.02), (0.35, 0.8), (0.4, 0.85)),
    "clothes": (None, (0.2, 0.9), (0.2, 0.9)),
    "clothes_alt": (None, (0.0, 0.8), (0.55, 1.0)),
    "background": (None, (0.05, 0.55), (0.45, 0.95)),
    "background_alt": (None, (0.1, 0.7), (0.2, 0.95)),
    "background_far": (None, (0.05, 0.6), (0.25, 0.85)),
    "frame": (None, (0.0, 0.9), (0.05, 0.6)),
}


_APPEARANCE_RANGES: Dict[str, Tuple[float, float]] = {
    "bg_freq": (2.5, 6.0), "bg_phase": (0.0, 1.0), "clothes_freq": (5.0, 9.0), "light_strength": (0.0, 0.35),
}
_APPEARANCE_CHOICES = {"bg_pattern": len(DOMAIN_X_PATTERNS), "bg_angle": ANGLE_STEPS, "clothes_pattern": len(CLOTHES_PATTERNS), "light_angle": ANGLE_STEPS}
_EXTRA = ("hair.dyed", "hair.h_dyed", "bg_alt.dv", "frame.dv")


def _slot_ranges() -> torch.Tensor:
    """[3 (h, s, v), 2 (lo, hi), slots] ranges of the HSV draws."""
    rows = []
    for slot in COLOR_SLOTS:
        hue, sat, val = _HSV_RANGES[slot]
        rows.append([hue or (0.0, 1.0), sat, val])
    return torch.tensor(rows, dtype=torch.float32).permute(1, 2, 0)


_SLOT_RANGES = _slot_ranges()


def sample_appearance(n: int, seed: "int | torch.Generator" = 0, start: int = 0) -> Appearance:
    """Domain-X appearance factors of images ``start .. start+n-1`` of ``seed``."""
    hsv_names = [f"{slot}.{c}" for c in "hsv" for slot in COLOR_SLOTS]
    names = hsv_names + list(_EXTRA) + list(_APPEARANCE_RANGES) + list(_APPEARANCE_CHOICES)
    u = uniform_table(_seed_of(seed), indices(n, start), ["appearance." + k for k in names])
    col = {k: u[:, j] for j, k in enumerate(names)}
    k = len(COLOR_SLOTS)
    lo, hi = _SLOT_RANGES[:, 0], _SLOT_RANGES[:, 1]  # [3, slots]
    h, sat, val = (lo[c] + (hi[c] - lo[c]) * u[:, c * k : (c + 1) * k] for c in range(3))  # each [n, slots]
    hair, skin, bg = COLOR_SLOTS.index("hair"), COLOR_SLOTS.index("skin"), COLOR_SLOTS.index("background")
    # One in five has dyed hair of any hue.
    h[:, hair] = torch.where(col["hair.dyed"] < 0.2, col["hair.h_dyed"], h[:, hair])
    # The pattern stays visible: its value differs from the background's by at least 0.2.
    v_bg, j = val[:, bg], COLOR_SLOTS.index("background_alt")
    val[:, j] = torch.where(v_bg > 0.62, v_bg - 0.2 - 0.25 * col["bg_alt.dv"], val[:, j].clamp(min=v_bg + 0.2).clamp(max=1.0))
    # Glasses stay visible: frames are darker than the skin (or, on dark skin, lighter).
    v_skin, j = val[:, skin], COLOR_SLOTS.index("frame")
    val[:, j] = torch.where(v_skin > 0.55, v_skin - 0.3 - 0.25 * col["frame.dv"], (v_skin + 0.3 + val[:, j] * 0.1).clamp(max=1.0))
    colors = torch.stack([torch.remainder(_quantise(h), 1.0), _quantise(sat), _quantise(val)], 2)
    fields = {name: a + (b - a) * col[name] for name, (a, b) in _APPEARANCE_RANGES.items()}
    choice = {name: _index_of(col[name], count) for name, count in _APPEARANCE_CHOICES.items()}
    choice["bg_pattern"] = torch.tensor(DOMAIN_X_PATTERNS, dtype=torch.int64)[choice["bg_pattern"]]
    return Appearance(colors=colors, **fields, **choice)


# -------------------------------------------------------------------------------------------- domain X -> Y

# The fixed bijection that defines domain Y ("blue people in dim rooms with polka dots"):
#   hue + Y_HUE_SHIFT[slot] (mod 1), value * Y_VALUE_SCALE[slot], background pattern stripes <-> dots.
# Each shift is a multiple of 1/4096 and each scale a power of two, so forward and inverse are exact.
Y_HUE_SHIFT = {"skin": 0.5, "hair": 0.25, "lips": 0.5, "eyes": 0.0, "clothes": 0.0, "clothes_alt": 0.0,
               "background": 0.0, "background_alt": 0.0, "background_far": 0.0, "frame": 0.0}
Y_VALUE_SCALE = {"background": 0.5, "background_alt": 0.5, "background_far": 0.5}
Y_PATTERN_MAP = (2, 1, 0, 3)  # an involution on BG_PATTERNS: stripes <-> dots


def _hue_shift() -> torch.Tensor:
    return torch.tensor([Y_HUE_SHIFT.get(s, 0.0) for s in COLOR_SLOTS], dtype=torch.float32)


def _value_scale() -> torch.Tensor:
    return torch.tensor([Y_VALUE_SCALE.get(s, 1.0) for s in COLOR_SLOTS], dtype=torch.float32)


def to_domain_y(appearance: Appearance) -> Appearance:
    """Map domain-X appearance to domain Y (exact; :func:`from_domain_y` inverts it bit for bit)."""
    c = appearance.colors.clone()
    c[..., 0] = torch.remainder(c[..., 0] + _hue_shift(), 1.0)
    c[..., 2] = c[..., 2] * _value_scale()
    pattern = torch.tensor(Y_PATTERN_MAP, dtype=torch.int64)[appearance.bg_pattern]
    return appearance.replace(colors=c, bg_pattern=pattern)


def from_domain_y(appearance: Appearance) -> Appearance:
    """Inverse of :func:`to_domain_y`."""
    c = appearance.colors.clone()
    c[..., 0] = torch.remainder(c[..., 0] - _hue_shift(), 1.0)
    c[..., 2] = c[..., 2] / _value_scale()
    inverse = torch.empty(len(Y_PATTERN_MAP), dtype=torch.int64)
    inverse[torch.tensor(Y_PATTERN_MAP)] = torch.arange(len(Y_PATTERN_MAP))
    return appearance.replace(colors=c, bg_pattern=inverse[appearance.bg_pattern])


# ------------------------------------------------------------------------------------------------- colours


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """[..., 3] HSV in [0, 1] -> RGB in [0, 1] (elementwise, basic arithmetic only: exact across batching)."""
    h, s, v = hsv.unbind(-1)
    h6 = torch.remainder(h, 1.0) * 6.0
    # Each channel is v * (1 - s * clamp(min(k, 4 - k), 0, 1)) with k = (n + h6) mod 6 (n = 5, 3, 1 for R, G, B).
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        out.append(v * (1.0 - s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)))
    return torch.stack(out, -1)


# -------------------------------------------------------------------------------------------------- labels

ATTRIBUTES: Tuple[str, ...] = (
    "glasses", "smile", "yaw", "face_size", "eye_size", "mouth_width", "hair_long", "light_strength", "skin_value",
)


def attribute_vector(structure: Structure, appearance: Appearance) -> torch.Tensor:
    """[N, len(ATTRIBUTES)] float32: the attributes an attribute regressor is trained to read (DESIGN.md §4)."""
    return torch.stack(
        [
            structure.glasses.float(),
            structure.smile,
            structure.yaw,
            structure.face_size,
            structure.eye_size,
            structure.mouth_width,
            (structure.hair_kind == HAIR_KINDS.index("long")).float(),
            appearance.light_strength,
            appearance.colors[:, COLOR_SLOTS.index("skin"), 2],
        ],
        1,
    )


def labels(structure: Structure, appearance: Appearance) -> Dict[str, torch.Tensor]:
    """Per-image labels: the discrete factors by name plus the attribute vector ('attributes')."""
    return {
        "glasses": structure.glasses,
        "hair_kind": structure.hair_kind,
        "bg_layout": structure.bg_layout,
        "bg_pattern": appearance.bg_pattern,
        "clothes_pattern": appearance.clothes_pattern,
        "smile": structure.smile,
        "yaw": structure.yaw,
        "attributes": attribute_vector(structure, appearance),
    }


def continuous_ranges() -> Dict[str, Tuple[float, float]]:
    """The [lo, hi) range of every uniformly drawn continuous factor, structure and appearance (a copy)."""
    return {**_STRUCTURE_RANGES, **_APPEARANCE_RANGES}


def angle_table(steps: int, full_turn: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of k * full_turn / steps, computed once in float64 (orientations are table look-ups, so no
    transcendental function ever runs on a batch tensor whose chunking could change its rounding)."""
    k = [full_turn * j / steps for j in range(steps)]
    return (torch.tensor([math.cos(t) for t in k], dtype=torch.float32), torch.tensor([math.sin(t) for t in k], dtype=torch.float32))


__all__: List[str] = [
    "ANGLE_STEPS", "ATTRIBUTES", "Appearance", "BG_LAYOUTS", "BG_PATTERNS", "CLOTHES_PATTERNS", "COLOR_SLOTS",
    "HAIR_KINDS", "HELDOUT_OFFSET", "Structure", "heldout_seed", "attribute_vector", "continuous_ranges", "frontalize", "from_domain_y", "hsv_to_rgb", "labels",
    "sample_appearance", "sample_structure", "to_domain_y",
]
