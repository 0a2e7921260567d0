"""Claim: ``quant.ptq`` int8 is never slower than fp32 in ONNX Runtime and at least as fast as
ONNX Runtime's own quantizer on the same model; >= 1.5x on EfficientNet-B0 / MobileNetV3 at
224x224 and ~3x on ResNet-50 / VGG-16, at batch 1 and 16.

Per zoo model (random weights, randomised BatchNorm statistics: speed does not depend on the
values), one fp32 ONNX export (``torchslim.profiler.export_onnx``) gives
- the anchor: ``onnxruntime.quantization.quant_pre_process`` + ``quantize_static`` (QDQ,
  per-channel int8 weights, uint8 activations, MinMax calibration);
- ours: ``quant.ptq`` (MinMax observer, the same calibration images) with its default latency
  check (int8 measured against fp32 at batch 1 and 16; layers it left float are counted);
then, per batch size, ours is timed against fp32 and against the anchor in ONNX Runtime
(``threads`` intra-op threads), each pair interleaved (:func:`torchslim.core.timing.compare_interleaved`,
median of per-round ratios). Integer Conv/Gemm share is read from each optimised graph
(:mod:`torchslim.quant.onnx_check`); SQNR (dB) of each int8 model vs fp32 on 4 random inputs.
"noisy" flags a comparison whose rounds spread more than core/timing allows (re-run on a quiet machine).

    .venv/bin/python benchmarks/quant_vs_ort.py [--threads 2] [--models all] [--batches 1,16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.core import Context
from torchslim.core.timing import compare_interleaved
from torchslim.profiler import export_onnx, onnx_session
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.quant import PTQConfig, ptq_
from torchslim.quant.onnx_check import FLOAT_COMPUTE_OPS, INTEGER_LAYER_OPS, optimized_op_counts
from torchslim.zoo import create_model, list_models

CALIBRATION_IMAGES = 32


def randomised(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def anchor_quantize(fp32: Path, out: Path, calibration: np.ndarray) -> None:
    """ONNX Runtime's own static int8: pre-processing (shape inference, graph optimisation), then QDQ."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre))
    except AssertionError:  # its symbolic shape inference fails on the ViT's reshapes: ORT's shape inference only
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"input": calibration[i:i + 8]} for i in range(0, len(calibration), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def integer_share(path: Path) -> float:
    """Integer Conv/Gemm/MatMul layers over all Conv/Gemm/MatMul layers of ORT's optimised graph."""
    ops = optimized_op_counts(path)
    integer = sum(n for op, n in ops.items() if op in INTEGER_LAYER_OPS)
    return 100.0 * integer / max(1, integer + sum(n for op, n in ops.items() if op in FLOAT_COMPUTE_OPS))


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10((ref ** 2).sum() / max(((ref - out) ** 2).sum(), 1e-30)))


def run_model(name: str, folder: Path, batches: list[int], threads: int, rounds: int) -> list[dict]:
    model = randomised(name)
    shape = tuple(model._torchslim_origin["input_shape"])
    gen = torch.Generator().manual_seed(0)
    calibration = torch.randn(CALIBRATION_IMAGES, *shape, generator=gen)
    x = calibration[:1]
    paths = {kind: folder / f"{name}.{kind}.onnx" for kind in ("fp32", "ours", "anchor")}
    export_onnx(model, (x,), paths["fp32"])
    start = time.perf_counter()
    anchor_quantize(paths["fp32"], paths["anchor"], calibration.numpy())
    anchor_s = time.perf_counter() - start
    ours = copy.deepcopy(model)
    ctx = Context((x,), data=SimpleNamespace(train=TensorDataset(calibration, torch.zeros(len(calibration)))),
                  progress=False, measure=MeasureConfig(batch_sizes=tuple(batches), threads=threads))
    start = time.perf_counter()
    ptq_(ours, PTQConfig(observer="minmax", num_samples=CALIBRATION_IMAGES, calibration_batch_size=8,
                         export_onnx=False), ctx)
    ours_s = time.perf_counter() - start
    details = ctx.results[-1].details
    export_onnx(ours, (x,), paths["ours"])
    share = {kind: integer_share(paths[kind]) for kind in ("ours", "anchor")}
    test = torch.randn(4, *shape, generator=gen).numpy()
    outputs = {kind: onnx_session(p, threads).run(None, {"input": test})[0] for kind, p in paths.items()}
    sqnr = {kind: sqnr_db(outputs["fp32"], outputs[kind]) for kind in ("ours", "anchor")}
    print(f"{name}: anchor quantized in {anchor_s:.1f} s, ours in {ours_s:.1f} s (latency check included); "
          f"float for speed: {len(details.get('float_for_speed', {}))} of {details['planned_layers']} layers", flush=True)
    rows = []
    for batch in batches:
        feed = {"input": np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)}
        sessions = {kind: onnx_session(p, threads) for kind, p in paths.items()}

        def call(kind: str):
            return lambda: sessions[kind].run(None, feed)

        vs_fp32 = compare_interleaved(call("fp32"), call("ours"), rounds=rounds, burst_seconds=0.05)
        vs_anchor = compare_interleaved(call("anchor"), call("ours"), rounds=rounds, burst_seconds=0.05)
        rows.append({"model": name, "batch": batch, "fp32_ms": vs_fp32.baseline_ms, "ours_ms": vs_fp32.candidate_ms,
                     "anchor_ms": vs_anchor.baseline_ms, "vs_fp32": vs_fp32.speedup, "vs_anchor": vs_anchor.speedup,
                     "int_ours": share["ours"], "int_anchor": share["anchor"], "sqnr_ours": sqnr["ours"],
                     "sqnr_anchor": sqnr["anchor"], "float_layers": len(details.get("float_for_speed", {})),
                     "noisy": not (vs_fp32.reliable and vs_anchor.reliable)})
        r = rows[-1]
        print(f"  batch {batch}: fp32 {r['fp32_ms']:.2f} ms, ours {r['ours_ms']:.2f} ms, anchor {r['anchor_ms']:.2f} ms; "
              f"ours {r['vs_fp32']:.2f}x fp32, {r['vs_anchor']:.2f}x anchor" + (" (noisy)" if r["noisy"] else ""),
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="all", help="comma-separated zoo names, or all")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = list_models() if args.models == "all" else args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    import onnxruntime

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load average {load:.1f}, "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} ORT threads")
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="torchslim-vs-ort-") as folder:
        for name in names:
            rows += run_model(name, Path(folder), batches, args.threads, args.rounds)
    print(f"\n{time.perf_counter() - start:.0f} s; speedups are t(other) / t(ours): > 1 means ours is faster\n")
    print("| model | batch | fp32 ms | ours ms | ORT-anchor ms | ours vs fp32 | ours vs anchor | integer Conv/Gemm % "
          "ours (anchor) | SQNR dB ours (anchor) | float for speed | spread |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['fp32_ms']:.2f} | {r['ours_ms']:.2f} | {r['anchor_ms']:.2f} | "
              f"{r['vs_fp32']:.2f}x | {r['vs_anchor']:.2f}x | {r['int_ours']:.0f} ({r['int_anchor']:.0f}) | "
              f"{r['sqnr_ours']:.1f} ({r['sqnr_anchor']:.1f}) | {r['float_layers']} | "
              f"{'noisy' if r['noisy'] else 'ok'} |")


if __name__ == "__main__":
    main()
