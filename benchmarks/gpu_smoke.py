"""GPU smoke test of the main paths: train, prune + fine-tune, PTQ + ONNX Runtime, distill.

On a machine with a CUDA GPU it runs LeNet-5 (BatchNorm) on the bundled MNIST-5k at 32x32 on
``cuda`` and must finish in under 5 minutes; without one it falls back to a tiny CPU run (sklearn
digits, few epochs) so the script itself is exercised everywhere. Every path goes through the
public API with ``device=``: the model is trained there, pruned and fine-tuned there, calibrated
there, distilled there, and comes back on the CPU it was built on. Prints one line per path
(seconds, top-1 on the test split) and exits non-zero when a check fails.

    .venv/bin/python benchmarks/gpu_smoke.py              # cuda if available, else the CPU fallback
    .venv/bin/python benchmarks/gpu_smoke.py --device cpu # force the CPU fallback
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import torchslim
from torchslim.core.device import resolve_device
from torchslim.data import load_dataset
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.train import evaluate, fit
from torchslim.zoo import create_model

BUDGET_SECONDS = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    data = load_dataset("mnist5k", image_size=32) if gpu else load_dataset("digits", image_size=28)
    epochs, ft = (4, 2) if gpu else (2, 1)
    name = torch.cuda.get_device_name(device) if gpu else "CPU fallback (no GPU)"
    print(f"device {device} ({name}); data {data.name} {len(data.train)} train / {len(data.test)} test; "
          f"torch {torch.__version__}")
    quiet = MeasureConfig(runtimes=())
    failures: list[str] = []
    started = time.perf_counter()

    def line(path: str, seconds: float, model: torch.nn.Module) -> float:
        acc = evaluate(model, data.test)
        where = {t.device.type for t in model.state_dict().values()}
        print(f"{path:<22} {seconds:7.2f} s   top-1 {100 * acc:5.1f}%   model on {','.join(sorted(where))}")
        return acc

    torch.manual_seed(0)
    model = create_model("zoo:lenet5", batch_norm=True)
    t = time.perf_counter()
    fit(model.to(device), data.train, epochs=epochs, lr=0.05, val_data=data.val, progress=False)
    model.cpu()
    base = line("train", time.perf_counter() - t, model)
    if base < 0.8:
        failures.append(f"train: top-1 {base:.3f} < 0.8")

    paths = {
        "prune + fine-tune": [("prune.channels", {"target_macs": 2.0, "finetune": {"epochs": ft}})],
        "ptq + onnxruntime": [("fold.bn", {}), ("quant.ptq", {"num_samples": 256, "export_onnx": True})],
        "distill (kd)": [("prune.channels", {"ratio": 0.5}), ("finetune", {"epochs": ft, "distill": "kd"})],
    }
    for path, steps in paths.items():
        t = time.perf_counter()
        result = torchslim.compress(model, steps, data=data, device=device, measure=quiet, progress=False)
        acc = line(path, time.perf_counter() - t, result.model)
        if any(t.is_cuda for t in result.model.state_dict().values()):
            failures.append(f"{path}: the model did not come back on the CPU")
        if base - acc > 0.05:
            failures.append(f"{path}: top-1 fell {100 * (base - acc):.1f} points")
        ort = result.report.steps[-1].details.get("onnx_max_abs_error_vs_eager")
        if ort is not None:
            print(f"{'':<22} int8 ONNX Runtime vs eager: max abs error {ort:.3g}")
    total = time.perf_counter() - started
    print(f"total {total:.1f} s" + (f" (budget {BUDGET_SECONDS:.0f} s on a GPU)" if gpu else ""))
    if gpu and total > BUDGET_SECONDS:
        failures.append(f"took {total:.0f} s > {BUDGET_SECONDS:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
