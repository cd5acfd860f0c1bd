"""One module per tab; each has TITLE and build(ctx) (called inside a gr.Tab). The order of TABS is the
order in the UI; a new tab (e.g. invert & edit) is one more module named here."""
from __future__ import annotations

TABS = ("swap", "invert", "translate", "sample")
