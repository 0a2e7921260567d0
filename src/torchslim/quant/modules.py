"""Int8 layers that store real int8 weights and export to ONNX as a QDQ graph.

Each quantized layer holds ``weight_int8`` (int8, the conv/linear weight layout), per-output-
channel float ``weight_scale`` (symmetric, zero point 0), a float ``bias`` and per-tensor
activation parameters (``input_scale``/``input_zero_point``, ``output_scale``/
``output_zero_point``). The forward is the quantize-dequantize simulation:

    y = Q_out(act(conv(Q_in(x), W_int8 * s_w) + b))

with an optional fused ReLU/ReLU6 ``act``. Exported with torch's TorchScript ONNX exporter it
becomes ``QuantizeLinear -> DequantizeLinear`` on activations and ``DequantizeLinear`` on the
int8 weight initializer (per-axis scale), with the float conv between: ONNX Runtime's QDQ
fusion turns each DQ -> Conv/Gemm(-> Relu) -> Q group into ``QLinearConv`` / ``QGemm`` running
u8 x s8 integer kernels (tests check the optimised graph's op types). The state dict holds the
int8 tensors (``weight_int8`` is a frozen int8 Parameter, so parameter counts are unchanged), so ``size_bytes`` and ``torchslim.save`` are the real int8 size.

In eager PyTorch the layer runs the float simulation (no int8 kernel), so eager latency is
slightly worse than fp32; the speed comes from ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.quant.onnx_rewrite import share_quantized_outputs
from torchslim.serialize.spec import allow_module

ACTIVATIONS = ("none", "relu", "relu6")


# Shape attributes of Conv/Linear layers that a model's forward may read from its submodules
# (the zoo ViT reads ``self.q.out_features``), so a training-time stand-in must answer them.
LAYER_ATTRIBUTES = frozenset({"in_features", "out_features", "in_channels", "out_channels", "kernel_size",
                              "stride", "padding", "dilation", "groups"})


class StandIn(nn.Module):
    """Base of modules that stand in for a layer while it trains (its latent-weight or QAT twin):
    the layer's :data:`LAYER_ATTRIBUTES` are read from the module named ``stands_for``."""

    stands_for = "layer"

    def __getattr__(self, name: str) -> Any:
        if name in LAYER_ATTRIBUTES:
            return getattr(super().__getattr__(self.stands_for), name)
        return super().__getattr__(name)


class DequantizeWeight(torch.autograd.Function):
    """``W_int8 * scale`` along ``axis``; exports as one ONNX ``DequantizeLinear`` (axis attr)."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, scale: torch.Tensor, axis: int) -> torch.Tensor:  # noqa: ARG004
        shape = [1] * q.dim()
        shape[axis] = -1
        return q.to(scale.dtype) * scale.view(shape)

    @staticmethod
    def symbolic(g: Any, q: Any, scale: Any, axis: int) -> Any:
        channels = scale.type().sizes()[0]
        zero = g.op("Constant", value_t=torch.zeros(channels, dtype=torch.int8))
        return g.op("DequantizeLinear", q, scale, zero, axis_i=axis)


def fake_quant_act(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, signed: bool) -> torch.Tensor:
    """Per-tensor quantize-dequantize; exports as ``QuantizeLinear -> DequantizeLinear``."""
    qmin, qmax = (-128, 127) if signed else (0, 255)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)


def _act(y: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return F.relu(y)
    if activation == "relu6":
        return F.relu6(y)
    return y


class _QuantizedLayer(nn.Module):
    """Shared buffers and the QDQ forward of :class:`QuantizedConv2d` / :class:`QuantizedLinear`."""

    def _init_buffers(self, weight_shape: tuple[int, ...], out_features: int, bias: bool) -> None:
        # A frozen Parameter (not a buffer) so parameter counts still count the weights.
        self.weight_int8 = nn.Parameter(torch.zeros(weight_shape, dtype=torch.int8), requires_grad=False)
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None)
        self.register_buffer("input_scale", torch.tensor(1.0))
        self.register_buffer("input_zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("output_scale", torch.tensor(1.0))
        self.register_buffer("output_zero_point", torch.tensor(0, dtype=torch.int32))

    def dequantized_weight(self) -> torch.Tensor:
        return DequantizeWeight.apply(self.weight_int8, self.weight_scale, 0)

    def _compute(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signed = self.act_dtype == "int8"
        if self.quantize_input:
            x = fake_quant_act(x, self.input_scale, self.input_zero_point, signed)
        y = _act(self._compute(x, self.dequantized_weight(), self.bias), self.activation)
        return fake_quant_act(y, self.output_scale, self.output_zero_point, signed)


class QuantizedConv2d(_QuantizedLayer):
    """Int8 Conv2d (per-channel int8 weights, per-tensor activations); (N, C, H, W) -> (N, O, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1, bias: bool = True,
                 activation: str = "none", quantize_input: bool = True, act_dtype: str = "uint8") -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.activation, self.quantize_input, self.act_dtype = activation, quantize_input, act_dtype
        self._init_buffers((out_channels, in_channels // groups, *self.kernel_size), out_channels, bias)

    def _compute(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class QuantizedLinear(_QuantizedLayer):
    """Int8 Linear (per-output-feature int8 weights, per-tensor activations); (..., I) -> (..., O)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "none",
                 quantize_input: bool = True, act_dtype: str = "uint8") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation, self.quantize_input, self.act_dtype = activation, quantize_input, act_dtype
        self._init_buffers((out_features, in_features), out_features, bias)

    def _compute(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)


# Standalone activations (and the global average pool) that quantize their output, so ONNX
# Runtime runs them, or the op after them, on integer kernels.
STANDALONE_KINDS = ("none", "relu", "relu6", "sigmoid", "hardsigmoid", "silu", "hardswish", "avgpool")


class _Requantize(torch.autograd.Function):
    """``(clamp(round(x / s_in) + z, qmin, qmax) - z) * s_out``: x on the ``s_in`` grid, read back
    with scale ``s_out``; exports as ``QuantizeLinear(s_in) -> DequantizeLinear(s_out)``.
    Gradient: straight-through inside the range, times s_out / s_in."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, s_in: float, s_out: float, signed: bool) -> torch.Tensor:
        zero, qmin, qmax = (-128, -128, 127) if signed else (0, 0, 255)
        # Only the output is computed here (tensors left over in a traced forward break the ONNX
        # export); the backward recomputes the in-range mask from x.
        if x.requires_grad:  # nothing kept while tracing for export
            ctx.x, ctx.args = x, (s_in, s_out, zero, qmin, qmax)
        return torch.clamp(torch.round(x / s_in), qmin - zero, qmax - zero) * s_out  # no "+ 0": export's peephole

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        s_in, s_out, zero, qmin, qmax = ctx.args
        q = torch.round(ctx.x / s_in)
        return grad * ((q >= qmin - zero) & (q <= qmax - zero)) * (s_out / s_in), None, None, None

    @staticmethod
    def symbolic(g: Any, x: Any, s_in: float, s_out: float, signed: bool) -> Any:
        zero = g.op("Constant", value_t=torch.tensor(-128 if signed else 0, dtype=torch.int8 if signed else torch.uint8))
        return g.op("DequantizeLinear", g.op("QuantizeLinear", x, s_in, zero), s_out, zero)


class _QuantizedThree(torch.autograd.Function):
    """The constant 3.0 (hardsigmoid's offset) as ``DequantizeLinear`` of an 8-bit 3, so ONNX
    Runtime sees ``DQ(x) + DQ(3)`` and fuses the add into a ``QLinearAdd``."""

    @staticmethod
    def forward(ctx: Any, like: torch.Tensor, signed: bool) -> torch.Tensor:  # noqa: ARG004
        return torch.full((), 3.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None]:  # noqa: ARG004
        return None, None

    @staticmethod
    def symbolic(g: Any, like: Any, signed: bool) -> Any:  # noqa: ARG004
        dtype = torch.int8 if signed else torch.uint8
        return g.op("DequantizeLinear", g.op("Constant", value_t=torch.tensor(3, dtype=dtype)),
                    g.op("Constant", value_t=torch.tensor(1.0)), g.op("Constant", value_t=torch.tensor(0, dtype=dtype)))


def quantized_hardsigmoid(x: torch.Tensor, signed: bool) -> torch.Tensor:
    """hardsigmoid(x) = relu6(x + 3) / 6 on the grid 1/255 with integer ops only: ``x + 3``
    quantized on the grid 6/255 (saturation is the relu6, so ORT runs ``QLinearAdd``), then read
    with scale 1/255 (the / 6). The same values as quantizing hardsigmoid(x) to 1/255, but ORT
    has no integer hardsigmoid: this way it never leaves uint8."""
    return _Requantize.apply(x + _QuantizedThree.apply(x, signed), torch.tensor(6.0 / 255), torch.tensor(1.0 / 255),
                             signed)


class QuantizedActivation(nn.Module):
    """An activation (or global average pool) followed by per-tensor quantize-dequantize of its output.

    Placed at a standalone activation module so ONNX Runtime's QDQ fusion finds ``DQ -> op -> Q``:
    ``relu``/``relu6`` after a residual add make the add a ``QLinearAdd``; ``sigmoid`` becomes
    ``QLinearSigmoid``; ``avgpool`` (``AdaptiveAvgPool2d(1)``) ``QLinearGlobalAveragePool``;
    ``silu`` is exported as ``x * Q(sigmoid(x))`` with the gate on the fixed grid 1/255 (uint8;
    1/127 for int8), so ORT runs ``QLinearSigmoid`` + ``QLinearMul``; ``hardsigmoid`` is
    :func:`quantized_hardsigmoid` (``QLinearAdd``; its output stays on that fixed grid) and
    ``hardswish`` ``x * quantized_hardsigmoid(x)`` (``QLinearAdd`` + ``QLinearMul``): ORT has no
    integer hardsigmoid, and its own quantizer leaves it in float between DQ and Q.
    (N, C, H, W) -> same shape ((N, C, 1, 1) for ``avgpool``).
    """

    def __init__(self, activation: str = "relu", act_dtype: str = "uint8") -> None:
        super().__init__()
        if activation not in STANDALONE_KINDS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(STANDALONE_KINDS)}")
        self.activation, self.act_dtype = activation, act_dtype
        self.register_buffer("output_scale", torch.tensor(1.0))
        self.register_buffer("output_zero_point", torch.tensor(0, dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind, signed = self.activation, self.act_dtype == "int8"
        if kind == "hardsigmoid":
            return quantized_hardsigmoid(x, signed)  # already on its fixed grid
        if kind == "silu":
            scale = torch.tensor(1.0 / (127 if signed else 255), device=x.device)
            y = x * fake_quant_act(torch.sigmoid(x), scale, torch.zeros((), dtype=torch.int32, device=x.device),
                                   signed)
        elif kind == "hardswish":
            y = x * quantized_hardsigmoid(x, signed)
        elif kind == "sigmoid":
            y = torch.sigmoid(x)
        elif kind == "avgpool":
            y = F.adaptive_avg_pool2d(x, 1)
        else:
            y = _act(x, kind)
        return fake_quant_act(y, self.output_scale, self.output_zero_point, signed)


for _cls in (QuantizedConv2d, QuantizedLinear, QuantizedActivation):
    allow_module(_cls)
    _cls.rewrite_onnx = staticmethod(share_quantized_outputs)  # applied by export_onnx

_FLOAT_KINDS = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid,
                "hardsigmoid": nn.Hardsigmoid, "silu": nn.SiLU, "hardswish": nn.Hardswish,
                "avgpool": lambda: nn.AdaptiveAvgPool2d(1)}


@torch.no_grad()
def to_float(module: nn.Module) -> nn.Module:
    """The float module an int8 one stands for: Conv2d/Linear with the dequantized weights (then its
    fused ReLU/ReLU6, as a Sequential), or the plain activation of a QuantizedActivation."""
    if isinstance(module, QuantizedActivation):
        return _FLOAT_KINDS[module.activation]()
    if isinstance(module, QuantizedConv2d):
        layer: nn.Module = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                                     module.padding, module.dilation, module.groups, module.bias is not None)
    elif isinstance(module, QuantizedLinear):
        layer = nn.Linear(module.in_features, module.out_features, module.bias is not None)
    else:
        raise TypeError(f"not an int8 module: {type(module).__name__}")
    layer.weight.copy_(module.dequantized_weight())
    if module.bias is not None:
        layer.bias.copy_(module.bias)
    layer = layer.to(module.weight_int8.device)
    return layer if module.activation == "none" else nn.Sequential(layer, _FLOAT_KINDS[module.activation]())


class _DynamicLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_int8: torch.Tensor, w_scale: torch.Tensor,  # noqa: ARG004
                bias: torch.Tensor | None) -> torch.Tensor:
        lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
        scale = torch.where(hi > lo, (hi - lo) / 255.0, torch.ones_like(hi))
        zero = torch.clamp(torch.round(-lo / scale), 0, 255)
        x_q = torch.clamp(torch.round(x / scale) + zero, 0, 255)
        acc = F.linear(x_q - zero, w_int8.to(x.dtype))
        y = acc * (scale * w_scale)
        return y if bias is None else y + bias

    @staticmethod
    def symbolic(g: Any, x: Any, w_int8: Any, w_scale: Any, bias: Any) -> Any:
        x_q, x_scale, x_zero = g.op("DynamicQuantizeLinear", x, outputs=3)
        w_t = g.op("Transpose", w_int8, perm_i=[1, 0])
        out_features = w_scale.type().sizes()[0]
        w_zero = g.op("Constant", value_t=torch.zeros(out_features, dtype=torch.int8))
        acc = g.op("MatMulInteger", x_q, w_t, x_zero, w_zero)
        y = g.op("Mul", g.op("Cast", acc, to_i=1), g.op("Mul", x_scale, w_scale))  # to_i=1: FLOAT
        if bias is None or bias.node().mustBeNone():
            return y
        return g.op("Add", y, bias)


class DynamicQuantizedLinear(nn.Module):
    """Linear with int8 weights (per output feature) and per-call uint8 activations; (..., I) -> (..., O)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_int8 = nn.Parameter(torch.zeros(out_features, in_features, dtype=torch.int8), requires_grad=False)
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DynamicLinear.apply(x, self.weight_int8, self.weight_scale, self.bias)


allow_module(DynamicQuantizedLinear)
