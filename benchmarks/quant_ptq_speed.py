"""Claim: int8 PTQ runs >= 2.5x faster than fp32 in ONNX Runtime (same runtime, same threads).

ResNet-50, VGG-16 and MobileNetV2 at 224x224 (``quant.ptq``), and the zoo's ViT (32x32,
``quant.dynamic``: dynamic int8 Linear layers) (random weights with randomised BatchNorm
statistics; speed does not depend on the weight values), batch 1 and 16. Both models are
exported with ``torchslim.profiler.export_onnx`` and timed with ``measure_latency`` in
alternation (fp32, int8, fp32, int8, ...) so load from other processes hits both alike;
the table gives medians of the per-round p50s and the median of per-round ratios.

    .venv/bin/python benchmarks/quant_ptq_speed.py [--threads 1] [--rounds 3] [--models resnet50,vgg16,mobilenetv2,vit]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from types import SimpleNamespace

import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.core import Context
from torchslim.profiler import measure_latency
from torchslim.quant import DynamicConfig, PTQConfig, dynamic_, ptq_
from torchslim.quant.onnx_check import export_and_check
from torchslim.zoo import create_model


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="resnet50,vgg16,mobilenetv2,vit")
    parser.add_argument("--batches", default="1,16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"threads {args.threads}")
    rows = []
    for name in args.models.split(","):
        model = randomised(name)
        x = torch.randn(1, *model._torchslim_origin["input_shape"])
        calib = SimpleNamespace(train=TensorDataset(torch.randn(16, *x.shape[1:]), torch.zeros(16)))
        ctx = Context((x,), data=calib)
        int8 = copy.deepcopy(model)
        start = time.perf_counter()
        if name == "vit":
            dynamic_(int8, DynamicConfig(export_onnx=False), ctx)
        else:
            ptq_(int8, PTQConfig(observer="minmax", num_samples=16, calibration_batch_size=8, export_onnx=False), ctx)
        quant_s = time.perf_counter() - start
        check, warnings = export_and_check(int8, ctx, "int8.onnx")
        print(f"{name}: quantized in {quant_s:.1f} s; ORT integer ops {check['ort_integer_ops']}, "
              f"float Conv/Gemm/MatMul {check['ort_float_compute_ops']}, exporter {check['onnx_exporter']}"
              + "".join(f"\n  warning: {w}" for w in warnings))
        for batch in map(int, args.batches.split(",")):
            budget = 1.0 if name != "vgg16" or batch == 1 else 0.1  # VGG-16 b16: ~250 GMACs per call
            fp32_ms, int8_ms, ratios = [], [], []
            for _ in range(args.rounds):
                kw = dict(runtime="onnxruntime", threads=args.threads, batch_size=batch, repeats=10,
                          min_repeats=2, max_seconds=budget)
                f = measure_latency(model, (x,), **kw).latency_ms_p50
                q = measure_latency(int8, (x,), **kw).latency_ms_p50
                fp32_ms.append(f)
                int8_ms.append(q)
                ratios.append(f / q)
            rows.append((name, batch, statistics.median(fp32_ms), statistics.median(int8_ms),
                         statistics.median(ratios)))
            print(f"  batch {batch}: fp32 {rows[-1][2]:.1f} ms, int8 {rows[-1][3]:.1f} ms, "
                  f"speedup {rows[-1][4]:.2f}x", flush=True)
    print("\n| model | batch | fp32 ORT p50 ms | int8 ORT p50 ms | speedup (median of rounds) |")
    print("|---|---|---|---|---|")
    for name, batch, f, q, r in rows:
        print(f"| {name} | {batch} | {f:.1f} | {q:.1f} | {r:.2f}x |")


if __name__ == "__main__":
    main()
