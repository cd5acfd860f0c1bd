"""pSp quality against ground truth (issue 13 §5): an encoder into the W+ of its frozen StyleGAN2 decoder, scored
where the true answer is known.

* In-domain: images G(w+) of the encoder's own decoder at a held-out seed (``ganedit.edit.indomain``, stored
  noise), so the exact answer exists. PSNR / SSIM of the reconstruction against G(w+), and the latent error
  |w_hat - w| / |w_mean - w| (1 = no better than the mean latent). The task's input is derived from G(w+) as in
  training (encode: the image; super_resolution: downsampled by each of the model's factors; inpaint: a box).
* Out of domain (encode only): held-out synthetic-world images, against themselves.
* Baselines on the same images: the mean-latent image; the best of ``--nn`` sampled latents (nearest neighbour
  in pixel space, the issue's 10,000); the task's own copy-input baseline (the degraded input itself); and
  optimisation inversion (``ganedit.edit.projection`` in W+ with its weight-free loss, ``--project-steps``)
  on the first ``--project-n`` images, with its time per image against the encoder's (a ratio, one run).
* ReStyle encoders: PSNR after each refinement step.
* Bars (issue 13 §5): in-domain inversion beats the nearest neighbour by >= 3 dB; every task beats its
  copy-input baseline by >= 3 dB; each ReStyle step adds PSNR up to step 3; the goal against projection:
  within 1.5 dB at >= 100x less time.

    python -m benchmarks.bench_psp_quality --encoder runs/psp_encode/model [--n 64] [--write] [--grid docs/results/psp]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.bench_projection import latent_error, psnr  # noqa: E402
from benchmarks.common import machine_line, write_section  # noqa: E402

NN_BAR_DB = 3.0
TASK_BAR_DB = 3.0
HELDOUT_SEED = 2**31 - 7  # never a training seed of `ganedit data indomain` (default 0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from ganedit.metrics.image import ssim as ssim_fn

    return ssim_fn(a.clamp(-1, 1), b.clamp(-1, 1))


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def nearest_neighbours(G, target_sets: List[torch.Tensor], samples: int, seed: int, batch: int = 64) -> List[torch.Tensor]:
    """For each target of each set, the closest (pixel MSE) of ``samples`` images of randomly sampled latents
    (one pass over the samples serves every set)."""
    g = torch.Generator().manual_seed(seed)
    best = [torch.full((len(t),), float("inf")) for t in target_sets]
    best_img = [torch.zeros_like(t) for t in target_sets]
    with torch.no_grad():
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            z = torch.randn(n, G.g_ema.style_dim, generator=g)
            imgs = G.synthesis(G.mapping(z), noise="const").clamp(-1, 1)
            for targets, b, bi in zip(target_sets, best, best_img):
                dmin, idx = torch.cdist(targets.flatten(1), imgs.flatten(1)).min(1)
                better = dmin < b
                b[better] = dmin[better]
                bi[better] = imgs[idx[better]]
    return best_img


def scores(out: torch.Tensor, target: torch.Tensor) -> Dict[str, float]:
    return {"psnr": float(psnr(out, target).mean()), "ssim": float(ssim(out, target).mean())}


def row(name: str, s: Dict[str, float], extra: str = "") -> str:
    return f"| {name} | {s['psnr']:.2f} | {s['ssim']:.3f} | {extra} |"


def encode_decode(model, x: torch.Tensor) -> torch.Tensor:
    return batched(lambda b: model.decode(model.encode(b)).clamp(-1, 1), x)


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True, help="pSp / e4e model (native folder or official .pt)")
    ap.add_argument("--n", type=int, default=64, help="in-domain (and world) images")
    ap.add_argument("--mixing", type=float, default=0.5, help="style-mixing probability of the in-domain codes")
    ap.add_argument("--nn", type=int, default=10000, help="sampled latents of the nearest-neighbour baseline")
    ap.add_argument("--project-n", type=int, default=8, help="images inverted by optimisation (0: skip)")
    ap.add_argument("--project-steps", type=int, default=500)
    ap.add_argument("--factors", type=lambda t: [int(f) for f in t.split(",")], default=[4, 8],
                    help="super_resolution: downsampling factors, taken in turn")
    ap.add_argument("--grid", type=Path, default=None, help="write labelled grids here")
    ap.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section psp-quality")
    args = ap.parse_args(argv)

    from ganedit.cli.invert import load_encoder
    from ganedit.edit.indomain import decode, sample_codes
    from ganedit.edit.projection import project
    from ganedit.methods.psp import task_condition
    from ganedit.metrics.groundtruth import training_images
    from ganedit.models.stylegan2 import StyleGAN2

    torch.manual_seed(0)
    model = load_encoder(args.encoder)
    task = model.task
    # the decoder as a StyleGAN2 wrapper (mapping with truncation, synthesis with stored noise), mean = latent_avg
    G = StyleGAN2(generator=model.decoder.config, has_latent_avg=False)
    G.g_ema.load_state_dict(model.decoder.state_dict())
    with torch.no_grad():
        G.latent_avg.copy_(model.latent_avg.reshape(-1, G.g_ema.style_dim).mean(0))
    G.eval()
    size = G.g_ema.size
    lines: List[str] = []
    t_start = time.perf_counter()

    # ---------------------------------------------------------------------------------------- in-domain
    codes = sample_codes(G, args.n, HELDOUT_SEED, mixing=args.mixing)
    truth = decode(G, codes["wplus"]).clamp(-1, 1)
    inputs = task_condition(truth, task, args.factors, HELDOUT_SEED)
    t0 = time.perf_counter()
    wplus = batched(model.encode, inputs)
    enc_seconds = (time.perf_counter() - t0) / args.n
    recon = batched(lambda w: model.decode(w).clamp(-1, 1), wplus)
    mean_w = G.latent_avg.reshape(1, -1)
    mean_img = batched(lambda w: G.synthesis(w, noise="const"), mean_w.expand(args.n, -1)).clamp(-1, 1)
    world = training_images(args.n, size, HELDOUT_SEED, "x") if task == "encode" else None
    t0 = time.perf_counter()
    nn_img, *w_nn = nearest_neighbours(G, [truth] + ([world] if world is not None else []), args.nn, seed=1)
    nn_seconds = time.perf_counter() - t0
    s_model, s_mean, s_nn = scores(recon, truth), scores(mean_img, truth), scores(nn_img, truth)
    lat = float(latent_error(wplus, codes["w"], mean_w[0]).mean())
    lines += [f"### In-domain: {args.n} images G(w+) of the encoder's own decoder (seed {HELDOUT_SEED}, style mixing "
              f"{args.mixing}), task `{task}`", "",
              "| method | PSNR (dB) | SSIM | note |", "| --- | --- | --- | --- |",
              row("pSp", s_model, f"latent error {lat:.3f} (1 = the mean latent); {enc_seconds * 1e3:.1f} ms/image encode"),
              row(f"best of {args.nn} sampled latents (pixel NN)", s_nn, f"{nn_seconds:.0f} s for the search"),
              row("mean-latent image", s_mean, "")]
    copy_in = None
    if task in ("super_resolution", "inpaint"):
        copy_in = inputs[:, :3].clamp(-1, 1)
        lines.append(row("copy input (bilinear / masked)", scores(copy_in, truth), ""))
    if getattr(model, "restyle", False):
        steps = model.restyle_steps(inputs, 5)
        per = " / ".join(f"{float(psnr(img.clamp(-1, 1), truth).mean()):.2f}" for _, img in steps)
        lines.append(f"| ReStyle steps 1..{len(steps)} | {per} | | PSNR after each refinement step |")
    proj_img = None
    if args.project_n > 0 and task == "encode":
        k = min(args.project_n, args.n)
        t0 = time.perf_counter()
        result = project(G, truth[:k], space="w+", steps=args.project_steps, seed=0, lpips=False)
        proj_seconds = (time.perf_counter() - t0) / k
        proj_img = result.images.detach().clamp(-1, 1)
        s_proj, s_model_k = scores(proj_img, truth[:k]), scores(recon[:k], truth[:k])
        lines += ["", f"Against optimisation inversion (W+, {args.project_steps} steps, weight-free loss) on the first {k} images:",
                  "", "| method | PSNR (dB) | SSIM | s / image |", "| --- | --- | --- | --- |",
                  f"| pSp | {s_model_k['psnr']:.2f} | {s_model_k['ssim']:.3f} | {enc_seconds:.4f} |",
                  f"| projection | {s_proj['psnr']:.2f} | {s_proj['ssim']:.3f} | {proj_seconds:.2f} |", "",
                  f"pSp - projection: {s_model_k['psnr'] - s_proj['psnr']:+.2f} dB at {proj_seconds / enc_seconds:.0f}x less time "
                  f"(goal: within 1.5 dB at >= 100x)."]
    gain = s_model["psnr"] - s_nn["psnr"]
    lines += ["", f"**Bar (in-domain inversion beats the nearest neighbour by >= {NN_BAR_DB:g} dB): {gain:+.2f} dB, "
              f"{'met' if gain >= NN_BAR_DB else 'not met'}.**"]
    if copy_in is not None:
        g2 = s_model["psnr"] - scores(copy_in, truth)["psnr"]
        lines.append(f"**Bar (task beats copy-input by >= {TASK_BAR_DB:g} dB): {g2:+.2f} dB, {'met' if g2 >= TASK_BAR_DB else 'not met'}.**")

    # ------------------------------------------------------------------------------------ out of domain
    if world is not None:
        w_recon = encode_decode(model, world)
        w_nn = w_nn[0]
        w_mean = mean_img[:1].expand_as(world)
        lines += ["", f"### Out of domain: {args.n} held-out synthetic-world images", "",
                  "| method | PSNR (dB) | SSIM | note |", "| --- | --- | --- | --- |",
                  row("pSp", scores(w_recon, world)), row(f"best of {args.nn} sampled latents", scores(w_nn, world)),
                  row("mean-latent image", scores(w_mean, world))]

    if args.grid is not None:
        from ganedit.cli.demo import labelled_rows

        args.grid.mkdir(parents=True, exist_ok=True)
        k = min(8, args.n)
        rows = [("input", inputs[:k, :3].clamp(-1, 1)), ("truth G(w+)", truth[:k]), ("pSp", recon[:k]),
                ("NN of 10k" if args.nn == 10000 else f"NN of {args.nn}", nn_img[:k]), ("mean latent", mean_img[:k])]
        if proj_img is not None:
            kk = proj_img.shape[0]
            rows.append((f"proj. {args.project_steps}", torch.cat([proj_img, mean_img[kk:k] * 0 + 1])[:k]))
        labelled_rows(rows, args.grid / f"{task}_indomain.png")
        if world is not None:
            labelled_rows([("world image", world[:k]), ("pSp", w_recon[:k]), ("NN of 10k" if args.nn == 10000 else f"NN of {args.nn}", w_nn[:k])],
                          args.grid / f"{task}_world.png")
        lines += ["", f"Grids: `{args.grid}/{task}_indomain.png`" + (f", `{args.grid}/{task}_world.png`" if world is not None else "")]

    head = [f"Command: `python -m benchmarks.bench_psp_quality {' '.join(argv if argv is not None else sys.argv[1:])}`. "
            f"Encoder `{args.encoder}`; decoder {size} px; {time.perf_counter() - t_start:.0f} s in all. {machine_line()}", ""]
    text = "## pSp against ground truth (issue 13 §5)\n\n" + "\n".join(head + lines) + "\n"
    print(text)
    if args.write:
        write_section("psp-quality", text)


if __name__ == "__main__":
    main()
