"""Export a quantized model to ONNX and check what ONNX Runtime really runs.

ONNX Runtime rewrites QDQ graphs at session creation (QDQ propagation, Relu/Clip removal
before Q, then fusion of DQ -> op -> Q groups into QLinearConv / QGemm / QLinearAdd ...).
The optimised graph is saved with ``SessionOptions.optimized_model_filepath`` and its op types
are counted: integer ops are the speed; a float Conv/Gemm/MatMul left over is a layer that
did not fuse or was kept in float (still correct, but not faster). Both are step warnings:
an int8 step whose optimised graph runs no integer op, or still runs float compute ops,
says so, and so does one whose graph has more integer layers than the model has int8 layers:
ONNX Runtime quantizes a float Conv/Gemm itself when quantized tensors surround it (its
weight/bias QDQ insertion), so what it runs is not what eager measured. The details name the
exporter that wrote the file (``onnx_exporter``).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.modules import evaluating
from torchslim.quant.modules import DynamicQuantizedLinear, QuantizedConv2d, QuantizedLinear

INTEGER_OPS = frozenset({
    "QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "NhwcMaxPool",
})
FLOAT_COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul"})
# One of these per int8 layer of the model; more means ONNX Runtime quantized a float layer itself.
INTEGER_LAYER_OPS = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger",
                               "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})


def optimized_op_counts(path: str | Path) -> Counter[str]:
    """Op types of the graph ONNX Runtime (CPU, all optimisations) runs for the model at ``path``."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="torchslim-ort-") as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    return Counter(node.op_type for node in graph.node)


def export_and_check(model: nn.Module, ctx: Context, filename: str) -> tuple[dict[str, Any], list[str]]:
    """Export ``model`` (to ``ctx.out_dir/filename`` if set), load it in ONNX Runtime, compare its
    output with eager on the example inputs, and count integer vs float compute ops.

    Returns (step details, step warnings)."""
    from torchslim.profiler import export_onnx, onnx_provenance, onnx_session
    from torchslim.profiler.preprocessing import data_preprocessing

    with tempfile.TemporaryDirectory(prefix="torchslim-quant-") as folder:
        path = Path(ctx.out_dir or folder) / filename
        export_onnx(model, ctx.example_inputs, path, preprocessing=data_preprocessing(ctx.data))
        provenance = onnx_provenance(path)
        ops = optimized_op_counts(path)
        session = onnx_session(path, threads=1)
        feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(session.get_inputs(), ctx.example_inputs)}
        ort_out = session.run(None, feeds)[0]
        with evaluating(model), torch.no_grad():
            eager = model(*ctx.example_inputs)
        eager = eager[0] if isinstance(eager, (tuple, list)) else eager
        error = float(np.abs(ort_out - eager.detach().cpu().numpy()).max())
        size = path.stat().st_size
    integer = sum(n for op, n in ops.items() if op in INTEGER_OPS)
    integer_layers = sum(n for op, n in ops.items() if op in INTEGER_LAYER_OPS)
    int8_modules = sum(isinstance(m, (QuantizedConv2d, QuantizedLinear, DynamicQuantizedLinear))
                       for m in model.modules())
    float_compute = {op: n for op, n in sorted(ops.items()) if op in FLOAT_COMPUTE_OPS}
    details = {
        "onnx_path": str(path) if ctx.out_dir else None,
        "onnx_exporter": provenance.get("exporter"),
        "onnx_size_bytes": size,
        "onnx_max_abs_error_vs_eager": error,
        "ort_integer_ops": integer,
        "ort_float_compute_ops": sum(float_compute.values()),
        "ort_ops": dict(sorted(ops.items())),
    }
    warnings = []
    if integer == 0:
        warnings.append(f"{filename}: ONNX Runtime's optimised graph runs no integer op, so it is no faster "
                        "than fp32")
    if float_compute:
        ops_text = ", ".join(f"{n} {op}" for op, n in float_compute.items())
        warnings.append(f"{filename}: ONNX Runtime still runs float {ops_text} (layers kept in float, not fused "
                        "to integer kernels, or activation x activation matmuls)")
    if integer_layers > int8_modules:
        warnings.append(f"{filename}: ONNX Runtime runs {integer_layers} integer Conv/Gemm/MatMul layers for "
                        f"{int8_modules} int8 layers of the model: it quantized float layers itself, so its "
                        "outputs differ from eager's")
    if "exporter_fallback" in provenance:
        warnings.append(f"{filename}: written by the dynamo ONNX exporter; the TorchScript exporter failed "
                        f"({provenance['exporter_fallback']})")
    return details, warnings
