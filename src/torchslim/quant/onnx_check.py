"""Export a quantized model to ONNX and check what ONNX Runtime really runs.

ONNX Runtime rewrites QDQ graphs at session creation (QDQ propagation, Relu/Clip removal
before Q, then fusion of DQ -> op -> Q groups into QLinearConv / QGemm / QLinearAdd ...).
The optimised graph is saved with ``SessionOptions.optimized_model_filepath`` and its op types
are counted: integer ops are the speed; a float Conv/Gemm/MatMul left over is a layer that
did not fuse (still correct, but not faster).
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

INTEGER_OPS = frozenset({
    "QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "NhwcMaxPool",
})
FLOAT_COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul"})


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


def export_and_check(model: nn.Module, ctx: Context, filename: str) -> dict[str, Any]:
    """Export ``model`` (to ``ctx.out_dir/filename`` if set), load it in ONNX Runtime, compare its
    output with eager on the example inputs, and count integer vs float compute ops."""
    from torchslim.profiler import export_onnx, onnx_session

    with tempfile.TemporaryDirectory(prefix="torchslim-quant-") as folder:
        path = Path(ctx.out_dir or folder) / filename
        export_onnx(model, ctx.example_inputs, path)
        ops = optimized_op_counts(path)
        session = onnx_session(path, threads=1)
        feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(session.get_inputs(), ctx.example_inputs)}
        ort_out = session.run(None, feeds)[0]
        with torch.no_grad():
            eager = model.eval()(*ctx.example_inputs)
        eager = eager[0] if isinstance(eager, (tuple, list)) else eager
        error = float(np.abs(ort_out - eager.detach().cpu().numpy()).max())
        size = path.stat().st_size
    return {
        "onnx_path": str(path) if ctx.out_dir else None,
        "onnx_size_bytes": size,
        "onnx_max_abs_error_vs_eager": error,
        "ort_integer_ops": sum(n for op, n in ops.items() if op in INTEGER_OPS),
        "ort_float_compute_ops": sum(n for op, n in ops.items() if op in FLOAT_COMPUTE_OPS),
        "ort_ops": dict(sorted(ops.items())),
    }
