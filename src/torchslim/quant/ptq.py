"""Post-training int8 quantization (``quant.ptq``) with real integer execution in ONNX Runtime.

Steps: fold BatchNorm (``fold.bn``); plan QDQ placement on the module graph of the Context's
torch.export capture (:mod:`.plan`);
calibrate activation ranges on ``num_samples`` training images with an observer
(:mod:`.observers`); replace each Conv2d/Linear by a :class:`QuantizedConv2d` /
:class:`QuantizedLinear` holding per-channel symmetric int8 weights (Krishnamoorthi 2018,
"Quantizing deep convolutional networks for efficient inference", Sec. 3: per-channel weights,
per-tensor activations). Linear 8-bit as in Vanhoucke et al. 2011 is this with uint8 activations.

Mixed precision (``max_accuracy_drop``): while the accuracy drop on ``ctx.eval_fn`` exceeds the
bound, the quantized layer with the worst local SQNR (its own output error given float inputs)
goes back to float, up to ``max_float_layers``.

Never slower than float (``latency_check``, :mod:`.speed`): the int8 model is timed against
fp32 in ONNX Runtime at the run's batch sizes and layers go back to float (the ends first;
the whole model as the last resort) until it is not slower; ``decisions`` pins layers.

The report details give per-layer SQNR (dB; null when exact) and the op types ONNX Runtime runs
after its QDQ fusion (:mod:`.onnx_check`); with ``ctx.out_dir`` the int8 ONNX file is written there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import evaluating, set_submodule
from torchslim.core.numerics import sqnr_db
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import select_layers
from torchslim.data.access import calibration_batches as first_batches
from torchslim.errors import UserError
from torchslim.quant.modules import QuantizedActivation, QuantizedConv2d, QuantizedLinear
from torchslim.quant.observers import OBSERVERS, Observer, QParams, quantize_weight, symmetric_weight_scales
from torchslim.quant.plan import LAYER_TYPES, QuantPlan, build_plan
from torchslim.quant.speed import Measure, keep_if_faster, ort_measure
from torchslim.train.evaluate import model_device


@dataclass(frozen=True)
class PTQConfig(TechniqueConfig):
    """``observer``: minmax | percentile | mse | entropy (activations); ``percentile`` for that observer.

    ``act_dtype``: "uint8" (asymmetric) or "int8" (symmetric). ``num_samples``: calibration images
    from the training split, run in batches of ``calibration_batch_size``. ``max_accuracy_drop``:
    top-1 points (0.3 = three tenths of a point) for mixed precision, None to quantize every
    selected layer; at most ``max_float_layers`` go back to float. ``export_onnx``: write
    ``quant_ptq_int8.onnx`` to the run folder and check what ONNX Runtime runs.

    ``latency_check``: time the int8 model against fp32 in ONNX Runtime and leave layers (or,
    as a last resort, the whole model) in float until it is at least ``min_speedup`` x fp32 at
    every batch size (:mod:`torchslim.quant.speed`): ``latency_batch_sizes`` (empty: the run's
    ``measure.batch_sizes``, else 1), ``latency_threads`` (None: the run's ``measure.threads``).
    ``decisions`` pins layers without timing: true keeps a layer int8, false leaves it float.
    """

    observer: Literal["minmax", "percentile", "mse", "entropy"] = "percentile"
    percentile: float = 99.99
    act_dtype: Literal["uint8", "int8"] = "uint8"
    num_samples: int = 512
    calibration_batch_size: int = 64
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_accuracy_drop: float | None = None
    max_float_layers: int = 8
    export_onnx: bool = True
    latency_check: bool = True
    min_speedup: float = 1.0
    latency_batch_sizes: tuple[int, ...] = ()
    latency_threads: int | None = None
    decisions: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_speed_fields(self)
        if self.observer not in OBSERVERS:
            raise ValueError(f"field 'observer' must be one of {', '.join(OBSERVERS)}, got {self.observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"field 'percentile' must be in (50, 100], got {self.percentile}")
        for name in ("num_samples", "calibration_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"field '{name}' must be >= 1, got {getattr(self, name)}")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise ValueError(f"field 'max_accuracy_drop' must be >= 0 (top-1 points), got {self.max_accuracy_drop}")
        if self.max_float_layers < 0:
            raise ValueError(f"field 'max_float_layers' must be >= 0, got {self.max_float_layers}")

    def needs_data(self) -> str | None:
        return "calibration"

    def needs_eval(self) -> str | None:
        return None if self.max_accuracy_drop is None else "field 'max_accuracy_drop'"


def check_speed_fields(config: Any) -> None:
    """Validate the latency-check fields PTQConfig and QATConfig share."""
    if not config.min_speedup > 0:
        raise ValueError(f"field 'min_speedup' must be > 0, got {config.min_speedup}")
    if any(b < 1 for b in config.latency_batch_sizes):
        raise ValueError(f"field 'latency_batch_sizes' must hold integers >= 1, got {list(config.latency_batch_sizes)}")
    if config.latency_threads is not None and config.latency_threads < 1:
        raise ValueError(f"field 'latency_threads' must be >= 1, got {config.latency_threads}")
    bad = {k: v for k, v in config.decisions.items() if not isinstance(k, str) or not isinstance(v, bool)}
    if bad:
        raise ValueError(f"field 'decisions' must map layer names to true or false, got {bad}")


def speed_settings(config: Any, ctx: Context) -> tuple[tuple[int, ...], int | None]:
    """(batch sizes, threads) of the int8-vs-fp32 check: the step's, else the run's measurement's."""
    measure = ctx.measure
    batches = tuple(config.latency_batch_sizes) or (tuple(measure.batch_sizes) if measure else ()) or (1,)
    threads = config.latency_threads or (measure.threads if measure else None)
    return batches, threads


def calibration_batches(ctx: Context, num_samples: int, batch_size: int, step: str) -> Iterator[torch.Tensor]:
    """The first ``num_samples`` training images in batches; UserError naming ``step`` without data."""
    if ctx.data is None:
        raise UserError(f"{step} needs calibration data: set 'data:' in the recipe (or data= in compress)")
    yield from first_batches(ctx.data.train, num_samples, batch_size)


@dataclass
class Calibration:
    """Observed activation ranges: inputs of every candidate layer, outputs of every quantizable point."""

    inputs: dict[str, Observer]
    outputs: dict[str, Observer]


@torch.no_grad()
def calibrate(model: nn.Module, plan: QuantPlan, batches: Iterator[torch.Tensor], config: PTQConfig) -> Calibration:
    """Run ``batches`` through the float ``model`` (in eval mode) with observers on the planned tensors."""
    def make(unclipped: bool) -> Observer:
        return Observer("minmax" if unclipped else config.observer, config.act_dtype, config.percentile)

    cal = Calibration({name: make(name in plan.model_inputs) for name in plan.layers},
                      {name: make(name in plan.model_outputs)
                       for name in [*map(plan.output_module, plan.layers), *plan.activations]})
    handles = []
    for name in plan.layers:
        handles.append(model.get_submodule(name).register_forward_pre_hook(
            lambda m, args, obs=cal.inputs[name]: obs.update(args[0])))
    for name, obs in cal.outputs.items():
        handles.append(model.get_submodule(name).register_forward_hook(
            lambda m, args, out, obs=obs: obs.update(out)))
    try:
        with evaluating(model):
            device = model_device(model)
            for x in batches:
                model(x.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return cal


def _store(scale: torch.Tensor, zero_point: torch.Tensor, q: QParams) -> None:
    scale.fill_(q.scale)
    zero_point.fill_(q.zero_point)


@torch.no_grad()
def make_quantized_layer(layer: nn.Module, activation: str, input_q: QParams, output_q: QParams,
                         act_dtype: str) -> QuantizedConv2d | QuantizedLinear:
    """An int8 copy of ``layer`` (Conv2d or Linear) with the given activation parameters."""
    has_bias = layer.bias is not None
    if isinstance(layer, nn.Conv2d):
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            raise UserError(f"conv with padding={layer.padding!r}, padding_mode={layer.padding_mode!r} is not supported")
        q = QuantizedConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                            layer.dilation, layer.groups, has_bias, activation, True, act_dtype)
    else:
        q = QuantizedLinear(layer.in_features, layer.out_features, has_bias, activation, True, act_dtype)
    scales = symmetric_weight_scales(layer.weight)
    q.weight_scale.copy_(scales)
    q.weight_int8.copy_(quantize_weight(layer.weight, scales))
    if has_bias:
        q.bias.copy_(layer.bias.detach())
    _store(q.input_scale, q.input_zero_point, input_q)
    _store(q.output_scale, q.output_zero_point, output_q)
    return q.to(layer.weight.device)


def convert(model: nn.Module, plan: QuantPlan, cal: Calibration, quantized: set[str], act_dtype: str) -> nn.Module:
    """Replace ``quantized`` layers (and standalone activations) in ``model`` in place."""
    sources = plan.input_sources(quantized)
    out_q = {name: obs.qparams() for name, obs in cal.outputs.items()}
    for name in quantized:
        layer_plan = plan.layers[name]
        source = sources[name]
        input_q = out_q[plan.output_module(source) if source in plan.layers else source] if source else \
            cal.inputs[name].qparams()
        new = make_quantized_layer(model.get_submodule(name), layer_plan.activation, input_q,
                                   out_q[plan.output_module(name)], act_dtype)
        set_submodule(model, name, new)
        if layer_plan.activation_module:
            set_submodule(model, layer_plan.activation_module, nn.Identity())
    for name, kind in plan.quantized_activations(quantized).items():
        act = QuantizedActivation(kind, act_dtype)
        _store(act.output_scale, act.output_zero_point, out_q[name])
        set_submodule(model, name, act)
    return model


@torch.no_grad()
def local_sqnr(float_model: nn.Module, quant_model: nn.Module, plan: QuantPlan, quantized: set[str],
               x: torch.Tensor) -> dict[str, float | None]:
    """Per layer: SQNR (dB, None when exact) of the quantized layer's output vs the float
    layer(+activation) output, both fed the float model's input to that layer (each layer's
    own error, not accumulated)."""
    captured: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name in quantized:
        captured[name] = []
        handles.append(float_model.get_submodule(name).register_forward_pre_hook(
            lambda m, args, n=name: captured[n].append(args[0])))
        handles.append(float_model.get_submodule(plan.output_module(name)).register_forward_hook(
            lambda m, args, out, n=name: captured[n].append(out)))
    try:
        with evaluating(float_model):
            float_model(x)
    finally:
        for handle in handles:
            handle.remove()
    sqnr = {name: sqnr_db(out, quant_model.get_submodule(name)(inp)) for name, (inp, out) in captured.items()}
    return {name: None if v is None else round(v, 2) for name, v in sqnr.items()}


def quantize_model_(model: nn.Module, config: PTQConfig, ctx: Context, step: str = "quant.ptq",
                    measure: Measure | None = None) -> HandlerResult:
    """Fold BN, calibrate and convert ``model`` in place (see module docstring). ``measure``:
    the int8-vs-fp32 timing of the latency check (None: ONNX Runtime, :func:`.speed.ort_measure`)."""
    from torchslim.fold.bn import FoldBNConfig, fold_bn_

    warnings = list(fold_bn_.handler(model, FoldBNConfig(), ctx).warnings)
    selected = {name for name, _ in select_layers(model, LAYER_TYPES, config.include, config.exclude)}
    plan = build_plan(model, ctx.module_graph(model), selected)
    warnings += [f"{name}: called more than once, left in float" for name in plan.skipped]
    if not plan.layers:
        warnings.append(f"{step}: no Conv2d/Linear layer to quantize (none in the model, or none selected by "
                        "include/exclude, or each called more than once); the model is unchanged")
        return HandlerResult(model, warnings, {"planned_layers": 0, "quantized_layers": 0})
    cal = calibrate(model, plan, calibration_batches(ctx, config.num_samples, config.calibration_batch_size, step),
                    config)
    float_model = copy.deepcopy(model)
    probe = next(calibration_batches(ctx, 8, 8, step))
    quantized = set(plan.layers)
    convert(model, plan, cal, quantized, config.act_dtype)
    sqnr = local_sqnr(float_model, model, plan, quantized, probe)
    details: dict[str, object] = {"observer": config.observer, "act_dtype": config.act_dtype,
                                  "planned_layers": len(plan.layers), "sqnr_db": sqnr}
    if config.max_accuracy_drop is not None:
        warnings += _mixed_precision_(model, float_model, plan, cal, quantized, sqnr, config, ctx, details, step)
    if (config.latency_check or config.decisions) and quantized:
        _speed_check_(model, float_model, plan, cal, quantized, config, ctx, details, warnings, measure)
    details["quantized_layers"] = len(quantized)
    return HandlerResult(model, warnings, details)


def _speed_check_(model: nn.Module, float_model: nn.Module, plan: QuantPlan, cal: Calibration, quantized: set[str],
                  config: PTQConfig, ctx: Context, details: dict[str, object], warnings: list[str],
                  measure: Measure | None) -> None:
    """Leave layers in float until int8 is not slower than fp32 in ONNX Runtime (:mod:`.speed`),
    or only the pinned ones without ``latency_check``; updates ``model`` and ``quantized`` in place."""
    from torchslim.core.timing import pinned_names

    pinned_names(config.decisions, set(quantized))
    batches, threads = speed_settings(config, ctx)
    if measure is None and config.latency_check:
        measure = ort_measure(ctx.example_inputs, threads)

    def build(float_layers: set[str]) -> nn.Module:
        candidate = copy.deepcopy(float_model)
        return convert(candidate, plan, cal, quantized - float_layers, config.act_dtype)

    order = [name for name in plan.layers if name in quantized]
    floats = keep_if_faster(order, build, float_model, measure, batches, config.min_speedup, config.decisions,
                            details, warnings, timed=config.latency_check)
    if floats:
        quantized -= floats
        _restore(model, float_model)
        convert(model, plan, cal, quantized, config.act_dtype)


def _mixed_precision_(model: nn.Module, float_model: nn.Module, plan: QuantPlan, cal: Calibration,
                      quantized: set[str], sqnr: dict[str, float | None], config: PTQConfig, ctx: Context,
                      details: dict[str, object], step: str) -> list[str]:
    """Return the worst-SQNR quantized layer to float while the drop exceeds ``max_accuracy_drop``
    (points); updates ``quantized`` and ``details``; returns warnings."""
    if ctx.eval_fn is None:
        raise UserError(f"{step}: max_accuracy_drop needs an evaluation (data with a test split)")
    assert config.max_accuracy_drop is not None
    float_acc = ctx.eval_fn(float_model)
    acc = ctx.eval_fn(model)
    kept_float: list[str] = []
    while quantized and 100 * (float_acc - acc) > config.max_accuracy_drop and len(kept_float) < config.max_float_layers:
        worst = min(sorted(quantized), key=lambda n: math.inf if sqnr[n] is None else sqnr[n])
        quantized.discard(worst)
        kept_float.append(worst)
        _restore(model, float_model)
        convert(model, plan, cal, quantized, config.act_dtype)
        acc = ctx.eval_fn(model)
    details.update(float_accuracy=float_acc, int8_accuracy=acc, float_layers=kept_float)
    if 100 * (float_acc - acc) > config.max_accuracy_drop:
        return [f"accuracy drop {100 * (float_acc - acc):.2f} points still above max_accuracy_drop "
                f"{config.max_accuracy_drop} with {len(kept_float)} float layers"]
    return []


def _restore(model: nn.Module, float_model: nn.Module) -> None:
    """Put every top-level child of ``float_model`` back into ``model`` (undo a conversion)."""
    for name, child in float_model.named_children():
        setattr(model, name, copy.deepcopy(child))


@register_technique("quant.ptq", PTQConfig)
def ptq_(model: nn.Module, config: PTQConfig, ctx: Context, measure: Measure | None = None) -> HandlerResult:
    """Post-training int8 (per-channel weights, calibrated activations) running on ORT integer kernels.
    ``measure``: the latency check's int8-vs-fp32 timing (None: ONNX Runtime)."""
    result = quantize_model_(model, config, ctx, measure=measure)
    if config.export_onnx and result.details["planned_layers"]:
        from torchslim.quant.onnx_check import export_and_check

        details, warnings = export_and_check(model, ctx, "quant_ptq_int8.onnx")
        result.details.update(details)
        result.warnings += warnings
    return result
