"""Realized speedup of channel pruning at 2x fewer MACs (issue 3, Performance).

For ResNet-50, VGG-16 and MobileNetV2 (zoo, ImageNet layout): prune to ``target_macs=2``
(L1, uniform) with ``round_to`` 1 and 8, then time the original and the pruned model side by
side in eager PyTorch and ONNX Runtime at batch 1 and 16. Reported: latency speedup, and
speedup / MACs reduction (1.0 = the MAC count predicts the time exactly). Original and pruned
are timed alternately in ``ROUNDS`` rounds and the median of the per-round ratios is quoted,
so machine load drifts cancel.

    .venv/bin/python benchmarks/prune_speedup.py [--size 128] [--threads 1] [--models resnet50,vgg16,mobilenetv2]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import warnings

import numpy as np
import torch

from torchslim.core import Context
from torchslim.core.warmup import time_calls, wall_clock, warm_up
from torchslim.profiler import export_onnx, onnx_session, profile_model
from torchslim.prune import prune_channels_
from torchslim.zoo import create_model

ROUNDS = 3


def _time(fn, min_calls: int = 2, max_seconds: float = 0.8) -> float:
    time_call = wall_clock(fn)
    warm_up(time_call)  # until timings settle (bounded): a fresh ORT session is slow at first
    return statistics.median(time_calls(time_call, 30, min_calls, max_seconds))


def _runners(model: torch.nn.Module, x1: torch.Tensor, threads: int, tmp: str, tag: str) -> dict:
    path = export_onnx(model, (x1,), os.path.join(tmp, f"{tag}.onnx"))
    session = onnx_session(path, threads=threads)
    name = session.get_inputs()[0].name

    def eager(x):
        def call():
            with torch.inference_mode():
                return model(x)

        return call

    def ort(x):
        feed = {name: x.numpy()}
        return lambda: session.run(None, feed)

    return {"eager": eager, "onnxruntime": ort}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128, help="input resolution (224 is slow on 2 shared cores)")
    parser.add_argument("--models", default="resnet50,vgg16,mobilenetv2")
    parser.add_argument("--round-to", default="1,8")
    parser.add_argument("--threads", type=int, default=1, help="1: two threads thrash on a loaded 2-core box")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {args.threads}, input {args.size}x{args.size}, median of {ROUNDS} alternating rounds")
    print("| model | round_to | MACs reduction | runtime | batch | orig ms | pruned ms | speedup | speedup / MACs red. |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    x1 = torch.randn(1, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            base = create_model(name, image_size=args.size).eval()
            base_runs = _runners(base, x1, args.threads, tmp, f"{name}-orig")
            macs0 = profile_model(base, (x1,)).macs
            for round_to in [int(r) for r in args.round_to.split(",")]:
                pruned = copy.deepcopy(base)
                prune_channels_(pruned, {"target_macs": 2.0, "round_to": round_to}, Context((x1,)))
                reduction = macs0 / profile_model(pruned, (x1,)).macs
                runs = _runners(pruned, x1, args.threads, tmp, f"{name}-{round_to}")
                for runtime in ("eager", "onnxruntime"):
                    for batch in (1, 16):
                        x = x1.repeat(batch, 1, 1, 1)
                        ratios, t0s, t1s = [], [], []
                        for _ in range(ROUNDS):
                            t0 = _time(base_runs[runtime](x))
                            t1 = _time(runs[runtime](x))
                            ratios.append(t0 / t1)
                            t0s.append(t0)
                            t1s.append(t1)
                        speedup = float(np.median(ratios))
                        print(f"| {name} | {round_to} | {reduction:.2f} | {runtime} | {batch} | "
                              f"{1e3 * np.median(t0s):.1f} | {1e3 * np.median(t1s):.1f} | {speedup:.2f} | "
                              f"{speedup / reduction:.2f} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
