"""StyleGAN2 speed and memory on CPU (issue §4): generator forward at 256 px config-f against the machine's fp32
peak, FIR ops against the naive reference, peak memory of one 1024 px image, and ONNX export checked with
onnxruntime. Run from the repository root:

    python -m benchmarks.bench_stylegan2            (add --quick for a fast smoke run)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import REPO, fp32_peak_gflops, machine_line, time_repeats, write_section
from ganedit.models.stylegan2 import Generator, export_onnx
from ganedit.nn import ModulatedConv2d
from ganedit.ops import make_kernel, upfirdn2d
from ganedit.ops.reference import upfirdn2d_ref

COMMAND = "python -m benchmarks.bench_stylegan2"


def set_form(generator: torch.nn.Module, fused) -> None:
    for m in generator.modules():
        if isinstance(m, ModulatedConv2d):
            m.fused = fused


def bench_generator(size: int, batch: int, repeats: int) -> dict:
    """Per form: `repeats` pairs of (fp32 peak, forward time), measured back to back so that both see the same
    load from other jobs; the ratio is taken per pair and its median reported with the min/median times."""
    import statistics

    torch.manual_seed(0)
    G = Generator(size, 512, 8, channel_multiplier=2).eval().requires_grad_(False)
    w = G.mapping(torch.randn(batch, 512))
    with FlopCounterMode(display=False) as counter:
        G.synthesis(w)
    flops = counter.get_total_flops()
    results: dict = {"gflop_per_batch": flops / 1e9}
    for label, form in (("auto (= fused at batch > 1)", None), ("grouped (official form)", False)):
        set_form(G, form)
        times, peaks, ratios = [], [], []
        with torch.inference_mode():
            G.synthesis(w)  # warm-up
            for _ in range(repeats):
                peak = fp32_peak_gflops(repeats=2)["peak_gflops"]
                t = time_repeats(lambda: G.synthesis(w), repeats=1, warmup=0)["min"]
                times.append(t)
                peaks.append(peak)
                ratios.append(flops / t / 1e9 / peak)
        results[label] = {
            "min_s": min(times), "median_s": statistics.median(times), "images_per_s": batch / min(times),
            "gflops": flops / min(times) / 1e9, "peaks": peaks, "ratios": ratios,
            "ratio_median": statistics.median(ratios), "ratio_max": max(ratios),
        }
    set_form(G, None)
    return results


def bench_fir(repeats: int) -> dict:
    torch.manual_seed(0)
    k = make_kernel([1, 3, 3, 1])
    x = torch.randn(4, 64, 128, 128)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    cases = {
        "upsample x2 ([1,3,3,1], pad (2,1))": (k * 4, 2, 1, (2, 1)),
        "downsample /2 ([1,3,3,1], pad (1,1))": (k, 1, 2, (1, 1)),
        "blur ([1,3,3,1], pad (2,2))": (k, 1, 1, (2, 2)),
    }
    out = {}
    with torch.inference_mode():
        for name, (kern, up, down, pad) in cases.items():
            ref = time_repeats(lambda: upfirdn2d_ref(x, kern, up, down, pad), repeats=repeats)
            fast = time_repeats(lambda: upfirdn2d(x, kern, up, down, pad), repeats=repeats)
            fast_cl = time_repeats(lambda: upfirdn2d(x_cl, kern, up, down, pad), repeats=repeats)
            out[name] = {"ref_s": ref["min"], "fast_s": fast["min"], "fast_cl_s": fast_cl["min"],
                         "speedup": ref["min"] / fast["min"], "speedup_cl": ref["min"] / fast_cl["min"],
                         "speedup_median": ref["median"] / fast["median"]}
    return out


MEMORY_SCRIPT = r"""
import json, resource, time, torch
from ganedit.models.stylegan2 import Generator
torch.manual_seed(0)
G = Generator(1024, 512, 8, channel_multiplier=2).eval()
with torch.inference_mode():
    w = G.mapping(torch.randn(1, 512))
    t = time.perf_counter()
    img = G.synthesis(w)
    t = time.perf_counter() - t
# VmHWM is the peak RSS of this process image; ru_maxrss would also count the parent's pages inherited at fork
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"maxrss_mib": peak, "seconds": t,
                  "shape": list(img.shape), "finite": bool(torch.isfinite(img).all())}))
"""


def bench_memory_1024(threads: int = 1) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], cwd=REPO, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_onnx(size: int) -> dict:
    import numpy as np
    import onnxruntime

    torch.manual_seed(0)
    G = Generator(size, 512, 8, channel_multiplier=2).eval()
    wplus = G.mapping(torch.randn(1, 512)).detach().unsqueeze(1).repeat(1, G.n_latent, 1)
    wplus = wplus + 0.1 * torch.randn_like(wplus)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.onnx"
        t0 = time.perf_counter()
        export_onnx(G, path, batch=1)
        export_s = time.perf_counter() - t0
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.inference_mode():
            expected = G.synthesis(wplus).numpy()
        (got,) = session.run(None, {"wplus": wplus.numpy()})
        ort = time_repeats(lambda: session.run(None, {"wplus": wplus.numpy()}), repeats=3)
        with torch.inference_mode():
            pt = time_repeats(lambda: G.synthesis(wplus), repeats=3)
    diff = float(np.abs(got - expected).max())
    return {"size": size, "max_abs_diff": diff, "ok": diff <= 1e-3, "export_s": export_s,
            "onnxruntime_s": ort["min"], "torch_s": pt["min"]}


def _real_images(n: int, size: int, seed: int) -> torch.Tensor:
    from ganedit.data.synthetic.factors import sample_appearance, sample_structure
    from ganedit.data.synthetic.render import render

    return render(sample_structure(n, seed=seed), sample_appearance(n, seed=seed + 1), size).image


def _blur_baseline(images: torch.Tensor) -> torch.Tensor:
    """Real images with their top octave removed: FIR downsample by 2, then FIR upsample by 2 ([1,3,3,1])."""
    k = make_kernel([1, 3, 3, 1])
    with torch.no_grad():
        return upfirdn2d(upfirdn2d(images, k, down=2, pad=(1, 1)), k * 4, up=2, pad=(2, 1))


def swd_of_run(run: Path, n: int, every: int, previous: Optional[dict] = None) -> dict:
    """SWD (x1e3, mean over pyramid levels) of G and its EMA at the run's checkpoints against n held-out real
    images, with the floor (another real set) and the blurred-real baseline. Rows of ``previous`` (an earlier
    result for the same run and n) are reused instead of recomputed."""
    from ganedit.metrics.sliced_wasserstein import swd
    from ganedit.train.checkpoint import list_checkpoints, load

    checkpoints = sorted(list_checkpoints(run / "checkpoints"))
    if not checkpoints:
        raise SystemExit(f"no checkpoints in {run / 'checkpoints'}")
    cfg = load(checkpoints[-1][1])["config"]
    size = int(cfg["size"])
    reference = _real_images(n, size, seed=1000)  # held out: training used seeds (seed, seed + 1)
    # rows are reused only from the same run folder (another run's checkpoints share step numbers)
    same = previous is not None and previous.get("n") == n and previous.get("size") == size and previous.get("run") == str(run)
    if same:
        out = {k: previous[k] for k in ("size", "n", "floor_real_vs_real", "blurred_real")}
    else:
        other = _real_images(n, size, seed=2000)
        out = {"size": size, "n": n, "floor_real_vs_real": swd(other, reference).mean,
               "blurred_real": swd(_blur_baseline(other), reference).mean}
    out["run"] = str(run)
    out["curve"] = []
    print(json.dumps(out))
    G = Generator(size, cfg["style_dim"], cfg["n_mlp"], lr_mlp=cfg["lr_mlp"], channel_base=cfg["channel_base"],
                  channel_max=cfg["channel_max"]).eval()
    done = {r["step"]: r for r in previous.get("curve", [])} if same else {}
    # every k-th checkpoint, the last, and any scored before (a later call on a longer run keeps the earlier rows)
    chosen = [c for i, c in enumerate(checkpoints) if i % every == 0 or i == len(checkpoints) - 1 or c[0] in done]
    for step, path in chosen:
        if step in done:
            out["curve"].append(done[step])
            continue
        state = load(path)
        row = {"step": step, "kimg": state["images_seen"] / 1000}
        for label, weights in (("G", state["nets"]["G"]), ("G_ema", state.get("ema", {}).get("G"))):
            if weights is None:
                continue
            G.load_state_dict(weights)
            gen = torch.Generator().manual_seed(123)
            with torch.inference_mode():
                fakes = torch.cat([G.synthesis(G.mapping(torch.randn(250, G.style_dim, generator=gen)), noise="random")
                                   for _ in range((n + 249) // 250)])[:n]
            row[label] = swd(fakes, reference).mean
        out["curve"].append(row)
        print(json.dumps(row))
    # sample grid of the final checkpoint, from whichever of G / G_ema scores better there
    last = out["curve"][-1]
    label = min((k for k in ("G", "G_ema") if k in last), key=lambda k: last[k])
    final = load(chosen[-1][1])
    G.load_state_dict(final["nets"]["G"] if label == "G" else final["ema"]["G"])
    with torch.inference_mode():
        out["grid_images"] = G.synthesis(G.mapping(torch.randn(32, G.style_dim, generator=torch.Generator().manual_seed(7))), noise="const")
    out["grid_network"] = label
    return out


def write_training_section(run: Path, result: dict, grid: Path) -> None:
    lines = [
        f"## stylegan2 training (synthetic world, {result['size']} px)",
        "",
        f"Command: `python -m benchmarks.bench_stylegan2 --swd-run {run}` on the run made by "
        f"`{(run / 'command.txt').read_text().strip() if (run / 'command.txt').exists() else 'ganedit train stylegan2'}`.",
        (run / "note.txt").read_text().strip() if (run / "note.txt").exists() else "",
        f"SWD x1e3 (mean over Laplacian levels, 7x7 patches) of {result['n']} samples against {result['n']} held-out real "
        f"{result['size']} px images. Floor (another real set): {result['floor_real_vs_real']:.2f}; "
        f"blurred real images (FIR /2 then x2): {result['blurred_real']:.2f}.",
        "",
        "| step | kimg | SWD G | SWD G_ema |",
        "|---|---|---|---|",
    ]
    for row in result["curve"]:
        lines.append(f"| {row['step']} | {row['kimg']:.1f} | {row.get('G', float('nan')):.2f} | {row.get('G_ema', float('nan')):.2f} |")
    best = min(min(r.get("G", 1e9), r.get("G_ema", 1e9)) for r in result["curve"])
    verdict = "below" if best < result["blurred_real"] else "NOT below"
    lines += ["", f"Best SWD {best:.2f}: {verdict} the blurred-real baseline. Sample grid ({result['grid_network']} of the last "
              f"checkpoint, 32 fixed z, stored noise): `{grid}`; the curve as JSON beside it."]
    write_section(f"stylegan2-train-{result['size']}", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat (smoke test; writes nothing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every figure, peak included (default 1: DESIGN §7, a second thread adds "
                             "nothing here, and one thread is far less sensitive to other jobs' load)")
    parser.add_argument("--swd-run", type=Path, default=None, help="instead: SWD curve of a `ganedit train stylegan2` run folder")
    parser.add_argument("--swd-n", type=int, default=5000, help="images per set for --swd-run")
    parser.add_argument("--swd-every", type=int, default=1, help="use every k-th checkpoint for --swd-run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.swd_run is not None:
        cache = args.swd_run / "swd_curve.json"
        previous = json.loads(cache.read_text()) if cache.exists() else None
        result = swd_of_run(args.swd_run, args.swd_n, args.swd_every, previous)
        cache.write_text(json.dumps({k: v for k, v in result.items() if k != "grid_images"}, indent=1))
        from ganedit.data.io import write_grid

        results = REPO / "docs" / "results"
        results.mkdir(parents=True, exist_ok=True)
        grid = results / f"stylegan2_synthetic_{result['size']}.png"
        write_grid(result.pop("grid_images"), grid, nrow=8)
        (results / f"stylegan2_synthetic_{result['size']}_swd.json").write_text(json.dumps(result, indent=1) + "\n")
        write_training_section(args.swd_run, result, grid.relative_to(REPO))
        return
    repeats = 1 if args.quick else 3
    size = 64 if args.quick else 256

    gen = bench_generator(size, 4, repeats)
    print(json.dumps(gen, indent=1))
    fir = bench_fir(repeats)
    print(json.dumps(fir, indent=1))
    mem = bench_memory_1024(args.threads)
    print(json.dumps(mem))
    onnx = bench_onnx(64 if args.quick else 256)
    print(json.dumps(onnx))
    if args.quick:
        return

    lines = [
        "## stylegan2",
        "",
        f"Command: `{COMMAND}` (CPU, fp32, {args.threads} thread(s) for every figure). Machine: {machine_line()}.",
        "",
        f"Generator forward (synthesis from w, const noise), {size} px config-f (channel_multiplier 2, style_dim 512, n_mlp 8), batch 4, "
        f"{gen['gflop_per_batch']:.1f} GFLOP per batch (torch.utils.flop_counter on the forward). Each of {repeats} repeats measures the "
        "fp32 peak (better of the 2048^3 matmul and the 3x3 conv, benchmarks.common) and then one forward, back to back; "
        "the ratio achieved GFLOP/s ÷ peak is taken per pair:",
        "",
        "| modulated-conv form | s / batch (min, median) | images/s | GFLOP/s (best) | peaks GFLOP/s | ÷ peak (median, best) |",
        "|---|---|---|---|---|---|",
    ]
    for label in ("auto (= fused at batch > 1)", "grouped (official form)"):
        r = gen[label]
        lines.append(f"| {label} | {r['min_s']:.2f}, {r['median_s']:.2f} | {r['images_per_s']:.2f} | {r['gflops']:.1f} | "
                     f"{', '.join(f'{p:.0f}' for p in r['peaks'])} | {r['ratio_median']:.2f}, {r['ratio_max']:.2f} |")
    lines += ["", "FIR ops (upfirdn2d) on [4, 64, 128, 128] against the naive reference (zero insertion + pad + depthwise conv), min of "
              f"{repeats}:", "", "| op | reference s | fast s (NCHW) | fast s (channels_last) | speed-up (NCHW, channels_last) |", "|---|---|---|---|---|"]
    for name, r in fir.items():
        lines.append(f"| {name} | {r['ref_s']:.4f} | {r['fast_s']:.4f} | {r['fast_cl_s']:.4f} | {r['speedup']:.1f}x, {r['speedup_cl']:.1f}x |")
    lines += ["", f"One 1024 px image (config-f, random weights) in a fresh process: peak resident memory {mem['maxrss_mib']:.0f} MiB "
              f"(VmHWM of the process, limit 2048 MiB), forward {mem['seconds']:.2f} s.",
              "", f"ONNX: {onnx['size']} px generator with fixed noise exported (torch.onnx, dynamo) in {onnx['export_s']:.1f} s; onnxruntime vs PyTorch max |diff| "
              f"{onnx['max_abs_diff']:.2e} ({'within' if onnx['ok'] else 'OUTSIDE'} atol 1e-3); one image: onnxruntime {onnx['onnxruntime_s']:.2f} s, PyTorch {onnx['torch_s']:.2f} s."]
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    if load:
        lines += ["", f"Load average when the run ended: {' '.join(load)} (other jobs shared the CPU; ratios are within one run)."]
    write_section("stylegan2", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
