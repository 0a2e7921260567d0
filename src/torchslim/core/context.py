"""Context passed to every handler: inputs, data, seed, and a cached graph. Never global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


def as_input_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


@dataclass
class Context:
    """What a technique may use besides the model and its config.

    ``example_inputs``: tuple of tensors for tracing and numerics (batch first).
    ``data``: a :class:`torchslim.data.DataSplits` or None, for techniques that train or calibrate.
    ``eval_fn``: model -> accuracy in [0, 1], or None.
    ``teacher``: the model before compression (for distillation), or None.
    ``out_dir``: the run's output directory (for artefacts such as compressed files), or None.
    """

    example_inputs: tuple[torch.Tensor, ...]
    data: Any = None
    eval_fn: Callable[[nn.Module], float] | None = None
    teacher: nn.Module | None = None
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    out_dir: Path | None = None
    _graph: tuple[int, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.example_inputs = as_input_tuple(self.example_inputs)

    def graph(self, model: nn.Module) -> Any:
        """The captured graph of ``model`` (see :mod:`torchslim.graph`), cached until invalidated."""
        from torchslim.graph import capture

        if self._graph is None or self._graph[0] != id(model):
            self._graph = (id(model), capture(model, self.example_inputs))
        return self._graph[1]

    def invalidate_graph(self) -> None:
        """Call after any structural change to the model."""
        self._graph = None
