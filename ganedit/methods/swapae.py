"""swapae: the Swapping Autoencoder's official training (README §4 of conformance/swapae), on the engine.

Per step the batch is split in two, because the official loop alternates a D step and a G step and *each draws a
new minibatch*: one half feeds the D step (and the lazy R1 step), the other the G step. So ``batch`` here is twice
the official per-step batch. The swap pairs consecutive images ([a, b, c, d] -> [b, a, d, c]) and each step
reconstructs half of its images. With ``batch_layout = "pairs"`` (default) consecutive pairs alternate between the
D and G steps and the first image of each pair is reconstructed, so any number of processes (each with a multiple
of 4 images) uses the images one process would; layer noise and patch crops are drawn for the global batch
(``ctx``). ``"halves"`` is the official order (first half D, second half G, the first half of each reconstructed),
whose sets change with the per-process batch.

* D step (D + Dpatch): non-saturating loss on real (x1), rec (x0.5) and mix (x0.5); patch co-occurrence loss on
  (mean feature of 8 reference crops of real, crops of real / of mix), three independent crop draws.
* R1 every ``r1_every`` D steps: ``r1_every · mean(λ_R1/2·|∇D(x)|² + λ_patch_R1/4·(|∇real crops|² + |∇target
  crops|²))``.
* G step (E + G): L1(rec, real)·λ_L1 + GAN(rec)·0.5 + GAN(mix)·1.0 + patch GAN(mix)·λ_PatchGAN
  [+ colour swap·λ_color_swap, a ganedit addition, below].
* Adam lr 0.002, betas (0, 0.99) for E+G; D+Dpatch use lr·c and betas^c with c = r1_every/(r1_every+1).
  No EMA, no perceptual loss, no learning-rate decay (official). Random horizontal flips of the training images.

Architecture: ``preset`` names an official one (church256, ffhq512, ...; trained at ``size``), otherwise
``SwappingAutoencoder.small(size, width, ...)``.

CPU defaults (tuned for short runs on the synthetic world, ``ganedit train swapae --data synthetic:4000``): 64 px,
width 16, texture code 128, a 16x16 structure code, batch 16, and four settings changed: **lambda_L1 = 10**
(official 1), **lambda_color_swap = 30** with
**color_swap_warp = 3**, a term the official code does not have (``losses.color_swap_loss``: rebuild an image
from the structure code of a randomly recoloured copy and its own texture code, a swap whose answer is known;
``recolor.recolor``: with a warp, each region's colour is changed differently), **betas = (0.9, 0.99)** (official
(0, 0.99)) and a **GAN schedule**: no D step and no GAN term for the first ``gan_start_kimg`` = 150 thousand images,
then the GAN weights ramp up over ``gan_ramp_kimg`` = 10 thousand to the official 1 (official: the GAN from the
first step). Every other setting is the official one.

Why the last two (issue 17; 10-minute screens on one core, 200 held-out pairs, docs/training.md "Sharp results"):
with GAN weights of 0.1 (the default then) the D step, R1 and the G step's GAN terms took two thirds of each step (about 0.64 s
of 1.0 s) and left the reconstruction loss where it was at the same step (L1 0.214 with, 0.214 without, step 600);
without them a run takes 2.7x the steps in the same time (reconstruction 17.74 -> 18.92 dB, swap 14.11 -> 14.55
dB). Adam momentum 0.9 lowered both reconstruction losses at equal steps (step 500: L1 0.222 -> 0.216, colour
swap 0.281 -> 0.270). The GAN then starts on a decoder that already reconstructs, as VQGAN-style recipes do.

The GAN weights were 0.1 until issue 17's 2-hour runs showed that, once the GAN starts late, the official 1 costs
half a dB of PSNR and more than doubles the sharpness: an L1-trained decoder regresses to the mean of what it cannot place, and the adversarial terms
are what pay for detail (at 1 from the first step they bury a young autoencoder in texture noise, the screens
below). 2 hours on one core, 500 held-out pairs (docs/training.md "Loss balance over time"): GAN 0.1 throughout,
with a learning-rate decay over the last 40 minutes -> swap 15.22 dB, sharpness 0.20, reconstruction 21.58 dB;
0.1 then 1 for the last 40 minutes -> 14.70 dB, 0.46, 21.13 dB; 1 from the GAN's start (the defaults now) ->
14.67 dB, 0.53, 21.14 dB, the structure leak within 0.05 of the truth (0.301 against 0.254; 0.341 with 0.1).

Earlier measurements, on this project's shared 2-core CPU (1 thread, other jobs running), held-out swap PSNR
(colour transfer: 11.93 dB on 200 pairs, 11.96 on 500):

* lambda_L1: width 16, ~320 steps: the reconstruction L1 fell from 0.35 to 0.20 with 10 but stayed at 0.35 with 1
  (the GAN terms dominate early); an L1-only run (0.19) ignores the texture code.
* lambda_color_swap (GAN weights 1), 10 minutes each (~680 steps), 200 pairs: 0 -> 12.10 dB even after 2267 steps
  (the swaps are texture noise), 10 -> 12.72, 30 -> 13.28, 100 -> 13.13; 30 with lambda_L1 = 30 -> 12.78.
* GAN weights (lambda_color_swap 30), 30 minutes: 1 -> 12.64 dB on 500 pairs after 3565 steps (the swaps had
  turned into texture noise again); 0.3 -> 13.54 / 13.67 / 13.49 / 13.70 dB at steps 500 / 1000 / 1500 / 2000
  (200 pairs); 0.1 -> 13.69 dB on 500 pairs after 2563 steps (``benchmarks/bench_swapae_quality.py``).
* structure_downsampling 2 (a 16x16 structure code at 64 px instead of 8x8), same 30 minutes: swap 13.58 dB,
  reconstruction 19.96 dB (8x8: 18.68), structure leak R^2 0.245 (8x8: 0.314; ground truth 0.254).
* color_swap_warp (the runs above had 0: one colour cast per image), 12 minutes each, two runs side by side on
  one thread each (~1550 steps), 200 pairs: 0 -> 13.69 dB, 1 -> 13.91, 2 -> 14.85, 3 -> 15.10; 2 with
  lambda_color_swap 60 -> 15.06; 1 with structure_downsampling 2 -> 13.62 (1153 steps). A global colour cast
  teaches the texture code one colour per image; the synthetic world (like photos) paints each region its own.
* The shipped model: warp 3, 30 minutes on two threads, 500 pairs (``benchmarks/bench_swapae_quality.py``).
  8x8 structure code: 5083 steps, swap 15.60 dB, reconstruction 18.94 dB, leak R^2 0.396 (truth 0.254): a
  higher swap PSNR partly by carrying B's layout in the texture code (B itself scores 16.15 dB). 16x16 code
  (the default since): 4044 steps, swap 14.68 dB, reconstruction 19.69 dB, leak 0.279, A's layout visible in
  every swap.

* color_swap_light (off by default): the recoloured copy also gets a random brightness ramp (``recolor.relight``),
  so the light, an appearance factor like colour, cannot stay in the structure code. 10 minutes, 200 pairs, beside
  the defaults' screen run at the same time: 0.5 -> swap 14.74 dB (defaults 14.52; face 15.25 -> 15.63, hair
  14.90 -> 15.76), reconstruction 18.73 (18.88); 30 minutes -> swap 15.06 (14.94), reconstruction 20.53 (20.30),
  face and hair equal. Within run-to-run noise, so not a default.

CPU runs with two or more threads: ``GOMP_SPINCOUNT=100000 ganedit train swapae ...`` on a machine of your own
(``benchmarks/bench_wait_policy.py``): the CLI's default passive OpenMP waiting made this recipe's step 1.8x
slower on an idle 2-core machine. The shipped model's runs were started without it.

For the official recipe: ``--set lambda_L1=1 --set lambda_GAN=1 --set lambda_PatchGAN=1 --set
lambda_color_swap=0 --set betas=[0,0.99] --set gan_start_kimg=0 --set gan_ramp_kimg=0`` (and ``preset``/``size``
for the released architectures).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import nn

from ganedit.checks import OneOf, Range, adam_betas, channels, side
from ganedit.errors import ConfigError
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad
from ganedit.data.datasets import open_training_images
from ganedit.models.swapae import SwappingAutoencoder
from ganedit.models.swapae.model import OFFICIAL_PRESETS
from ganedit.models.swapae import losses as L
from ganedit.models.swapae.discriminators import rounded_log2
from ganedit.models.swapae.recolor import LIGHT_PARAMS, PARAMS, recolor, relight


def gan_factor(images_seen: int, start_kimg: float, ramp_kimg: float) -> float:
    """Scale of the GAN weights after ``images_seen`` images: 0 before ``start_kimg`` thousand images, then a linear
    ramp to 1 over ``ramp_kimg`` thousand (both 0: always 1, the official recipe). A pure function of the step's
    image count, so a resumed run continues on the same schedule."""
    past = images_seen / 1000.0 - start_kimg
    if past < 0:
        return 0.0
    return 1.0 if ramp_kimg <= 0 else min(1.0, past / ramp_kimg)


class SwapAE(Method):
    name = "swapae"
    description = "Swapping Autoencoder: structure/texture codes, official losses, patch co-occurrence D, lazy R1"
    defaults: Dict[str, Any] = {
        "size": 64,
        "preset": "",  # official architecture (church256, ffhq512, ffhq1024, ...); empty: the small model
        "width": 16,
        "structure_channels": 8,
        "structure_downsampling": 0,  # small model: 0 = a 16x16 structure code (2 at 64 px, 4 at 256 like the official models)
        "texture_channels": 128,
        "batch": 16,  # two halves of 8: one for the D step, one for the G step
        "steps": 5000,
        "lr": 0.002,
        "betas": [0.9, 0.99],  # official: [0, 0.99] (module docstring: momentum speeds up the reconstruction)
        "lambda_L1": 10.0,  # official: 1.0 (see the module docstring: 10 learns ~2x faster in short CPU runs)
        "lambda_GAN": 1.0,  # official; reached after gan_start_kimg (module docstring: 0.1 before issue 17's 2-hour runs)
        "lambda_PatchGAN": 1.0,  # official
        "lambda_R1": 10.0,
        "lambda_patch_R1": 1.0,
        "lambda_color_swap": 30.0,  # ganedit addition (losses.color_swap_loss); the official recipe: 0
        "color_swap_warp": 3.0,  # recolor(warp=): 0 = one colour cast per image; > 0 also recolours each region differently
        "color_swap_light": 0.0,  # relight(strength=) on the recoloured copy: > 0 also moves the light into the texture code
        "r1_every": 16,
        "gan_start_kimg": 150.0,  # ganedit addition: no D step and no GAN terms before this many images (official: 0)
        "gan_ramp_kimg": 10.0,  # ganedit addition: then the GAN weights grow linearly to their values over this many (official: 0)
        "patch_num_crops": 8,
        "patch_min_scale": 0.125,
        "patch_max_scale": 0.25,
        "patch_use_aggregation": True,
        "hflip": True,
        "batch_layout": "pairs",  # which images feed the D and G steps (module docstring); "halves" = official
        "snapshot_every": 500,
    }
    limits = {
        "size": side(16), "preset": OneOf(("",) + tuple(OFFICIAL_PRESETS)), "width": channels(),
        "structure_channels": channels(), "structure_downsampling": Range(0, 12, integer=True), "texture_channels": channels(),
        "betas": adam_betas(), "lambda_L1": Range(0), "lambda_GAN": Range(0), "lambda_PatchGAN": Range(0), "lambda_R1": Range(0),
        "lambda_patch_R1": Range(0), "lambda_color_swap": Range(0), "color_swap_warp": Range(0), "color_swap_light": Range(0, 1), "r1_every": Range(0, integer=True),
        "gan_start_kimg": Range(0), "gan_ramp_kimg": Range(0),
        "patch_num_crops": Range(1, 1024, integer=True), "patch_min_scale": Range(0, 1, above=True),
        "patch_max_scale": Range(0, 1, above=True), "patch_use_aggregation": OneOf((True, False)), "hflip": OneOf((True, False)),
    }

    @classmethod
    def check_config(cls, cfg: Dict[str, Any]) -> None:
        super().check_config(cfg)
        if cfg["patch_min_scale"] > cfg["patch_max_scale"]:
            raise ConfigError(f"swapae: patch_min_scale={cfg['patch_min_scale']} must not exceed patch_max_scale={cfg['patch_max_scale']}")
    snapshot_columns = 8

    def build_data(self) -> torch.utils.data.Dataset:
        return open_training_images(str(self.cfg["data"]), int(self.cfg["size"]), int(self.cfg["seed"]), who="swapae", skip_bad=bool(self.cfg["skip_bad"]))

    def weights(self, images_seen: int = -1) -> L.LossWeights:
        """The loss weights; with ``images_seen`` >= 0, the GAN weights of the schedule at that point of the run."""
        c = self.cfg
        gan = 1.0 if images_seen < 0 else gan_factor(images_seen, c["gan_start_kimg"], c["gan_ramp_kimg"])
        return L.LossWeights(c["lambda_L1"], c["lambda_GAN"] * gan, c["lambda_PatchGAN"] * gan, c["lambda_R1"], c["lambda_patch_R1"],
                             c["lambda_color_swap"])

    def make_model(self) -> SwappingAutoencoder:
        c = self.cfg
        if c["preset"]:
            crops = dict(patch_num_crops=c["patch_num_crops"], patch_min_scale=c["patch_min_scale"], patch_max_scale=c["patch_max_scale"],
                         patch_use_aggregation=c["patch_use_aggregation"])
            try:
                return SwappingAutoencoder.official(c["preset"], crop_size=c["size"], **crops)
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"swapae: {exc}") from None
        # A 16x16 structure code, as the official 256 px models have: at 64 px it kept the layout and leaked less
        # into the texture code than an 8x8 one (module docstring).
        downsampling = c["structure_downsampling"] or max(1, rounded_log2(c["size"]) - 4)
        return SwappingAutoencoder.small(c["size"], c["structure_channels"], c["texture_channels"], c["width"], structure_downsampling=downsampling,
                                         patch_num_crops=c["patch_num_crops"], patch_scale_range=[c["patch_min_scale"], c["patch_max_scale"]],
                                         patch_use_aggregation=c["patch_use_aggregation"])

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        c = self.cfg
        if c["batch"] % 4:
            raise ConfigError(f"swapae: batch must be a multiple of 4 (two even halves per rank), got {c['batch']}")
        model = self.make_model().to(device).train()
        b1, b2 = c["betas"]
        k = c["r1_every"] / (c["r1_every"] + 1) if c["r1_every"] > 0 else 1.0
        opt_g = torch.optim.Adam(list(model.G.parameters()) + list(model.E.parameters()), lr=c["lr"], betas=(b1, b2))
        opt_d = torch.optim.Adam(list(model.D.parameters()) + list(model.Dpatch.parameters()), lr=c["lr"] * k, betas=(b1**k, b2**k))
        return {"sae": model}, {"G": opt_g, "D": opt_d}

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        m: SwappingAutoencoder = self.nets["sae"]  # type: ignore[assignment]
        real = batch["image"] if isinstance(batch, dict) else batch
        n = real.shape[0]
        if n % 4:
            raise ConfigError(f"swapae: each rank needs a multiple of 4 images per step, got {n}")
        if self.cfg["hflip"]:
            flip = ctx.rand(n) < 0.5
            real = torch.where(flip.view(-1, 1, 1, 1), real.flip(3), real)
        d_rows, g_rows, rec_rows = self.layout(n, real.device)
        real_d, real_g = real[d_rows], real[g_rows]
        w = self.weights(ctx.images_seen)
        # Layer noise and patch crops come from the step's global-batch stream (ctx), not the per-process RNG.
        hw = (real.shape[2] // m.downsampling, real.shape[3] // m.downsampling)
        shapes = m.G.noise_shapes(hw)
        gen, disc = (m.E, m.G), (m.D, m.Dpatch)
        logs: Dict[str, Any] = {}

        adversarial = w.lambda_GAN > 0 or w.lambda_PatchGAN > 0
        if adversarial:  # (without GAN terms the recipe is a plain autoencoder and D has nothing to learn)
            set_requires_grad(gen, False)
            set_requires_grad(disc, True)
            m.num_discriminator_iters.add_(1)
            noise = {k: ctx.randn(real_d.shape[0], 1, *shape) for k, shape in shapes.items()}
            with ctx.autocast():
                d = L.discriminator_losses(m, real_d, w, noise=noise, rand=ctx.rand, rec_rows=rec_rows)
            ctx.optimize("D", L.total(d))
            logs.update({f"D/{k}": v.detach().mean() for k, v in d.items()})

        every = self.cfg["r1_every"]
        r1_on = (w.lambda_R1 > 0 and w.lambda_GAN > 0) or (w.lambda_patch_R1 > 0 and w.lambda_PatchGAN > 0)
        if r1_on and ctx.every(every):
            with ctx.autocast():
                r1 = L.r1_loss(m, real_d, w, rand=ctx.rand)["D_R1"].float().mean()
            ctx.optimize("D", r1 * every)
            logs["D/R1"] = r1.detach()

        recolored = None
        if w.lambda_color_swap > 0:  # drawn on every rank for the global batch (ctx.rand), like the flips
            source = L.select_rows(real_g, rec_rows)
            recolored = recolor(source, ctx.rand(source.shape[0], PARAMS), warp=float(self.cfg["color_swap_warp"]))
            if self.cfg["color_swap_light"] > 0:  # drawn after the recolouring's numbers: runs without it keep their stream
                recolored = relight(recolored, ctx.rand(source.shape[0], LIGHT_PARAMS), float(self.cfg["color_swap_light"]))
        set_requires_grad(disc, False)
        set_requires_grad(gen, True)
        noise = {k: ctx.randn(real_g.shape[0], 1, *shape) for k, shape in shapes.items()}
        with ctx.autocast():
            g, metrics = L.generator_losses(m, real_g, w, noise=noise, recolored=recolored, rand=ctx.rand, rec_rows=rec_rows)
        ctx.optimize("G", L.total(g))
        set_requires_grad(disc, True)
        logs.update({f"G/{k}": v.detach().mean() for k, v in g.items()})
        logs["metric/L1_dist"] = metrics["L1_dist"]
        return logs

    def layout(self, n: int, device: torch.device) -> Tuple[Any, Any, Any]:
        """(D-step rows, G-step rows, reconstructed rows within each) of a per-process batch of n images.

        "halves" (official): the first half feeds the D step, the second the G step, and each step reconstructs
        the first half of its images; these sets change when the global batch is cut into per-process shares.
        "pairs": consecutive pairs alternate between the D step (pairs 0, 2, ...) and the G step (1, 3, ...), and
        the first image of each pair is reconstructed; with a per-process batch that is a multiple of 4 every
        share keeps whole groups of four, so N processes use exactly the images one process would."""
        layout = self.cfg["batch_layout"]
        if layout == "halves":
            return slice(0, n // 2), slice(n // 2, n), None
        if layout == "pairs":
            pair = torch.arange(n, device=device) // 2
            return (pair % 2 == 0).nonzero().squeeze(1), (pair % 2 == 1).nonzero().squeeze(1), slice(0, None, 2)
        raise ConfigError(f"swapae: batch_layout must be pairs or halves, got {layout!r}")

    def snapshot(self, inputs: Any) -> torch.Tensor:
        """Rows of 8: the inputs, their reconstructions, and the swap (structure of image i, texture of its
        pair partner), with noise fixed by a private generator so snapshots are comparable across the run."""
        m: SwappingAutoencoder = self.nets["sae"]  # type: ignore[assignment]
        x = (inputs["image"] if isinstance(inputs, dict) else inputs)[:8]
        x = x[: x.shape[0] // 2 * 2]
        with eval_mode(m):
            sp, gl = m.encode(x)
            noise = m.make_noise(sp, torch.Generator(device=sp.device).manual_seed(0))
            rec = m.decode(sp, gl, noise)
            mix = m.decode(sp, m.swap_pairs(gl), noise)
        return torch.cat([x, rec, mix]).clamp(-1, 1)

    def export(self) -> nn.Module:
        return self.nets["sae"]
