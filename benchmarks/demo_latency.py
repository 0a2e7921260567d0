"""The demo's speed claim re-measured: original vs final model in ONNX Runtime, interleaved.

    .venv/bin/python benchmarks/demo_latency.py runs/demo [--threads 1] [--rounds 5]

Loads the trained starting model cached under RUN/checkpoints/ and the final model RUN/model,
alternates one measurement of each per round at batch 1 and 16, and prints the medians and
their ratio (the figure to read on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from torchslim.profiler import measure_latency
from torchslim.serialize import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trained = sorted(p for p in (args.run_dir / "checkpoints").glob("*") if (p / "spec.json").is_file())
    if not trained or not (args.run_dir / "model" / "spec.json").is_file():
        sys.exit(f"{args.run_dir}: no trained checkpoint or final model (run `torchslim demo --out {args.run_dir}`)")
    original, final = load(trained[-1]).eval(), load(args.run_dir / "model").eval()
    shape = (getattr(original, "_torchslim_origin", None) or {}).get("input_shape") or [1, 32, 32]
    x = torch.randn(1, *shape)
    print(f"{trained[-1].name} vs model/, ONNX Runtime, threads={args.threads}, {args.rounds} interleaved rounds")
    for batch in (1, 16):
        a, b = [], []
        for _ in range(args.rounds):
            a.append(measure_latency(original, x, "onnxruntime", threads=args.threads, batch_size=batch).latency_ms_p50)
            b.append(measure_latency(final, x, "onnxruntime", threads=args.threads, batch_size=batch).latency_ms_p50)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"batch {batch:>2}: original {ma:.3f} ms, final {mb:.3f} ms, speed-up {ma / mb:.2f}x")


if __name__ == "__main__":
    main()
