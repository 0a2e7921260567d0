"""Claims: INQ 5-bit within 0.5 points of float, TTQ within 2 points, binary reported honestly;
plus uniform k-bit (k = 2..8) and int8 QAT (STE and LSQ) on MNIST-5k.

Each model is trained once (torchslim.train.fit, cached by quant_trained_models), then every technique
starts from a copy of it. Accuracy is top-1 on the 750-image test split; size is the weights
at their real bit width (see torchslim.quant.lowbit: execution stays float).

    .venv/bin/python benchmarks/quant_lowbit_accuracy.py [--models lenet5,resnet20]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from quant_trained_models import accuracy, machine, mnist, trained  # noqa: E402

from torchslim.core import Context  # noqa: E402
from torchslim.quant import (  # noqa: E402
    BinaryConfig,
    INQConfig,
    PTQConfig,
    QATConfig,
    TTQConfig,
    UniformConfig,
    binary_,
    inq_,
    ptq_,
    qat_,
    ttq_,
    uniform_,
)
from torchslim.train import TrainConfig  # noqa: E402


def steps(name: str) -> list[tuple[str, object]]:
    epochs = 2 if name == "lenet5" else 1
    runs: list[tuple[str, object]] = [(f"uniform {k}-bit (no training)", UniformConfig(bits=k)) for k in (8, 6, 5, 4, 3, 2)]
    ste = TrainConfig(epochs=epochs, lr=0.005, weight_decay=0.0)
    runs += [(f"uniform {k}-bit + STE {epochs} ep", UniformConfig(bits=k, finetune=ste)) for k in (4, 2)]
    latent = replace(TTQConfig().finetune, epochs=2 * epochs)  # AdamW, lr 0.001 (binary: the same default)
    qat = replace(QATConfig().finetune, epochs=1)
    runs += [
        ("INQ 5-bit (50/75/87.5/100%)", INQConfig(bits=5)),
        ("INQ 4-bit (50/75/87.5/100%)", INQConfig(bits=4)),
        (f"TTQ ternary, {2 * epochs} ep", TTQConfig(finetune=latent)),
        (f"BinaryConnect (+alpha), {2 * epochs} ep", BinaryConfig(method="binaryconnect", finetune=latent)),
        (f"XNOR-Net, {2 * epochs} ep", BinaryConfig(method="xnor", finetune=latent)),
        ("int8 PTQ", PTQConfig(export_onnx=False)),
        ("int8 QAT (STE), 1 ep", QATConfig(finetune=qat, export_onnx=False)),
        ("int8 QAT (LSQ), 1 ep", QATConfig(finetune=qat, lsq=True, export_onnx=False)),
    ]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="lenet5")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    rows = []
    techniques = {UniformConfig: uniform_, INQConfig: inq_, TTQConfig: ttq_, BinaryConfig: binary_, QATConfig: qat_,
                  PTQConfig: ptq_}
    for name in args.models.split(","):
        data = mnist(name)
        model = trained(name, data)
        fp32 = accuracy(model, data)
        rows.append((name, "float32", fp32, 0.0, None, None))
        x = data.test.tensors[0][:1]
        for label, config in steps(name):
            work = copy.deepcopy(model)
            ctx = Context((x,), data=data, progress=False, seed=0)
            start = time.perf_counter()
            work = techniques[type(config)](work, config, ctx)
            acc = accuracy(work, data)
            ratio = ctx.results[-1].details.get("compression_ratio")
            rows.append((name, label, acc, fp32 - acc, ratio, time.perf_counter() - start))
            print(rows[-1], flush=True)
    print("\n| model | technique | top-1 % | drop (points) | weights size vs fp32 | seconds |")
    print("|---|---|---|---|---|---|")
    for name, label, acc, drop, ratio, seconds in rows:
        r = "" if ratio is None else f"{ratio:.1f}x smaller"
        s = "" if seconds is None else f"{seconds:.0f}"
        print(f"| {name} | {label} | {acc:.2f} | {drop:+.2f} | {r} | {s} |")


if __name__ == "__main__":
    main()
