"""tinygan: a small DCGAN-like unconditional GAN, the simplest complete recipe.

It exists to exercise the engine (tests, the overhead benchmark) and to show how a recipe is written:
two networks, two Adam optimisers, the non-saturating logistic loss, lazy R1 on the discriminator every
``r1_every`` steps, an EMA copy of the generator, fixed-latent snapshots and an exported generator that
``ganedit.load`` rebuilds. No batch-statistics layers, so a step on N processes is the step of one (to rounding).

Data: a folder or zip of images (``--data faces/``), or ``synthetic[:N]`` for N images of the built-in
synthetic world (when ``ganedit.data.synthetic`` is installed)."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.checks import OneOf, Range, adam_betas, channels as width, check_values, side
from ganedit.errors import ConfigError
from ganedit.data.datasets import open_training_images
from ganedit.formats.native import register_model
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad


def _levels(size: int) -> int:
    check_values({"size": size}, {"size": side(8)}, "tinygan: ")
    if size < 8 or size & (size - 1):
        raise ConfigError(f"tinygan: size must be a power of two >= 8, got {size}")
    return int(math.log2(size)) - 2  # 4x4 -> size x size


@register_model("tinygan.Generator")
class Generator(nn.Module):
    """z -> 4x4 features -> (nearest 2x upsample, 3x3 conv, leaky ReLU) per level -> 1x1 conv to RGB -> tanh."""

    def __init__(self, size: int = 32, z_dim: int = 64, channels: int = 64) -> None:
        super().__init__()
        check_values({"z_dim": z_dim, "channels": channels}, {"z_dim": width(), "channels": width()}, "tinygan: ")
        self.size, self.z_dim, self.channels = size, z_dim, channels
        self.fc = nn.Linear(z_dim, channels * 16)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(_levels(size)))
        self.to_rgb = nn.Conv2d(channels, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z), 0.2).view(z.shape[0], self.channels, 4, 4)
        for conv in self.blocks:
            x = F.leaky_relu(conv(F.interpolate(x, scale_factor=2.0, mode="nearest")), 0.2)
        return torch.tanh(self.to_rgb(x))

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n images in [-1, 1] from standard-normal latents."""
        device = self.fc.weight.device
        z = torch.randn(n, self.z_dim, generator=generator, device=device if generator is None else generator.device)
        return self(z.to(device))


@register_model("tinygan.Discriminator")
class Discriminator(nn.Module):
    """1x1 conv from RGB -> (3x3 conv, leaky ReLU, 2x average pool) per level -> linear on 4x4 -> logit."""

    def __init__(self, size: int = 32, channels: int = 64) -> None:
        super().__init__()
        check_values({"channels": channels}, {"channels": width()}, "tinygan: ")
        self.from_rgb = nn.Conv2d(3, channels, 1)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(_levels(size)))
        self.fc = nn.Linear(channels * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.from_rgb(x), 0.2)
        for conv in self.blocks:
            x = F.avg_pool2d(F.leaky_relu(conv(x), 0.2), 2)
        return self.fc(x.flatten(1)).squeeze(1)


class TinyGAN(Method):
    name = "tinygan"
    description = "tiny DCGAN-like GAN (engine tests, benchmark, example recipe)"
    defaults: Dict[str, Any] = {
        "size": 32,
        "z_dim": 64,
        "channels": 32,
        "batch": 16,
        "steps": 2000,
        "lr": 0.002,
        "optimizer": "adam",  # or sgd (Adam's first steps are sign-like, which magnifies rounding differences)
        "betas": [0.0, 0.99],
        "r1_gamma": 1.0,
        "r1_every": 4,
        "ema_kimg": 1.0,
    }
    limits = {
        "size": side(8), "z_dim": width(), "channels": width(), "optimizer": OneOf(("adam", "sgd")),
        "betas": adam_betas(), "r1_gamma": Range(0), "r1_every": Range(0, integer=True),
    }
    ema_networks = ("G",)

    def build_data(self) -> torch.utils.data.Dataset:
        return open_training_images(str(self.cfg["data"]), int(self.cfg["size"]), int(self.cfg["seed"]), default_count=1000, who="tinygan", skip_bad=bool(self.cfg["skip_bad"]))

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        c = self.cfg
        G = Generator(c["size"], c["z_dim"], c["channels"]).to(device)
        D = Discriminator(c["size"], c["channels"]).to(device)
        b1, b2 = c["betas"]
        # Lazy R1 runs every r1_every steps with its loss scaled by r1_every; StyleGAN2's correction of Adam's
        # lr and betas keeps the effective optimiser the same as with R1 on every step.
        k = c["r1_every"] / (c["r1_every"] + 1) if c["r1_every"] > 0 else 1.0
        if c["optimizer"] == "sgd":  # plain SGD (momentum b1): updates proportional to gradients
            opt_G = torch.optim.SGD(G.parameters(), lr=c["lr"], momentum=b1)
            opt_D = torch.optim.SGD(D.parameters(), lr=c["lr"] * k, momentum=b1)
        elif c["optimizer"] == "adam":
            opt_G = torch.optim.Adam(G.parameters(), lr=c["lr"], betas=(b1, b2))
            opt_D = torch.optim.Adam(D.parameters(), lr=c["lr"] * k, betas=(b1**k, b2**k))
        else:
            raise ConfigError(f"tinygan: optimizer must be adam or sgd, got {c['optimizer']!r}")
        return {"G": G, "D": D}, {"G": opt_G, "D": opt_D}

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch["image"] if isinstance(batch, dict) else batch

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        G, D = self.nets["G"], self.nets["D"]
        real = self._images(batch)
        n, z_dim = real.shape[0], self.cfg["z_dim"]

        # D phase: non-saturating logistic loss, G frozen.
        set_requires_grad(G, False)
        set_requires_grad(D, True)
        with ctx.autocast():
            fake = G(ctx.randn(n, z_dim))
            loss_D = F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()
        ctx.optimize("D", loss_D)
        logs: Dict[str, Any] = {"loss/D": loss_D.detach()}

        # Lazy R1 phase: gamma/2 * E|grad_x D(x)|^2 on reals, every r1_every steps, scaled by the interval.
        every = self.cfg["r1_every"]
        if self.cfg["r1_gamma"] > 0 and ctx.every(every):
            x = real.detach().requires_grad_(True)
            with ctx.autocast():
                score = D(x)
            (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
            r1 = grad.float().square().sum(dim=(1, 2, 3)).mean()
            ctx.optimize("D", r1 * (self.cfg["r1_gamma"] / 2 * every))
            logs["loss/R1"] = r1.detach()

        # G phase: D frozen.
        set_requires_grad(D, False)
        set_requires_grad(G, True)
        with ctx.autocast():
            loss_G = F.softplus(-D(G(ctx.randn(n, z_dim)))).mean()
        ctx.optimize("G", loss_G)
        set_requires_grad(D, True)
        logs["loss/G"] = loss_G.detach()
        return logs

    def snapshot_inputs(self, dataset: torch.utils.data.Dataset, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.cfg["z_dim"], generator=generator)

    def snapshot(self, inputs: torch.Tensor) -> torch.Tensor:
        G = self.ema.get("G", self.nets["G"])
        with eval_mode(G):
            return G(inputs)

    def export(self) -> nn.Module:
        return self.ema.get("G", self.nets["G"])
