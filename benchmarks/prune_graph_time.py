"""Time to build the dependency graph of ResNet-50 and prune it to 2x fewer MACs (issue 3).

Times the graph build as torch.export capture plus torchslim's own analysis on that capture
(rules + connected components + groups), then a whole ``prune_channels_`` call with
``target_macs: 2`` on a fresh Context (capture, graph, L1 importance, bisection on the ratio,
surgery, check forward). Median of 3 runs.

    .venv/bin/python benchmarks/prune_graph_time.py [--size 224] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
import warnings

import torch

from torchslim.core import Context
from torchslim.graph.dependency import build_dependency_graph
from torchslim.graph.export import capture_export
from torchslim.prune import prune_channels_
from torchslim.zoo import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    model = create_model("resnet50", image_size=args.size).eval()
    x = torch.randn(1, 3, args.size, args.size)
    build_dependency_graph(create_model("resnet20").eval(), (torch.randn(1, 3, 32, 32),))  # export warm-up
    export_s, build_s, prune_s = [], [], []
    for _ in range(3):
        t = time.perf_counter()
        exported = capture_export(model, (x,))
        export_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        build_dependency_graph(model, (x,), exported)  # rules + components + groups on that capture
        build_s.append(time.perf_counter() - t)
        work = copy.deepcopy(model)
        t = time.perf_counter()
        prune_channels_(work, {"target_macs": 2.0}, Context((x,)))
        prune_s.append(time.perf_counter() - t)
    med = statistics.median
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {args.threads}, ResNet-50 at {args.size}x{args.size}, median of 3")
    print("| stage | seconds |")
    print("|---|---:|")
    print(f"| torch.export capture | {med(export_s):.2f} |")
    print(f"| torchslim analysis on that capture (rules + components + groups) | {med(build_s):.2f} |")
    print(f"| dependency graph (capture + analysis) | {med(export_s) + med(build_s):.2f} |")
    print(f"| prune_channels_ (target_macs 2) end to end | {med(prune_s):.2f} |")

if __name__ == "__main__":
    main()
