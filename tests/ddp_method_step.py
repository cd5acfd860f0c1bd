"""Run by tests/test_ddp_methods.py, under torchrun (2 ranks) and as a plain process (1 rank): train each method
named in the JSON cases for a few steps and save, per rank, its initial and final weights and its extra state.
Usage: ``[torchrun --nproc_per_node=2] tests/ddp_method_step.py OUT '{"tinygan": {...options}}'``; a case named
otherwise than its method says which with ``"method"`` (``"psp_sketch": {"method": "psp", ...}``).

Optimisers are swapped for plain SGD at the recipe's learning rates: an update is then proportional to the
gradient, so the comparison measures the maths of a step (sharding, noise, statistics, averaging) and not Adam's
sign-like first steps, which turn last-bit differences of near-zero gradients into lr-sized jumps."""
from __future__ import annotations

import json
import os
import sys

import torch


def sgd_variant(base):
    class SGDVariant(base):
        def build(self, device):
            nets, opts = super().build(device)
            sgd = {name: torch.optim.SGD([p for g in opt.param_groups for p in g["params"]], lr=opt.param_groups[0]["lr"])
                   for name, opt in opts.items()}
            return nets, sgd

    SGDVariant.__name__ = f"SGD{base.__name__}"
    return SGDVariant


def flat_state(trainer) -> dict:
    out = {f"{n}.{k}": v.detach().clone() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}
    return out


def tensors_of(obj, prefix: str, out: dict) -> dict:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj.detach().cpu().clone()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            tensors_of(v, f"{prefix}.{k}", out)
    return out


def main() -> None:
    from ganedit.methods import get_method
    from ganedit.train import distributed as dist_util
    from ganedit.train.config import resolve
    from ganedit.train.loop import Trainer

    root, cases = sys.argv[1], json.loads(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    for name, options in cases.items():
        options = dict(options)
        method = get_method(options.pop("method", name))  # "method": several cases of one recipe
        # "keep_optimizer": train with the recipe's own optimiser (to measure drift over many steps)
        cls = method if options.pop("keep_optimizer", False) else sgd_variant(method)
        cfg = resolve(cls, {**options, "out": os.path.join(root, name)})
        trainer = Trainer(cls, cfg)
        initial = flat_state(trainer)
        trainer.run()
        result = {"initial": initial, "final": flat_state(trainer), "extra": tensors_of(trainer.method.extra_state(), "extra", {})}
        torch.save(result, os.path.join(root, name, f"rank{rank}.pt"))
    # one process group for all cases: a re-initialised group would reuse the first one's store keys
    dist_util.shutdown(trainer.info)


if __name__ == "__main__":
    main()
