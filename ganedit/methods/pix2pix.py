"""pix2pix (Isola et al. 2017): paired translation A -> B with the official recipe.

G: U-Net (unet_256 by default; unet_<size> for other sizes), BatchNorm, dropout 0.5. D: 70x70 PatchGAN that sees
cat(A, B) (A first). Losses: D = 0.5 * (GAN(D(A, G(A)), fake) + GAN(D(A, B), real)); G = GAN(D(A, G(A)), real)
+ 100 * |G(A) - B|_1, vanilla (BCE-with-logits) GAN by default. Adam lr 2e-4, betas (0.5, 0.999) for both; the
learning rate is constant for the first half of the steps, then decays linearly to 0 (the official
n_epochs + n_epochs_decay schedule, measured in steps; ``decay_from`` sets the fraction). The schedule is a pure
function of the step, so a resumed run continues at the same point.

Data (``--data``): an aligned folder (each image A|B side by side, ``<root>/train`` or the folder itself), a
folder with ``A/`` and ``B/`` sub-folders of same-named images, or ``synthetic:N``: N pairs of the built-in
synthetic world, A rendered in domain X and B the same factors mapped to domain Y (the ground-truth task).

Several processes train exactly like one (``ganedit.nn.global_batch``): BatchNorm uses the statistics of the
global batch (the official ``--norm syncbatch``, on CPU/gloo as well as CUDA), and dropout masks are drawn for
the global batch from the step's noise stream (``ctx.rand``), not from each process's RNG.

Sizes follow the data by default (``load_size``/``crop_size`` 0, ``netG`` auto; ``ganedit/methods/pair_sizes.py``):
256 px pairs get the official 286 / 256 / unet_256, 64 px pairs 72 / 64 / unet_64.

Three switches that the official code does not have (defaults = official): ``upsample="resize"`` builds the
U-Net with nearest x2 + 3x3 convs instead of transposed convs (``models/pix2pix.py``), ``lambda_GAN`` weights
the adversarial term (0: L1 only, no D step), and ``ema_kimg`` > 0 exports (and snapshots) an exponential moving
average of G's weights and BatchNorm statistics with that half-life in thousands of images (0: the live G, as
official). docs/training.md ("Sharp results") has what each one measured.

Example: ``ganedit train pix2pix --data synthetic:2000 --steps 4000``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.checks import OneOf, Range, check_value, check_values, probability, side
from ganedit.errors import ConfigError, DataError
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad
from ganedit.nn.global_batch import dropout_noise, make_world_size_invariant, plain_copy

log = logging.getLogger(__name__)

GAN_MODES = ("vanilla", "lsgan", "wgangp")


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """The official GANLoss: vanilla = BCE with logits against 1/0, lsgan = MSE against 1/0, wgangp = -/+ mean."""
    if mode == "vanilla":
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return F.binary_cross_entropy_with_logits(prediction, target)
    if mode == "lsgan":
        return (prediction - (1.0 if target_is_real else 0.0)).square().mean()
    if mode == "wgangp":
        return -prediction.mean() if target_is_real else prediction.mean()
    raise ConfigError(f"gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)}")


def decay_start(cfg: Dict[str, Any]) -> int:
    """Step where the linear decay begins: ``decay_from`` * steps (official: n_epochs / (n_epochs + n_epochs_decay))."""
    fraction = float(cfg["decay_from"])
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"decay_from must be in [0, 1], got {fraction}")
    return int(round(int(cfg["steps"]) * fraction))


class PairTensors(torch.utils.data.Dataset):
    """In-memory A/B image tensors [N, 3, H, W]; items {"A", "B"} (paired when both come from the same index)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(self.a.shape[0], self.b.shape[0])

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"A": self.a[index % self.a.shape[0]], "B": self.b[index % self.b.shape[0]]}


def synthetic_count(spec: str, default: int = 2000) -> int:
    try:
        return int(spec.split(":")[1]) if ":" in spec else default
    except ValueError:
        raise DataError(f"bad synthetic spec {spec!r} (expected synthetic:N)") from None


def synthetic_pairs(count: int, size: int, seed: int = 0, paired: bool = True) -> PairTensors:
    """A: the synthetic world in domain X; B: domain Y. Paired: B renders the same structure with the mapped
    appearance of A (the known answer). Unpaired: B's factors are drawn from other seeds."""
    from ganedit.data.synthetic.factors import sample_appearance, sample_structure, to_domain_y
    from ganedit.data.synthetic.render import render

    structure, appearance = sample_structure(count, seed=seed), sample_appearance(count, seed=seed + 1)
    a = render(structure, appearance, size).image
    if not paired:
        structure, appearance = sample_structure(count, seed=seed + 2), sample_appearance(count, seed=seed + 3)
    b = render(structure, to_domain_y(appearance), size).image
    return PairTensors(a, b)


def transform_for(cfg: Dict[str, Any]):
    from ganedit.data.transforms import pix2pix_transform

    return pix2pix_transform(int(cfg["load_size"]), int(cfg["crop_size"]), str(cfg["preprocess"]), flip=bool(cfg["flip"]))


def open_paired_data(cfg: Dict[str, Any]) -> torch.utils.data.Dataset:
    spec = str(cfg["data"])
    if not spec:
        raise DataError("pix2pix: no training data given (use --data FOLDER or synthetic:N)")
    if spec.split(":")[0] == "synthetic":
        data = synthetic_pairs(synthetic_count(spec), int(cfg["crop_size"]), int(cfg["seed"]), paired=True)
        return PairTensors(data.b, data.a) if cfg["direction"] == "BtoA" else data
    from ganedit.data.datasets import AlignedDataset, PairedFolderDataset

    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"{spec}: not a folder (pix2pix reads an aligned A|B folder, a folder with A/ and B/, or synthetic:N)")
    seed = int(cfg["seed"])
    if (root / "A").is_dir() and (root / "B").is_dir():
        return PairedFolderDataset(root, phase=str(cfg["phase"]), direction=str(cfg["direction"]), transform=transform_for(cfg), seed=seed,
                                   skip_bad=bool(cfg["skip_bad"]))
    return AlignedDataset(root, phase=str(cfg["phase"]), direction=str(cfg["direction"]), transform=transform_for(cfg), seed=seed,
                          skip_bad=bool(cfg["skip_bad"]))


def translation_limits() -> Dict[str, Any]:
    """Allowed values of the keys pix2pix and CycleGAN share (imported late: the networks load only when used)."""
    from ganedit.data.transforms import PREPROCESS_MODES
    from ganedit.models.pix2pix import NORMS, TRANSLATION_LIMITS as NET

    return {
        "netD": OneOf(("basic", "n_layers", "pixel")), "n_layers_D": NET["n_layers"], "ngf": NET["ngf"], "ndf": NET["ndf"],
        "norm": OneOf(NORMS), "use_dropout": OneOf((True, False)), "upsample": NET["upsample"], "input_nc": NET["input_nc"], "output_nc": NET["output_nc"],
        "init_gain": NET["init_gain"], "gan_mode": OneOf(GAN_MODES), "lambda_L1": Range(0), "lambda_GAN": Range(0), "lambda_A": Range(0),
        "lambda_B": Range(0), "lambda_identity": Range(0), "pool_size": Range(0, 1 << 20, integer=True),
        "beta1": Range(0, 1, below=True), "decay_from": probability(), "direction": OneOf(("AtoB", "BtoA")),
        "load_size": side(0), "crop_size": side(0),  # 0: follow the data (pair_sizes)
        "preprocess": OneOf(PREPROCESS_MODES), "flip": OneOf((True, False)),
    }


def check_translation_config(cfg: Dict[str, Any], who: str) -> None:
    """The keys pix2pix and CycleGAN share, and the generator name, parsed without building anything."""
    from ganedit.models.pix2pix import TRANSLATION_LIMITS as NET, unet_num_downs

    check_values(cfg, translation_limits(), f"{who}: ")
    net = cfg["netG"]
    if net == "auto":  # filled in from the data (pair_sizes.py), which checks what it picks
        return
    if isinstance(net, str) and net.startswith("unet_"):
        check_value("netG depth", unet_num_downs(net), NET["num_downs"], f"{who}: {net}: ")
    elif isinstance(net, str) and net.startswith("resnet_") and net.endswith("blocks"):
        try:
            blocks = int(net[len("resnet_"):-len("blocks")])
        except ValueError:
            raise ConfigError(f"{who}: netG={net!r}: not a ResNet generator name (e.g. resnet_9blocks)") from None
        check_value("netG blocks", blocks, NET["n_blocks"], f"{who}: {net}: ")
    else:
        raise ConfigError(f"{who}: netG={net!r}: must be unet_<size> (unet_256, unet_128, ...) or resnet_<n>blocks")


class Pix2Pix(Method):
    name = "pix2pix"
    description = "pix2pix paired translation: U-Net G, PatchGAN D on cat(A, B), GAN + 100*L1 (official recipe)"
    defaults: Dict[str, Any] = {
        "netG": "auto",  # auto: unet_<crop_size> (unet_256 from 256 px up); see methods/pair_sizes.py
        "netD": "basic",
        "n_layers_D": 3,
        "ngf": 64,
        "ndf": 64,
        "norm": "batch",
        "use_dropout": True,
        "upsample": "transposed",  # official; "resize" = nearest x2 + 3x3 conv (models/pix2pix.py UPSAMPLES)
        "input_nc": 3,
        "output_nc": 3,
        "init_gain": 0.02,
        "gan_mode": "vanilla",
        "lambda_L1": 100.0,
        "lambda_GAN": 1.0,  # official: the GAN term is unweighted (1); 0 = an L1-only ablation (no D step)
        "lr": 2e-4,
        "beta1": 0.5,
        "batch": 1,
        "steps": 80000,
        "lr_schedule": "linear",
        "decay_from": 0.5,
        "direction": "AtoB",
        "phase": "train",
        "load_size": 0,  # 0: follow the data (crop * 286/256: 286 for 256 px pairs, 72 for 64 px)
        "crop_size": 0,  # 0: follow the data (the pairs' side, a power of two <= 256; 64 for synthetic:N)
        "preprocess": "resize_and_crop",
        "flip": True,
        "snapshot_n": 8,
        "ema_kimg": 0.0,  # official: no average (the exported G is the live one)
    }
    ema_networks = ("G",)
    ema_average_buffers = True  # the U-Net's BatchNorm statistics belong to the weights they were measured with
    snapshot_columns = 6  # two (A, G(A), B) triplets per row

    @classmethod
    def check_config(cls, cfg: Dict[str, Any]) -> None:
        check_translation_config(cfg, cls.name)

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        from ganedit.methods.pair_sizes import resolve_pair_sizes

        resolve_pair_sizes(cfg)
        if cfg.get("lr_schedule") == "linear":
            cfg["lr_decay_start"] = decay_start(cfg)  # the engine's schedule reads it; a pure function of cfg
        if cfg.get("direction") not in ("AtoB", "BtoA"):
            raise ConfigError(f"direction must be AtoB or BtoA, got {cfg.get('direction')!r}")

    def build_data(self) -> torch.utils.data.Dataset:
        return open_paired_data(self.cfg)

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        from ganedit.models.pix2pix import define_D, define_G

        c = self.cfg
        G = define_G(c["netG"], c["input_nc"], c["output_nc"], c["ngf"], c["norm"], c["use_dropout"], init_gain=c["init_gain"],
                     upsample=c["upsample"])
        D = define_D(c["netD"], c["input_nc"] + c["output_nc"], c["ndf"], c["n_layers_D"], c["norm"], init_gain=c["init_gain"])
        G = make_world_size_invariant(G.to(device)).train()
        D = make_world_size_invariant(D.to(device)).train()
        betas = (float(c["beta1"]), 0.999)
        return {"G": G, "D": D}, {"G": torch.optim.Adam(G.parameters(), lr=c["lr"], betas=betas),
                                  "D": torch.optim.Adam(D.parameters(), lr=c["lr"], betas=betas)}

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        G, D = self.nets["G"], self.nets["D"]
        real_A, real_B = batch["A"], batch["B"]
        mode = self.cfg["gan_mode"]
        with ctx.autocast(), dropout_noise(G, ctx.rand):
            fake_B = G(real_A)
        lambda_gan = float(self.cfg["lambda_GAN"])
        logs: Dict[str, Any] = {}
        if lambda_gan > 0:  # (without the GAN term D has nothing to teach: an L1-only ablation skips it)
            # D phase: real pairs against generated ones (the generator's output detached).
            set_requires_grad(D, True)
            with ctx.autocast():
                loss_D_fake = gan_loss(D(torch.cat([real_A, fake_B.detach()], 1)), False, mode)
                loss_D_real = gan_loss(D(torch.cat([real_A, real_B], 1)), True, mode)
                loss_D = 0.5 * (loss_D_fake + loss_D_real)
            ctx.optimize("D", loss_D)
            logs.update({"D/D_real": loss_D_real.detach(), "D/D_fake": loss_D_fake.detach()})
        # G phase: fool the updated D and stay close to B in L1.
        set_requires_grad(D, False)
        with ctx.autocast():
            loss_G_L1 = F.l1_loss(fake_B, real_B) * float(self.cfg["lambda_L1"])
            loss_G = loss_G_L1
            if lambda_gan > 0:
                loss_G_GAN = gan_loss(D(torch.cat([real_A, fake_B], 1)), True, mode)
                loss_G = loss_G + lambda_gan * loss_G_GAN
                logs["G/G_GAN"] = loss_G_GAN.detach()
        ctx.optimize("G", loss_G)
        set_requires_grad(D, True)
        return {**logs, "G/G_L1": loss_G_L1.detach()}

    def snapshot_inputs(self, dataset: torch.utils.data.Dataset, n: int, generator: torch.Generator) -> Dict[str, torch.Tensor]:
        picks = torch.randperm(len(dataset), generator=generator)[:n].tolist()  # type: ignore[arg-type]
        items = [dataset[i] for i in picks]
        return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}

    def snapshot(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        G = self.ema.get("G", self.nets["G"])
        with eval_mode(G):
            fake = G(inputs["A"])
        return torch.stack([inputs["A"], fake, inputs["B"]], 1).flatten(0, 1)

    def export(self) -> nn.Module:
        return plain_copy(self.ema.get("G", self.nets["G"]))
