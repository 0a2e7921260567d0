"""Claim: int8 PTQ costs at most 0.3 top-1 points on LeNet-5 and ResNet-20 trained on MNIST-5k.

Each model is trained once (torchslim.train.fit, cached), then quantized with every observer
(512 calibration images from the training split, uint8 asymmetric activations, per-channel
int8 weights) and scored on the 750-image test split in eager PyTorch; the int8 ONNX model is
also scored in ONNX Runtime (its integer kernels) for the default observer.

    .venv/bin/python benchmarks/quant_ptq_accuracy.py
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from quant_trained_models import accuracy, machine, mnist, trained  # noqa: E402

from torchslim.core import Context  # noqa: E402
from torchslim.quant import PTQConfig, ptq_  # noqa: E402


def ort_accuracy(model: torch.nn.Module, data, x: torch.Tensor) -> float:
    import tempfile

    from torchslim.profiler import export_onnx, onnx_session

    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, (x,), Path(folder) / "m.onnx")
        session = onnx_session(path, threads=1)
        images, labels = data.test.tensors
        logits = session.run(None, {"input": images.numpy()})[0]
    return 100.0 * float((np.argmax(logits, 1) == labels.numpy()).mean())


def main() -> None:
    torch.set_num_threads(1)
    print(machine())
    rows = []
    for name in ("lenet5", "resnet20"):
        data = mnist(name)
        model = trained(name, data)
        fp32 = accuracy(model, data)
        x = data.test.tensors[0][:1]
        for observer in ("minmax", "percentile", "mse", "entropy"):
            q = copy.deepcopy(model)
            ptq_(q, PTQConfig(observer=observer, export_onnx=False), Context((x,), data=data))
            acc = accuracy(q, data)
            ort = ort_accuracy(q, data, x) if observer == "percentile" else float("nan")
            rows.append((name, observer, fp32, acc, fp32 - acc, ort))
            print(rows[-1], flush=True)
    print("\n| model | observer | fp32 top-1 % | int8 top-1 % (eager) | drop (points) | int8 top-1 % (ORT) |")
    print("|---|---|---|---|---|---|")
    for name, obs, f, q, d, o in rows:
        ort = "" if np.isnan(o) else f"{o:.2f}"
        print(f"| {name} | {obs} | {f:.2f} | {q:.2f} | {d:+.2f} | {ort} |")


if __name__ == "__main__":
    main()
