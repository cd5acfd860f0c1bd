"""Layers built on :mod:`ganedit.ops`, shared by StyleGAN2, the Swapping Autoencoder, pSp and e4e.
Attribute names follow rosinality's stylegan2-pytorch so official state dicts load as they are."""
from ganedit.nn.discriminator import ConvLayer, ResBlock, minibatch_stddev
from ganedit.nn.equalized import Blur, Downsample, EqualConv2d, EqualLinear, FusedLeakyReLU, PixelNorm, Upsample
from ganedit.nn.styled import ConstantInput, ModulatedConv2d, NoiseInjection, StyledConv, ToRGB

__all__ = [
    "Blur", "ConstantInput", "ConvLayer", "Downsample", "EqualConv2d", "EqualLinear", "FusedLeakyReLU",
    "ModulatedConv2d", "NoiseInjection", "PixelNorm", "ResBlock", "StyledConv", "ToRGB", "Upsample", "minibatch_stddev",
]
