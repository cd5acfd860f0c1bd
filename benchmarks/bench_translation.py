"""Speed of the pix2pix / CycleGAN generators on this CPU (fp32, 256 px, batch 1 and 4) and ONNX export checks.

    python -m benchmarks.bench_translation [--repeats 3] [--no-onnx] [--no-write]

For resnet_9blocks (CycleGAN: InstanceNorm, no dropout) and unet_256 (pix2pix: BatchNorm, dropout) at ngf 64, in
eval mode with channels_last weights and inputs under torch.inference_mode: images/s and the achieved GFLOP/s
(convolution FLOPs counted by torch.utils.flop_counter.FlopCounterMode on the standard kernels) over the fp32
peak that ``benchmarks.common.fp32_peak_gflops`` measures in the same run (before and after the timings; the
larger is used, so the ratio is conservative). Then both generators are exported to ONNX and compared with
onnxruntime on a random 256 px image (goal: max abs difference <= 1e-4).
"""
from __future__ import annotations

import os

# This machine's cores are shared with other jobs: OpenMP threads that spin while waiting at a barrier then hold a
# core that another thread needs, which slows every small operator down by a scheduler time slice. Passive waiting
# must be chosen before torch (and its OpenMP runtime) loads; an explicit setting in the environment is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict, List  # noqa: E402

import torch  # noqa: E402

from benchmarks.common import fp32_peak_gflops, machine_line, time_repeats, write_section  # noqa: E402
from ganedit.nn.gemm_conv import native_convolutions  # noqa: E402

NETS = {
    "resnet_9blocks": dict(netG="resnet_9blocks", norm="instance", use_dropout=False),
    "unet_256": dict(netG="unet_256", norm="batch", use_dropout=True),
}


def build(name: str) -> torch.nn.Module:
    from ganedit.models.pix2pix import define_G

    torch.manual_seed(0)
    spec = NETS[name]
    return define_G(spec["netG"], 3, 3, 64, spec["norm"], spec["use_dropout"]).eval().to(memory_format=torch.channels_last)


def count_flops(net: torch.nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), native_convolutions(), counter:  # the standard kernels' FLOPs (the GEMM paths compute the same sums)
        net(x)
    return int(counter.get_total_flops())


def speed(repeats: int) -> List[Dict[str, float]]:
    rows = []
    for name in NETS:
        net = build(name)
        for batch in (1, 4):
            x = torch.rand(batch, 3, 256, 256).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
            flops = count_flops(net, x)
            with torch.inference_mode():
                t = time_repeats(lambda: net(x), repeats=repeats, warmup=1)
                with native_convolutions():  # the same net on PyTorch's kernels alone, for the speed-up of the GEMM paths
                    t_native = time_repeats(lambda: net(x), repeats=repeats, warmup=1)
            row = {"net": name, "batch": batch, "gflop_per_image": flops / batch / 1e9, "min_s": t["min"], "median_s": t["median"],
                   "images_per_s": batch / t["min"], "gflops": flops / t["min"] / 1e9, "native_min_s": t_native["min"]}
            print(f"{name:15s} batch {batch}: {row['images_per_s']:.3f} img/s (min {t['min']:.3f} s, median {t['median']:.3f} s), "
                  f"{row['gflops']:.1f} GFLOP/s, {row['gflop_per_image']:.1f} GFLOP/image", flush=True)
            rows.append(row)
        del net
    return rows


def onnx_check() -> List[Dict[str, float]]:
    import numpy as np
    import onnxruntime as ort

    from ganedit.models.pix2pix import export_onnx

    rows = []
    for name in NETS:
        net = build(name).to(memory_format=torch.contiguous_format)
        x = torch.rand(1, 3, 256, 256) * 2 - 1
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / f"{name}.onnx")
            start = time.perf_counter()
            export_onnx(net, path, 256, 256)
            export_s = time.perf_counter() - start
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x.numpy()}
            (y,) = session.run(None, feed)
            ort_t = time_repeats(lambda: session.run(None, feed), repeats=3, warmup=0)
        with torch.inference_mode():
            ref = net(x).numpy()
        diff = float(np.abs(y - ref).max())
        print(f"ONNX {name}: max |onnxruntime - torch| = {diff:.2e} (export {export_s:.1f} s; onnxruntime {1 / ort_t['min']:.3f} img/s)", flush=True)
        rows.append({"net": name, "max_abs_diff": diff, "export_s": export_s, "ort_images_per_s": 1 / ort_t["min"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every figure, peak included (default 1, as the other benchmarks: the second "
                             "core of this machine is often held by other work, which makes 2-thread figures erratic)")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(machine_line(), flush=True)
    peak_before = fp32_peak_gflops()
    print(f"fp32 peak (before): {peak_before['peak_gflops']:.1f} GFLOP/s", flush=True)
    rows = speed(args.repeats)
    peak_after = fp32_peak_gflops()
    print(f"fp32 peak (after): {peak_after['peak_gflops']:.1f} GFLOP/s", flush=True)
    peak = max(peak_before["peak_gflops"], peak_after["peak_gflops"])
    for row in rows:
        row["ratio"] = row["gflops"] / peak
        print(f"{row['net']:15s} batch {row['batch']}: {row['ratio']:.2f} of peak")
    onnx_rows = [] if args.no_onnx else onnx_check()

    cmd = "python -m benchmarks.bench_translation" + (f" --repeats {args.repeats}" if args.repeats != 3 else "") + (f" --threads {args.threads}" if args.threads != 1 else "")
    lines = [
        "## Translation generators (pix2pix / CycleGAN), CPU fp32, 256 px",
        "",
        f"Command: `{cmd}`. Machine: {machine_line()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (set by the script unless given).",
        f"fp32 peak measured in the same run: {peak_before['peak_gflops']:.1f} GFLOP/s before and {peak_after['peak_gflops']:.1f} after "
        f"the timings (matmul {max(peak_before['matmul_gflops'], peak_after['matmul_gflops']):.1f}, conv {max(peak_before['conv_gflops'], peak_after['conv_gflops']):.1f}); "
        "ratios use the larger. Eval mode, ngf 64, channels_last, inference_mode; "
        f"min and median of {args.repeats} timed calls after one warm-up. FLOPs: FlopCounterMode (conv + transposed conv). "
        "The U-Net's convolutions on small maps and its 3-channel output layer run as GEMMs (`ganedit/nn/gemm_conv.py`); "
        "the last column times the same net on PyTorch's own kernels (`native_convolutions()`), in the same run.",
        "",
        "| net | batch | GFLOP/image | images/s (best) | s/call min / median | GFLOP/s | ÷ fp32 peak | s/call, native kernels |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['net']} | {r['batch']} | {r['gflop_per_image']:.1f} | {r['images_per_s']:.3f} | {r['min_s']:.3f} / {r['median_s']:.3f} | {r['gflops']:.1f} | {r['ratio']:.2f} | {r['native_min_s']:.3f} |")
    if onnx_rows:
        lines += ["", "ONNX export (torch.onnx.export, dynamo exporter, opset 18) of the same generators, one random 256 px image, "
                  "compared with onnxruntime (CPUExecutionProvider); goal max |diff| <= 1e-4:", "",
                  "| net | max abs diff | within 1e-4 | onnxruntime images/s |", "| --- | --- | --- | --- |"]
        for r in onnx_rows:
            lines.append(f"| {r['net']} | {r['max_abs_diff']:.2e} | {'yes' if r['max_abs_diff'] <= 1e-4 else 'NO'} | {r['ort_images_per_s']:.3f} |")
    markdown = "\n".join(lines)
    print()
    print(markdown)
    if not args.no_write:
        write_section("translation", markdown)


if __name__ == "__main__":
    main()
