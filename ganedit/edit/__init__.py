"""Editing operations on the codes of the models: each family gets one module (``ganedit.edit.swapae``: swap,
texture interpolation, texture-code PCA and mean-difference directions, structure-code region edits). StyleGAN2:
``latents`` (the latents file format; apply / interpolate / mix), ``projection`` (optimisation inversion), ``pti``
(pivotal tuning and its compact weight-difference files).

Modules are imported explicitly (``from ganedit.edit import swapae``) so that importing this package stays cheap.
"""

_LATENT_OPERATIONS = ("apply", "interpolate", "mix")


def __getattr__(name: str):
    """``ganedit.edit.apply`` / ``interpolate`` / ``mix``: the StyleGAN2 latent operations of ``latents``, imported
    on first use (so ``from ganedit import edit; edit.apply(w, direction, strength, layers)`` works without
    making ``import ganedit.edit`` load them)."""
    if name in _LATENT_OPERATIONS:
        from ganedit.edit import latents

        return getattr(latents, name)
    raise AttributeError(f"module 'ganedit.edit' has no attribute {name!r}")
