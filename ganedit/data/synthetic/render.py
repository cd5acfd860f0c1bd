"""Rendering the synthetic world: factors -> image, segmentation, sketch.

How it stays fast (thousands of 64 px images per second on one core) and exact:
- Every shape is a *separable* soft field: an x part [n, 1, W] plus a y part [n, H, 1], both cheap, so a
  whole-image shape costs one broadcast add and one clamp. Ellipses use the first-order signed distance
  ``(R / 2) * (1 - q)`` (q the normalised squared radius, R the mean radius in pixels), which has slope one
  pixel per pixel at the boundary: a ~1 px anti-aliased edge at any resolution.
- Layers are composited front to back into per-slot coverage weights (``w = alpha * remaining``), so each
  pixel's colour is a weighted sum of a few slot colours, its class is the class of the slot of largest weight
  (one packed arg-max, see _render_chunk), and the sketch darkens where no slot covers a pixel alone.
- Only +, -, *, /, min, max, clamp, abs, floor/frac run on image-sized tensors: these are correctly rounded in
  the vectorised and the scalar code paths alike, so an image is bit-identical whatever batch it is rendered in.
  Trigonometry is replaced by table look-ups (orientations) and short polynomials (yaw).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Dict, Iterator, Optional, Tuple

import torch

from ganedit.data.synthetic.factors import (
    ANGLE_STEPS,
    BG_PATTERNS,
    COLOR_SLOTS,
    HAIR_KINDS,
    Appearance,
    Structure,
    angle_table,
    labels as factor_labels,
)

# Segmentation classes (ids are the index).
CLASSES: Tuple[str, ...] = ("background", "skin", "hair", "eyes", "lips", "clothes", "glasses")

# Coverage slots. The first STRUCTURAL_SLOTS are the structural regions (segmentation, sketch); the last two
# are the pattern "ink" of the wall and the clothes, split off afterwards so patterns never reach the sketch.
SLOTS: Tuple[str, ...] = (
    "wall", "floor", "clothes", "neck", "face", "nose", "hair", "brows", "white", "iris", "pupil", "lips", "frame",
    "wall_alt", "clothes_alt",
)
STRUCTURAL_SLOTS = 13
SLOT_CLASS: Tuple[int, ...] = (0, 0, 5, 1, 1, 1, 2, 2, 3, 3, 3, 4, 6, 0, 5)
_S = {name: i for i, name in enumerate(SLOTS)}

MIN_SIZE, MAX_SIZE = 32, 1024
_OFF = -1.0e4  # added to a field to switch a shape off for one image (no branches over images)

_PATTERN_COS, _PATTERN_SIN = angle_table(ANGLE_STEPS, torch.pi)
_LIGHT_COS, _LIGHT_SIN = angle_table(ANGLE_STEPS, 2 * torch.pi)

# Hair kinds: centre offset (x b), vertical radius scale, back-hair curtain bottom (x b below the face centre,
# or None), curtain half-width (x hair half-width), bun.
_HAIR = {
    "short": (-0.28, 0.86, None, 1.0, False),
    "long": (-0.06, 1.0, 3.5, 1.0, False),
    "bob": (-0.06, 1.0, 0.8, 1.06, False),
    "bun": (-0.28, 0.86, None, 1.0, True),
}


@dataclasses.dataclass
class Rendered:
    """image [N,3,H,W] float32 in [-1, 1]; segmentation [N,H,W] int64 (ids of CLASSES); sketch [N,1,H,W] in
    [-1, 1] (white paper 1, dark lines -1 on the visible region boundaries); labels: see factors.labels."""

    image: torch.Tensor
    segmentation: torch.Tensor
    sketch: torch.Tensor
    labels: Dict[str, torch.Tensor]


def _hair_table() -> torch.Tensor:
    rows = []
    for kind in HAIR_KINDS:
        dy, ry, bottom, width, bun = _HAIR[kind]
        rows.append([dy, ry, _OFF if bottom is None else bottom, width, 1.0 if bun else 0.0])
    return torch.tensor(rows, dtype=torch.float32)


_HAIR_TABLE = _hair_table()


# Shadow slots are darker versions of another slot's colour: their weights are folded into that slot
# (scaled) before colouring, which saves three multiply-adds over the image per shadow slot.
_SHADOWS = (("neck", "face", 0.8), ("nose", "face", 0.74), ("brows", "hair", 0.6))
_COLOUR_SLOTS = tuple(k for k, name in enumerate(SLOTS) if name not in {s[0] for s in _SHADOWS})


def _slot_colours(appearance: Appearance) -> torch.Tensor:
    """[n, len(_COLOUR_SLOTS), 3] RGB, doubled so that the weighted sum minus one lands in [-1, 1]."""
    rgb = appearance.rgb()
    c = {name: rgb[:, i] for i, name in enumerate(COLOR_SLOTS)}
    n = rgb.shape[0]
    const = lambda v: torch.tensor(v, dtype=torch.float32).expand(n, 3)  # noqa: E731
    by_slot = {
        "wall": c["background"], "floor": c["background_far"], "clothes": c["clothes"], "face": c["skin"],
        "hair": c["hair"], "white": const([0.95, 0.95, 0.92]), "iris": c["eyes"], "pupil": const([0.05, 0.05, 0.07]),
        "lips": c["lips"], "frame": c["frame"], "wall_alt": c["background_alt"], "clothes_alt": c["clothes_alt"],
    }
    return torch.stack([by_slot[SLOTS[k]] for k in _COLOUR_SLOTS], 1) * 2.0


class _Workspace:
    """Buffers reused by every chunk of one render call (fresh allocations of image-sized tensors page-fault,
    which costs more than the arithmetic): the remaining coverage, the slot weights and scratch planes."""

    def __init__(self, chunk: int, size: int) -> None:
        self.size = size
        self.rem = torch.empty(chunk, size, size)
        self.W = torch.empty(len(SLOTS), chunk, size, size)
        self.scratch = [torch.empty(chunk, size, size) for _ in range(3)]
        self.best = torch.empty(chunk, size, size, dtype=torch.int32)
        self.colour = torch.empty(chunk, 3, size, size)
        xs = (torch.arange(size, dtype=torch.float32) * 2.0 + 1.0) / size - 1.0  # pixel centres, image units
        self.X = xs.view(1, 1, size)
        self.Y = xs.view(1, size, 1)


class _Canvas:
    """One chunk of n images: views of the workspace, coordinates, and front-to-back compositing."""

    def __init__(self, ws: _Workspace, n: int) -> None:
        self.n, self.size = n, ws.size
        self.ppu = ws.size / 2.0  # pixels per image unit
        self.X, self.Y = ws.X, ws.Y
        self.rem = ws.rem[:n]
        self.W = ws.W[:, :n]
        self.written: set = set()  # slots holding a weight already (the first put writes, later ones add)
        self.t = [t[:n] for t in ws.scratch]
        self.best = ws.best[:n]
        self.colour = ws.colour[:n]

    def add(self, px: torch.Tensor, py: torch.Tensor, k: int = 0) -> torch.Tensor:
        """Scratch plane k := px + py (an x part [n,1,W] plus a y part [n,H,1], or any broadcastable pair)."""
        return torch.add(px, py, out=self.t[k])

    def sub(self, px: torch.Tensor, py: torch.Tensor, k: int = 0) -> torch.Tensor:
        return torch.sub(px, py, out=self.t[k])

    def put(self, slot: str, alpha: torch.Tensor) -> None:
        """Composite coverage `alpha` (a scratch plane, consumed) behind everything put so far."""
        k = _S[slot]
        if not self.written:  # the front layer: its weight is its alpha, and what remains is 1 - alpha
            self.W[k].copy_(alpha)
            torch.neg(alpha, out=self.rem).add_(1.0)
        elif k in self.written:
            w = alpha.mul_(self.rem)
            self.W[k].add_(w)
            self.rem.sub_(w)
        else:
            torch.mul(alpha, self.rem, out=self.W[k])
            self.rem.sub_(self.W[k])
        self.written.add(k)

    def ellipse(
        self, dx: torch.Tensor, dy: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, offset: float = 0.5
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x and y parts (pixels) of the first-order inside distance of an ellipse; dx [n,1,W], dy [n,H,1].
        The x part includes `offset`: with the default half pixel, clamp(x + y, 0, 1) is the coverage."""
        half_r = (rx * ry).sqrt() * (self.ppu / 2.0)
        return half_r * (1.0 - (dx / rx) ** 2) + offset, -half_r * (dy / ry) ** 2


def _v(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1)


def _min_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.minimum(x, y, out=x)


def _max_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.maximum(x, y, out=x)


def _alpha(field: torch.Tensor) -> torch.Tensor:
    """Coverage from a field that already holds inside-distance + 1/2 pixel (folded into its cheap parts)."""
    return field.clamp_(0.0, 1.0)


def _draw_face(cv: _Canvas, s: Structure) -> None:
    """All structural layers, front to back."""
    X, Y, ppu = cv.X, cv.Y, cv.ppu
    b = _v(s.face_size)
    a = b * _v(s.face_aspect)
    fx, fy = _v(s.face_x), _v(s.face_y)
    yaw = _v(s.yaw)
    sin_yaw = yaw - yaw**3 / 6.0  # polynomials, not torch.sin (see the module docstring)
    cos_yaw = 1.0 - yaw**2 / 2.0 + yaw**4 / 24.0
    shift = 0.55 * a * sin_yaw  # inner features slide across the face when it turns
    cxf = fx + shift
    ey = fy + _v(s.eye_height) * b
    es = _v(s.eye_spacing) * a * cos_yaw
    erx = _v(s.eye_size) * b
    ery = 0.62 * erx
    eye_dx = (X - cxf).abs_() - es  # both eyes at once: distance to the nearer eye centre
    eye_dy = Y - ey
    min_w = 0.6 / ppu  # thin strokes never fall below ~1 px of width

    # Glasses: two lens rings plus one bar (bridge and temple arms) at eye level.
    lens_rx = torch.minimum(_v(s.glasses_size) * erx, 0.9 * es)
    lens_ry = 0.8 * lens_rx
    rim = torch.clamp(0.035 * b, min=min_w) * ppu  # half-thickness in px
    on = torch.where(_v(s.glasses) > 0, 0.0, _OFF)
    lx, ly = cv.ellipse(eye_dx, eye_dy, lens_rx, lens_ry, offset=0.0)
    ring = cv.add(lx, ly).abs_().neg_().add_(rim + on + 0.5)
    dxc = (X - cxf).abs_()
    bridge_x = es - lens_rx + 0.3 * rim / ppu - dxc  # between the lenses
    temple_x = torch.minimum(dxc - (es + lens_rx * 0.97), a * 0.98 - dxc)  # lens edge to face edge
    bar_x = torch.maximum(bridge_x, temple_x) * ppu + (on + 0.5)
    bar_y = (rim + 0.5) - (Y - (ey - 0.25 * lens_ry)).abs_() * ppu
    cv.put("frame", _alpha(_max_(ring, torch.minimum(bar_x, bar_y, out=cv.t[1]))))

    # Hair ellipse (shared by the fringe and the back hair); per-kind parameters come from a table.
    hair = _HAIR_TABLE[s.hair_kind]
    vol = _v(s.hair_volume)
    hx = fx - 0.35 * shift
    hy = fy + _v(hair[:, 0]) * b
    hrx, hry = a * vol, b * vol * _v(hair[:, 1])
    hair_x, hair_y = cv.ellipse(X - hx, Y - hy, hrx, hry)
    t = (X - cxf) / a
    hairline = (fy + _v(s.fringe) * b + _v(s.fringe_tilt) * (X - cxf) + 0.9 * b * t * t) * ppu + 0.5
    fringe = _min_(cv.add(hair_x, hair_y), cv.sub(hairline, Y * ppu, 1))
    cv.put("hair", _alpha(fringe))

    # Eyes: pupil and iris clipped to the eye white.
    white_x, white_y = cv.ellipse(eye_dx, eye_dy, erx, ery)
    white = cv.add(white_x, white_y, 2)
    iris_r = 0.78 * ery
    for slot, r in (("pupil", 0.45 * iris_r), ("iris", iris_r)):
        px_, py_ = cv.ellipse(eye_dx, eye_dy, r, r)
        cv.put(slot, _alpha(_min_(cv.add(px_, py_), white)))
    cv.put("white", _alpha(white))

    # Brows: thick arcs above the eyes, tilted symmetrically.
    bw = 1.15 * erx
    u = eye_dx / bw
    brow_y = (ey - ery - _v(s.brow_raise) * b + 0.25 * erx * u * u + _v(s.brow_tilt) * erx * u) * ppu
    brow_t = torch.clamp(0.055 * b, min=min_w) * (1.0 - 0.4 * u * u) * ppu + 0.5
    brow = _min_(cv.sub(Y * ppu, brow_y).abs_().neg_().add_(brow_t), (bw - eye_dx.abs()) * ppu + 0.5)
    cv.put("brows", _alpha(brow))

    # Nose: a thin shadow stroke that turns further than the eyes.
    nose_ry = 0.5 * _v(s.nose_length) * b
    nose_x, nose_y = cv.ellipse(X - (fx + 1.25 * shift), Y - (ey + 0.06 * b + nose_ry), torch.clamp(0.05 * b, min=min_w), nose_ry)
    cv.put("nose", _alpha(cv.add(nose_x, nose_y)))

    # Lips: a curved band, thicker in the middle; smile bends the corners up.
    cxm = fx + 0.9 * shift
    mw = _v(s.mouth_width) * a * cos_yaw
    tm = (X - cxm) / mw
    mouth_y = (fy + _v(s.mouth_y) * b - _v(s.smile) * 0.3 * mw * tm * tm) * ppu
    lip_t = torch.clamp(_v(s.lip_thickness) * b, min=min_w) * (1.0 - 0.5 * tm * tm) * ppu + 0.5
    lips = _min_(cv.sub(Y * ppu, mouth_y).abs_().neg_().add_(lip_t), (mw - (X - cxm).abs()) * ppu + 0.5)
    cv.put("lips", _alpha(lips))

    # Face, neck.
    face_x, face_y = cv.ellipse(X - fx, Y - fy, a, b)
    cv.put("face", _alpha(cv.add(face_x, face_y)))
    # Ears: behind the face, they swing the other way from the features when the head turns.
    ear_dx = (X - (fx - 0.3 * shift)).abs_() - 0.96 * a * cos_yaw
    ear_x, ear_y = cv.ellipse(ear_dx, Y - (ey + 0.12 * b), 0.14 * a, 0.2 * b)
    cv.put("neck", _alpha(cv.add(ear_x, ear_y)))
    body_top = fy + b + 0.06
    neck_x = (_v(s.neck_width) * a - (X - fx).abs()) * ppu + 0.5
    neck_y = torch.minimum(Y - fy, body_top + 0.12 - Y) * ppu + 0.5
    cv.put("neck", _alpha(torch.minimum(neck_x, neck_y, out=cv.t[0])))

    # Back hair: the hair ellipse, a curtain down to the kind's length, and a bun on top.
    curtain_x = (_v(hair[:, 3]) * hrx - (X - hx).abs()) * ppu + 0.5
    curtain_y = torch.minimum(Y - hy, fy + _v(hair[:, 2]) * b - Y) * ppu + 0.5
    back = _max_(cv.add(hair_x, hair_y), torch.minimum(curtain_x, curtain_y, out=cv.t[1]))
    bun_r = 0.36 * b
    bun_x, bun_y = cv.ellipse(X - hx, Y - (hy - hry * 0.92), bun_r, bun_r)
    bun_x = bun_x + torch.where(_v(hair[:, 4]) > 0, 0.0, _OFF)
    cv.put("hair", _alpha(_max_(back, cv.add(bun_x, bun_y, 1))))

    # Clothes: the shoulders, a wide ellipse rising to just under the chin.
    body_ry = torch.full_like(b, 0.7)
    body_x, body_y = cv.ellipse(X - 0.6 * fx, Y - (body_top + body_ry), _v(s.body_width), body_ry)
    cv.put("clothes", _alpha(cv.add(body_x, body_y)))

    # Background layout: floor (below a horizontal line) or panel (right of a vertical line) or nothing.
    layout = _v(s.bg_layout)
    split = _v(s.bg_split)
    floor_y = torch.where(layout == 1, (Y - (0.05 + 0.6 * split)) * ppu, 0.0)
    floor_x = torch.where(layout == 2, (X - (-0.8 + 1.6 * split)) * ppu, 0.0) + torch.where(layout == 0, _OFF, 0.5)
    cv.put("floor", _alpha(cv.add(floor_x, floor_y)))
    cv.W[_S["wall"]].copy_(cv.rem)


def _stripes(t: torch.Tensor, period_px: torch.Tensor) -> torch.Tensor:
    """Soft 50 % stripes of a phase field t (cycles, positive), in place: 1 inside a stripe."""
    # |frac(t) - 1/2| is a triangle wave in [0, 1/2]; the stripe edge is where it crosses 1/4.
    return t.frac_().sub_(0.5).abs_().mul_(-period_px).add_(0.5 + 0.25 * period_px).clamp_(0.0, 1.0)


def _wall_pattern(cv: _Canvas, ap: Appearance) -> torch.Tensor:
    """Scratch plane 0 := the pattern coverage of the wall in [0, 1]; each kind runs on its own images only."""
    X, Y = cv.X, cv.Y
    out = cv.t[0]
    freq = ap.bg_freq / 2.0  # cycles per image unit
    cos, sin = _PATTERN_COS[ap.bg_angle], _PATTERN_SIN[ap.bg_angle]
    for kind, name in enumerate(BG_PATTERNS):
        idx = (ap.bg_pattern == kind).nonzero().flatten()
        m = idx.numel()
        if m == 0:
            continue
        t1, t2 = cv.t[1][:m], cv.t[2][:m]
        f, c, s_ = _v(freq[idx]), _v(cos[idx]), _v(sin[idx])
        period = _v(cv.size / ap.bg_freq[idx])  # pixels per cycle
        phase = _v(ap.bg_phase[idx])
        # Rotated phase fields u, v in cycles; + 64 keeps them positive so frac is the fractional part.
        u_x, u_y = f * c * X + (phase + 64.0), f * s_ * Y
        v_x, v_y = -f * s_ * X + 64.0, f * c * Y
        if name == "stripes":
            p = _stripes(torch.add(u_x, u_y, out=t1), period)
        elif name == "checks":
            su = _stripes(torch.add(u_x, u_y, out=t1), period)
            sv = _stripes(torch.add(v_x, v_y, out=t2), period)
            # Soft XOR of the two stripe sets: with a = 2 su - 1, b = 2 sv - 1, xor = (1 - a b) / 2.
            p = su.mul_(2.0).sub_(1.0).mul_(sv.mul_(2.0).sub_(1.0)).mul_(-0.5).add_(0.5)
        elif name == "dots":
            du = torch.add(u_x, u_y, out=t1).frac_().sub_(0.5)
            dv = torch.add(v_x, v_y, out=t2).frac_().sub_(0.5)
            radius = 0.28  # cycles
            half_r = period * (radius / 2.0)
            p = du.mul_(du).add_(dv.mul_(dv)).mul_(-half_r / radius**2).add_(half_r + 0.5).clamp_(0.0, 1.0)
        else:  # gradient: a ramp across the image along the orientation
            p = torch.add(0.45 * c * X + 0.5, 0.45 * s_ * Y, out=t1).clamp_(0.0, 1.0)
        out.index_copy_(0, idx, p)
    return out


def _clothes_pattern(cv: _Canvas, ap: Appearance) -> torch.Tensor:
    """[n,H,1] horizontal stripes (0 for plain clothes): cheap, a column is enough."""
    f = _v(ap.clothes_freq / 2.0)
    period = _v(cv.size / ap.clothes_freq)
    p = _stripes(f * cv.Y + 64.0, period)
    return p.mul_(_v((ap.clothes_pattern == 1).float()))


def _shade(cv: _Canvas, s: Structure, ap: Appearance, k: int) -> torch.Tensor:
    """Scratch plane k := the lighting factor: brighter towards the light, saturating a face-height away."""
    lx, ly = _v(_LIGHT_COS[ap.light_angle]), _v(_LIGHT_SIN[ap.light_angle])
    strength = _v(ap.light_strength)
    scale = strength / _v(s.face_size)
    g = cv.add(scale * lx * (cv.X - _v(s.face_x)), scale * ly * (cv.Y - _v(s.face_y)), k)
    return g.clamp_(-strength, strength).add_(1.0)


_SLOT_CLASS_BITS = torch.tensor(SLOT_CLASS[:STRUCTURAL_SLOTS], dtype=torch.int32).view(-1, 1, 1, 1)


def _render_chunk(ws: _Workspace, s: Structure, ap: Appearance, image: torch.Tensor, seg: torch.Tensor, sketch: torch.Tensor) -> None:
    n = len(s)
    cv = _Canvas(ws, n)
    _draw_face(cv, s)
    W = cv.W

    # Segmentation and sketch by one packed arg-max: non-negative floats order like their int32 bit patterns,
    # so writing the class id into the 3 lowest mantissa bits (a 1e-6 relative change of the weight) lets a
    # plain elementwise max over the slots return the largest weight and its class together.
    bits = W[:STRUCTURAL_SLOTS].view(torch.int32)
    bits.bitwise_and_(~7).bitwise_or_(_SLOT_CLASS_BITS)
    best = torch.amax(bits, 0, out=cv.best)
    seg.copy_(torch.bitwise_and(best, 7, out=cv.t[1].view(torch.int32)))  # int32 math, then widen
    # Sketch: where no region covers a pixel alone, a boundary passes through it.
    top = best.bitwise_and_(~7).view(torch.float32)
    torch.mul(top, 5.0, out=sketch[:, 0]).sub_(4.0).clamp_(-1.0, 1.0)

    # Patterns split the wall and the clothes weights into two colours each.
    wall_ink = W[_S["wall_alt"]]
    torch.mul(W[_S["wall"]], _wall_pattern(cv, ap), out=wall_ink)
    W[_S["wall"]].sub_(wall_ink)
    clothes_ink = W[_S["clothes_alt"]]
    torch.mul(W[_S["clothes"]], _clothes_pattern(cv, ap), out=clothes_ink)
    W[_S["clothes"]].sub_(clothes_ink)

    # Colour: weighted sum of the slot colours, all three channels per operation, then light and [-1, 1].
    for shadow, base, factor in _SHADOWS:
        W[_S[base]].add_(W[_S[shadow]].mul_(factor))
    colours = _slot_colours(ap)[:, :, :, None, None]  # [n, colour slots, 3, 1, 1]
    torch.mul(W[_COLOUR_SLOTS[0]][:, None], colours[:, 0], out=image)
    for j in range(1, len(_COLOUR_SLOTS)):
        image.add_(torch.mul(W[_COLOUR_SLOTS[j]][:, None], colours[:, j], out=cv.colour))
    image.mul_(_shade(cv, s, ap, 0)[:, None]).sub_(1.0).clamp_(-1.0, 1.0)


def _check(structure: Structure, appearance: Appearance, size: int) -> None:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"render size must be an integer from {MIN_SIZE} to {MAX_SIZE} px, got {size!r}")
    if len(structure) != len(appearance):
        raise ValueError(f"render needs as many structures as appearances, got {len(structure)} and {len(appearance)}")


def default_chunk(size: int) -> int:
    """Images per internal chunk: about 256k pixels per plane (fewer Python calls per image, planes still
    small enough to stay in the last-level cache)."""
    return max(1, (1 << 18) // (size * size))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Render on one intra-op thread: the planes are small, so threads add synchronisation, not speed (and on
    a busy machine an OpenMP barrier waiting for a descheduled thread costs 30x). Parallelise over processes."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def render(structure: Structure, appearance: Appearance, size: int = 64, *, chunk: Optional[int] = None) -> Rendered:
    """Render image i from structure[i] and appearance[i] (any pairing) at size x size pixels.

    Example: ``render(sample_structure(8, seed=1), sample_appearance(8, seed=2), 64).image``."""
    _check(structure, appearance, size)
    n = len(structure)
    image = torch.empty(n, 3, size, size)
    seg = torch.empty(n, size, size, dtype=torch.int64)
    sketch = torch.empty(n, 1, size, size)
    step = max(1, min(n, chunk or default_chunk(size)))
    ws = _Workspace(step, size)
    with torch.no_grad(), one_thread():
        for i in range(0, n, step):
            j = min(n, i + step)
            _render_chunk(ws, structure[i:j], appearance[i:j], image[i:j], seg[i:j], sketch[i:j])
    return Rendered(image, seg, sketch, factor_labels(structure, appearance))
