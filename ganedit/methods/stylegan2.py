"""``ganedit train stylegan2``: StyleGAN2 (config-f layout, rosinality weights) with a configurable channel table.

Losses as in the paper and rosinality's train.py: non-saturating logistic loss, lazy R1 on reals every
``r1_every`` D steps, lazy path-length regularisation every ``pl_every`` G steps (on a batch shrunk by
``pl_batch_shrink``), style mixing with probability ``mixing`` (a per-sample random crossover row), an EMA
copy of G, and Adam (lr 0.002, betas (0, 0.99)) with the lazy-regularisation correction ``c = n / (n + 1)``
of lr and betas. ``r1_gamma`` < 0 selects StyleGAN2-ADA's resolution-scaled heuristic 0.0002 * size^2 / batch.

N processes compute the step of one process: latents, mixing, layer noise and path-length noise are drawn for the
global batch (``ctx``), the path-length running mean is updated from the global batch's lengths, and the
discriminator's minibatch-stddev groups are 4 consecutive samples (``mbstd_layout = "contiguous"``; the official
"strided" groups samples b, b + B/4, ... of the whole per-process batch). This needs a per-process batch that is a
multiple of 4 and of ``pl_batch_shrink`` (a warning says when it is not).

Example (CPU, the built-in synthetic world at 32 px)::

    ganedit train stylegan2 --data synthetic:5000 --set size=32 --set steps=20000 --out runs/sg2-32
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Tuple

import torch
from torch import nn

from ganedit.checks import MAX_DEPTH, Range, adam_betas, channels, probability, side
from ganedit.errors import ConfigError
from ganedit.losses.stylegan2 import d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad
from ganedit.models.stylegan2 import Discriminator, Generator, StyleGAN2


class StyleGAN2Method(Method):
    name = "stylegan2"
    description = "StyleGAN2 (non-saturating loss, lazy R1 and path length, style mixing, EMA) at any size"
    defaults: Dict[str, Any] = {
        "size": 32,
        "style_dim": 128,
        "n_mlp": 4,
        "channel_base": 4096,  # channels(res) = min(channel_base / res, channel_max); 16384*2 and 512 = config-f
        "channel_max": 128,
        "lr_mlp": 0.01,
        "batch": 16,
        "steps": 20000,
        "lr": 0.002,
        "betas": [0.0, 0.99],
        "r1_gamma": -1.0,  # < 0: 0.0002 * size^2 / batch (StyleGAN2-ADA); rosinality uses 10 at 256 px, batch 16 x 2
        "r1_every": 16,
        "pl_weight": 2.0,
        "pl_every": 4,
        "pl_batch_shrink": 2,
        "pl_decay": 0.01,
        "mixing": 0.9,
        "ema_kimg": 5.0,
        "mbstd_layout": "contiguous",  # minibatch-stddev groups of consecutive samples; "strided" = official
    }
    limits = {
        "size": side(4), "style_dim": channels(), "n_mlp": Range(0, MAX_DEPTH, integer=True),
        "channel_base": Range(1, None, integer=True), "channel_max": channels(), "lr_mlp": Range(0, None, above=True),
        "betas": adam_betas(), "r1_gamma": Range(), "r1_every": Range(0, integer=True),  # r1_gamma < 0: automatic
        "pl_weight": Range(0), "pl_every": Range(0, integer=True), "pl_batch_shrink": Range(1, integer=True),
        "pl_decay": probability(), "mixing": probability(),
    }
    ema_networks = ("G",)

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        self.mean_path_length = torch.zeros(())

    def _r1_gamma(self) -> float:
        gamma = float(self.cfg["r1_gamma"])
        return 0.0002 * self.cfg["size"] ** 2 / self.cfg["batch"] if gamma < 0 else gamma

    def build_data(self) -> torch.utils.data.Dataset:
        from ganedit.data.datasets import open_training_images

        return open_training_images(str(self.cfg["data"]), int(self.cfg["size"]), int(self.cfg["seed"]), who="stylegan2", skip_bad=bool(self.cfg["skip_bad"]))

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        c = self.cfg
        table = dict(channel_base=c["channel_base"], channel_max=c["channel_max"])
        G = Generator(c["size"], c["style_dim"], c["n_mlp"], lr_mlp=c["lr_mlp"], **table).to(device)
        D = Discriminator(c["size"], stddev_layout=c["mbstd_layout"], **table).to(device)
        if c["pl_batch_shrink"] < 1:
            raise ConfigError("stylegan2: pl_batch_shrink must be >= 1")
        self._check_invariance(D.stddev_group)
        b1, b2 = c["betas"]
        opts = {}
        for name, net, every in (("G", G, c["pl_every"]), ("D", D, c["r1_every"])):
            k = every / (every + 1) if every > 0 else 1.0
            opts[name] = torch.optim.Adam(net.parameters(), lr=c["lr"] * k, betas=(b1**k, b2**k))
        return {"G": G, "D": D}, opts

    def _check_invariance(self, group: int) -> None:
        """Say when the per-process batch makes N processes differ from one (module docstring)."""
        import torch.distributed as dist

        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        batch, local, c = int(self.cfg["batch"]), int(self.cfg["batch"]) // world, self.cfg
        problems = []
        if c["mbstd_layout"] != "contiguous" and world > 1:
            problems.append("mbstd_layout strided groups samples across the whole per-process batch")
        elif local % min(local, group) or min(local, group) != min(batch, group):
            problems.append(f"the per-process batch {local} is not a multiple of the minibatch-stddev group {group}")
        if c["pl_weight"] > 0 and local % int(c["pl_batch_shrink"]):
            problems.append(f"the per-process batch {local} is not a multiple of pl_batch_shrink {c['pl_batch_shrink']}")
        if problems and world > 1:
            warnings.warn(f"stylegan2: {world} processes will not train exactly like one: {'; '.join(problems)}", stacklevel=2)

    def _noise(self, G: Generator, n: int, ctx: StepContext) -> list:
        """Per-layer noise maps for n samples, drawn for the global batch (as ``noise="random"``, but the same
        whatever the number of processes)."""
        return [ctx.randn(n, 1, *getattr(G.noises, f"noise_{k}").shape[-2:]) for k in range(G.num_layers)]

    # -- latents -------------------------------------------------------------------------------------------
    def _wplus(self, G: Generator, n: int, ctx: StepContext) -> torch.Tensor:
        """w+ for n samples; with probability `mixing` a sample switches from w1 to w2 at a random row."""
        z = ctx.randn(n, 2, self.cfg["style_dim"])
        w = G.mapping(z)  # [n, 2, dim]
        u = ctx.rand(n, 2)
        cutoff = torch.where(u[:, 0] < self.cfg["mixing"], 1 + (u[:, 1] * (G.n_latent - 1)).long(), torch.full_like(u[:, 1], G.n_latent).long())
        rows = torch.arange(G.n_latent, device=w.device)[None, :, None]
        return torch.where(rows < cutoff[:, None, None], w[:, :1], w[:, 1:])

    # -- one step ------------------------------------------------------------------------------------------
    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        G, D = self.nets["G"], self.nets["D"]
        real = batch["image"] if isinstance(batch, dict) else batch
        n = real.shape[0]
        logs: Dict[str, Any] = {}

        set_requires_grad(G, False)
        set_requires_grad(D, True)
        with ctx.autocast():
            fake = G.synthesis(self._wplus(G, n, ctx), noise=self._noise(G, n, ctx))
            loss_d = d_logistic_loss(D(real), D(fake))
        ctx.optimize("D", loss_d)
        logs["loss/D"] = loss_d.detach()

        if ctx.every(self.cfg["r1_every"]):
            x = real.detach().requires_grad_(True)
            with ctx.autocast():
                logits = D(x)
            r1 = r1_penalty(logits, x)
            # the 0 * logits term keeps every D output in the graph (DDP needs the same parameters each phase)
            ctx.optimize("D", self._r1_gamma() / 2 * r1 * self.cfg["r1_every"] + 0 * logits.sum())
            logs["loss/R1"] = r1.detach()

        set_requires_grad(G, True)
        set_requires_grad(D, False)
        with ctx.autocast():
            loss_g = g_nonsaturating_loss(D(G.synthesis(self._wplus(G, n, ctx), noise=self._noise(G, n, ctx))))
        ctx.optimize("G", loss_g)
        logs["loss/G"] = loss_g.detach()

        if self.cfg["pl_weight"] > 0 and ctx.every(self.cfg["pl_every"]):
            m = max(1, n // self.cfg["pl_batch_shrink"])
            wplus = self._wplus(G, m, ctx)
            with ctx.autocast():
                images = G.synthesis(wplus, noise=self._noise(G, m, ctx))
            penalty, self.mean_path_length, mean = path_length_penalty(
                images, wplus, self.mean_path_length.to(images.device), self.cfg["pl_decay"],
                noise=ctx.randn(*images.shape), gather=ctx.gather,
            )
            ctx.optimize("G", self.cfg["pl_weight"] * self.cfg["pl_every"] * penalty + 0 * images[:, 0, 0, 0].sum())
            logs["loss/path_length"] = penalty.detach()
            logs["path_length/mean"] = mean
        set_requires_grad(D, True)
        return logs

    # -- snapshots, state, export --------------------------------------------------------------------------
    def snapshot_inputs(self, dataset: torch.utils.data.Dataset, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.cfg["style_dim"], generator=generator)

    def snapshot(self, inputs: torch.Tensor) -> torch.Tensor:
        G = self.ema.get("G", self.nets["G"])
        with eval_mode(G):
            return G.synthesis(G.mapping(inputs), noise="const")

    def extra_state(self) -> Dict[str, Any]:
        return {"mean_path_length": self.mean_path_length.detach().cpu()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.mean_path_length = state.get("mean_path_length", torch.zeros(()))

    def export(self) -> nn.Module:
        """g_ema + latent_avg (and D) in the same layout as a converted rosinality checkpoint."""
        G = self.ema.get("G", self.nets["G"])
        D = self.nets["D"]
        model = StyleGAN2(generator=G.config, discriminator=D.config).to(next(G.parameters()).device)
        model.g_ema.load_state_dict(G.state_dict())
        model.d.load_state_dict(D.state_dict())
        model.latent_avg.copy_(G.mean_latent(4096, seed=0).reshape(-1))
        return model.eval()
