"""The built-in synthetic world (DESIGN.md §4): face-like images rendered from known factors.

    st = sample_structure(8, seed=0)           # geometry: face position/size/yaw, eyes, mouth, hair, glasses, layout
    ap = sample_appearance(8, seed=0)          # per-region colours, background pattern, lighting (domain X)
    r = render(st, ap, 64)                     # any pairing: render(st, ap[perm]) swaps appearances
    r.image         [8, 3, 64, 64] in [-1, 1]
    r.segmentation  [8, 64, 64] int64, ids of CLASSES = background, skin, hair, eyes, lips, clothes, glasses
    r.sketch        [8, 1, 64, 64] in [-1, 1], dark region boundaries on white
    r.labels        discrete factors by name + "attributes" [8, len(ATTRIBUTES)]
    render(st, to_domain_y(ap))                # the paired domain Y (exact bijection; from_domain_y inverts it)
    render(frontalize(st), ap)                 # the frontal ground truth (yaw 0)

Determinism: image i of seed s is a pure function of (s, i) -- ``sample_structure(n, s, start=i)`` draws
images i .. i+n-1 -- and rendering is bit-identical however the batch is chunked. Training data uses seeds in
[0, 2**31); held-out data uses ``heldout_seed(s) = 2**31 + s``. ``ganedit.data.synthetic.export`` writes the
dataset layouts (``ganedit data synth``); ``ganedit.metrics.groundtruth`` scores methods against the truth.
"""
from ganedit.data.synthetic.factors import *  # noqa: F401,F403
from ganedit.data.synthetic.factors import __all__ as _factor_names
from ganedit.data.synthetic.render import CLASSES, SLOTS, Rendered, render

__all__ = list(_factor_names) + ["CLASSES", "SLOTS", "Rendered", "render"]
