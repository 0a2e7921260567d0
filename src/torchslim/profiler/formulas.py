"""Per-op cost formulas: the table the profiler's dispatch mode looks ops up in.

Multiply-accumulates (``macs``) come from PyTorch's own formulas in
``torch.utils.flop_counter.flop_registry`` (conv, mm, addmm, bmm, baddbmm, the GPU
attention kernels), which count 2 flops per MAC, so ``macs = registry value // 2``.
Hand-written here, because that registry lacks them:

* MACs for the CPU attention kernel ``_scaled_dot_product_flash_attention_for_cpu``
  (reusing the registry's ``sdpa_flop_count``), ``mv``/``addmv``/``dot``/``addbmm`` and
  the fused ``_addmm_activation``.
* Every non-MAC cost, kept apart from ``macs`` in categories of ``other_flops``. Each
  category's formula, in flops per element:

  =============  ===============================================================
  ``bias``       1 per output element of a conv / addmm / baddbmm with a bias
  ``norm``       batch norm with running stats (eval): 2 per element (the stats
                 fold into one scale and one shift); norms that compute statistics
                 (layer, group, instance, batch norm in training): 5 per element
                 with an affine transform, 4 without (fvcore's convention); RMS
                 norm: 4 per element
  ``elementwise`` 1 per output element for each arithmetic op or activation (add,
                 mul, relu, gelu, sigmoid, ...), whatever its cost in machine
                 instructions (fvcore's convention); ``addcmul``/``addcdiv``: 2
  ``pool``       max / avg pooling: kernel elements per output element (padded
                 positions included); adaptive pooling: the exact window sizes
  ``softmax``    5 per element (max, subtract, exp, sum, divide), log-softmax too;
                 attention kernels: 5 per attention score, plus elementwise flops
                 for scaling q and k and adding a mask (PyTorch's math reference)
  ``reduction``  1 per input element (sum, mean, amax, ...); var/std: 3; vector
                 norm: 2. Global average pooling shows up here: PyTorch lowers
                 ``AdaptiveAvgPool2d(1)`` to ``mean``.
  =============  ===============================================================

Ops that do no arithmetic are allow-listed in ``zero_cost.py``; an op in none of these
tables has no formula, and the profiler reports it in ``uncounted_ops`` instead of
counting it as zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import flop_registry, sdpa_flop_count

aten = torch.ops.aten

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
# (args, kwargs, out) -> count
Formula = Callable[[Args, Kwargs, Any], int]


def packets(names: Sequence[str], *, inplace: bool = False) -> list[Any]:
    """Overload packets for ``names`` that exist in this torch build (plus ``name_`` variants)."""
    found = []
    for name in names:
        for variant in (name, name + "_") if inplace else (name,):
            packet = getattr(aten, variant, None)
            if packet is not None:
                found.append(packet)
    return found


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, (tuple, list)) else x


def _numel(x: Any) -> int:
    x = _first(x)
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _arg(args: Args, kwargs: Kwargs, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# ---------------------------------------------------------------------------- MACs


def _from_registry(packet: Any) -> Formula:
    flops = flop_registry[packet]
    return lambda args, kwargs, out: flops(*args, **kwargs, out_val=out) // 2


def _cpu_attention_macs(args: Args, kwargs: Kwargs, out: Any) -> int:
    """q @ k^T and attn @ v: B * Hq * Lq * Lk * (E + Ev) for q [B,Hq,Lq,E], v [B,H,Lk,Ev]."""
    q, k, v = args[:3]
    return sdpa_flop_count(q.shape, k.shape, v.shape) // 2


def _mv_macs(args: Args, kwargs: Kwargs, out: Any) -> int:
    """[n, m] @ [m] -> n * m; for addmv the matrix is args[1]."""
    mat = args[1] if args[0].dim() == 1 and args[1].dim() == 2 else args[0]
    return mat.numel()


def _dot_macs(args: Args, kwargs: Kwargs, out: Any) -> int:
    return args[0].numel()


def _addbmm_macs(args: Args, kwargs: Kwargs, out: Any) -> int:
    """sum_b [b, n, m] @ [b, m, p] -> b * n * m * p."""
    b, n, m = args[1].shape
    return b * n * m * args[2].shape[-1]


def _addmm_activation_macs(args: Args, kwargs: Kwargs, out: Any) -> int:
    return args[1].shape[0] * args[1].shape[1] * args[2].shape[1]


_FORWARD_REGISTRY_OPS = (
    "mm", "addmm", "bmm", "baddbmm", "_scaled_mm", "convolution", "_convolution",
    "cudnn_convolution", "_slow_conv2d_forward", "convolution_overrideable",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention", "_flash_attention_forward",
    "_efficient_attention_forward",
)

MAC_FORMULAS: dict[Any, Formula] = {
    p: _from_registry(p) for p in packets(_FORWARD_REGISTRY_OPS) if p in flop_registry
}
MAC_FORMULAS.update(
    {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_macs,
        aten.mv: _mv_macs,
        aten.addmv: _mv_macs,
        aten.dot: _dot_macs,
        aten.vdot: _dot_macs,
        aten.addbmm: _addbmm_macs,
        aten._addmm_activation: _addmm_activation_macs,
    }
)

# --------------------------------------------------------------------- other flops


def _per_out(flops_per_element: int) -> Formula:
    return lambda args, kwargs, out: flops_per_element * _numel(out)


def _per_in(flops_per_element: int) -> Formula:
    return lambda args, kwargs, out: flops_per_element * _numel(args[0])


def _bias(bias_index: int) -> Formula:
    def formula(args: Args, kwargs: Kwargs, out: Any) -> int:
        bias = _arg(args, kwargs, bias_index, "bias")
        return _numel(out) if isinstance(bias, torch.Tensor) else 0

    return formula


def _batch_norm(args: Args, kwargs: Kwargs, out: Any) -> int:
    """Eval (running stats): 2/element; computing batch statistics: 5 (4 without affine).

    The ``training`` flag is the first bool after (input, weight, bias): its position
    differs between the overloads of ``_native_batch_norm_legit``.
    """
    flags = [a for a in args[3:] if isinstance(a, bool)]
    training = flags[0] if flags else bool(kwargs.get("training", False))
    if not training:
        return 2 * _numel(out)
    return (5 if args[1] is not None else 4) * _numel(out)


def _stat_norm(weight_index: int) -> Formula:
    """Layer / group norm: 4 flops/element for statistics and normalisation, +1 if affine."""

    def formula(args: Args, kwargs: Kwargs, out: Any) -> int:
        affine = _arg(args, kwargs, weight_index, "weight") is not None
        return (5 if affine else 4) * _numel(args[0])

    return formula


def _pool(spatial_dims: int) -> Formula:
    """Kernel elements per output element; ``kernel_size`` of length 1 applies to every dim."""

    def formula(args: Args, kwargs: Kwargs, out: Any) -> int:
        kernel = list(_arg(args, kwargs, 1, "kernel_size"))
        if len(kernel) == 1:
            kernel = kernel * spatial_dims
        return math.prod(kernel) * _numel(out)

    return formula


def _adaptive_window_sum(size_in: int, size_out: int) -> int:
    """Sum over outputs of the window length PyTorch uses: [floor(i*I/O), ceil((i+1)*I/O))."""
    return sum(
        -((-(i + 1) * size_in) // size_out) - (i * size_in) // size_out for i in range(size_out)
    )


def _adaptive_pool(spatial_dims: int) -> Formula:
    """Exact: every output element reads its window once (equals input numel when O divides I)."""

    def formula(args: Args, kwargs: Kwargs, out: Any) -> int:
        x = args[0]
        out_sizes = _first(out).shape[-spatial_dims:]
        lead = math.prod(x.shape[:-spatial_dims])
        windows = math.prod(
            _adaptive_window_sum(i, o) for i, o in zip(x.shape[-spatial_dims:], out_sizes)
        )
        return lead * windows

    return formula


def _attention_other(args: Args, kwargs: Kwargs, out: Any) -> dict[str, int]:
    """Softmax: 5 flops per attention score (B*Hq*Lq*Lk); elementwise: the scaling of q
    and k (1 flop per element each) and an additive mask (1 per score), as in PyTorch's
    reference ``_scaled_dot_product_attention_math``."""
    q, k = args[0], args[1]
    scores = q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2]
    # the mask is kwarg ``attn_mask`` (CPU kernel) or positional ``attn_bias`` (GPU kernels)
    has_mask = any(isinstance(a, torch.Tensor) for a in (*args[3:], *kwargs.values()))
    masked = scores if has_mask else 0
    return {"softmax": 5 * scores, "elementwise": q.numel() + k.numel() + masked}


def _addmm_activation_other(args: Args, kwargs: Kwargs, out: Any) -> dict[str, int]:
    return {"bias": _numel(out), "elementwise": _numel(out)}


_ELEMENTWISE = (
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "sign", "sgn", "reciprocal",
    "relu", "relu6", "hardtanh", "leaky_relu", "elu", "celu", "selu", "gelu", "silu",
    "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish", "softplus", "threshold",
    "_prelu_kernel", "exp", "exp2", "expm1", "log", "log2", "log1p", "sqrt", "rsqrt",
    "pow", "square", "erf", "sin", "cos", "clamp", "clamp_min", "clamp_max", "clip",
    "maximum", "minimum", "where", "masked_fill", "floor", "ceil", "round", "trunc",
    "fmod", "remainder", "floor_divide", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "logical_and", "logical_or", "lerp", "hypot", "atan2",
)

OTHER_FORMULAS: dict[Any, Callable[[Args, Kwargs, Any], dict[str, int]]] = {}


def _add(category: str, packets: list[Any], formula: Formula) -> None:
    for packet in packets:
        if packet in OTHER_FORMULAS:
            raise ValueError(f"duplicate other-flops formula for {packet}")
        OTHER_FORMULAS[packet] = lambda a, k, o, f=formula, c=category: {c: f(a, k, o)}


_add("bias", packets(["convolution", "_convolution"]), _bias(2))
_add("bias", packets(["addmm", "baddbmm", "addmv", "addbmm"]), _per_out(1))
_add("norm", packets(["native_batch_norm", "_native_batch_norm_legit"]), _batch_norm)
_add("norm", packets(["_native_batch_norm_legit_no_training"]), _per_out(2))
_add("norm", packets(["native_layer_norm"]), _stat_norm(2))
_add("norm", packets(["native_group_norm"]), _stat_norm(1))
_add("norm", packets(["_fused_rms_norm"]), _per_in(4))
_add("elementwise", packets(_ELEMENTWISE, inplace=True), _per_out(1))
_add("elementwise", packets(["addcmul", "addcdiv"], inplace=True), _per_out(2))
for _dims in (1, 2, 3):
    _add(
        "pool",
        packets([f"max_pool{_dims}d", f"max_pool{_dims}d_with_indices", f"avg_pool{_dims}d"]),
        _pool(_dims),
    )
    _add(
        "pool",
        packets(
            [f"adaptive_avg_pool{_dims}d", f"_adaptive_avg_pool{_dims}d", f"adaptive_max_pool{_dims}d"]
        ),
        _adaptive_pool(_dims),
    )
# Fake quantization (QAT / PTQ simulation): scale, round, clamp and rescale = 4 flops/element.
_FAKE_QUANT = [
    "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
    "fake_quantize_per_tensor_affine_cachemask", "fake_quantize_per_channel_affine_cachemask",
    "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams",
    "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine",
]
_add("quantize", packets(_FAKE_QUANT), _per_out(4))
_add("softmax", packets(["_softmax", "_log_softmax", "_safe_softmax"]), _per_out(5))
_REDUCTIONS = ["sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "any", "all"]
_add("reduction", packets(_REDUCTIONS), _per_in(1))
_add("reduction", packets(["var", "std", "var_mean", "std_mean"]), _per_in(3))
_add("reduction", packets(["linalg_vector_norm", "norm"]), _per_in(2))
_ATTENTION = [
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
]
for _attention in packets(_ATTENTION):
    OTHER_FORMULAS[_attention] = _attention_other
OTHER_FORMULAS[aten._addmm_activation] = _addmm_activation_other

def op_cost(packet: Any, args: Args, kwargs: Kwargs, out: Any) -> tuple[int, dict[str, int]]:
    """(macs, other_flops by category) of one call; zeros for an op in neither table."""
    macs = MAC_FORMULAS[packet](args, kwargs, out) if packet in MAC_FORMULAS else 0
    other = OTHER_FORMULAS[packet](args, kwargs, out) if packet in OTHER_FORMULAS else {}
    return int(macs), {k: int(v) for k, v in other.items() if v}
