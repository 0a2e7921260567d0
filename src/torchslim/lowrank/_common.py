"""Shared pieces of the low-rank family: the step config, layer shapes and MACs, the
latency guard, and the driver every decomposition handler runs.

A decomposition plugs in as a :class:`Method`: which layers it takes, the spectrum that
drives rank selection, the MACs of a candidate rank, and how to build the replacement
(an ``nn.Sequential`` of standard layers, so save/load and ONNX export need nothing new).

The driver (``factorize_model_``): shapes of every selected layer on the real example input
(forward hooks) -> ranks (:mod:`torchslim.lowrank.ranks`) -> drop layers whose factorized
form does not save MACs -> build -> time original vs replacement in eager on the layer's own
input ("measure, don't assume") and keep only those measured faster -> optional fine-tuning.
Hand-written: the driver itself; decompositions use torch.linalg / TensorLy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult
from torchslim.core.select import select_layers
from torchslim.errors import UserError

Rank = Any  # int, or (r_out, r_in) for Tucker-2
RankMethod = Literal["energy", "ratio", "rank", "vbmf", "macs"]


@dataclass(frozen=True)
class FactorizeConfig(TechniqueConfig):
    """Fields shared by ``lowrank.svd``, ``lowrank.tucker``, ``lowrank.cp``, ``lowrank.spatial``.

    ``rank_method``: how ranks are chosen (see :mod:`torchslim.lowrank.ranks`):
      "energy" keeps the smallest rank holding ``energy`` of the squared singular values;
      "ratio" keeps ``ceil(rank_ratio * full_rank)``; "rank" uses ``rank`` for every layer;
      "vbmf" uses the analytic empirical VBMF estimate (Nakajima et al. 2013);
      "macs" meets ``macs_ratio`` = factorized / original MACs, for each layer
      (``scope: layer``) or for the selected layers together (``scope: model``, greedy
      allocation by weight error per MAC saved).
    ``latency_check``: time each layer (eager, on its real input with ``latency_batch_size``
      rows) and keep the factorized form only when it is at least ``min_speedup`` times
      faster; ``latency_threads``: intra-op threads while timing (None: torch's current).
      ``finetune_epochs`` > 0 trains the whole model afterwards on ``data.train``.
    """

    rank_method: RankMethod = "energy"
    energy: float = 0.95
    rank_ratio: float = 0.5
    rank: int = 8
    macs_ratio: float = 0.5
    scope: Literal["layer", "model"] = "model"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    latency_check: bool = True
    latency_batch_size: int | None = None
    latency_threads: int | None = None
    min_speedup: float = 1.0
    finetune_epochs: int = 0
    finetune_lr: float = 0.01
    finetune_batch_size: int = 64

    def __post_init__(self) -> None:
        if not 0.0 < self.energy <= 1.0:
            raise ValueError(f"field 'energy' must be in (0, 1], got {self.energy}")
        if not 0.0 < self.rank_ratio <= 1.0:
            raise ValueError(f"field 'rank_ratio' must be in (0, 1], got {self.rank_ratio}")
        if not 0.0 < self.macs_ratio < 1.0:
            raise ValueError(f"field 'macs_ratio' must be in (0, 1), got {self.macs_ratio}")
        if self.rank < 1:
            raise ValueError(f"field 'rank' must be >= 1, got {self.rank}")
        if self.finetune_epochs < 0 or self.min_speedup <= 0:
            raise ValueError("fields 'finetune_epochs' must be >= 0 and 'min_speedup' > 0")
        for key in ("latency_batch_size", "latency_threads"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"field '{key}' must be >= 1, got {getattr(self, key)}")


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


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def conv_skip(module: nn.Module) -> str | None:
    """Why a Conv2d cannot be factorized (None: it can)."""
    if module.groups != 1:
        return "grouped/depthwise conv (groups > 1) not factorized"
    if isinstance(module.padding, str) and module.padding != "valid":
        return f"padding={module.padding!r} not supported (give explicit padding)"
    return None


def conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    return (0, 0) if isinstance(conv.padding, str) else tuple(conv.padding)  # type: ignore[return-value]


def original_macs(layer: Layer) -> int:
    """MACs per sample of the unfactorized layer (batch 1), as the profiler counts them."""
    m = layer.module
    if isinstance(m, nn.Linear):
        return layer.rows * m.in_features * m.out_features
    out_hw = math.prod(layer.out_shape[2:])
    return m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size) * out_hw


def collect_layers(model: nn.Module, method: Method, config: FactorizeConfig, ctx: Context
                   ) -> tuple[list[Layer], list[str]]:
    """Selected layers of ``method.types`` that ran on the example input, and skip warnings."""
    chosen = select_layers(model, method.types, config.include, config.exclude)
    if config.include and not chosen:
        raise UserError(f"include: no {'/'.join(t.__name__ for t in method.types)} layer matches {list(config.include)}")
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
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(*(x[:1] for x in ctx.example_inputs))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    layers = []
    for name, module in chosen:
        if name in shapes:
            layers.append(Layer(name, module, *shapes[name]))
        elif not method.skip(module):
            warnings.append(f"{name}: not called on the example input, left alone")
    return layers, warnings


@contextmanager
def single_thread() -> Iterator[None]:
    """Run decompositions on one intra-op thread: on a shared 2-core machine, multi-threaded
    BLAS inside TensorLy's ALS loop was measured 10-25x slower than one thread, and one
    thread makes the factors reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.inference_mode()
def eager_speedup(original: nn.Module, replacement: nn.Module, x: torch.Tensor, rounds: int = 5,
                  threads: int | None = None) -> float:
    """Median over ``rounds`` of t(original) / t(replacement) on input ``x``, eager PyTorch.

    Each round times a burst of ~10 ms of calls of one, then of the other, so both see the
    same background load on a shared machine. Hand-written because
    :func:`torchslim.profiler.measure_latency` times one model per call and costs ~10x more.
    """

    def burst(module: nn.Module, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            module(x)
        return time.perf_counter() - start

    modes = [(m, m.training) for m in (original, replacement)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    original.eval()
    replacement.eval()
    try:
        burst(original, 1)
        burst(replacement, 1)
        single = sorted(burst(original, 1) + burst(replacement, 1) for _ in range(3))[1]
        calls = max(1, min(50, int(0.02 / max(single, 1e-6))))
        ratios = sorted(burst(original, calls) / max(burst(replacement, calls), 1e-9) for _ in range(rounds))
    finally:
        torch.set_num_threads(previous)
        for m, training in modes:
            m.train(training)
    return ratios[len(ratios) // 2]


def finetune_(model: nn.Module, config: FactorizeConfig, ctx: Context) -> dict[str, Any]:
    from torchslim.train import fit

    if ctx.data is None:
        raise UserError("finetune_epochs > 0 needs a 'data' section (training data)")
    history = fit(model, ctx.data.train, epochs=config.finetune_epochs, lr=config.finetune_lr,
                  batch_size=config.finetune_batch_size, seed=ctx.seed, progress=ctx.progress)
    return {"finetune_train_loss": history.train_loss, "finetune_seconds": round(sum(history.epoch_seconds), 2)}


def factorize_model_(model: nn.Module, config: FactorizeConfig, ctx: Context, method: Method) -> HandlerResult:
    """Run ``method`` on every selected layer of ``model`` in place (see module docstring)."""
    from torchslim.lowrank.ranks import choose_ranks

    layers, warnings = collect_layers(model, method, config, ctx)
    excluded: set[str] = set()
    speedups: dict[str, float] = {}
    built: dict[str, nn.Module] = {}
    ranks: dict[str, Rank] = {}
    errors: dict[str, float | None] = {}
    for _round in range(3):  # re-allocate when the latency guard rejects layers (scope: model)
        with single_thread():
            ranks, errors, notes = choose_ranks(layers, method, config, excluded)
        warnings += [w for w in notes if w not in warnings]
        rejected = []
        for layer in layers:
            rank = ranks.get(layer.name)
            if rank is None:
                continue
            new_macs, old_macs = method.macs(layer, rank), original_macs(layer)
            if new_macs >= old_macs:
                warnings.append(f"{layer.name}: rank {_plain(rank)} would not save MACs ({new_macs} >= {old_macs}), left alone")
                ranks[layer.name] = None
                continue
            key = f"{layer.name}@{rank}"
            if key not in built:
                with single_thread():
                    built[key] = method.build(layer.module, rank, ctx.seed).to(_param_dtype(layer.module))
            if config.latency_check:
                if key not in speedups:
                    batch = config.latency_batch_size or ctx.example_inputs[0].shape[0]
                    x = torch.randn(batch, *layer.in_shape[1:], generator=torch.Generator().manual_seed(ctx.seed))
                    speedups[key] = eager_speedup(layer.module, built[key], x.to(_param_dtype(layer.module)),
                                                  threads=config.latency_threads)
                if speedups[key] < config.min_speedup:
                    rejected.append(layer.name)
                    warnings.append(f"{layer.name}: factorized (rank {_plain(rank)}) measured slower in eager "
                                    f"(speedup {speedups[key]:.2f}x < {config.min_speedup}), left alone")
                    ranks[layer.name] = None
        excluded.update(rejected)
        if not rejected or config.rank_method != "macs" or config.scope != "model":
            break
    details: dict[str, Any] = {"layers": {}}
    macs_before = macs_after = 0
    for layer in layers:
        rank = ranks.get(layer.name)
        old = original_macs(layer)
        macs_before += old
        entry: dict[str, Any] = {"original_macs": old}
        if rank is not None:
            key = f"{layer.name}@{rank}"
            set_submodule(model, layer.name, built[key])
            entry.update(rank=_plain(rank), macs=method.macs(layer, rank), weight_error=errors.get(layer.name))
            if key in speedups:
                entry["eager_speedup"] = round(speedups[key], 3)
        entry.setdefault("macs", old)
        macs_after += entry["macs"]
        details["layers"][layer.name] = entry
    factorized = [n for n, e in details["layers"].items() if "rank" in e]
    details.update(factorized=factorized, selected_macs_before=macs_before, selected_macs_after=macs_after,
                   selected_macs_ratio=round(macs_after / macs_before, 4) if macs_before else None)
    if config.rank_method == "macs" and macs_before and macs_after > config.macs_ratio * macs_before * 1.02:
        warnings.append(f"MACs target not met for the selected layers: {macs_after / macs_before:.3f} > "
                        f"{config.macs_ratio} (layers left alone: see above)")
    warnings = list(dict.fromkeys(warnings))
    if factorized:
        ctx.invalidate_graph()
    if config.finetune_epochs and factorized:
        details.update(finetune_(model, config, ctx))
    elif config.finetune_epochs:
        warnings.append("nothing factorized: fine-tuning skipped")
    return HandlerResult(model, warnings, details)


def factory_kwargs(layer: nn.Module) -> dict[str, Any]:
    """dtype/device of ``layer``'s weight, for building its replacement without a lossy cast."""
    return {"dtype": layer.weight.dtype, "device": layer.weight.device}


def _param_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _plain(rank: Rank) -> Any:
    return list(rank) if isinstance(rank, tuple) else rank


def spectrum_energy_rank(s: torch.Tensor, energy: float) -> int:
    """Smallest r with sum(s[:r]^2) >= energy * sum(s^2) (s sorted descending)."""
    e = (s.double() ** 2).cumsum(0)
    if e[-1] <= 0:
        return 1
    return int(torch.searchsorted(e / e[-1], torch.tensor(energy, dtype=e.dtype) - 1e-12).item()) + 1


def discarded_fraction(s: torch.Tensor, r: int) -> float:
    """sum(s[r:]^2) / sum(s^2): relative squared error of the best rank-r approximation."""
    e = s.double() ** 2
    total = float(e.sum())
    return float(e[r:].sum()) / total if total > 0 else 0.0
