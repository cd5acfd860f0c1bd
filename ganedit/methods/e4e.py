"""``ganedit train e4e``: encoder4editing on the pSp recipe (conformance/stylegan2/README.md §5, the e4e paper).

On top of pSp's reconstruction losses (L2 1.0, LPIPS 0.8 when its weights are present; e4e keeps these defaults for
every task, pSp's per-task table does not apply):
- progressive training: stage k (k offsets active) starts at ``progressive_steps[k]`` = ``progressive_start`` +
  (k - 1) * ``progressive_step_every`` (stage 0, a single w, from step 0). The stage is a function of the step,
  so resuming across a stage change is exact. Official defaults are 20000 / 2000 for 300k-step FFHQ runs; the
  small-world defaults here are 500 / 100 (all offsets of an 18-row model active after 2100 steps of 3000).
- the delta regulariser ``delta_norm_lambda`` (2e-4) * sum_i ||w_i - w_0|| while offsets are being unlocked;
- the latent discriminator (λ ``w_discriminator_lambda`` 0.1): a non-saturating loss on the active rows of the
  encoded w+, the discriminator trained on one random active row per sample (as the official pool picks its
  candidate; w0 alone would leave the offset rows unjudged) against real w = mapping(z) through pools of
  ``w_pool_size`` (50) codes, R1 (γ ``r1`` 10) every ``d_reg_every`` (16) steps, its own Adam at
  ``w_discriminator_lr`` (2e-4; official 2e-5, see below). Its fake w include latent_avg, as the codes the decoder
  gets (the official Coach feeds it the encoder output before latent_avg is added, while the encoder's loss scores
  w with it).
- the similarity loss ``similarity_lambda`` (0.5, the official FFHQ command's ``id_lambda``) * (1 - cos): with
  ``similarity=id`` the ArcFace IR-SE50 identity of the face crop (faces; the official choice for ffhq/celeba data),
  with ``similarity=moco`` MoCo v2 ResNet-50 features of the whole image (other domains; the official choice for
  any other dataset type). Both read local weights (``id_weights`` / ``moco_weights`` or $GANEDIT_CACHE); when
  they are missing the log says "identity loss skipped: ..." (or "MoCo similarity loss skipped: ...") and the
  run trains without the term.

Staying close to W in a small world (issue 14; docs/training.md "e4e in a small world"): the official
discriminator lr 2e-5 is paced for 300k steps; a CPU run has a few thousand, in which the discriminator hardly
leaves its initialisation, so the default here is 2e-4. 200-step runs warm-started from a 3614-step e4e (the
shipped 64 px generator, in-domain images; W distance 1 = sampled w, pSp 2.20): the discriminator on w0 only
(the old code) at 2e-5 -> 2.23, at 2e-4 -> 3.23 (a stronger w0-only discriminator is fooled harder on the
offset rows); on every active row at 2e-5 -> 1.90 (23.68 dB), at 2e-4 -> 1.59 (23.38 dB). A larger
``delta_norm_lambda`` also pulls the codes in but costs more reconstruction: 2e-3 -> 1.37 at 22.22 dB.

The loss balance (docs/training.md "e4e: the loss balance"): λ 0.1 was set against L2 + LPIPS + similarity, where
the adversarial term is about a fifth of the reconstruction loss; with L2 alone (no LPIPS or similarity weights) it
is about 4x, and the run warns. In the 64 px world (5760 steps, 128 images) that strong discriminator gives edits
that leak 0.92-0.94x pSp's but a LEC 1.34-1.36x pSp's (two trainings of the same recipe);
``w_discriminator_lambda`` 0.01 (the official share) gives 1.03-1.05x and 1.05-1.06x, with the codes closest to W.
The default stays the official weight.

Starting point (docs/training.md "e4e from pSp's encoder"): the official recipe starts from a pretrained IR-SE50;
without one, ``init_encoder`` = a pSp encode model of the same domain is its stand-in. At λ 0.1 that e4e
reconstructs 0.9 dB better than e4e from scratch and leaks 0.88-0.91x pSp's, at about the same LEC (1.31-1.32x
against 1.36x).

ReStyle-e4e (``restyle=true``, the official ReStyle Coach): every refinement step's loss (reconstruction, the
discriminator's verdict on the active rows, the delta regulariser) is back-propagated from the detached previous
step, and one optimiser step per batch takes the summed gradients; the discriminator trains once per batch on the
first refinement step's codes (with latent_avg, as above).

N processes train as one process holding the global batch: on top of pSp's global BatchNorm and decoder noise
(``ganedit.methods.psp``), the real w are the mapping of z drawn through ``ctx.randn``, and the two w pools are
run-wide pools: every process queries them with the whole batch and the same draws (``ImagePool.query_global``,
as CycleGAN's image pool) and keeps its share, so each holds the pool one process would. The stage depends only
on the step and R1 runs on the same steps everywhere. One process computes what it did before, up to which
random numbers decide the pools' swaps (the step's stream instead of torch's global RNG).

Example::

    ganedit train e4e --data synthetic:4000 --set decoder=runs/sg2-64/model --set size=64
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F

from ganedit.checks import OneOf, Range
from ganedit.losses.stylegan2 import r1_penalty
from ganedit.methods.base import Networks, Optimizers, StepContext, set_requires_grad
from ganedit.methods.cyclegan import ImagePool
from ganedit.methods.psp import PSPMethod
from ganedit.models.e4e import INFERENCE_STAGE, E4E
from ganedit.nn.global_batch import plain_copy

log = logging.getLogger(__name__)


def discriminated_rows(wplus: torch.Tensor, stage: int, draws: torch.Tensor) -> torch.Tensor:
    """The w the latent discriminator trains on: for sample j, row ``floor(draws[j] * (active + 1))`` of its w+,
    one of w0 and the active offsets' rows (all rows at the inference stage). The encoder's adversarial loss
    scores every active row, so the discriminator must see them all: trained on w0 alone it never learns what
    w0 + delta_i looks like and the encoder pushes the offsets off W unchecked."""
    active = min(int(stage), wplus.shape[1] - 1)
    rows = (draws * (active + 1)).long().clamp(0, active)
    return wplus[torch.arange(wplus.shape[0], device=wplus.device), rows.to(wplus.device)]


class E4EMethod(PSPMethod):
    name = "e4e"
    description = "e4e encoder (w0 + progressive offsets, delta regulariser, latent discriminator with R1) for editing"
    # one similarity weight and a choice of network replace pSp's id_lambda / moco_lambda
    defaults: Dict[str, Any] = {
        **{k: v for k, v in PSPMethod.defaults.items() if k not in ("id_lambda", "moco_lambda")},
        "encoder_type": "Encoder4Editing",
        "progressive_start": 500,  # < 0: no progressive training (every offset from step 0, as without the flag)
        "progressive_step_every": 100,
        "delta_norm": 2,
        "delta_norm_lambda": 2e-4,
        "w_discriminator_lambda": 0.1,
        "w_discriminator_lr": 2e-4,  # official 2e-5 (paced for 300k steps); see the module docstring
        "r1": 10.0,
        "d_reg_every": 16,
        "use_w_pool": True,
        "w_pool_size": 50,
        "similarity_lambda": 0.5,
        "similarity": "id",  # id (ArcFace identity, faces) | moco (MoCo v2 features, other domains)
    }
    limits = {**PSPMethod.limits, "similarity_lambda": Range(0), "similarity": OneOf(("id", "moco"))}
    task_losses: Dict[str, Dict[str, float]] = {}  # the e4e recipe's weights hold for every task

    def __init__(self, cfg: Dict[str, Any]) -> None:
        cfg["encoder_type"] = "Encoder4Editing"
        super().__init__(cfg)
        size = int(cfg["w_pool_size"]) if cfg["use_w_pool"] else 0
        self.real_pool, self.fake_pool = ImagePool(size), ImagePool(size)

    # -- stages --------------------------------------------------------------------------------------------
    def progressive_steps(self, n_styles: int) -> List[int]:
        start, every = int(self.cfg["progressive_start"]), int(self.cfg["progressive_step_every"])
        return [0] + [start + k * every for k in range(n_styles - 1)]

    def stage_at(self, step: int, n_styles: int) -> int:
        """The progressive stage (active offsets) at ``step``; the Inference stage without progressive training."""
        if int(self.cfg["progressive_start"]) < 0:
            return INFERENCE_STAGE
        return sum(1 for s in self.progressive_steps(n_styles) if s <= step) - 1

    # -- networks ------------------------------------------------------------------------------------------
    def make_model(self, g_config: Dict[str, Any]) -> E4E:
        spec = {k: v for k, v in self.encoder_spec(0, int(g_config["style_dim"])).items() if k != "type"}
        spec["n_styles"] = 2 * (int(g_config["size"]).bit_length() - 1) - 2
        return E4E(spec, g_config, start_from_latent_avg=self.cfg["start_from_latent_avg"], output_pool=int(self.cfg["size"]),
                   latent_discriminator={"style_dim": int(g_config["style_dim"]), "n_mlp": 4}, restyle=self.cfg["restyle"],
                   restyle_iters=int(self.cfg["restyle_iters"]))

    def similarity_term(self) -> Tuple[str, float]:
        return str(self.cfg["similarity"]), float(self.cfg["similarity_lambda"])

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        nets, opts = super().build(device)
        if self.cfg["w_discriminator_lambda"] > 0 and self.lpips is None and self.similarity is None:
            # the official weights were set against L2 + LPIPS + similarity; see docs/training.md "e4e: the loss balance"
            log.warning(f"{self.name}: the reconstruction loss is L2 alone (no LPIPS, no similarity term); the latent "
                        f"discriminator's weight {self.cfg['w_discriminator_lambda']:g} was set against all three, where "
                        "its term is about a fifth of the reconstruction loss, and against L2 alone it weighs several "
                        "times more (docs/training.md, 'e4e: the loss balance')")
        if not self.cfg["init_encoder"]:
            log.info(f"{self.name}: no init_encoder, so a new run starts the encoder from random weights; the official "
                     "recipe starts from a pretrained backbone, and a pSp encode model of the same domain "
                     "(--set init_encoder=PATH) stands in for it: at the default weights that e4e reconstructed "
                     "0.9 dB better and leaked less (docs/training.md, \"e4e from pSp's encoder\")")
        return nets, opts

    def extra_optimizers(self, model: E4E) -> Optimizers:  # type: ignore[override]
        return {"D": torch.optim.Adam(model.latent_discriminator.parameters(), lr=self.cfg["w_discriminator_lr"])}

    # -- one step ------------------------------------------------------------------------------------------
    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        c = self.cfg
        model: E4E = self.nets["psp"]
        n_styles = model.encoder.n_styles
        stage = self.stage_at(ctx.step, n_styles)
        model.set_stage(stage)
        x, target = model.to_encoder_input(batch["input"]), batch["target"]
        disc = model.latent_discriminator
        logs: Dict[str, Any] = {"e4e/stage": float(stage)}

        if c["w_discriminator_lambda"] > 0:
            set_requires_grad(model.encoder, False)
            set_requires_grad(disc, True)
            with torch.no_grad():
                # one random active row per sample (the official pool's candidate); the pools answer for the global batch
                # ReStyle: the first refinement step's codes
                codes = model.restyle_update(x, *model.restyle_start(x.shape[0])) if c["restyle"] else model.encode(x)
                fake = self.fake_pool.query_global(discriminated_rows(codes, stage, ctx.rand(x.shape[0])), ctx)
                real = self.real_pool.query_global(model.decoder.mapping(ctx.randn(x.shape[0], model.decoder.style_dim)), ctx)
            with ctx.autocast():
                loss_d = F.softplus(-disc(real)).mean() + F.softplus(disc(fake)).mean()
            ctx.optimize("D", loss_d)
            logs["loss/D"] = loss_d.detach()
            if ctx.every(int(c["d_reg_every"])):
                real = real.detach().requires_grad_(True)
                pred = disc(real)
                r1 = r1_penalty(pred, real)
                ctx.optimize("D", c["r1"] / 2 * r1 * c["d_reg_every"] + 0 * pred[0].sum())
                logs["loss/R1"] = r1.detach()
            set_requires_grad(disc, False)
            set_requires_grad(model.encoder, True)

        if c["restyle"]:
            self._restyle_encoder_step(model, x, target, stage, ctx, logs)
        else:
            loss = self._encoder_loss(model, x, target, stage, ctx, logs)
            ctx.optimize("E", loss)
            logs["loss/total"] = loss.detach()
        set_requires_grad(disc, True)
        return logs

    def _restyle_encoder_step(self, model: E4E, x: torch.Tensor, target: torch.Tensor, stage: int, ctx: StepContext,
                              logs: Dict[str, Any]) -> None:
        """ReStyle-e4e (the official Coach): every refinement step's loss (reconstruction, discriminator verdict,
        delta regulariser) is back-propagated on its own; one optimiser step takes the summed gradients."""
        ctx.zero_grad("E")
        with ctx.autocast():
            for k, (wplus, loss, step_logs) in enumerate(self._refinement_losses(model, x, target, ctx)):
                loss = self._latent_terms(loss, model, wplus, stage, step_logs)
                step_logs["loss/total"] = loss.detach()
                ctx.backward(loss, "E")
                logs.update({f"{key}_iter{k}": v for key, v in step_logs.items()})
        ctx.apply("E")

    def _encoder_loss(self, model: E4E, x: torch.Tensor, target: torch.Tensor, stage: int, ctx: StepContext,
                      logs: Dict[str, Any]) -> torch.Tensor:
        """The encoder's loss at ``stage``: reconstruction, the latent discriminator's verdict on each active row,
        and the delta regulariser on the active offsets; each term is added to ``logs``."""
        with ctx.autocast():
            wplus = model.encode(x)
            loss, step_logs, _ = self._losses(model, wplus, target, ctx)
            logs.update(step_logs)
            return self._latent_terms(loss, model, wplus, stage, logs)

    def _latent_terms(self, loss: torch.Tensor, model: E4E, wplus: torch.Tensor, stage: int, logs: Dict[str, Any]) -> torch.Tensor:
        """``loss`` plus the latent discriminator's verdict on each active row and the delta regulariser."""
        c = self.cfg
        active = min(stage, model.encoder.n_styles - 1)
        if c["w_discriminator_lambda"] > 0:
            rows = range(active + 1)
            adv = sum(F.softplus(-model.latent_discriminator(wplus[:, i])).mean() for i in rows) / len(rows)
            loss = loss + c["w_discriminator_lambda"] * adv
            logs["loss/adv"] = adv.detach()
        if stage != INFERENCE_STAGE and active > 0:
            deltas = wplus[:, 1:active + 1] - wplus[:, :1]
            delta = deltas.norm(p=c["delta_norm"], dim=2).mean(0).sum()
            loss = loss + c["delta_norm_lambda"] * delta
            logs["loss/delta"] = delta.detach()
        return loss

    def validate(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        """The encoder's training loss on a held-out batch, at the progressive stage of the current step (the
        official Coach's validation; the discriminator's own loss is not part of it)."""
        model: E4E = self.nets["psp"]
        stage = self.stage_at(ctx.step, model.encoder.n_styles)
        previous = model.encoder.progressive_stage
        model.set_stage(stage)
        try:
            logs: Dict[str, Any] = {"e4e/stage": float(stage)}
            loss = self._encoder_loss(model, model.to_encoder_input(batch["input"]), batch["target"], stage, ctx, logs)
        finally:
            model.set_stage(previous)
        logs["loss/total"] = loss.detach()
        return logs

    # -- state, export -------------------------------------------------------------------------------------
    def extra_state(self) -> Dict[str, Any]:
        return {"real_pool": self.real_pool.state(), "fake_pool": self.fake_pool.state()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.real_pool.load(state.get("real_pool", {}), self.device)
        self.fake_pool.load(state.get("fake_pool", {}), self.device)

    def export(self) -> E4E:
        model: E4E = plain_copy(self.nets["psp"])  # type: ignore[assignment]
        model.set_stage(INFERENCE_STAGE)  # inference applies every offset
        return model.eval()
