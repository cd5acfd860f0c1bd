"""Region masks drawn in the browser: the value of a gr.ImageEditor (the brushed layers over the image the model
reads) turned into the (1, 1, size, size) mask the Swapping Autoencoder's region edits take."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ganedit.errors import ConfigError

# a pixel is brushed when at least half covered: the brush's anti-aliased rim does not widen the region
PAINTED_ALPHA = 128


def editor_mask(value: Optional[Mapping[str, Any]], size: int) -> Optional[torch.Tensor]:
    """The brushed pixels of an ImageEditor value (``{"background", "layers", "composite"}``, numpy RGBA layers)
    as a (1, 1, size, size) float mask of 0 / 1; None when nothing is brushed. Layers of another size than the
    model's (a canvas the user resized) are resampled to it (nearest)."""
    layers = [] if not value else [np.asarray(layer) for layer in (value.get("layers") or []) if layer is not None]
    mask = torch.zeros(1, 1, size, size)
    for layer in layers:
        if layer.ndim != 3 or layer.shape[2] != 4:
            raise ConfigError(f"a brushed layer must be an RGBA image, got an array of shape {layer.shape}")
        painted = torch.from_numpy((layer[:, :, 3] >= PAINTED_ALPHA).astype(np.float32))[None, None]
        if painted.shape[-2:] != (size, size):
            painted = F.interpolate(painted, size=(size, size), mode="nearest")
        mask = torch.maximum(mask, painted)
    return mask if bool(mask.any()) else None


def mask_image(mask: torch.Tensor) -> np.ndarray:
    """A mask as a black / white uint8 [H, W, 3] image (what the UI shows as "region used")."""
    m = (mask.reshape(mask.shape[-2:]) > 0.5).to(torch.uint8).mul(255).numpy()
    return np.repeat(m[:, :, None], 3, axis=2)


def editor_value(image: Optional[np.ndarray]) -> Optional[dict]:
    """An ImageEditor value showing ``image`` with nothing brushed (to load a new structure image)."""
    if image is None:
        return None
    return {"background": image, "layers": [], "composite": image}
