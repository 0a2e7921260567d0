"""What the low-rank driver knows about a layer: the shapes it sees, its MACs, and the
:class:`Method` interface a decomposition plugs in through.

A decomposition is a :class:`Method`: which layers it takes, the spectra that drive rank
selection, the MACs of a candidate rank, and how to build the replacement (an
``nn.Sequential`` of standard layers, so save/load and ONNX export need nothing new).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.modules import evaluating
from torchslim.core.select import select_layers
from torchslim.errors import UserError

Rank = Any  # int, or (r_out, r_in) for Tucker-2


@dataclass
class Layer:
    """A selected layer and the shapes it sees on the example input (batch included)."""

    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def rows(self) -> int:
        """Linear: input vectors per sample (product of the leading dims except batch)."""
        return math.prod(self.in_shape[1:-1]) if len(self.in_shape) > 2 else 1


@dataclass(frozen=True)
class Method:
    """One decomposition, as the driver sees it.

    ``skip(module)``: why a layer cannot be factorized, or None. ``unfold(layer)``: the 2-D
    matrices whose spectra drive rank selection (one for SVD and spatial, the mode-0 and
    mode-1 unfoldings for Tucker-2 and CP). ``rank_from(layer, ranks)``: the layer's Rank from
    one rank per matrix. ``macs(layer, rank)``: MACs per sample of the replacement.
    ``error(spectra, rank)``: relative squared weight error (or an upper bound; None when
    unknown, as for CP). ``build(module, rank, seed)``: the replacement ``nn.Sequential``.
    """

    name: str
    types: tuple[type[nn.Module], ...]
    skip: Callable[[nn.Module], str | None]
    unfold: Callable[[Layer], list[torch.Tensor]]
    rank_from: Callable[[Layer, list[int]], Rank]
    macs: Callable[[Layer, Rank], int]
    error: Callable[[list[torch.Tensor], Rank], float | None]
    build: Callable[[nn.Module, Rank, int], nn.Module]


def conv_skip(module: nn.Module) -> str | None:
    """Why a conv cannot be factorized (None: it can)."""
    if module.groups != 1:
        return "grouped/depthwise conv (groups > 1) not factorized"
    if isinstance(module.padding, str) and module.padding != "valid":
        return f"padding={module.padding!r} not supported (give explicit padding)"
    return None


def conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    return (0, 0) if isinstance(conv.padding, str) else tuple(conv.padding)  # type: ignore[return-value]


def factory_kwargs(layer: nn.Module) -> dict[str, Any]:
    """dtype/device of ``layer``'s weight, for building its replacement without a lossy cast."""
    return {"dtype": layer.weight.dtype, "device": layer.weight.device}


def original_macs(layer: Layer) -> int:
    """MACs per sample of the unfactorized layer (batch 1), as the profiler counts them."""
    m = layer.module
    if isinstance(m, nn.Linear):
        return layer.rows * m.in_features * m.out_features
    out_size = math.prod(layer.out_shape[2:])
    return m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size) * out_size


def plain_rank(rank: Rank) -> Any:
    """A Rank as JSON: Tucker's (r_out, r_in) tuple as a list."""
    return list(rank) if isinstance(rank, tuple) else rank


@contextmanager
def single_thread() -> Iterator[None]:
    """Run decompositions on one intra-op thread: on a shared 2-core machine, multi-threaded
    BLAS inside an ALS loop (CP, Tucker's HOOI) was measured 10-25x slower than one thread,
    and one thread makes the factors reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def collect_layers(model: nn.Module, method: Method, include: tuple[str, ...], exclude: tuple[str, ...],
                   ctx: Context) -> tuple[list[Layer], list[str]]:
    """Selected layers of ``method.types`` that ran on the example input, and skip warnings.

    Shapes come from forward hooks on one sample of ``ctx.example_inputs`` (batch 1).
    """
    chosen = select_layers(model, method.types, include, exclude)
    if include and not chosen:
        kinds = "/".join(t.__name__ for t in method.types)
        raise UserError(f"field 'include': no {kinds} layer matches {list(include)}")
    warnings: list[str] = []
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = []
    for name, module in chosen:
        reason = method.skip(module)
        if reason:
            warnings.append(f"{name}: {reason}")
            continue

        def hook(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor, name: str = name) -> None:
            shapes.setdefault(name, (tuple(args[0].shape), tuple(out.shape)))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), evaluating(model):
            model(*(x[:1] for x in ctx.example_inputs))
    finally:
        for h in hooks:
            h.remove()
    layers = []
    for name, module in chosen:
        if name in shapes:
            layers.append(Layer(name, module, *shapes[name]))
        elif not method.skip(module):
            warnings.append(f"{name}: not called on the example input, left alone")
    return layers, warnings
