"""``ganedit train psp``: a pSp encoder into W+ of a frozen StyleGAN2 decoder, for every task of the paper.

Tasks (``--set task=...``): encode (inversion), sketch (1-channel edge map), segmentation (one-hot class maps),
super_resolution (input downsampled by a factor from ``resize_factors`` and resized back), frontalize (a turned
face -> the same face at yaw 0; the synthetic world renders both) and inpaint (masked image + mask channel; the
official code never released it). ``--data synthetic:N`` renders the world's conditions and ground truths; a
folder or zip of images serves encode, super_resolution, inpaint and sketch (its edge map drawn by
``ganedit.data.degrade.edge_sketch``, the rule of ``ganedit data indomain``, so a sketch model trained on a
generator's samples reads the in-domain set's sketches).

``init_encoder=PATH`` warm-starts the encoder from a trained pSp / e4e model (as the official recipe starts from
a pretrained IR-SE50): every tensor of the same name and shape is copied; the stem conv is adapted when only
its input channels differ (see :func:`warm_start`), so an encode model starts a sketch, inpaint or ReStyle one.

Losses follow the official Coach: ``l2_lambda`` * MSE + ``lpips_lambda`` * LPIPS + ``id_lambda`` * identity
(1 - cos of ArcFace IR-SE50 embeddings of the face crop, ``ganedit.metrics.identity_net``) or ``moco_lambda`` *
MoCo similarity (``ganedit.metrics.moco_net``; at most one of the two) + ``w_norm_lambda`` * ||w+ - latent_avg||
+ ``l2_lambda_crop`` / ``lpips_lambda_crop`` * the same losses on the face crop only (frontalization). LPIPS,
ArcFace and MoCo read local weight files (``lpips_weights``, ``id_weights``, ``moco_weights``, or found in
$GANEDIT_CACHE); when one is missing the log says "... skipped: <why>" and the run trains without that term.

The loss weights default per task (:data:`TASK_LOSSES`), from the training commands of the official pSp README
(eladrich/pixel2style2pixel): encode lpips 0.8, l2 1, id 0.1; frontalize lpips 0.08, l2 0.001, lpips_crop 0.8,
l2_crop 0.01, id 1, w_norm 0.005; sketch and segmentation lpips 0.8, l2 1, id 0, w_norm 0.005; super_resolution
lpips 0.8, l2 1, id 0.1, w_norm 0.005; inpaint (never released) takes super_resolution's. They are applied to a
fresh run under the user's options (``--set`` wins; ``--dry-run`` and the saved train_config show the values used).
A resumed run keeps its checkpoint's values; keys it predates take ``defaults``, which add no new term. The
decoder is frozen and its noise random, as in the official Coach. Optimiser: Ranger (default, as pSp) or Adam, lr 1e-4.
``restyle=true`` trains a ReStyle encoder: it reads [input, current reconstruction]; as in the official Coach, each
of ``restyle_iters`` refinement steps starts from the detached previous one and back-propagates its own loss, and
one optimiser step per batch takes the summed gradients.

N processes train as one process holding the global batch (docs/training.md, "What N processes guarantee"):
the IR-SE backbone's BatchNorm uses the global batch's statistics (``ganedit.nn.global_batch``; the state-dict
keys stay the official ones and the export has plain BatchNorm again), and the decoder's random noise is drawn
through the step's global-batch stream (``ctx.randn``), so sample i gets the same noise on any number of
processes. One process computes what it did before, up to which random numbers the noise is.

Example (CPU; the decoder is any StyleGAN2 checkpoint, native or rosinality)::

    ganedit train psp --data synthetic:4000 --set decoder=runs/sg2-64/model --set size=64 --set task=sketch
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ganedit.checks import Range
from ganedit.errors import ConfigError, DataError
from ganedit.methods.base import Method, Networks, Optimizers, StepContext, eval_mode, set_requires_grad
from ganedit.models.psp import PSP, TASKS
from ganedit.models.stylegan2 import Generator
from ganedit.nn.global_batch import make_world_size_invariant, plain_copy
from ganedit.train.ranger import Ranger

log = logging.getLogger(__name__)

IMAGE_ONLY_TASKS = ("encode", "super_resolution", "inpaint", "sketch")  # derivable from any image folder

# Loss weights per task: the official pSp README's training commands (unset flags keep the argparse default 0).
_CONDITIONAL = {"l2_lambda": 1.0, "lpips_lambda": 0.8, "id_lambda": 0.0, "w_norm_lambda": 0.005}
TASK_LOSSES: Dict[str, Dict[str, float]] = {
    "encode": {"l2_lambda": 1.0, "lpips_lambda": 0.8, "id_lambda": 0.1, "w_norm_lambda": 0.0},
    "frontalize": {"l2_lambda": 0.001, "lpips_lambda": 0.08, "id_lambda": 1.0, "w_norm_lambda": 0.005,
                   "l2_lambda_crop": 0.01, "lpips_lambda_crop": 0.8},
    "sketch": dict(_CONDITIONAL),
    "segmentation": dict(_CONDITIONAL),
    "super_resolution": {**_CONDITIONAL, "id_lambda": 0.1},
    "inpaint": {**_CONDITIONAL, "id_lambda": 0.1},  # not in the README: a degraded view of the same face, as super_resolution
}
LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16}  # smallest image each LPIPS backbone's pooling stages accept
LOSS_KEYS = ("l2_lambda", "lpips_lambda", "id_lambda", "moco_lambda", "w_norm_lambda", "l2_lambda_crop", "lpips_lambda_crop")


class TaskPairs(torch.utils.data.Dataset):
    """(condition, target) pairs held in memory: {"input": [C, H, W], "target": [3, H, W]}."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        return {"input": self.inputs[i], "target": self.targets[i]}


class DerivedPairs(torch.utils.data.Dataset):
    """Conditions computed from each image of a folder dataset (encode, super_resolution, inpaint)."""

    def __init__(self, images: torch.utils.data.Dataset, task: str, factors: List[int], seed: int) -> None:
        self.images, self.task, self.factors, self.seed = images, task, factors, seed

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        item = self.images[i]
        image = item["image"] if isinstance(item, dict) else item[0] if isinstance(item, (tuple, list)) else item
        return {"input": task_condition(image[None], self.task, self.factors, self.seed, start=i)[0], "target": image}


def task_condition(images: torch.Tensor, task: str, factors: List[int], seed: int, start: int = 0) -> torch.Tensor:
    """The encoder input of an image-derived task for images with dataset indices start, start+1, ..."""
    from ganedit.data.synthetic.export import apply_masks, downsample, mask_boxes

    n, _, size, _ = images.shape
    if task == "encode":
        return images
    if task == "super_resolution":
        out = torch.empty_like(images)
        for k in range(n):  # factor by index, so an image always gets the same one
            f = int(factors[(start + k) % len(factors)])
            low = downsample(images[k:k + 1], f)
            out[k:k + 1] = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) if f > 1 else low
        return out
    if task == "sketch":
        from ganedit.data.degrade import edge_sketch

        return edge_sketch(images)
    if task == "inpaint":
        boxes = mask_boxes(seed, start, n, size)
        masked = apply_masks(images, boxes)
        hole = apply_masks(torch.ones(n, 1, size, size), boxes) == 0
        return torch.cat([masked, hole.float()], 1)
    raise ConfigError(f"task {task!r} needs the synthetic world's renders (use --data synthetic:N)")


def warm_start(encoder: nn.Module, source: Dict[str, torch.Tensor]) -> Tuple[int, List[str], List[str]]:
    """Copy ``source`` tensors into ``encoder`` where name and shape agree. A conv weight [O, I, k, k] whose input
    channels differ is adapted: with more channels here, the source's come first and the extra ones start at
    zero (inpaint's mask channel, ReStyle's reconstruction: the start computes what the source did); with one
    channel here, the source's channels are summed (a grey image replicated to RGB gives the same response).
    Returns (copied, adapted names, names left at their init)."""
    own = encoder.state_dict()
    copied, adapted, skipped = 0, [], []
    with torch.no_grad():
        for name, t in own.items():
            s = source.get(name)
            if s is None:
                skipped.append(name)
            elif s.shape == t.shape:
                t.copy_(s)
                copied += 1
            elif t.dim() == 4 and s.dim() == 4 and s.shape[0] == t.shape[0] and s.shape[2:] == t.shape[2:]:
                if t.shape[1] > s.shape[1]:
                    t.zero_()
                    t[:, :s.shape[1]] = s
                elif t.shape[1] == 1:
                    t.copy_(s.sum(1, keepdim=True))
                else:
                    skipped.append(name)
                    continue
                adapted.append(name)
            else:
                skipped.append(name)
    encoder.load_state_dict(own)
    return copied, adapted, skipped


def input_channels(task: str) -> int:
    from ganedit.data.synthetic import CLASSES

    return {"sketch": 1, "segmentation": len(CLASSES), "inpaint": 4}.get(task, 3)


def visible(inputs: torch.Tensor, task: str) -> torch.Tensor:
    """A 3-channel picture of an encoder input for the snapshot grid."""
    if task == "sketch":
        return inputs.expand(-1, 3, -1, -1)
    if task == "segmentation":
        ids = inputs.argmax(1, keepdim=True).float()
        return (ids / max(1, inputs.shape[1] - 1) * 2 - 1).expand(-1, 3, -1, -1)
    return inputs[:, :3]


class PSPMethod(Method):
    name = "psp"
    description = ("pSp encoder into W+ of a frozen StyleGAN2 (encode, sketch, segmentation, super_resolution, frontalize, "
                   "inpaint; ReStyle); loss weights default per task, as the official README (--dry-run shows them)")
    defaults: Dict[str, Any] = {
        "task": "encode",
        "decoder": "",  # StyleGAN2 checkpoint (native folder or rosinality .pt); its size is the decoder's
        "size": 64,  # image size of the data and of the loss (the decoder output is resized to it)
        "input_size": 0,  # encoder input side; 0 = size
        "encoder_type": "GradualStyleEncoder",
        "num_layers": 50,
        "units": [],  # units per block; [] = the IR-50 table (3, 4, 14, 3)
        "depths": [16, 24, 32, 48],  # official: 64, 128, 256, 512
        "input_width": 16,  # official: 64
        "se_reduction": 8,  # official: 16
        "mode": "ir_se",
        "start_from_latent_avg": True,
        "learn_in_w": False,
        "resize_factors": [1, 2, 4, 8, 16, 32],
        "optim": "ranger",  # ranger | adam
        "lr": 1e-4,
        "batch": 8,
        "steps": 3000,
        "l2_lambda": 1.0,
        "lpips_lambda": 0.8,
        "lpips_net": "alex",
        "lpips_weights": "",  # local LPIPS weights; "" = search $GANEDIT_CACHE
        "w_norm_lambda": 0.0,
        # loss weights: a fresh run takes its task's official values (TASK_LOSSES) where these are not set
        "id_lambda": 0.0,  # identity (ArcFace IR-SE50) on the face crop
        "id_weights": "",  # local model_ir_se50.pth; "" = search $GANEDIT_CACHE
        "moco_lambda": 0.0,  # MoCo v2 ResNet-50 feature similarity (non-face domains); not with id_lambda
        "moco_weights": "",  # local moco_v2_800ep_pretrain.pth.tar; "" = search $GANEDIT_CACHE
        "l2_lambda_crop": 0.0,  # L2 and LPIPS on the face crop only (frontalization)
        "lpips_lambda_crop": 0.0,
        "restyle": False,
        "restyle_iters": 3,
        "init_encoder": "",  # a trained pSp / e4e model whose encoder weights start this one ("" = random init)
        # not in the official recipes: ||E(G(E(x))) - E(x)|| per w+ row, the encoder's round trip on its own output
        "cycle_lambda": 0.0,
    }
    limits = {**{key: Range(0) for key in LOSS_KEYS}, "cycle_lambda": Range(0)}
    task_losses: Dict[str, Dict[str, float]] = TASK_LOSSES
    snapshot_columns = 3  # input | output | target

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        if cfg["task"] not in TASKS:
            raise ConfigError(f"psp: unknown task {cfg['task']!r} (known: {', '.join(TASKS)})")
        if cfg["optim"] not in ("ranger", "adam"):
            raise ConfigError(f"psp: optim must be ranger or adam, got {cfg['optim']!r}")
        self.lpips: Optional[nn.Module] = None
        self.similarity: Optional[nn.Module] = None  # IdentityLoss or MocoLoss, when its weights were found
        self.lpips_crop = True  # False when the face crop is too small for the LPIPS backbone

    @classmethod
    def option_defaults(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        return dict(cls.task_losses.get(str(cfg.get("task")), {}))

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any]) -> None:
        super().check_config(cfg)
        if cfg.get("cycle_lambda", 0) > 0 and cfg.get("task", "encode") != "encode":
            raise ConfigError(f"{cls.name}: cycle_lambda needs task=encode (the encoder must read the images it makes)")
        if cfg.get("id_lambda", 0) > 0 and cfg.get("moco_lambda", 0) > 0:
            raise ConfigError(f"{cls.name}: id_lambda and moco_lambda are both > 0; choose one similarity loss (set the other to 0)")

    def similarity_term(self) -> Tuple[str, float]:
        """(kind, weight) of the similarity loss: "id" (ArcFace) or "moco", weight 0 when none is asked for."""
        if self.cfg["moco_lambda"] > 0:
            return "moco", float(self.cfg["moco_lambda"])
        return "id", float(self.cfg["id_lambda"])

    # -- data ----------------------------------------------------------------------------------------------
    def build_data(self) -> torch.utils.data.Dataset:
        c = self.cfg
        spec, size, task, seed = str(c["data"]), int(c["size"]), c["task"], int(c["seed"])
        factors = [int(f) for f in c["resize_factors"]] or [1]
        if spec.split(":")[0] == "synthetic":
            return self._synthetic(spec, size, task, seed, factors)
        if task not in IMAGE_ONLY_TASKS:
            raise DataError(f"psp: task {task!r} needs paired conditions; train it on the built-in world (--data synthetic:N)")
        from ganedit.data.datasets import open_image_dataset

        return DerivedPairs(open_image_dataset(spec, size=size), task, factors, seed)

    @staticmethod
    def _synthetic(spec: str, size: int, task: str, seed: int, factors: List[int]) -> TaskPairs:
        from ganedit.data.synthetic import CLASSES, render, sample_appearance, sample_structure
        from ganedit.data.synthetic.factors import frontalize

        try:
            n = int(spec.split(":")[1]) if ":" in spec else 4000
        except ValueError:
            raise DataError(f"psp: bad synthetic spec {spec!r} (expected synthetic:N)") from None
        if size < 32:
            raise DataError(f"psp: the synthetic world renders 32 px and up, got size={size}")
        st, ap = sample_structure(n, seed), sample_appearance(n, seed)
        r = render(st, ap, size)
        if task == "sketch":
            return TaskPairs(r.sketch, r.image)
        if task == "segmentation":
            return TaskPairs(F.one_hot(r.segmentation, len(CLASSES)).permute(0, 3, 1, 2).float(), r.image)
        if task == "frontalize":
            return TaskPairs(r.image, render(frontalize(st), ap, size).image)
        return TaskPairs(task_condition(r.image, task, factors, seed), r.image)

    # -- networks ------------------------------------------------------------------------------------------
    def _decoder(self) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor], torch.Tensor]:
        """(Generator config, its state dict, the average w [1, dim]) of the frozen decoder."""
        import ganedit
        from ganedit.models.stylegan2 import Generator, StyleGAN2

        if not self.cfg["decoder"]:
            raise ConfigError("psp: no decoder given (--set decoder=PATH to a StyleGAN2 checkpoint, native or rosinality)")
        model = ganedit.load(self.cfg["decoder"])
        if isinstance(model, StyleGAN2):
            return model.g_ema.config, model.g_ema.state_dict(), model.w_avg.reshape(1, -1)
        if isinstance(model, Generator):
            return model.config, model.state_dict(), model.mean_latent(10000, seed=0)
        raise ConfigError(f"psp: {self.cfg['decoder']} holds a {type(model).__name__}, not a StyleGAN2 generator")

    def encoder_spec(self, n_styles: int, style_dim: int) -> Dict[str, Any]:
        c = self.cfg
        spec: Dict[str, Any] = {
            "type": c["encoder_type"], "input_nc": input_channels(c["task"]) + (3 if c["restyle"] else 0),
            "num_layers": c["num_layers"], "mode": c["mode"], "depths": list(c["depths"]), "input_width": c["input_width"],
            "input_size": int(c["input_size"] or c["size"]), "se_reduction": c["se_reduction"], "style_dim": style_dim,
        }
        if c["units"]:
            spec["units"] = list(c["units"])
        if c["encoder_type"] != "BackboneEncoderUsingLastLayerIntoW":
            spec["n_styles"] = n_styles
        return spec

    def make_model(self, g_config: Dict[str, Any]) -> PSP:
        """The untrained model around a decoder of ``g_config`` (its weights are loaded by ``build``)."""
        from ganedit.data.synthetic import CLASSES

        c = self.cfg
        n_latent = 2 * (int(g_config["size"]).bit_length() - 1) - 2
        return PSP(self.encoder_spec(n_latent, int(g_config["style_dim"])), g_config, start_from_latent_avg=c["start_from_latent_avg"],
                   learn_in_w=c["learn_in_w"], output_pool=int(c["size"]), task=c["task"],
                   label_nc=len(CLASSES) if c["task"] == "segmentation" else 0, restyle=c["restyle"],
                   restyle_iters=int(c["restyle_iters"]))

    def extra_optimizers(self, model: PSP) -> Optimizers:
        return {}

    def build(self, device: torch.device) -> Tuple[Networks, Optimizers]:
        c = self.cfg
        g_config, g_state, w_avg = self._decoder()
        model = self.make_model(g_config)
        model.decoder.load_state_dict(g_state)
        with torch.no_grad():
            model.latent_avg.copy_(w_avg.reshape(1, -1).expand_as(model.latent_avg))
        if c["init_encoder"]:
            self._warm_start(model)
        model = model.to(device)
        make_world_size_invariant(model.encoder)  # BatchNorm over the global batch (plain BatchNorm on 1 process)
        set_requires_grad(model.decoder, False)
        params = list(model.encoder.parameters())
        opts = {"E": Ranger(params, lr=c["lr"]) if c["optim"] == "ranger" else torch.optim.Adam(params, lr=c["lr"])}
        opts.update(self.extra_optimizers(model))
        self._load_lpips(device)
        self._load_similarity(device)
        return {"psp": model}, opts

    def _warm_start(self, model: PSP) -> None:
        import ganedit

        path = str(self.cfg["init_encoder"])
        source = ganedit.load(path)
        if not isinstance(getattr(source, "encoder", None), nn.Module):
            raise ConfigError(f"psp: init_encoder {path} holds a {type(source).__name__}, not a pSp / e4e encoder")
        copied, adapted, skipped = warm_start(model.encoder, source.encoder.state_dict())
        log.info(f"psp: encoder warm-started from {path}: {copied} tensors copied, {len(adapted)} adapted "
                 f"({', '.join(adapted) or 'none'}), {len(skipped)} left at their init ({', '.join(skipped[:6]) or 'none'}"
                 f"{' ...' if len(skipped) > 6 else ''})")
        if copied == 0:
            raise ConfigError(f"psp: init_encoder {path}: no tensor fits this encoder (different architecture or widths)")

    def _load_lpips(self, device: torch.device) -> None:
        if self.cfg["lpips_lambda"] <= 0 and self.cfg["lpips_lambda_crop"] <= 0:
            return
        from ganedit.metrics.lpips_net import load_lpips
        from ganedit.metrics.weights import MissingWeightsError

        try:
            self.lpips = load_lpips(self.cfg["lpips_net"], self.cfg["lpips_weights"] or None).to(device).eval()
            set_requires_grad(self.lpips, False)
        except MissingWeightsError as exc:
            first = str(exc).splitlines()[0]
            log.warning(f"{self.name}: LPIPS loss skipped: weights not found ({first}); training without the LPIPS terms")
            return
        from ganedit.metrics.identity_net import face_box

        top, bottom, _, _ = face_box(int(self.cfg["size"]))
        smallest = LPIPS_MIN_SIDE.get(self.cfg["lpips_net"], 0)
        if self.cfg["lpips_lambda_crop"] > 0 and bottom - top < smallest:
            self.lpips_crop = False  # as with missing weights: the config keeps the value asked for, the log says why
            log.warning(f"{self.name}: LPIPS crop loss skipped: the face crop is {bottom - top} px at size {self.cfg['size']}, "
                        f"below the {smallest} px the {self.cfg['lpips_net']} backbone needs; training without it")

    def _load_similarity(self, device: torch.device) -> None:
        kind, weight = self.similarity_term()
        if weight <= 0:
            return
        from ganedit.metrics.weights import MissingWeightsError

        try:
            if kind == "moco":
                from ganedit.metrics.moco_net import MocoLoss, load_moco

                self.similarity = MocoLoss(load_moco(self.cfg["moco_weights"] or None)).to(device).eval()
            else:
                from ganedit.metrics.identity_net import IdentityLoss, load_arcface

                self.similarity = IdentityLoss(load_arcface(self.cfg["id_weights"] or None)).to(device).eval()
        except MissingWeightsError as exc:
            what = "MoCo similarity" if kind == "moco" else "identity"
            log.warning(f"{self.name}: {what} loss skipped: {str(exc).splitlines()[0]}; training without it")

    # -- one step ------------------------------------------------------------------------------------------
    @staticmethod
    def decoder_noise(decoder: Generator, n: int, ctx: StepContext) -> List[torch.Tensor]:
        """Fresh noise maps for n samples, as the official Coach's random noise, but drawn for the global batch
        (``ctx.randn``): sample i gets the same maps on any number of processes."""
        return [ctx.randn(n, 1, *getattr(decoder.noises, f"noise_{k}").shape[-2:]) for k in range(decoder.num_layers)]

    def _losses(self, model: PSP, wplus: torch.Tensor, target: torch.Tensor,
                ctx: StepContext) -> Tuple[torch.Tensor, Dict[str, Any], torch.Tensor]:
        c = self.cfg
        out = model.pool(model.decode(wplus, noise=self.decoder_noise(model.decoder, wplus.shape[0], ctx)))
        if out.shape[-1] != target.shape[-1]:
            out = F.interpolate(out, size=target.shape[-2:], mode="bilinear", align_corners=False)
        l2 = F.mse_loss(out, target)
        loss = c["l2_lambda"] * l2
        logs: Dict[str, Any] = {"loss/l2": l2.detach()}
        if self.lpips is not None and c["lpips_lambda"] > 0:
            lp = self.lpips(out, target).mean()
            loss = loss + c["lpips_lambda"] * lp
            logs["loss/lpips"] = lp.detach()
        if self.similarity is not None:
            kind, weight = self.similarity_term()
            sim = self.similarity(out, target)
            loss = loss + weight * sim
            logs[f"loss/{kind}"] = sim.detach()
        if c["l2_lambda_crop"] > 0 or (self.lpips is not None and self.lpips_crop and c["lpips_lambda_crop"] > 0):
            loss = loss + self.crop_losses(out, target, logs)
        if c["w_norm_lambda"] > 0:
            offset = wplus - model.latent_avg if c["start_from_latent_avg"] else wplus
            w_norm = offset.norm(2, dim=(1, 2)).mean()
            loss = loss + c["w_norm_lambda"] * w_norm
            logs["loss/w_norm"] = w_norm.detach()
        if c["cycle_lambda"] > 0:
            # the encoder reads its own reconstruction and must give back its code; both sides detached, so the
            # term trains the encoder's precision on generated images and cannot be met by shrinking the codes
            back = model.encode(out.detach())
            cycle = (back - wplus.detach()).norm(dim=2).mean()
            loss = loss + c["cycle_lambda"] * cycle
            logs["loss/cycle"] = cycle.detach()
        logs["loss/total"] = loss.detach()
        return loss, logs, out

    def crop_losses(self, out: torch.Tensor, target: torch.Tensor, logs: Dict[str, Any]) -> torch.Tensor:
        """L2 and LPIPS on the face crop only (the official frontalization terms), weighted; logs each."""
        from ganedit.metrics.identity_net import face_crop

        c = self.cfg
        out_crop, target_crop = face_crop(out), face_crop(target)
        total = out.new_zeros(())
        if c["l2_lambda_crop"] > 0:
            l2 = F.mse_loss(out_crop, target_crop)
            total = total + c["l2_lambda_crop"] * l2
            logs["loss/l2_crop"] = l2.detach()
        if self.lpips is not None and self.lpips_crop and c["lpips_lambda_crop"] > 0:
            lp = self.lpips(out_crop, target_crop).mean()
            total = total + c["lpips_lambda_crop"] * lp
            logs["loss/lpips_crop"] = lp.detach()
        return total

    def train_step(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        return self._passes(batch, ctx, train=True)

    def validate(self, batch: Any, ctx: StepContext) -> Dict[str, Any]:
        """The training losses on a held-out batch; for ReStyle, each refinement step's, and ``loss/total`` of the
        last (the one inference returns)."""
        return self._passes(batch, ctx, train=False)

    def _passes(self, batch: Any, ctx: StepContext, train: bool) -> Dict[str, Any]:
        model: PSP = self.nets["psp"]
        x, target = batch["input"], batch["target"]
        x = model.to_encoder_input(x)
        with ctx.autocast():
            if not self.cfg["restyle"]:
                loss, logs, _ = self._losses(model, model.encode(x), target, ctx)
                if train:
                    ctx.optimize("E", loss)
                return logs
            # ReStyle (the official Coach): each refinement step reads [input, the previous output] with the previous
            # code detached, its loss is back-propagated on its own, and one optimiser step takes the summed gradients.
            if train:
                ctx.zero_grad("E")
            logs = {}
            for k, (w, loss, step_logs) in enumerate(self._refinement_losses(model, x, target, ctx)):
                if train:
                    ctx.backward(loss, "E")
                logs.update({f"{key}_iter{k}": v for key, v in step_logs.items()})
            if train:
                ctx.apply("E")
            else:
                logs["loss/total"] = loss.detach()
            return logs

    def _refinement_losses(self, model: PSP, x: torch.Tensor, target: torch.Tensor,
                           ctx: StepContext) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Dict[str, Any]]]:
        """ReStyle's refinement steps from the average code and its image: (w+, loss, logs) of each, the code and the
        image handed to the next step detached, so that each loss trains one step."""
        with torch.no_grad():
            w, current = model.restyle_start(x.shape[0])
        for _ in range(int(self.cfg["restyle_iters"])):
            w = model.restyle_update(x, w.detach(), current)
            loss, logs, out = self._losses(model, w, target, ctx)
            yield w, loss, logs
            current = out.detach()

    # -- snapshots, export ---------------------------------------------------------------------------------
    def snapshot(self, inputs: Any) -> torch.Tensor:
        model: PSP = self.nets["psp"]
        with eval_mode(model):
            x = model.to_encoder_input(inputs["input"])
            out = model.pool(model.decode(model.encode(x)))
            target = inputs["target"]
            if out.shape[-1] != target.shape[-1]:
                out = F.interpolate(out, size=target.shape[-2:], mode="bilinear", align_corners=False)
            shown = F.interpolate(visible(inputs["input"], self.cfg["task"]), size=target.shape[-2:], mode="nearest")
            return torch.stack([shown, out, target], 1).reshape(-1, *target.shape[1:])

    def export(self) -> nn.Module:
        return plain_copy(self.nets["psp"]).eval()

