"""The trained models the quant accuracy benchmarks start from: MNIST-5k splits and LeNet-5 /
ResNet-20 trained on them.

Trained models are cached (torchslim.save) under the system temp folder, keyed by name and
epochs, so several benchmark scripts reuse one training run.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.data import load_data
from torchslim.serialize import load, save
from torchslim.train import evaluate, fit
from torchslim.zoo import create_model

CACHE = Path(tempfile.gettempdir()) / "torchslim-quant-bench"
EPOCHS = {"lenet5": 8, "resnet20": 6}


def machine() -> str:
    return (f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}")


def mnist(name: str) -> Any:
    """MNIST-5k at 28x28 (LeNet-5) or 32x32 (ResNet-20), 1 channel."""
    return load_data("mnist5k", image_size=28 if name == "lenet5" else 32)


def trained(name: str, data: Any, seed: int = 0) -> nn.Module:
    """The zoo model ``name`` (1 input channel) trained with torchslim.train.fit, cached."""
    path = CACHE / f"{name}-e{EPOCHS[name]}-s{seed}"
    if (path / "spec.json").exists():
        return load(path).eval()
    torch.manual_seed(seed)
    kwargs = {"batch_norm": True} if name == "lenet5" else {}
    model = create_model(name, in_channels=1, num_classes=10, **kwargs)
    fit(model, data.train, epochs=EPOCHS[name], lr=0.05, batch_size=64, seed=seed, progress=False)
    save(model.eval(), path)
    return model.eval()


def accuracy(model: nn.Module, data: Any) -> float:
    return 100.0 * evaluate(model, data.test)
