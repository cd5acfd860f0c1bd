"""Swapping Autoencoder (Park et al., NeurIPS 2020) with the official checkpoint layout."""
from ganedit.models.swapae.discriminators import ImageDiscriminator, PatchCooccurrenceDiscriminator, random_crops
from ganedit.models.swapae.model import OFFICIAL_PRESETS, SwappingAutoencoder, official_architecture, structure_to_rgb
from ganedit.models.swapae.networks import StructureTextureEncoder, SwapGenerator

__all__ = [
    "SwappingAutoencoder", "official_architecture", "OFFICIAL_PRESETS", "StructureTextureEncoder", "SwapGenerator",
    "ImageDiscriminator", "PatchCooccurrenceDiscriminator", "random_crops", "structure_to_rgb",
]
