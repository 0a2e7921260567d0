"""Pieces every distillation method shares: the frozen teacher, and a wrapper that lets
``torchslim.train.fit`` optimise helper modules (regressors, adaptors) with the student."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from torchslim.data.access import first_inputs
from torchslim.train.evaluate import model_device


@contextlib.contextmanager
def teacher_eval(teacher: nn.Module) -> Iterator[nn.Module]:
    """The teacher in eval mode (BN running stats, no dropout) for the duration; every
    submodule's train/eval flag is restored after, so the caller's model is left as it was."""
    modes = [(m, m.training) for m in teacher.modules()]
    teacher.eval()
    try:
        yield teacher
    finally:
        for m, training in modes:
            m.training = training


def teacher_logits(teacher: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """teacher(inputs) under no_grad (call inside ``teacher_eval``): no graph, no gradients."""
    with torch.no_grad():
        return teacher(inputs)


def probe_batch(data: Dataset, model: nn.Module, size: int = 8) -> torch.Tensor:
    """The first ``size`` inputs of ``data`` stacked (N, ...) on ``model``'s device: one forward
    to learn feature shapes."""
    return first_inputs(data, size, device=model_device(model))


class WithHelpers(nn.Module):
    """``student`` plus helper modules trained alongside it; forward is the student's.

    ``fit`` optimises ``model.parameters()`` and wraps ``model`` in DistributedDataParallel
    under torchrun, so putting a FitNets regressor or a feature adaptor in here makes it
    trained and kept in sync across processes with no change to the training loop. Only
    ``student`` is kept afterwards.
    """

    def __init__(self, student: nn.Module, helpers: dict[str, nn.Module]) -> None:
        super().__init__()
        self.student = student
        self.helpers = nn.ModuleDict(helpers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.student(*inputs)


def seeded(seed: int) -> contextlib.AbstractContextManager:
    """Fork the global RNG and seed it, so helper initialisation is reproducible without
    disturbing the caller's random stream."""

    @contextlib.contextmanager
    def fork() -> Iterator[None]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    return fork()
