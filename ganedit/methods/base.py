"""The Method interface: what a training recipe gives the engine (``ganedit.train``).

A *method* is one file ``ganedit/methods/<file>.py`` defining a subclass of :class:`Method` with a
non-empty ``name``; ``ganedit train <name>`` finds it (see ``ganedit.methods.get_method``). Nothing else
has to be registered. The engine owns everything that is the same for every method: the step loop,
distributed data sharding and gradient all-reduce, mixed precision, NaN/Inf guards, learning-rate
schedules, EMA copies, checkpoints/resume, logs and snapshots. The method owns its networks, its
optimisers, its losses and its default hyper-parameters.

How to write a recipe (``tinygan.py`` is the smallest complete example)::

    class MyGAN(Method):
        name = "mygan"
        description = "one line shown by `ganedit train --help`"
        defaults = {"lr": 2e-3, "z_dim": 128, "r1_gamma": 10.0, "r1_every": 16, "batch": 32, "steps": 100_000}
        ema_networks = ("G",)          # the engine keeps EMA copies in self.ema["G"] (half-life cfg["ema_kimg"])

        def build_data(self):          # -> torch Dataset; items are CHW tensors in [-1, 1] or dicts/tuples of them
            return ganedit.data.datasets.open_image_dataset(self.cfg["data"], size=self.cfg["size"])

        def build(self, device):       # -> (networks, optimisers), both dicts keyed by short names
            G, D = Generator(...).to(device), Discriminator(...).to(device)
            return {"G": G, "D": D}, {"G": Adam(G.parameters(), ...), "D": Adam(D.parameters(), ...)}

        def train_step(self, batch, ctx):   # one step: any number of phases, each ending in ctx.optimize
            G, D = self.nets["G"], self.nets["D"]
            z = ctx.randn(batch.shape[0], self.cfg["z_dim"])      # world-size invariant noise (see below)
            with ctx.autocast():
                loss_D = softplus(D(G(z).detach())).mean() + softplus(-D(batch)).mean()
            ctx.optimize("D", loss_D)
            if ctx.every(self.cfg["r1_every"]):                  # lazy regularisation: just another phase
                ...; ctx.optimize("D", r1 * self.cfg["r1_every"])
            with ctx.autocast():
                loss_G = softplus(-D(G(ctx.randn(batch.shape[0], self.cfg["z_dim"])))).mean()
            ctx.optimize("G", loss_G)
            return {"loss/D": loss_D.detach(), "loss/G": loss_G.detach()}   # tensors or floats; logged by rank 0

        def snapshot(self, inputs):    # fixed inputs -> images in [-1, 1] for the PNG/TensorBoard grid
            return self.ema["G"](inputs)

        def export(self):              # a @register_model network; the engine writes it with ganedit.save
            return self.ema["G"]

Rules that keep runs exact (resume is bit-identical on CPU, N processes equal 1 process):

* **Configuration.** ``defaults`` lists every hyper-parameter of the recipe with a value of the right type
  (the CLI's ``--set key=value`` is parsed and type-checked against it); ``limits`` gives each key's allowed
  values (``ganedit.checks``: ``Range``, ``OneOf``, ``Each``), checked before anything is built. Keys that the engine also knows
  (``batch``, ``steps``, ``lr``, ``lr_schedule``, ``ema_kimg`` ...) override the engine's defaults. The
  merged, resolved configuration is ``self.cfg`` (a plain JSON-serialisable dict, stored in every checkpoint).
* **Batch.** ``cfg["batch"]`` is the *global* batch; ``train_step`` receives this rank's share of it
  (``ctx.batch`` samples). Losses must be means over the local batch: the engine averages gradients over
  ranks, which then equals the gradient of the mean over the global batch.
* **Randomness.** Noise that enters the loss (latents, layer noise, mixing masks, dropout masks, random
  crops ...) must come from ``ctx.randn`` / ``ctx.rand``: they draw the tensor for the whole global batch from
  a generator seeded by (seed, step) and return this rank's slice, so results do not depend on the number of
  processes (draw per sample, with the local batch first in the shape). torch's global RNG is seeded per rank:
  anything drawn from it makes N processes differ from 1.
* **Whole-batch statistics.** Anything computed across the samples of a batch (BatchNorm statistics, minibatch
  standard deviation groups, running means, image pools, which samples pair with which) must either see the
  global batch (``ctx.gather``; ``ganedit.nn.global_batch.GlobalBatchNorm2d``) or be built from groups that
  never straddle two ranks (contiguous groups whose size divides the per-rank batch).
* **Phases.** Call ``ctx.optimize(opt_name, loss)`` (or ``ctx.zero_grad`` / ``ctx.backward`` / ``ctx.apply``
  to accumulate several backward passes) once per phase; never call ``optimizer.step()`` yourself. Every
  rank must run the same phases and produce gradients for the same parameters (no data-dependent control
  flow around ``ctx.optimize``). Turn ``requires_grad`` off for networks a phase does not train
  (:func:`set_requires_grad`) so their gradients are neither computed nor averaged.
* **State.** Networks and optimisers returned by ``build`` are checkpointed by the engine; anything else
  that changes during training (an image pool, a running path-length mean kept outside a module) goes in
  ``extra_state`` / ``load_extra_state`` as tensors and plain containers. Buffers inside networks
  (``register_buffer``) need nothing extra.
* **Lazy regularisation.** ``ctx.every(n)`` is true every n-th step; scale the regulariser by n and, for
  Adam, correct lr and betas in ``build`` (StyleGAN2: ``c = n / (n + 1)``, ``lr * c``, ``betas ** c``).
* **Snapshots.** ``snapshot_inputs`` picks fixed inputs once (from a dedicated generator, never the global
  RNG); ``snapshot`` must not change training state (use EMA copies or ``torch.no_grad`` + eval mode and
  restore train mode) so that taking snapshots does not change the run.
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, ContextManager, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ganedit.checks import Limit, check_values

Networks = Dict[str, nn.Module]
Optimizers = Dict[str, torch.optim.Optimizer]


class StepContext:
    """What ``Method.train_step`` receives from the engine. This class documents the interface; the engine's
    implementation is ``ganedit.train.context.TrainContext`` (a plain single-process one, without guards,
    lives in ``benchmarks/bench_engine.py`` as the reference the engine's overhead is measured against).

    Attributes: ``step`` (index of the step being run, from 0), ``images_seen`` (global images consumed before
    this step), ``rank``, ``world_size``, ``device``, ``batch`` (samples on this rank), ``global_batch``,
    ``cfg`` (the resolved configuration).
    """

    step: int
    images_seen: int
    rank: int
    world_size: int
    device: torch.device
    batch: int
    global_batch: int
    cfg: Dict[str, Any]

    def autocast(self) -> ContextManager[Any]:
        """Mixed-precision region for forward passes (bf16/fp16 on CUDA as configured; a no-op in fp32)."""
        raise NotImplementedError

    def zero_grad(self, opt_name: str) -> None:
        """Clear the gradients of the parameters of optimiser ``opt_name``."""
        raise NotImplementedError

    def backward(self, loss: torch.Tensor, opt_name: str) -> None:
        """Back-propagate ``loss`` (scaled for fp16) into the parameters of ``opt_name``; accumulates."""
        raise NotImplementedError

    def apply(self, opt_name: str) -> bool:
        """Average gradients over ranks, check them (NaN/Inf guard), step the optimiser. False if skipped."""
        raise NotImplementedError

    def optimize(self, opt_name: str, loss: torch.Tensor) -> bool:
        """``zero_grad`` + ``backward`` + ``apply``: one complete phase. Returns False if the update was skipped."""
        self.zero_grad(opt_name)
        self.backward(loss, opt_name)
        return self.apply(opt_name)

    def randn(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Normal noise of ``shape`` (``shape[0]`` = local batch) that is this rank's slice of one global draw."""
        raise NotImplementedError

    def rand(self, *shape: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Uniform [0, 1) noise, sliced like :meth:`randn`."""
        raise NotImplementedError

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` (same shape on each) concatenated along dim 0 in rank order: the global-batch
        tensor a single process would hold. No gradient flows back. One process: ``tensor`` itself (detached)."""
        return tensor.detach()

    def every(self, n: int) -> bool:
        """True on every n-th step (steps 0, n, 2n, ...); False for n <= 0 (regulariser disabled)."""
        return n > 0 and self.step % n == 0


class Method:
    """Base class of a training recipe. Subclasses set ``name`` and implement ``build_data``, ``build``,
    ``train_step`` and ``export``; ``snapshot_inputs``/``snapshot`` and ``extra_state`` are optional.

    The engine sets ``self.cfg`` (resolved configuration), then after ``build`` also ``self.device``,
    ``self.nets``, ``self.opts`` and ``self.ema`` (EMA copies of ``ema_networks``, in eval mode, kept on rank 0
    only; on other ranks ``self.ema`` holds the live networks so that code reading it keeps working).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[Dict[str, Any]] = {}
    # Allowed values of the recipe's keys (ganedit.checks), checked with the whole configuration before any data
    # is read or network built; cross-key rules go in check_config.
    limits: ClassVar[Mapping[str, Limit]] = {}
    ema_networks: ClassVar[Tuple[str, ...]] = ()
    ema_average_buffers: ClassVar[bool] = False  # True for BatchNorm nets: average the running statistics too (train/ema.py)
    snapshot_columns: ClassVar[int] = 8
    val_metric: ClassVar[str] = "loss/total"  # the validate() value whose lowest keeps the best model

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.device = torch.device("cpu")
        self.nets: Networks = {}
        self.opts: Optimizers = {}
        self.ema: Networks = {}

    @classmethod
    def option_defaults(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """Defaults that depend on another option (pSp's loss weights per ``task``), for a fresh run: ``cfg`` is the
        configuration with the user's options applied; the returned values replace the recipe defaults, and the
        user's explicit options still win over them. Default: none."""
        return {}

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any]) -> None:
        """Raise ConfigError naming the key and its allowed values when ``cfg`` cannot work. Default: ``limits``."""
        check_values(cfg, cls.limits, f"{cls.name}: ")

    # -- required ------------------------------------------------------------------------------------------
    def build_data(self) -> torch.utils.data.Dataset:
        """The training set for ``cfg["data"]`` (a path or a spec such as ``synthetic:64``). Raise
        ``ganedit.errors.DataError`` for unusable data. Items: tensors in [-1, 1] (CHW), or tuples/dicts of
        tensors and numbers that ``torch.utils.data.default_collate`` can batch."""
        raise NotImplementedError

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        """Create the networks (on ``device``, in train mode) and their optimisers. Seeded by the engine
        (same initial weights on every rank)."""
        raise NotImplementedError

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Union[torch.Tensor, float]]:
        """One training step on this rank's share of the global batch (already on ``ctx.device``).
        Returns scalars to log (detached tensors are fine: the engine reads them only when it logs)."""
        raise NotImplementedError

    def export(self) -> nn.Module:
        """The inference model written at the end with ``ganedit.save`` (a ``@register_model`` network,
        usually the EMA copy). The engine saves its state; the module may be shared with training."""
        raise NotImplementedError

    # -- optional ------------------------------------------------------------------------------------------
    def snapshot_inputs(self, dataset: torch.utils.data.Dataset, n: int, generator: torch.Generator) -> Any:
        """Fixed inputs for the snapshot grids, chosen once per run from ``generator`` (never the global RNG).
        Returned on CPU; the engine moves them to the device. Default: the first ``n`` items of the dataset."""
        items = [dataset[i] for i in range(min(n, len(dataset)))]  # type: ignore[arg-type]
        return torch.utils.data.default_collate(items)

    def snapshot(self, inputs: Any) -> Optional[torch.Tensor]:
        """Images in [-1, 1] (N, 3, H, W) for the grid, ``snapshot_columns`` per row; None = no snapshots.
        Runs under ``torch.no_grad``; must not change training state."""
        return None

    def build_val_data(self) -> torch.utils.data.Dataset:
        """The held-out set for ``cfg["val_data"]``: by default what :meth:`build_data` makes of that spec. A
        built-in world (``synthetic:N``) is drawn with seed + 1, so that it never repeats the training world."""
        saved = self.cfg["data"], self.cfg["seed"]
        self.cfg["data"] = self.cfg["val_data"]
        if str(self.cfg["val_data"]).split(":")[0] == "synthetic":
            self.cfg["seed"] = int(saved[1]) + 1
        try:
            return self.build_data()
        finally:
            self.cfg["data"], self.cfg["seed"] = saved

    def validate(self, batch: Any, ctx: StepContext) -> Optional[Dict[str, Union[torch.Tensor, float]]]:
        """The recipe's losses on a held-out batch, without training: the engine calls it on rank 0 every
        ``val_every`` steps, under ``torch.no_grad`` with the networks in eval mode and a context
        (``ganedit.train.context.EvalContext``: the same noise at every pass, no optimiser), and averages each
        value over ``val_n`` items. The value ``val_metric`` decides which model is the best (``keep_best``).
        None, the default: the recipe has no validation, and ``val_every`` > 0 is refused."""
        return None

    def extra_state(self) -> Dict[str, Any]:
        """Training state outside networks and optimisers (tensors and plain containers only)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""


def set_requires_grad(modules: Union[nn.Module, Iterable[nn.Module]], flag: bool) -> None:
    """Switch ``requires_grad`` of every parameter of ``modules`` (a phase trains only its own networks)."""
    for module in [modules] if isinstance(modules, nn.Module) else modules:
        for p in module.parameters():
            p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Any:
    """Put ``modules`` in eval mode under no_grad for a snapshot, restoring each one's previous mode."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
