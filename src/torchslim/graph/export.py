"""Capture a model as an ATen graph with ``torch.export`` (non-strict) for dependency analysis.

``torch.export.export(model, args, strict=False)`` runs the model's Python forward on fake
tensors and records every ATen op with its output shapes (``node.meta["val"]``), the module
it ran in (``node.meta["nn_module_stack"]``) and the parameter / buffer each placeholder
stands for (the exported program's graph signature). That is what channel-dependency
analysis needs: ops keyed by the op itself, shapes, and a way back to the state dict.

No fallback: if export fails (data-dependent control flow, unsupported Python) a
:class:`torchslim.errors.UserError` names the reason in one line. Torch's own logging and
warnings during the capture (a failed guard dumps the partial graph, pages of it) are held
back: the first line of the error says what failed; ``--debug`` keeps the chained exception. A shape-free fallback (fx alone, or
``nn.Sequential`` order) would risk a silently wrong pruned model, which is worse than none.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from torchslim.core.modules import evaluating
from torchslim.errors import UserError


@dataclass
class ExportedGraph:
    """An exported ATen graph plus the maps back to the model.

    ``param_of``: placeholder node name -> state-dict name (parameters and buffers).
    ``user_inputs``: placeholder names of the user's inputs. ``buffers``: state-dict names of buffers.
    """

    graph: fx.Graph
    param_of: dict[str, str]
    user_inputs: list[str]
    buffers: set[str] = field(default_factory=set)


def module_path(node: fx.Node) -> str:
    """Qualified name of the innermost module ``node`` ran in ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return str(path)


@contextmanager
def quiet_torch_logs() -> Iterator[None]:
    """Hold back torch's log records (below CRITICAL), Python warnings and what is printed to
    stderr (torch.export prints a failed capture's partial graph there) for the duration,
    restoring every logger's level afterwards."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "torch" or name.startswith("torch.")]
    loggers.append(logging.getLogger("torch"))
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def capture_export(model: nn.Module, example_inputs: tuple[Any, ...]) -> ExportedGraph:
    """Export ``model`` on ``example_inputs`` (eval mode, real parameters untouched)."""
    try:
        with evaluating(model), quiet_torch_logs():  # each submodule's own train/eval flag comes back afterwards
            program = torch.export.export(model, tuple(example_inputs), strict=False)
    except (RuntimeError, TypeError, ValueError, AssertionError, NotImplementedError) as exc:
        # what tracing the user's forward raises (data-dependent guards are RuntimeErrors)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"torch.export could not capture {type(model).__name__}: {first}") from exc
    param_of: dict[str, str] = {}
    buffers: set[str] = set()
    user_inputs: list[str] = []
    for spec in program.graph_signature.input_specs:
        name = getattr(spec.arg, "name", None)
        if name is None:
            continue
        kind = spec.kind.name
        if kind in ("PARAMETER", "BUFFER") and spec.target is not None:
            param_of[name] = spec.target
            if kind == "BUFFER":
                buffers.add(spec.target)
        elif kind == "USER_INPUT":
            user_inputs.append(name)
    return ExportedGraph(program.graph, param_of, user_inputs, buffers)
