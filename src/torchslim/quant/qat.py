"""Quantization-aware training (``quant.qat``): fine-tune through fake quantization, then back to int8.

Starts from the PTQ result (runs ``quant.ptq`` first if the model has no int8 layers). Each
:class:`QuantizedConv2d` / :class:`QuantizedLinear` becomes a :class:`QATLayer` with a float
latent weight and the same activation quantizers; training is the step's ``finetune`` section
(:func:`torchslim.distill.finetune.finetune_`, so ``finetune: {distill: kd}`` distils from the
original model).
At the end every layer is re-quantized into the int8 layer it came from, so the QAT model
exports to the same QDQ graph and runs on the same ONNX Runtime integer kernels as PTQ. Then
the same latency check as ``quant.ptq`` (:mod:`.speed`): layers where int8 is measured slower
than fp32 go back to float with their trained weights (:func:`.modules.to_float`).

Two gradient rules:

- ``lsq: false`` — straight-through estimator (Bengio et al. 2013; Jacob et al. 2018, Sec. 3):
  d round(x)/dx := 1 inside the clipping range, 0 outside; weight scales follow max|W_c| / 127
  and activation ranges stay at their calibrated values.
- ``lsq: true`` — Learned Step Size Quantization (Esser et al. 2020, "Learned Step Size
  Quantization", eq. 1-3): v_hat = round(clamp(v / s, Q_N, Q_P)) * s with the step size s a
  parameter, its gradient from the same expression with round's STE, scaled by
  g = 1 / sqrt(N_elements * Q_P). Scales are learned for weights (per channel) and for each
  layer's input and output; zero points stay at their calibrated values.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.graph.modules import ModuleGraph
from torchslim.quant.modules import (QuantizedActivation, QuantizedConv2d, QuantizedLinear, StandIn, _act,
                                     fake_quant_act, to_float)
from torchslim.quant.observers import OBSERVERS
from torchslim.quant.plan import activations_to_quantize
from torchslim.quant.ptq import PTQConfig, check_speed_fields, quantize_model_, speed_settings
from torchslim.quant.speed import Measure, keep_if_faster, ort_measure
from torchslim.train.config import TrainConfig


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (x.round() - x).detach() + x


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``g`` (Esser et al. 2020, Sec. 2.2)."""
    return (x - x * g).detach() + x * g


def lsq_quantize(v: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | float, qmin: int, qmax: int,
                 axis: int | None = None) -> torch.Tensor:
    """LSQ fake quantization of ``v`` with learnable ``scale`` (per tensor, or per channel on ``axis``)."""
    per_channel = v.numel() / (scale.numel())
    g = 1.0 / math.sqrt(per_channel * qmax)
    s = _grad_scale(scale, g)
    if axis is not None:
        shape = [1] * v.dim()
        shape[axis] = -1
        s = s.view(shape)
    return (torch.clamp(_round_ste(v / s) + zero_point, qmin, qmax) - zero_point) * s


class QATLayer(StandIn):
    """Training-time twin of an int8 layer: float ``weight``, fake-quantized weights and activations."""

    stands_for = "source"

    def __init__(self, source: QuantizedConv2d | QuantizedLinear, lsq: bool) -> None:
        super().__init__()
        self.source = source  # keeps the layer's attributes and activation zero points
        self.lsq = lsq
        with torch.no_grad():
            self.weight = nn.Parameter(source.dequantized_weight().detach().clone())
        self.bias = None if source.bias is None else nn.Parameter(source.bias.detach().clone())
        if lsq:
            self.weight_scale = nn.Parameter(source.weight_scale.detach().clone())
            self.input_scale = nn.Parameter(source.input_scale.detach().clone())
            self.output_scale = nn.Parameter(source.output_scale.detach().clone())

    def _act_q(self, x: torch.Tensor, which: str) -> torch.Tensor:
        src = self.source
        signed = src.act_dtype == "int8"
        zero_point = getattr(src, f"{which}_zero_point")
        if self.lsq:
            qmin, qmax = (-128, 127) if signed else (0, 255)
            return lsq_quantize(x, getattr(self, f"{which}_scale").abs() + 1e-12, zero_point.float(), qmin, qmax)
        return fake_quant_act(x, getattr(src, f"{which}_scale"), zero_point, signed)

    def weight_scales(self) -> torch.Tensor:
        if self.lsq:
            return self.weight_scale.abs() + 1e-12
        dims = tuple(range(1, self.weight.dim()))
        return (self.weight.detach().abs().amax(dim=dims) / 127).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src = self.source
        if src.quantize_input:
            x = self._act_q(x, "input")
        scales = self.weight_scales()
        if self.lsq:
            w = lsq_quantize(self.weight, scales, 0.0, -127, 127, axis=0)
        else:
            w = torch.fake_quantize_per_channel_affine(self.weight, scales, torch.zeros_like(scales, dtype=torch.int32),
                                                       0, -127, 127)
        y = src._compute(x, w, self.bias)
        return self._act_q(_act(y, src.activation), "output")

    @torch.no_grad()
    def to_int8(self) -> QuantizedConv2d | QuantizedLinear:
        """The source int8 layer with the trained weights and scales written back."""
        src = self.source
        scales = self.weight_scales().detach()
        shape = [-1] + [1] * (self.weight.dim() - 1)
        src.weight_scale.copy_(scales)
        src.weight_int8.copy_(torch.clamp(torch.round(self.weight / scales.view(shape)), -127, 127).to(torch.int8))
        if src.bias is not None:
            src.bias.copy_(self.bias)
        if self.lsq:
            src.input_scale.copy_(self.input_scale.abs() + 1e-12)
            src.output_scale.copy_(self.output_scale.abs() + 1e-12)
        return src


@dataclass(frozen=True)
class QATConfig(TechniqueConfig):
    """``finetune``: the training through fake quantization (:class:`TrainConfig`; default 2 epochs
    of SGD at lr 0.005 without weight decay); ``lsq``: learn scales (Esser et al. 2020) instead of
    the plain STE; ``observer``: for the PTQ start if needed. ``latency_check``, ``min_speedup``,
    ``latency_batch_sizes``, ``latency_threads``, ``decisions``: as in :class:`PTQConfig` (the
    int8-vs-fp32 check in ONNX Runtime after training)."""

    finetune: TrainConfig = TrainConfig(epochs=2, lr=0.005, weight_decay=0.0)
    lsq: bool = False
    observer: Literal["minmax", "percentile", "mse", "entropy"] = "percentile"
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

    def needs_data(self) -> str | None:
        return "calibration"


def _int8_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantizedConv2d, QuantizedLinear))]


def _with_float(model: nn.Module, graph: ModuleGraph, layers: list[str], float_layers: set[str]) -> nn.Module:
    """A copy of the int8 ``model`` with ``float_layers`` (and the activations they feed) in float."""
    modules = dict(model.named_modules())
    acts = {n for n, m in modules.items() if isinstance(m, QuantizedActivation)}
    int8_acts = activations_to_quantize(graph, modules, set(layers) - float_layers, float_layers, acts)
    out = copy.deepcopy(model)
    for name in sorted(float_layers | (acts - int8_acts)):
        set_submodule(out, name, to_float(out.get_submodule(name)))
    return out


def _speed_check_(model: nn.Module, config: QATConfig, ctx: Context, details: dict[str, object],
                  warnings: list[str], measure: Measure | None) -> None:
    """Leave int8 layers in float until the model is not slower than fp32 in ONNX Runtime
    (:mod:`torchslim.quant.speed`; fp32 = every layer back in float with its trained weights)."""
    from torchslim.core.timing import pinned_names

    graph = ctx.module_graph(model)
    layers = [n.target for n in graph.nodes if n.kind == "call"
              and isinstance(model.get_submodule(n.target), (QuantizedConv2d, QuantizedLinear))]
    pinned_names(config.decisions, set(layers))
    batches, threads = speed_settings(config, ctx)
    if measure is None and config.latency_check:
        measure = ort_measure(ctx.example_inputs, threads)
    floats = keep_if_faster(layers, lambda s: _with_float(model, graph, layers, s),
                            _with_float(model, graph, layers, set(layers)), measure, batches, config.min_speedup,
                            config.decisions, details, warnings, timed=config.latency_check)
    if floats:
        for name, module in _with_float(model, graph, layers, floats).named_children():
            setattr(model, name, module)


@register_technique("quant.qat", QATConfig)
def qat_(model: nn.Module, config: QATConfig, ctx: Context, measure: Measure | None = None) -> HandlerResult:
    """Quantization-aware fine-tuning (STE or LSQ) from the PTQ model; exports to the same int8 runtime.
    ``measure``: the latency check's int8-vs-fp32 timing (None: ONNX Runtime)."""
    if ctx.data is None:
        raise UserError("quant.qat needs training data: set 'data:' in the recipe (or data= in compress)")
    warnings: list[str] = []
    details: dict[str, object] = {"lsq": config.lsq}
    if not _int8_layers(model):
        result = quantize_model_(model, PTQConfig(observer=config.observer, export_onnx=False, latency_check=False),
                                 ctx, "quant.qat")
        warnings += result.warnings
        details["started_from"] = "ptq (run by this step)"
    else:
        details["started_from"] = "the model's int8 layers"
    if not _int8_layers(model):
        return HandlerResult(model, warnings + ["quant.qat: no int8 layer to train; the model is unchanged"], details)
    before = ctx.eval_fn(model) if ctx.eval_fn else None
    wrapped = []
    for name, layer in _int8_layers(model):
        twin = QATLayer(layer, config.lsq)
        set_submodule(model, name, twin)
        wrapped.append((name, twin))
    try:
        trained = finetune_(model, config.finetune, ctx)
    finally:
        for name, twin in wrapped:
            set_submodule(model, name, twin.to_int8())
    model.eval()
    details.update(layers=len(wrapped), accuracy_before_qat=before, finetune=trained)
    if config.latency_check or config.decisions:
        _speed_check_(model, config, ctx, details, warnings, measure)
    if config.export_onnx:
        from torchslim.quant.onnx_check import export_and_check

        export_details, export_warnings = export_and_check(model, ctx, "quant_qat_int8.onnx")
        details.update(export_details)
        warnings += export_warnings
    return HandlerResult(model, warnings, details)
