"""pix2pix and CycleGAN against the ground truth of the synthetic world (issue §5).

    python -m benchmarks.bench_translation_quality [--minutes 20] [--size 64] [--methods pix2pix cyclegan pix2pix:official]
    python -m benchmarks.bench_translation_quality --methods --run pix2pix=runs/p2p_long --run pix2pix:official=runs/p2p_off

The paired task: A is a synthetic image in domain X, the answer B is the same structure rendered with the
appearance mapped to domain Y (``ganedit.data.synthetic.to_domain_y``), known for every input. Each method is
trained on this CPU with the engine (``ganedit.train``) for at most ``--minutes`` of wall time: a short
calibration run measures the step time and the number of steps is set so that the whole run (the linear decay
included) fits; a timer stops the run cleanly if the machine slows down. pix2pix trains on 2000 pairs, CycleGAN
on 2000 A and 2000 B images from independent factors (unpaired). Both are evaluated in eval mode on 200 new test
pairs (other seeds) by PSNR and SSIM against the ground truth, next to two baselines:

* copy-input: B := A;
* Lab colour transfer (Reinhard et al. 2001): each channel of A in CIELAB is shifted and scaled from A's own mean
  and standard deviation to domain Y's (the average per-image statistics of the training B images).

``--methods`` names ganedit's recipe (``pix2pix``, ``cyclegan``) or the official one (``pix2pix:official``,
``cyclegan:official``: the official widths and batch, ``RECIPES``), so both can be trained on the same budget side
by side. ``--run NAME=FOLDER`` scores a run trained elsewhere (``ganedit train ... -o FOLDER``) under NAME; its kept
training checkpoints give the quality-against-time curve. ``--select NAME`` adds NAME's checkpoint with the best PSNR
on ``--validation`` pairs of their own seed (``VALIDATION_SEED``, apart from the test seed): early stopping as a
user with a validation set would do it, so the test pairs never choose.

Writes ``docs/results/translation/ground_truth_grid.png`` (labelled rows: input, colour transfer, each method,
ground truth; 8 test images) and the "translation_quality" section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: see bench_translation.py

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict, List, Tuple  # noqa: E402

import torch  # noqa: E402

from benchmarks.common import REPO, machine_line, write_section  # noqa: E402

TRAIN_COUNT, TEST_COUNT, TEST_SEED = 2000, 200, 1000
VALIDATION_SEED = 3000  # --select: checkpoints are chosen on these pairs, never on the test pairs
RECIPES = {
    # small nets for 64 px on a CPU; everything else is the official recipe (ganedit/methods/*.py). pix2pix's lr 1e-3
    # (official 2e-4 at batch 1): +1.9 dB in a 10-minute screen at batch 4; the EMA of G (half-life 5k images, ramped
    # up over the first 20x): +0.2 dB at 10 minutes, +0.8-1.0 dB over the live G at the
    # same step while the lr is constant, +0.3 at the end of a full decay (docs/training.md, "Sharp results")
    "pix2pix": {"netG": "unet_64", "ngf": 32, "ndf": 32, "batch": 4, "lr": 1e-3, "ema_kimg": 5.0, "ema_rampup": 0.05},
    "cyclegan": {"netG": "resnet_6blocks", "ngf": 16, "ndf": 32, "batch": 1},
    # the official recipes (junyanz defaults; only the U-Net depth follows the 64 px images)
    "pix2pix:official": {"netG": "unet_64", "ngf": 64, "ndf": 64, "batch": 1},
    "cyclegan:official": {"netG": "resnet_9blocks", "ngf": 64, "ndf": 64, "batch": 1},
}
GRID_PATH = REPO / "docs" / "results" / "translation" / "ground_truth_grid.png"


# ------------------------------------------------------------------------------------------------ colour transfer


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(min=0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)  # D65


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] (sRGB) -> CIELAB (L in [0, 100]), float64."""
    rgb = _srgb_to_linear((x.double() + 1) / 2)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ, rgb) / _WHITE.view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE.view(1, 3, 1, 1)
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_XYZ), xyz)
    return (_linear_to_srgb(rgb) * 2 - 1).clamp(-1, 1).float()


def lab_stats(images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    lab = rgb_to_lab(images).flatten(2)
    return lab.mean(2), lab.std(2)


def colour_transfer(a: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor) -> torch.Tensor:
    """Reinhard transfer of every image of ``a`` to the given Lab channel statistics."""
    lab = rgb_to_lab(a)
    mean, std = lab.flatten(2).mean(2), lab.flatten(2).std(2)
    out = (lab - mean[..., None, None]) / std.clamp(min=1e-6)[..., None, None] * target_std.view(1, 3, 1, 1) + target_mean.view(1, 3, 1, 1)
    return lab_to_rgb(out)


# ---------------------------------------------------------------------------------------------------- training


def _train(method: str, size: int, minutes: float, out: Path) -> None:
    """Train within the time budget into out/run (its model/ and kept checkpoints; ``run_facts`` reads the rest)."""
    from benchmarks.common import run_events
    from ganedit.train.loop import train

    recipe = method.split(":")[0]
    base = {**RECIPES[method], "data": f"synthetic:{TRAIN_COUNT}", "crop_size": size, "workers": 0, "device": "cpu",
            "tensorboard": False, "quiet": True, "log_every": 5, "snapshot_every": 0, "seed": 0}
    start = time.perf_counter()
    calib = train(recipe, {**base, "steps": 15, "checkpoint_every": 0, "out": str(out / "calibration")})
    step_s = 1.0 / [float(r["speed/it_per_s"]) for r in run_events(out / "calibration") if "speed/it_per_s" in r][-1]  # type: ignore[arg-type]
    del calib
    budget = minutes * 60 - (time.perf_counter() - start) - 20  # 20 s for start-up and export
    steps = max(10, int(budget / step_s * 0.85))  # margin for the machine slowing down (shared cores)
    # Safety: stop cleanly (the engine exports the model) if the budget runs out anyway.
    deadline = threading.Timer(minutes * 60 - (time.perf_counter() - start), lambda: os.kill(os.getpid(), signal.SIGINT))
    deadline.start()
    try:
        trainer = train(recipe, {**base, "steps": steps, "checkpoint_every": 500, "keep": 100, "out": str(out / "run")})
    finally:
        deadline.cancel()
    if not (out / "run" / "model").exists():  # stopped by the timer: the engine checkpointed but did not export
        import ganedit

        ganedit.save(trainer.method.export(), out / "run" / "model")


def run_facts(run: Path) -> Dict[str, object]:
    """Steps, images, minutes and the recipe (every option that differs from the method's defaults) of a training
    run folder, from its train_config.json and metrics.jsonl."""
    from benchmarks.common import run_clock, run_events
    from ganedit.methods import get_method

    cfg = json.loads((run / "train_config.json").read_text())
    rows = run_events(run)
    done = max(int(r["step"]) for r in rows)
    stopped = [r.get("signal", "") for r in rows if r.get("event") == "stopped"]
    defaults = get_method(cfg["method"]).defaults
    shown = ("netG", "ngf", "ndf", "batch", "upsample")
    changed = {k: cfg[k] for k in defaults if k in cfg and k not in shown and k not in ("steps", "snapshot_n", "crop_size", "load_size")
               and cfg[k] != defaults[k]}
    averaged = _kept_an_average(run)
    if not averaged:  # runs from before the translation recipes had an EMA carry the engine's unused ema_kimg
        changed.pop("ema_kimg", None)
    elif float(cfg.get("ema_rampup", 0.0)) > 0:  # an engine key: not in the defaults
        changed["ema_rampup"] = cfg["ema_rampup"]
    if "decay_from" in changed:  # measured again at the decay start (--minutes): where the decay began
        changed["decay_from"] = round(float(changed["decay_from"]), 2)
    if cfg.get("data") != f"synthetic:{TRAIN_COUNT}":  # another training set than the bench's own
        changed["data"] = cfg.get("data")
    return {"method": cfg["method"], "steps_done": done, "images": done * int(cfg["batch"]), "minutes": round(run_clock(run)(done), 1),
            "stopped_by": str(stopped[-1]) if stopped else "", "recipe": {**{k: cfg[k] for k in shown if k in cfg}, **changed}}


def _kept_an_average(run: Path) -> bool:
    """Whether the run's last checkpoint holds EMA weights (what its model/ then exports)."""
    from benchmarks.common import run_checkpoints
    from ganedit.train import checkpoint as ckpt

    kept = run_checkpoints(run)
    return bool(kept) and bool(ckpt.load(kept[-1]).get("ema"))


def curve(run: Path, a: torch.Tensor, b: torch.Tensor) -> List[Dict[str, float]]:
    """PSNR and sharpness of every training checkpoint the run kept: the quality-against-time curve. (The lr
    decay is fitted to the whole run, so a point is what this run had reached then, not a shorter run's end.)"""
    import ganedit
    from benchmarks.common import checkpoint_step, run_checkpoints, run_clock
    from ganedit.metrics.groundtruth import sharpness_ratio
    from ganedit.metrics.image import psnr

    clock, points = run_clock(run), []
    for path in run_checkpoints(run):
        y = _evaluate(ganedit.load(path), a)
        step = checkpoint_step(path)
        points.append({"step": step, "minutes": round(clock(step), 1), "psnr": round(psnr(y, b).mean().item(), 2),
                       "sharpness": round(float(sharpness_ratio(y, b).mean()), 3)})
    return points


def best_on_validation(run: Path, count: int, size: int) -> Tuple[Path, float]:
    """The kept checkpoint (or the final model) of ``run`` with the highest mean PSNR on ``count`` validation pairs."""
    import ganedit
    from benchmarks.common import run_checkpoints
    from ganedit.methods.pix2pix import synthetic_pairs
    from ganedit.metrics.image import psnr

    val = synthetic_pairs(count, size, VALIDATION_SEED, paired=True)
    scored = [(psnr(_evaluate(ganedit.load(path), val.a), val.b).mean().item(), path) for path in run_checkpoints(run)]
    best, path = max(scored, key=lambda pair: pair[0])
    return path, best


def _evaluate(model: torch.nn.Module, a: torch.Tensor) -> torch.Tensor:
    from ganedit.models.cyclegan import select_generator

    g = select_generator(model, "AtoB").eval()
    with torch.inference_mode():
        return torch.cat([g(chunk) for chunk in a.split(50)]).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time budget per method")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--methods", nargs="*", default=["pix2pix", "cyclegan"], choices=sorted(RECIPES),
                        help="recipes to train here (NAME:official = the official widths and batch)")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER",
                        help="also score a run trained elsewhere (ganedit train ... -o FOLDER) under NAME; repeatable")
    parser.add_argument("--select", action="append", default=[], metavar="NAME",
                        help="also score NAME's checkpoint chosen on --validation pairs (early stopping); repeatable")
    parser.add_argument("--validation", type=int, default=200, help="validation pairs for --select")
    parser.add_argument("--out", default="runs/translation_quality", help="run folders (checkpoints, models)")
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate the models already trained in --out")
    parser.add_argument("--no-write", action="store_true", help="print only (no BENCHMARKS.md section, no grid)")
    args = parser.parse_args()

    import ganedit
    from ganedit.cli.demo import labelled_rows
    from ganedit.methods.pix2pix import synthetic_pairs
    from ganedit.metrics.image import psnr, ssim

    print(machine_line(), flush=True)
    test = synthetic_pairs(TEST_COUNT, args.size, TEST_SEED, paired=True)
    a, b = test.a, test.b
    train_b = synthetic_pairs(TRAIN_COUNT, args.size, 0, paired=False).b  # the CycleGAN B set (no pairing used)
    mean, std = lab_stats(train_b)
    outputs = {"copy-input": a.clone(), "Lab colour transfer": colour_transfer(a, mean.mean(0), std.mean(0))}
    runs: Dict[str, Path] = {}
    for method in args.methods:
        out = Path(args.out) / method.replace(":", "_")
        if not args.evaluate_only:
            print(f"training {method} for at most {args.minutes:g} min ...", flush=True)
            _train(method, args.size, args.minutes, out)
        runs[method] = out / "run"
    for item in args.run:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "model").is_dir():
            raise SystemExit(f"--run {item!r}: expected NAME=FOLDER with FOLDER/model (a ganedit training run)")
        runs[name] = Path(folder)
    facts = {name: run_facts(run) for name, run in runs.items()}
    curves = {name: curve(run, a, b) for name, run in runs.items()}
    for name, run in runs.items():
        print(f"  {name}: {facts[name]}", flush=True)
        outputs[name] = _evaluate(ganedit.load(run / "model"), a)
    chosen: Dict[str, str] = {}  # row name -> how its checkpoint was chosen
    for name in args.select:
        if name not in runs:
            raise SystemExit(f"--select {name!r}: no run of that name (runs: {', '.join(runs)})")
        path, val_psnr = best_on_validation(runs[name], args.validation, args.size)
        row = f"{name} (early stop)"
        outputs[row], facts[row] = _evaluate(ganedit.load(path), a), facts[name]
        chosen[row] = (f"checkpoint step {path.stem.split('-')[1].lstrip('0')} of that run, the best of its kept checkpoints on "
                       f"{args.validation} validation pairs (seed {VALIDATION_SEED}, {val_psnr:.2f} dB there)")

    # the paired test set's segmentation (its B renders the same structure): region PSNRs
    from ganedit.data.synthetic.factors import sample_appearance, sample_structure
    from ganedit.data.synthetic.render import render
    from ganedit.metrics.groundtruth import region_psnr, sharpness_ratio

    seg = render(sample_structure(TEST_COUNT, seed=TEST_SEED), sample_appearance(TEST_COUNT, seed=TEST_SEED + 1), args.size).segmentation
    scores = {name: (psnr(y, b).mean().item(), ssim(y, b).mean().item()) for name, y in outputs.items()}
    sharp = {name: float(sharpness_ratio(y, b).mean()) for name, y in outputs.items()}
    regions = {name: region_psnr(y, b, seg) for name, y in outputs.items()}
    for name, (p, s) in scores.items():
        print(f"{name:20s} PSNR {p:6.2f} dB  SSIM {s:.3f}  sharpness {sharp[name]:.2f}  "
              + "  ".join(f"{r} {v:.2f}" for r, v in regions[name].items()), flush=True)

    best_baseline = max(scores["copy-input"][0], scores["Lab colour transfer"][0])
    cmd = ("python -m benchmarks.bench_translation_quality" + (f" --minutes {args.minutes:g}" if args.minutes != 20 else "")
           + " --methods" + "".join(f" {m}" for m in args.methods) + "".join(f" --run {r}" for r in args.run)
           + "".join(f" --select {n}" for n in args.select) + (f" --validation {args.validation}" if args.select and args.validation != 200 else "")
           + f" --out {args.out}")
    evaluated = f" (then `{cmd} --evaluate-only`)" if args.evaluate_only else ""
    lines = [
        "## Translation quality against the synthetic world's ground truth (64 px, CPU)",
        "",
        f"Command: `{cmd}`{evaluated}. Machine: {machine_line()}; load average at the end {os.getloadavg()[0]:.1f} (shared cores).",
        f"Task: domain X -> domain Y of the synthetic world, same factors; {TRAIN_COUNT} training images per domain, "
        f"{TEST_COUNT} test pairs from seed {TEST_SEED}; eval mode; PSNR / SSIM on [-1, 1] images against the ground truth.",
        "",
        "| method | training | PSNR dB | SSIM | PSNR gain over best baseline | sharpness | face | hair | background | clothes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (p, s) in scores.items():
        if name in facts:
            f = facts[name]
            spec = ", ".join(f"{k} {v}" for k, v in f["recipe"].items())  # type: ignore[union-attr]
            training = f"{f['method']}: {f['steps_done']} steps ({f['images']} images) in {f['minutes']} min of steps; {spec}"
            if f["stopped_by"]:
                training += f"; stopped: {f['stopped_by']}"
            if name in chosen:
                training = f"the run above: {chosen[name]}"
            gain = f"{p - best_baseline:+.2f} dB"
        else:
            training, gain = "none (baseline)", ""
        lines.append(f"| {name} | {training} | {p:.2f} | {s:.3f} | {gain} | {sharp[name]:.2f} | "
                     + " | ".join(f"{regions[name][r]:.2f}" for r in ("face", "hair", "background", "clothes")) + " |")
    lines += ["", "sharpness: output / truth gradient energy (1 is right; a blur far below 1, speckle far above); face / hair / "
              "background / clothes: PSNR (dB) inside that region of the truth's segmentation."]
    if any(len(c) > 1 for c in curves.values()):
        lines += ["", "Quality against training time (every checkpoint each run kept; the lr decay is fitted to the whole run):", "",
                  "| method | minutes | step | PSNR dB | sharpness |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {pt['minutes']} | {pt['step']} | {pt['psnr']:.2f} | {pt['sharpness']:.2f} |" for name, c in curves.items() for pt in c]
    lines += ["", f"Grid (labelled rows: input, colour transfer, {', '.join([*runs, *chosen])}, ground truth): `{GRID_PATH.relative_to(REPO)}`."]
    markdown = "\n".join(lines)
    print()
    print(markdown)
    if not args.no_write:
        rows = [("input A (domain X)", a[:8]), ("Lab colour transfer", outputs["Lab colour transfer"][:8])]
        rows += [(name, outputs[name][:8]) for name in [*runs, *chosen]] + [("ground truth (domain Y)", b[:8])]
        GRID_PATH.parent.mkdir(parents=True, exist_ok=True)
        labelled_rows(rows, GRID_PATH)
        write_section("translation_quality", markdown)


if __name__ == "__main__":
    main()
