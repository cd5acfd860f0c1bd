"""Editing operations on the codes of the models: each family gets one module (``ganedit.edit.swapae``: swap,
texture interpolation, texture-code PCA and mean-difference directions, structure-code region edits). StyleGAN2:
``latents`` (the latents file format; apply / interpolate / mix), ``projection`` (optimisation inversion), ``pti``
(pivotal tuning and its compact weight-difference files).

Modules are imported explicitly (``from ganedit.edit import swapae``) so that importing this package stays cheap.
"""
