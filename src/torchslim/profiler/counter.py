"""The analysis engine: a ``TorchDispatchMode`` that costs every aten op of one forward.

PyTorch does the heavy lifting: the dispatcher hands every aten op to
``__torch_dispatch__`` (the mechanism ``torch.utils.flop_counter.FlopCounterMode`` is
built on), and ops without a formula are first decomposed with ``OpOverload.decompose``
as ``FlopCounterMode`` does. The per-op formulas live in ``formulas.py``, the allow-list
of free ops in ``zero_cost.py``; under fake tensors a few slow fake kernels are replaced
by shape rules (``shape_rules.py``).

Hand-written: module attribution. ``torch.utils.module_tracker.ModuleTracker`` keeps the
running modules as an unordered *set* of names prefixed by the root's class name, so it
cannot say which module is innermost; a flat per-layer table needs exactly that, to
charge each op to one layer. A stack driven by the same global forward hooks
(``register_module_forward_pre_hook`` / ``register_module_forward_hook``) does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.utils._python_dispatch import TorchDispatchMode

from torchslim.profiler.formulas import op_cost
from torchslim.profiler.memory import LiveRanges
from torchslim.profiler.shape_rules import FAKE_SHAPE_RULES
from torchslim.profiler.zero_cost import IGNORED, has_formula


@dataclass
class LayerRecord:
    """Mutable per-module tally while the forward runs; ops are charged to the innermost module."""

    name: str
    module_type: str
    params: int
    macs: int = 0
    other_flops: Counter[str] = field(default_factory=Counter)
    uncounted_ops: Counter[str] = field(default_factory=Counter)
    output_shape: tuple[int, ...] | None = None


def _first_shape(output: Any) -> tuple[int, ...] | None:
    """Shape of the output tensor, or of the first tensor in a tuple/list/dict output."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    items = output.values() if isinstance(output, dict) else output
    if isinstance(items, (tuple, list)) or isinstance(output, dict):
        for item in items:
            shape = _first_shape(item)
            if shape is not None:
                return shape
    return None


def _aliases(func: Any) -> tuple[bool, ...]:
    """Per return of ``func``: does its schema mark it as aliasing an input?"""
    schema = getattr(func, "_schema", None)
    if schema is None:
        return ()
    return tuple(r.alias_info is not None for r in schema.returns)


class OpCounter(TorchDispatchMode):
    """Counts MACs, other flops and uncounted ops per layer; feeds ``LiveRanges``.

    Use as ``with counter.tracking_modules(), counter: model(*inputs)``. Layers appear in
    ``layers`` in execution order: a leaf module (or one owning parameters) when it is
    entered, any other module when the first op runs directly in its ``forward``.
    """

    def __init__(self, model: nn.Module, memory: LiveRanges, *, fake: bool) -> None:
        super().__init__()
        self.model = model
        self.memory = memory
        self._shape_rules = FAKE_SHAPE_RULES if fake else {}
        self.layers: dict[nn.Module, LayerRecord] = {}
        self._names = {module: name for name, module in model.named_modules()}
        self._stack: list[nn.Module] = []
        self.calls: Counter[nn.Module] = Counter()

    # -- module attribution ---------------------------------------------------------

    def _record(self, module: nn.Module) -> LayerRecord:
        record = self.layers.get(module)
        if record is None:
            own = sum(p.numel() for p in module.parameters(recurse=False))
            record = LayerRecord(self._names[module], type(module).__name__, own)
            self.layers[module] = record
        return record

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        if module not in self._names:
            return  # a module built on the fly inside forward: charge its ops to the caller
        self._stack.append(module)
        leaf = next(module.children(), None) is None
        if leaf or next(module.parameters(recurse=False), None) is not None:
            self._record(module)
        self.calls[module] += 1

    def _post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if not self._stack or self._stack[-1] is not module:
            return
        self._stack.pop()
        record = self.layers.get(module)
        if record is not None and record.output_shape is None:
            record.output_shape = _first_shape(output)

    @contextmanager
    def tracking_modules(self) -> Iterator[None]:
        """Install the global forward hooks; kept apart from the mode's own ``__enter__``
        because the mode is re-entered for every decomposed op."""
        hooks = [
            register_module_forward_pre_hook(self._pre_hook),
            register_module_forward_hook(self._post_hook, always_call=True),
        ]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()

    # -- op costing -----------------------------------------------------------------

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        packet = getattr(func, "_overloadpacket", func)
        if packet in IGNORED:
            return func(*args, **kwargs)
        if not has_formula(packet) and hasattr(func, "decompose"):
            with self:  # re-enter so the decomposed ops are costed one by one
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        rule = self._shape_rules.get(func)
        out = rule(args, kwargs) if rule is not None else NotImplemented
        if out is NotImplemented:
            out = func(*args, **kwargs)
        layer = self._record(self._stack[-1] if self._stack else self.model)
        if has_formula(packet):
            macs, other = op_cost(packet, args, kwargs, out)
            layer.macs += macs
            layer.other_flops.update(other)
        else:
            layer.uncounted_ops[str(packet)] += 1
        self.memory.step((args, kwargs), out, _aliases(func))
        return out
