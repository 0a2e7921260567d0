"""Int8 that is never slower than float: measure in ONNX Runtime, fall back to float where it pays.

``quant.ptq`` and ``quant.qat`` end with :func:`keep_if_faster`: the int8 model and the fp32
model it came from are exported and timed side by side in ONNX Runtime (the target runtime)
at every batch size of the run's measurement (``MeasureConfig.batch_sizes``; the step's
``latency_batch_sizes`` overrides), interleaved (:func:`torchslim.core.timing.compare_interleaved`).
If int8 is slower than ``min_speedup`` x fp32 at any batch size, layers go back to float in
trial sets, fewest float layers first: the last layer, the first, both, then the first and
last k layers for k = 2, 4, 8, ... (graph order). Small layers at the ends (a 3-channel stem,
the classifier) gain least from int8 and pay a quantize/dequantize each; a float prefix or
suffix also never leaves a float layer between quantized tensors, which ONNX Runtime would
quantize itself. The first set measured at least ``min_speedup`` x fp32 at every batch size
wins (an unreliable timing, :attr:`Comparison.reliable`, is measured again: the repeat counts
if reliable, else the lower of the two medians); if none
does, the whole model stays float (the last resort; layers pinned int8 excepted), said in a warning.

``decisions: {layer: bool}`` pins layers (true: int8, false: float) as in
:mod:`torchslim.core.timing`; pinned layers are never moved, and when every layer is pinned
nothing is timed, so a rerun on another machine builds the same model. The step details'
``speed_check`` holds every trial (float layers, per-batch milliseconds, speedup, spread)
and ``float_for_speed`` the layers that stayed float with the measured reason.

Hand-written: the trial order and bookkeeping; timing is core/timing, sessions are ONNX Runtime's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.timing import Comparison, compare_interleaved

# (fp32 model, int8 candidate, batch size) -> Comparison(baseline = fp32, candidate = int8)
Measure = Callable[[nn.Module, nn.Module, int], Comparison]


def ort_measure(example_inputs: tuple[torch.Tensor, ...], threads: int | None, rounds: int = 5) -> Measure:
    """A :data:`Measure` in ONNX Runtime (CPU, ``threads`` intra-op threads); the fp32 session is
    built once per batch size, the candidate's for each call."""
    from torchslim.profiler import export_onnx, onnx_session
    from torchslim.profiler.latency import batch_inputs

    fp32_sessions: dict[int, Any] = {}

    def session(model: nn.Module, folder: str, name: str) -> Any:
        return onnx_session(export_onnx(model, example_inputs, Path(folder) / name), threads)

    def measure(fp32: nn.Module, int8: nn.Module, batch: int) -> Comparison:
        inputs, _ = batch_inputs(example_inputs, batch)
        with tempfile.TemporaryDirectory(prefix="torchslim-speed-") as folder:
            if batch not in fp32_sessions:
                fp32_sessions[batch] = session(fp32, folder, "fp32.onnx")
            candidate = session(int8, folder, "int8.onnx")
        base = fp32_sessions[batch]
        feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(base.get_inputs(), inputs)}
        return compare_interleaved(lambda: base.run(None, feeds), lambda: candidate.run(None, feeds),
                                   rounds=rounds, burst_seconds=0.05)

    return measure


def trial_sets(layers: Sequence[str]) -> list[frozenset[str]]:
    """Float-layer sets to try, in order (see module docstring); never the empty set, never all."""
    n = len(layers)
    sets: list[frozenset[str]] = []
    candidates = [layers[-1:], layers[:1], [*layers[:1], *layers[-1:]]]
    k = 2
    while 2 * k < n:
        candidates.append([*layers[:k], *layers[-k:]])
        k *= 2
    for chosen in candidates:
        s = frozenset(chosen)
        if s and len(s) < n and s not in sets:
            sets.append(s)
    return sets


def keep_if_faster(layers: Sequence[str], build: Callable[[set[str]], nn.Module], fp32: nn.Module,
                   measure: Measure, batch_sizes: Sequence[int], min_speedup: float,
                   decisions: Mapping[str, bool], details: dict[str, Any], warnings: list[str],
                   timed: bool = True) -> set[str]:
    """The layers (of ``layers``, int8 candidates in graph order) to leave in float so that
    ``build(float_layers)`` is at least ``min_speedup`` x ``fp32`` at every batch size.

    ``build`` returns the model with the given layers in float (the others int8); pinned
    ``decisions`` are honoured without timing; with ``timed`` False nothing else is. Writes ``details["speed_check"]`` and
    ``details["float_for_speed"]``; appends a warning for a whole-model fallback or a noisy timing."""
    pinned_float = {name for name, keep in decisions.items() if not keep}
    free = [name for name in layers if name not in decisions]
    check: dict[str, Any] = {"batch_sizes": list(batch_sizes), "min_speedup": min_speedup,
                             "pinned": dict(decisions), "trials": []}
    details["speed_check"] = check
    reasons = {name: "pinned false in 'decisions'" for name in sorted(pinned_float)}
    if not free or not timed:
        details["float_for_speed"] = reasons
        return set(pinned_float)
    for extra in [frozenset(), *trial_sets(free)]:
        float_layers = pinned_float | extra
        model = build(set(float_layers))
        trial: dict[str, Any] = {"float_layers": sorted(extra), "batches": {}}
        check["trials"].append(trial)
        passed = True
        for batch in batch_sizes:
            result = measure(fp32, model, batch)
            trial["batches"][str(batch)] = result.to_dict()
            speedup = result.speedup
            if not result.reliable:
                again = measure(fp32, model, batch)
                trial["batches"][str(batch)]["repeat"] = again.to_dict()
                speedup = again.speedup if again.reliable else min(result.speedup, again.speedup)
                warnings.append(f"int8 vs fp32 at batch {batch}: timing unreliable ({result.unreliable_reason}; "
                                f"median {result.speedup:.2f}x), measured again: {again.speedup:.2f}x"
                                f"{'' if again.reliable else ' (unreliable too: the lower median counts)'}; "
                                "pin 'decisions' to make the choice reproducible")
            if speedup < min_speedup:
                passed = False
                break  # this set already fails: the other batch sizes need not be timed
        trial["chosen"] = passed
        if passed:
            if extra:
                slower = _slower_batches(check["trials"][0], min_speedup)
                reasons.update({name: f"int8 model slower than fp32 in ONNX Runtime ({slower}); float here "
                                      f"measured not slower" for name in sorted(extra)})
            details["float_for_speed"] = reasons
            return set(float_layers)
    slower = _slower_batches(check["trials"][0], min_speedup)
    whole = "every unpinned layer stays float" if decisions else "the whole model stays float"
    warnings.append(f"int8 slower than fp32 in ONNX Runtime ({slower}) with every tried set of float layers: "
                    f"{whole} (pin 'decisions' to force int8 layers)")
    reasons.update({name: f"whole-model fallback: int8 slower than fp32 ({slower})" for name in free})
    details["float_for_speed"] = reasons
    return set(free) | pinned_float


def _slower_batches(trial: dict[str, Any], min_speedup: float) -> str:
    parts = [f"batch {b}: {r['candidate_ms']:.3g} ms vs {r['baseline_ms']:.3g} ms, {r['speedup']:.2f}x"
             for b, r in trial["batches"].items() if r["speedup"] < min_speedup]
    return "; ".join(parts)
