"""Fixtures and helpers of the low-rank tests: no autograd by default, tiny seeded data, and
running a step through its public function (the HandlerResult read from ``ctx.results``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.core import Context


@pytest.fixture(autouse=True)
def _no_grad_one_thread():
    """Reference checks need no autograd; one thread is much faster on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        yield
    torch.set_num_threads(threads)


def tiny_data(x: torch.Tensor, n: int = 128) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(train=TensorDataset(torch.randn(n, *x.shape[1:], generator=g),
                                               torch.randint(0, 10, (n,), generator=g)), val=None)


def run_step(step, model: nn.Module, x: torch.Tensor, ctx: Context | None = None, **fields):
    """The step's HandlerResult, applied through the public function with a mapping config."""
    ctx = ctx or Context((x,), seed=0)
    out = step(model, fields, ctx)
    assert out is ctx.results[-1].model
    return ctx.results[-1]
