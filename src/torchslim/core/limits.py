"""Upper bounds on the numbers that can exhaust the machine (epochs, batch sizes, image size,
sample counts), checked before any work by the one validation of a recipe and of ``compress``.

A bound applies to every config field of that name, in every step and every nested
``finetune:`` section, so a new technique's ``epochs`` or ``batch_size`` is bounded without
code of its own. Going beyond is an explicit choice: ``allow_large: true`` at the top of a
recipe, ``compress(..., allow_large=True)`` in Python. Thread counts are bounded by the
machine's cores in the configs themselves (``MeasureConfig``, ``FactorizeConfig``): more
threads than cores never measures anything useful, and torch crashes on very large counts.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from torchslim.errors import UserError

# field name -> largest value accepted without allow_large. Sizes: a 4096-image batch of
# 1024 x 1024 RGB float32 images is already 51 GB; 10,000 epochs of MNIST-5k is hours.
LIMITS: dict[str, int] = {
    "epochs": 10_000,
    "hint_epochs": 10_000,
    "batch_size": 4096,
    "batch_sizes": 4096,
    "latency_batch_size": 4096,
    "calibration_batch_size": 4096,
    "image_size": 1024,
    "num_batches": 10_000,
    "num_samples": 100_000,
    "calibration_samples": 100_000,
    "rounds": 1_000,
    "iterations": 10_000,
    "n_iter_max": 10_000,
    "steps": 1_000,
}


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(config: Any, *names: str) -> None:
    """ValueError unless each named thread-count field is None or at most the core count."""
    cores = cpu_cores()
    for name in names:
        value = getattr(config, name)
        if value is not None and value > cores:
            raise ValueError(f"field '{name}' must be at most this machine's {cores} cores, got {value}")


def check_limits(config: Any, where: str, override: str) -> None:
    """UserError naming ``where`` and the field if a bounded field of dataclass ``config``
    (or of a dataclass nested in it) exceeds :data:`LIMITS`; ``override`` says how to allow it."""
    if not dataclasses.is_dataclass(config):
        return
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            check_limits(value, f"{where}{f.name}: ", override)
            continue
        limit = LIMITS.get(f.name)
        if limit is None or value is None:
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        big = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v > limit]
        if big:
            raise UserError(f"{where}field '{f.name}' is {big[0]}, above the maximum {limit} ({override} to go beyond)")
