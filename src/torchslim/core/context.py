"""Context passed to every handler: inputs, data, seed, and the one cached capture. Never global.

The model is captured once, with ``torch.export`` (:mod:`torchslim.graph.export`); every view a
technique needs is derived from that capture and cached beside it: the channel-dependency
graph (pruning) and the module-level dataflow (BN folding, int8 placement). The cache is keyed
by the model object and a fingerprint of its structure (module names, types, parameter
shapes), so a view of a model that has since been rewritten is never returned; ``compress()``
also drops the cache after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.errors import UserError


def as_input_tuple(example_inputs: Any) -> tuple[Any, ...]:
    """A tensor or a tuple/list of positional inputs (at least one tensor) as a tuple."""
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
    if not isinstance(inputs, (tuple, list)) or not any(isinstance(x, torch.Tensor) for x in inputs):
        raise UserError(f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")
    return tuple(inputs)


def structure_fingerprint(model: nn.Module) -> int:
    """Hash of module names and types and parameter/buffer names and shapes (not values)."""
    modules = tuple((n, type(m).__qualname__) for n, m in model.named_modules())
    tensors = tuple((n, tuple(t.shape), str(t.dtype)) for n, t in model.state_dict(keep_vars=True).items())
    return hash((modules, tensors))


@dataclass
class Context:
    """What a technique may use besides the model and its config.

    ``example_inputs``: tuple of tensors for tracing and numerics (batch first).
    ``data``: a :class:`torchslim.data.DataSplits` (or a mapping ``{"train": ..., "val": ..., "test": ...}``
    of Datasets / DataLoaders, made one) or None, for techniques that train or calibrate.
    ``eval_fn``: model -> accuracy in [0, 1], or None.
    ``teacher``: the model before compression (for distillation), or None.
    ``device``: where training and evaluation run (``compress(device=...)``); None: wherever the
    model already is. Modules a technique creates are moved there before they are trained.
    ``out_dir``: the run's output directory (for artefacts such as compressed files), or None.
    ``measure``: the run's :class:`torchslim.profiler.snapshot.MeasureConfig` (batch sizes and
    threads a step that decides from timings measures at), or None.
    ``results``: the :class:`HandlerResult` of every technique applied through its public
    function (``prune_channels_(model, config, ctx)``), in order.
    """

    example_inputs: tuple[torch.Tensor, ...]
    data: Any = None
    eval_fn: Callable[[nn.Module], float] | None = None
    teacher: nn.Module | None = None
    seed: int = 0
    device: torch.device | None = None
    progress: bool = True
    out_dir: Path | None = None
    measure: Any = None
    results: list[Any] = field(default_factory=list)
    _cache: dict[str, tuple[int, int, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from torchslim.data.access import as_splits

        self.example_inputs = as_input_tuple(self.example_inputs)
        self.data = as_splits(self.data, "Context: data")  # a mapping of splits, as compress takes it

    def _cached(self, kind: str, model: nn.Module, build: Callable[[], Any]) -> Any:
        key = (id(model), structure_fingerprint(model))
        hit = self._cache.get(kind)
        if hit is None or hit[:2] != key:
            self._cache[kind] = (*key, build())
        return self._cache[kind][2]

    def exported(self, model: nn.Module) -> Any:
        """``model`` captured with torch.export on ``example_inputs``: an
        :class:`torchslim.graph.export.ExportedGraph` (UserError if it cannot be captured)."""
        from torchslim.graph.export import capture_export

        return self._cached("exported", model, lambda: capture_export(model, self.example_inputs))

    def dependency_graph(self, model: nn.Module) -> Any:
        """Channel-dependency groups (:class:`torchslim.graph.DependencyGraph`) of the capture."""
        from torchslim.graph.dependency import build_dependency_graph

        return self._cached("dependency", model,
                            lambda: build_dependency_graph(model, self.example_inputs, self.exported(model)))

    def module_graph(self, model: nn.Module) -> Any:
        """Module-level dataflow (:class:`torchslim.graph.modules.ModuleGraph`) of the capture."""
        from torchslim.graph.modules import module_graph

        return self._cached("modules", model, lambda: module_graph(model, self.exported(model)))

    def invalidate(self) -> None:
        """Drop every cached capture (``compress()`` calls it after each step)."""
        self._cache.clear()
