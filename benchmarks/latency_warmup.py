"""Warm-up rule vs fixed warm-up counts: ONNX Runtime speedup of a 2x-MACs pruned ResNet-50 (issue 18).

A new ONNX Runtime session is slow on its first runs. ``measure_latency`` builds a new session
for every measurement, so a fixed, small warm-up can time part of that slow phase and distort
a before/after ratio. For the zoo's ResNet-50 (ImageNet layout) and a copy pruned to
``target_macs=2`` (L1, uniform, ``round_to`` 8): (a) the first calls of one fresh session of each, then
(b) the ORT speedup at batch 1 measured with warm-up fixed at 2, 3 and 15 calls and with the
settle rule (``torchslim.core.warmup``, the default), each a fresh session per measurement
timed over ``--repeats`` calls (10 by default),
original and pruned alternating, all policies in turn in each of ``--rounds`` rounds (median
of the per-round ratios).
Every figure's ``reliable`` flag is counted.

    .venv/bin/python benchmarks/latency_warmup.py [--size 224] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import warnings

import torch

from torchslim.core import Context
from torchslim.core.warmup import time_calls, wall_clock
from torchslim.profiler import export_onnx, measure_latency, onnx_session, profile_model
from torchslim.prune import prune_channels_
from torchslim.zoo import create_model

POLICIES = {"fixed 2": 2, "fixed 3": 3, "fixed 15": 15, "settle rule": None}


def first_calls(model: torch.nn.Module, x: torch.Tensor, threads: int, calls: int) -> list[float]:
    """Milliseconds of the first ``calls`` runs of a fresh ORT session (no warm-up)."""
    with tempfile.TemporaryDirectory() as folder:
        session = onnx_session(export_onnx(model, (x,), os.path.join(folder, "m.onnx")), threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return [1e3 * t for t in time_calls(wall_clock(lambda: session.run(None, feed)), calls)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-to", type=int, default=8, help="channel multiple, as in the README's prune table")
    parser.add_argument("--first-calls", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per figure")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    x = torch.randn(1, 3, args.size, args.size)
    base = create_model("resnet50", image_size=args.size).eval()
    pruned = copy.deepcopy(base)
    prune_channels_(pruned, {"target_macs": 2.0, "round_to": args.round_to}, Context((x,)))
    reduction = profile_model(base, (x,)).macs / profile_model(pruned, (x,)).macs
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {args.threads}, input {args.size}x{args.size}, batch 1, {args.repeats} timed calls per figure; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"# resnet50 pruned to {reduction:.2f}x fewer MACs (round_to {args.round_to})")
    for label, model in (("original", base), ("pruned", pruned)):
        ms = first_calls(model, x, args.threads, args.first_calls)
        print(f"(a) first {len(ms)} calls of a fresh session, {label} (ms): " + " ".join(f"{t:.0f}" for t in ms))
    print("(b) | warm-up | warm-up runs (orig / pruned, median) | orig p50 ms | pruned p50 ms | speedup "
          "| unreliable figures |")
    flagged = dict.fromkeys(POLICIES, 0)
    ratios, p50s, runs = ({k: [] for k in POLICIES} for _ in range(3))
    for _ in range(args.rounds):  # policies interleaved within each round: all see the same load
        for label, policy in POLICIES.items():
            stats = [measure_latency(m, x, runtime="onnxruntime", threads=args.threads, warmup=policy,
                                     repeats=args.repeats, min_repeats=2) for m in (base, pruned)]
            ratios[label].append(stats[0].latency_ms_p50 / stats[1].latency_ms_p50)
            p50s[label].append((stats[0].latency_ms_p50, stats[1].latency_ms_p50))
            runs[label].append((stats[0].warmup, stats[1].warmup))
            flagged[label] += sum(not s.reliable for s in stats)
    for label in POLICIES:
        orig, pruned_ms = zip(*p50s[label])
        warm_orig, warm_pruned = zip(*runs[label])
        print(f"    | {label} | {statistics.median(warm_orig):.0f} / {statistics.median(warm_pruned):.0f} | "
              f"{statistics.median(orig):.1f} | {statistics.median(pruned_ms):.1f} | "
              f"{statistics.median(ratios[label]):.2f}x | {flagged[label]} of {2 * args.rounds} |")


if __name__ == "__main__":
    main()
