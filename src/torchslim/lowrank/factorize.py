"""The driver every decomposition step runs: ``factorize_model_(model, config, ctx, method)``.

Shapes of every selected layer on the real example input (forward hooks,
:func:`torchslim.lowrank.layers.collect_layers`) -> ranks (:mod:`torchslim.lowrank.ranks`) ->
drop layers whose factorized form does not save MACs -> build -> keep or not ("measure,
don't assume"): a layer pinned in ``decisions`` follows the pin; otherwise, with
``latency_check``, original and replacement are timed interleaved in eager on an input of
the layer's own shape (:func:`torchslim.core.timing.compare_interleaved` via ``decide``)
and the replacement is kept only when ``min_speedup`` times faster. With ``rank_method:
macs, scope: model`` the target is re-allocated over the layers left (up to 3 rounds).
Then the optional ``finetune`` (:func:`torchslim.distill.finetune.finetune_`).
Hand-written: the driver itself; decompositions use torch.linalg / TensorLy (CP-ALS: see cp.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.modules import evaluating, set_submodule
from torchslim.core.registry import HandlerResult
from torchslim.core.timing import Comparison, compare_interleaved, decide, pinned_names
from torchslim.distill.finetune import finetune_
from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.layers import Layer, Method, Rank, collect_layers, original_macs, plain_rank, single_thread
from torchslim.lowrank.ranks import choose_ranks

ROUNDS = 3  # rank allocations at most, when the latency guard rejects layers (scope: model)


def layer_timing(original: nn.Module, replacement: nn.Module, x: torch.Tensor, threads: int | None) -> Comparison:
    """Eager t(original) / t(replacement) on ``x``, interleaved (both in eval mode, no autograd)."""
    with torch.inference_mode(), evaluating(original, replacement):
        return compare_interleaved(lambda: original(x), lambda: replacement(x), threads=threads, device=x.device)


def factorize_model_(model: nn.Module, config: FactorizeConfig, ctx: Context, method: Method) -> HandlerResult:
    """Run ``method`` on every selected layer of ``model`` in place (see module docstring)."""
    layers, warnings = collect_layers(model, method, config.include, config.exclude, ctx)
    pinned_names(config.decisions, {layer.name for layer in layers})
    decisions: dict[str, dict[str, Any]] = {}  # step details: what was pinned or measured, per layer
    excluded = set()
    for name, keep in config.decisions.items():
        if not keep:
            decide(name, config.decisions, _unused_timing, config.min_speedup, decisions, warnings)
            excluded.add(name)
    built: dict[tuple[str, Rank], nn.Module] = {}
    timings: dict[tuple[str, Rank], Comparison] = {}
    ranks: dict[str, Rank | None] = {}
    errors: dict[str, float | None] = {}
    for _round in range(ROUNDS):
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
                warnings.append(f"{layer.name}: rank {plain_rank(rank)} would not save MACs "
                                f"({new_macs} >= {old_macs}), left alone")
                ranks[layer.name] = None
                continue
            key = (layer.name, rank)
            if key not in built:
                with single_thread():
                    built[key] = method.build(layer.module, rank, ctx.seed)
            if not (config.latency_check or layer.name in config.decisions):
                continue

            def measure(layer: Layer = layer, key: tuple[str, Rank] = key) -> Comparison:
                if key not in timings:  # a layer whose rank did not change is not timed again
                    batch = config.latency_batch_size or ctx.example_inputs[0].shape[0]
                    x = torch.randn(batch, *layer.in_shape[1:], generator=torch.Generator().manual_seed(ctx.seed))
                    timings[key] = layer_timing(layer.module, built[key], x.to(layer.module.weight),
                                                config.latency_threads)
                return timings[key]

            keep = decide(layer.name, config.decisions, measure, config.min_speedup, decisions, warnings)
            decisions[layer.name]["rank"] = plain_rank(rank)
            if not keep:
                rejected.append(layer.name)
                speedup = decisions[layer.name]["speedup"]
                warnings.append(f"{layer.name}: factorized (rank {plain_rank(rank)}) measured slower in eager "
                                f"(speedup {speedup:.2f}x < {config.min_speedup}), left alone")
                ranks[layer.name] = None
        excluded.update(rejected)
        if not rejected or config.rank_method != "macs" or config.scope != "model":
            break
    for name in config.decisions:
        if config.decisions[name] and ranks.get(name) is None:
            warnings.append(f"{name}: pinned true in 'decisions' but not factorized (see above)")
    details = _apply(model, layers, ranks, errors, built, method)
    if decisions:
        details["decisions"] = decisions
    before, after = details["selected_macs_before"], details["selected_macs_after"]
    if config.rank_method == "macs" and before and after * config.target_macs > 1.02 * before:
        warnings.append(f"MACs target not met for the selected layers: {before / after:.2f}x fewer MACs "
                        f"< target_macs {config.target_macs} (layers left alone: see above)")
    if config.finetune is not None and config.finetune.epochs:
        if details["factorized"]:
            details["finetune"] = finetune_(model, config.finetune, ctx)
        else:
            warnings.append("nothing factorized: fine-tuning skipped")
    return HandlerResult(model, list(dict.fromkeys(warnings)), details)


def _unused_timing() -> Comparison:
    raise AssertionError("a pinned decision is never timed")


def _apply(model: nn.Module, layers: list[Layer], ranks: dict[str, Rank | None], errors: dict[str, float | None],
           built: dict[tuple[str, Rank], nn.Module], method: Method) -> dict[str, Any]:
    """Swap in the chosen replacements; the per-layer and total MACs details."""
    table: dict[str, dict[str, Any]] = {}
    before = after = 0
    for layer in layers:
        rank = ranks.get(layer.name)
        entry: dict[str, Any] = {"original_macs": original_macs(layer), "macs": original_macs(layer)}
        if rank is not None:
            set_submodule(model, layer.name, built[(layer.name, rank)])
            entry.update(rank=plain_rank(rank), macs=method.macs(layer, rank), weight_error=errors.get(layer.name))
        before += entry["original_macs"]
        after += entry["macs"]
        table[layer.name] = entry
    return {"layers": table, "factorized": [n for n, e in table.items() if "rank" in e],
            "selected_macs_before": before, "selected_macs_after": after,
            "selected_macs_reduction": round(before / after, 4) if after else None}
