"""Quality metrics. Images are NCHW float tensors in [-1, 1] unless a function says otherwise.

- full-reference, per image pair: ``psnr``, ``ssim``, ``ms_ssim`` (``image``), ``lpips`` (``lpips``: pretrained
  AlexNet/VGG16 features read from local files), ``identity_similarity`` (``identity_net``: ArcFace IR-SE50 from a
  local file; with ``moco_net`` also the pSp/e4e similarity losses);
- distribution, between two sets: ``swd`` (``swd``: sliced Wasserstein distance on Laplacian-pyramid patches, no
  pretrained network), ``fid`` and ``kid`` (``fid``: Inception-v3 features from a local file, or any extractor).
"""
from ganedit.metrics.feature_distances import fid, fid_from_features, kid, kid_from_features
from ganedit.metrics.identity_net import IdentityLoss, identity_similarity, load_arcface
from ganedit.metrics.image import ms_ssim, psnr, ssim
from ganedit.metrics.inception import InceptionV3, load_inception
from ganedit.metrics.lpips_net import LPIPS, load_lpips, lpips
from ganedit.metrics.moco_net import MocoLoss, load_moco
from ganedit.metrics.sliced_wasserstein import SWDResult, swd
from ganedit.metrics.weights import MissingWeightsError, cache_dir

__all__ = [
    "psnr", "ssim", "ms_ssim", "lpips", "LPIPS", "load_lpips", "swd", "SWDResult", "fid", "kid",
    "fid_from_features", "kid_from_features", "InceptionV3", "load_inception", "MissingWeightsError", "cache_dir",
    "identity_similarity", "IdentityLoss", "load_arcface", "MocoLoss", "load_moco",
]
