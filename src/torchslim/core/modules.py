"""Small module utilities every family uses: replace a submodule by name, and keep each
module's own train/eval flag across a temporary mode change.

``model.train(was_training)`` is not a restore: it sets *every* submodule to the root's
flag, so a frozen BatchNorm in eval mode inside a training model comes back in training
mode. :func:`preserved_modes` / :func:`evaluating` record and restore each module's flag.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at qualified ``name`` (e.g. ``"layer1.0.conv1"``) by ``module``."""
    if not name:
        raise ValueError("set_submodule: the root module cannot be replaced by name")
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@contextmanager
def preserved_modes(*models: nn.Module) -> Iterator[None]:
    """Restore every submodule's own ``training`` flag on exit, whatever happened inside."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def evaluating(*models: nn.Module) -> Iterator[None]:
    """``models`` in eval mode for the duration; each module's own flag restored on exit."""
    with preserved_modes(*models):
        for model in models:
            model.eval()
        yield
