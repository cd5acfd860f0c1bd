"""Quality metrics. Images are NCHW float tensors in [-1, 1] unless a function says otherwise."""
from ganedit.metrics.image import psnr, ssim

__all__ = ["psnr", "ssim"]
