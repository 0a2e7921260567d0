"""``profile_model``: params, MACs, other flops, per-layer costs, peak activations, size.

PyTorch does the work: one forward runs under
``torch._subclasses.fake_tensor.FakeTensorMode`` (real parameters are converted to fake
ones on the fly, ``allow_non_fake_inputs=True``), so every op computes only its output
shape and no arithmetic happens, and ``counter.OpCounter`` (a ``TorchDispatchMode``)
sees every aten op on the way. A model whose forward needs data (``.item()``,
``nonzero``) cannot run on fake tensors; it is profiled by a real forward instead, with
the same counting. Hand-written here: only the orchestration.

The fused fast paths of ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` are
switched off while counting (``torch.backends.mha.set_fastpath_enabled``), so their
work is seen as the standard linear / attention / norm ops rather than one opaque op.
"""

from __future__ import annotations

import logging

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchslim.core.context import as_input_tuple
from torchslim.core.modules import evaluating
from torchslim.errors import UserError
from torchslim.profiler.counter import OpCounter
from torchslim.profiler.memory import LiveRanges
from torchslim.profiler.stats import LayerStats, ModelStats
from torchslim.profiler.weights import count_params, safetensors_size_bytes

Inputs = torch.Tensor | Sequence[Any]




def describe_shapes(inputs: tuple[Any, ...]) -> str:
    """'1x3x224x224, 1x10' for the tensors among ``inputs``."""
    return ", ".join("x".join(map(str, x.shape)) for x in inputs if isinstance(x, torch.Tensor))


def _run_counted(model: nn.Module, inputs: tuple[Any, ...], *, fake: bool) -> tuple[OpCounter, int]:
    """One counted forward; returns the counter and the peak activation bytes."""
    memory = LiveRanges()
    counter = OpCounter(model, memory, fake=fake)
    try:
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode(allow_non_fake_inputs=True)
            run_inputs = tuple(
                mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in inputs
            )
            memory.add_inputs(run_inputs)
            with mode, counter.tracking_modules(), counter:
                out = model(*run_inputs)
        else:
            memory.add_inputs(inputs)
            with counter.tracking_modules(), counter:
                out = model(*inputs)
        memory.add_outputs(out)
        return counter, memory.peak_bytes()
    finally:
        memory.close()




def run_checked(model: nn.Module, inputs: tuple[Any, ...]) -> Any:
    """A plain forward; a failure is the caller's model/input mismatch: one-line UserError."""
    try:
        return model(*inputs)
    except Exception as error:  # noqa: BLE001 - any failure of the user's model
        message = (str(error).strip().splitlines() or [""])[0]
        raise UserError(
            f"model {type(model).__name__} failed on input shape {describe_shapes(inputs)}: "
            f"{type(error).__name__}: {message}"
        ) from error


def _merge(records: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for record in records:
        for key, value in record.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


def profile_model(model: nn.Module, example_inputs: Inputs) -> ModelStats:
    """Profile one inference forward of ``model`` on ``example_inputs``.

    ``example_inputs`` is a tensor or a tuple of positional inputs. The model runs in
    eval mode under ``torch.no_grad`` (each module's training flag is restored after).
    Raises ``UserError`` if the model cannot run on inputs of these shapes.
    See ``ModelStats`` for the fields and their units.
    """
    inputs = as_input_tuple(example_inputs)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    # A shape mismatch is reported below as one line; keep torch's fake-tensor log quiet.
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    log_level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)
    try:
        with evaluating(model), torch.no_grad():
            try:
                counter, peak = _run_counted(model, inputs, fake=True)
                execution = "fake"
            except Exception:  # noqa: BLE001 - decide below whether it is the user's
                run_checked(model, inputs)
                # the model runs for real: it needs data (or an op lacks a fake kernel)
                counter, peak = _run_counted(model, inputs, fake=False)
                execution = "real"
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        fake_log.setLevel(log_level)

    layers = [
        LayerStats(
            name=r.name,
            module_type=r.module_type,
            params=r.params,
            macs=r.macs,
            other_flops=dict(sorted(r.other_flops.items())),
            uncounted_ops=dict(sorted(r.uncounted_ops.items())),
            output_shape=r.output_shape,
            calls=counter.calls[module],
        )
        for module, r in counter.layers.items()
    ]
    return ModelStats(
        params=count_params(model),
        macs=sum(layer.macs for layer in layers),
        other_flops=_merge([layer.other_flops for layer in layers]),
        uncounted_ops=_merge([layer.uncounted_ops for layer in layers]),
        layers=layers,
        peak_activation_bytes=peak,
        size_bytes=safetensors_size_bytes(model),
        input_shapes=[tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor)],
        execution=execution,
    )
