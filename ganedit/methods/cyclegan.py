"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B with the official recipe.

G_A: A -> B and G_B: B -> A (resnet_9blocks, InstanceNorm, no dropout); D_A judges domain B, D_B domain A (70x70
PatchGAN, InstanceNorm). Generator loss: LSGAN terms for G_A and G_B, cycle L1 ``lambda_A`` = ``lambda_B`` = 10
(A -> B -> A and B -> A -> B), identity L1 0.5 * lambda (G_A(B) ~ B, G_B(A) ~ A). Each discriminator:
0.5 * (LSGAN(real) + LSGAN(fake from a pool of the 50 last generated images)). Adam lr 2e-4, betas (0.5, 0.999);
one optimiser for both generators and one for both discriminators; constant learning rate for the first half
of the steps, then linear decay to 0 (resumes at the same point: the schedule is a function of the step).

Data (``--data``): a folder with ``trainA/`` and ``trainB/`` (``<phase>A``/``<phase>B``), or ``synthetic:N``:
domain X as A and domain Y as B of the built-in synthetic world, drawn from independent factors (unpaired).

The exported model is a ``GeneratorPair``: ``ganedit translate --direction AtoB|BtoA`` picks G_A or G_B.
``ema_kimg`` > 0 (not in the official code; default 0 = the live generators) exports and snapshots exponential
moving averages of G_A and G_B with that half-life in thousands of images (docs/training.md, "Sharp results").

Example: ``ganedit train cyclegan --data synthetic:2000 --set crop_size=64 --set ngf=16 --steps 4000``.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.errors import ConfigError, DataError
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad
from ganedit.methods.pix2pix import check_translation_config, decay_start, gan_loss, plain_copy, synthetic_count, synthetic_pairs, transform_for
from ganedit.nn.global_batch import dropout_noise, make_world_size_invariant


class ImagePool:
    """The official image buffer: until it holds ``size`` images every generated image is stored and returned;
    afterwards each image is, with probability 1/2, swapped for a random stored one (which is returned and
    replaced by the new image), else returned as is. ``draws`` (N, 2) uniform numbers decide, per image, whether
    to swap (column 0 > 0.5) and which stored image (column 1); without them torch's global RNG is used.

    In training the pool is global: every process queries it with the whole batch (``ctx.gather``) and the same
    draws, so each holds the same pool a single process would and keeps its own share of the answer."""

    def __init__(self, size: int = 50) -> None:
        self.size = int(size)
        self.images: list = []

    def query(self, images: torch.Tensor, draws: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.size <= 0:
            return images
        out = []
        for i, image in enumerate(images.detach()):  # the pool works image by image; batches are small (official: 1)
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            swap, pick = (float(draws[i, 0]), float(draws[i, 1])) if draws is not None else (float(torch.rand(())), None)
            if swap > 0.5:
                k = min(int(pick * self.size), self.size - 1) if pick is not None else int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def query_global(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """This process's share of the pool's answer for the global batch (the same on any number of processes)."""
        n = images.shape[0]
        everyone = ctx.gather(images.detach())
        draws = ctx.gather(ctx.rand(n, 2))
        return self.query(everyone, draws)[ctx.rank * n:(ctx.rank + 1) * n]

    def state(self) -> Dict[str, Any]:
        return {"size": self.size, "images": torch.cat(self.images).cpu() if self.images else None}

    def load(self, state: Dict[str, Any], device: torch.device) -> None:
        images = state.get("images")
        self.images = [] if images is None else [im.unsqueeze(0).to(device) for im in images]


def open_unpaired_data(cfg: Dict[str, Any]) -> torch.utils.data.Dataset:
    spec = str(cfg["data"])
    if not spec:
        raise DataError("cyclegan: no training data given (use --data FOLDER with trainA/ and trainB/, or synthetic:N)")
    if spec.split(":")[0] == "synthetic":
        data = synthetic_pairs(synthetic_count(spec), int(cfg["crop_size"]), int(cfg["seed"]), paired=False)
        if cfg["direction"] == "BtoA":
            data.a, data.b = data.b, data.a
        return data
    from ganedit.data.datasets import UnalignedDataset

    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"{spec}: not a folder (cyclegan reads a folder with {cfg['phase']}A/ and {cfg['phase']}B/, or synthetic:N)")
    return UnalignedDataset(root, phase=str(cfg["phase"]), direction=str(cfg["direction"]), transform=transform_for(cfg), seed=int(cfg["seed"]),
                            skip_bad=bool(cfg["skip_bad"]))


class CycleGAN(Method):
    name = "cyclegan"
    description = "CycleGAN unpaired translation: two ResNet generators, two PatchGANs, LSGAN + cycle 10 + identity 0.5"
    defaults: Dict[str, Any] = {
        "netG": "resnet_9blocks",
        "netD": "basic",
        "n_layers_D": 3,
        "ngf": 64,
        "ndf": 64,
        "norm": "instance",
        "use_dropout": False,
        "upsample": "transposed",  # official; "resize" = nearest x2 + 3x3 conv (models/pix2pix.py UPSAMPLES)
        "input_nc": 3,
        "output_nc": 3,
        "init_gain": 0.02,
        "gan_mode": "lsgan",
        "lambda_A": 10.0,
        "lambda_B": 10.0,
        "lambda_identity": 0.5,
        "pool_size": 50,
        "lr": 2e-4,
        "beta1": 0.5,
        "batch": 1,
        "steps": 200000,
        "lr_schedule": "linear",
        "decay_from": 0.5,
        "direction": "AtoB",
        "phase": "train",
        "load_size": 286,
        "crop_size": 256,
        "preprocess": "resize_and_crop",
        "flip": True,
        "snapshot_n": 8,
        "ema_kimg": 0.0,  # official: no average (the exported generators are the live ones)
    }
    ema_networks = ("G_A", "G_B")
    ema_average_buffers = True  # with norm=batch the running statistics belong to the averaged weights
    snapshot_columns = 6  # (A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))) per row

    @classmethod
    def check_config(cls, cfg: Dict[str, Any]) -> None:
        check_translation_config(cfg, cls.name)

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        if cfg.get("lr_schedule") == "linear":
            cfg["lr_decay_start"] = decay_start(cfg)
        if cfg.get("direction") not in ("AtoB", "BtoA"):
            raise ConfigError(f"direction must be AtoB or BtoA, got {cfg.get('direction')!r}")
        if float(cfg.get("lambda_identity", 0)) > 0 and cfg.get("input_nc") != cfg.get("output_nc"):
            raise ConfigError("cyclegan: the identity loss needs input_nc == output_nc (or --set lambda_identity=0)")
        self.pool_A = ImagePool(int(cfg.get("pool_size", 50)))  # generated A images (for D_B)
        self.pool_B = ImagePool(int(cfg.get("pool_size", 50)))  # generated B images (for D_A)

    def build_data(self) -> torch.utils.data.Dataset:
        return open_unpaired_data(self.cfg)

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        from ganedit.models.pix2pix import define_D, define_G

        c = self.cfg
        g_args = dict(ngf=c["ngf"], norm=c["norm"], use_dropout=c["use_dropout"], init_gain=c["init_gain"], upsample=c["upsample"])
        # global-batch BatchNorm (norm=batch) and dropout masks (use_dropout): see ganedit.nn.global_batch
        G_A = make_world_size_invariant(define_G(c["netG"], c["input_nc"], c["output_nc"], **g_args).to(device)).train()
        G_B = make_world_size_invariant(define_G(c["netG"], c["output_nc"], c["input_nc"], **g_args).to(device)).train()
        d_args = dict(ndf=c["ndf"], n_layers_D=c["n_layers_D"], norm=c["norm"], init_gain=c["init_gain"])
        D_A = make_world_size_invariant(define_D(c["netD"], c["output_nc"], **d_args).to(device)).train()
        D_B = make_world_size_invariant(define_D(c["netD"], c["input_nc"], **d_args).to(device)).train()
        betas = (float(c["beta1"]), 0.999)
        opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=c["lr"], betas=betas)
        opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=c["lr"], betas=betas)
        return {"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B}, {"G": opt_G, "D": opt_D}

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        G_A, G_B, D_A, D_B = (self.nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        real_A, real_B = batch["A"], batch["B"]
        c = self.cfg
        mode, lam_A, lam_B, lam_idt = c["gan_mode"], float(c["lambda_A"]), float(c["lambda_B"]), float(c["lambda_identity"])
        logs: Dict[str, Any] = {}
        # G phase (first, as in the official optimize_parameters): discriminators frozen.
        set_requires_grad([D_A, D_B], False)
        with ctx.autocast(), dropout_noise(G_A, ctx.rand), dropout_noise(G_B, ctx.rand):
            fake_B = G_A(real_A)
            rec_A = G_B(fake_B)
            fake_A = G_B(real_B)
            rec_B = G_A(fake_A)
            loss_G_A = gan_loss(D_A(fake_B), True, mode)
            loss_G_B = gan_loss(D_B(fake_A), True, mode)
            loss_cycle_A = F.l1_loss(rec_A, real_A) * lam_A
            loss_cycle_B = F.l1_loss(rec_B, real_B) * lam_B
            loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B
            if lam_idt > 0:
                loss_idt_A = F.l1_loss(G_A(real_B), real_B) * lam_B * lam_idt
                loss_idt_B = F.l1_loss(G_B(real_A), real_A) * lam_A * lam_idt
                loss_G = loss_G + loss_idt_A + loss_idt_B
                logs.update({"G/idt_A": loss_idt_A.detach(), "G/idt_B": loss_idt_B.detach()})
        ctx.optimize("G", loss_G)
        # D phase: each D sees real images of its domain against generated ones drawn through the pool.
        set_requires_grad([D_A, D_B], True)
        pooled_B = self.pool_B.query_global(fake_B, ctx)
        pooled_A = self.pool_A.query_global(fake_A, ctx)
        with ctx.autocast():
            loss_D_A = 0.5 * (gan_loss(D_A(real_B), True, mode) + gan_loss(D_A(pooled_B), False, mode))
            loss_D_B = 0.5 * (gan_loss(D_B(real_A), True, mode) + gan_loss(D_B(pooled_A), False, mode))
        ctx.optimize("D", loss_D_A + loss_D_B)
        logs.update({"G/G_A": loss_G_A.detach(), "G/G_B": loss_G_B.detach(), "G/cycle_A": loss_cycle_A.detach(),
                     "G/cycle_B": loss_cycle_B.detach(), "D/D_A": loss_D_A.detach(), "D/D_B": loss_D_B.detach()})
        return logs

    def extra_state(self) -> Dict[str, Any]:
        return {"pool_A": self.pool_A.state(), "pool_B": self.pool_B.state()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.pool_A.load(state.get("pool_A", {}), self.device)
        self.pool_B.load(state.get("pool_B", {}), self.device)

    def snapshot_inputs(self, dataset: torch.utils.data.Dataset, n: int, generator: torch.Generator) -> Dict[str, torch.Tensor]:
        picks = torch.randperm(len(dataset), generator=generator)[:n].tolist()  # type: ignore[arg-type]
        items = [dataset[i] for i in picks]
        return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}

    def snapshot(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        G_A, G_B = self.ema.get("G_A", self.nets["G_A"]), self.ema.get("G_B", self.nets["G_B"])
        with eval_mode(G_A, G_B):
            fake_B, fake_A = G_A(inputs["A"]), G_B(inputs["B"])
            rows = [inputs["A"], fake_B, G_B(fake_B), inputs["B"], fake_A, G_A(fake_A)]
        return torch.stack(rows, 1).flatten(0, 1)

    def export(self) -> nn.Module:
        from ganedit.models.cyclegan import GeneratorPair

        return GeneratorPair.of(*(plain_copy(self.ema.get(name, self.nets[name])) for name in ("G_A", "G_B")))
