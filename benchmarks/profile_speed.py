"""Profiler speed and eager-vs-ONNX-Runtime latency, measured side by side in one run.

(a) ``profile_model`` on the zoo's ResNet-50 at 1x3x224x224: the first call (includes
    one-time imports PyTorch's fake-tensor machinery does) and the median of warm calls,
    against the 0.3 s target and against a real eager forward of the same model.
(b) For every zoo model at its default input shape, batch 1, the same thread count:
    p50 latency in eager PyTorch and in ONNX Runtime, and their ratio.

Eager PyTorch's OpenMP threads suffer badly when another process holds a core, so the
runtimes are measured in interleaved rounds and the best p50 of each is kept.

Run: ``.venv/bin/python benchmarks/profile_speed.py [--threads N]`` (about 2-3 minutes on
an idle 2-core machine, each ONNX export of a VGG takes ~8 s; 6-7 minutes on a loaded one).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from torchslim.core.warmup import time_calls, wall_clock, warm_up
from torchslim.profiler import measure_latency, profile_model
from torchslim.zoo import create_model, example_input, list_models

TARGET_S = 0.3


def _machine(threads: int) -> str:
    import onnxruntime

    load = os.getloadavg()
    text = (
        f"machine: {os.cpu_count()} cores ({platform.machine()}), load average "
        f"{', '.join(f'{x:.1f}' for x in load)}, python {platform.python_version()}, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, threads={threads}"
    )
    if load[0] > (os.cpu_count() or 1) / 2:
        text += "\nwarning: other processes load the machine; eager timings with threads > 1 suffer most"
    return text


def bench_profile(runs: int) -> None:
    model = create_model("resnet50")
    x = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    stats = profile_model(model, x)
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        profile_model(model, x)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    with torch.inference_mode():
        time_call = wall_clock(lambda: model.eval()(x))
        warm_up(time_call)
        forward = statistics.median(time_calls(time_call, 3))
    print("(a) profile_model(zoo resnet50, 1x3x224x224)")
    print(f"    {stats.macs / 1e9:.3f} GMACs, {stats.params / 1e6:.2f} M params, execution={stats.execution}")
    verdict = "met" if median < TARGET_S else "MISSED"
    print(f"    first call {first:.3f} s (one-time imports), median of {runs} warm calls {median:.3f} s")
    print(f"    target < {TARGET_S} s: {verdict}")
    print(f"    real eager forward (median of 3) {forward:.3f} s -> profile/forward ratio {median / forward:.2f}")


def bench_latency(threads: int, repeats: int, max_seconds: float, rounds: int) -> None:
    print(
        f"(b) p50 latency, batch 1, threads={threads}; best p50 of {rounds} interleaved rounds "
        f"(eager, ORT, eager, ...), each up to {repeats} repeats / {max_seconds} s"
    )
    print(f"    {'model':<14}{'input':<14}{'eager ms':>10}{'ORT ms':>10}{'eager/ORT':>11}")
    for name in list_models():
        model = create_model(name).eval()
        x = example_input(model)
        kwargs = dict(threads=threads, batch_size=1, repeats=repeats, max_seconds=max_seconds)  # settle warm-up
        p50: dict[str, list[float]] = {"eager": [], "onnxruntime": []}
        for _ in range(rounds):
            for runtime in p50:
                p50[runtime].append(measure_latency(model, x, runtime=runtime, **kwargs).latency_ms_p50)
        eager, ort = min(p50["eager"]), min(p50["onnxruntime"])
        shape = "x".join(map(str, x.shape))
        print(f"    {name:<14}{shape:<14}{eager:>10.2f}{ort:>10.2f}{eager / ort:>10.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=7, help="warm profile_model runs")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per runtime")
    args = parser.parse_args()
    print(_machine(args.threads))
    torch.set_num_threads(args.threads)
    bench_profile(args.runs)
    bench_latency(args.threads, args.repeats, args.max_seconds, args.rounds)


if __name__ == "__main__":
    main()
