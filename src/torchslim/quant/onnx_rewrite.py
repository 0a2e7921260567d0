"""One rewrite of the exported QDQ graph: a quantized elementwise result feeds its users quantized.

Quantization happens at module boundaries (:mod:`.plan`), so a residual ``x + block(x)`` whose
sum feeds both the next int8 conv (which quantizes it: ``Q``) and the next residual add (in
float) exports as ``DQ, DQ -> Add -> {Q, Add}``. ONNX Runtime fuses ``DQ -> Add -> Q`` into a
``QLinearAdd`` only when the ``Q`` is the Add's one consumer, so that add ran in float, with
a dequantize/quantize pair around it (MobileNetV2: 9 of 10 adds; EfficientNet-B0 7 of 9).
This pass gives the other consumers ``DQ(Q(sum))`` instead, as ONNX Runtime's own
``quantize_static`` does, so every such Add/Mul/Concat whose inputs are all dequantized
becomes an integer op. Eager PyTorch keeps the float sum on that second path: the ONNX
model differs from eager's simulation by the rounding of that tensor to its own calibrated
grid (at most half a step), inside the ORT-vs-eager difference the int8 steps report
(``onnx_max_abs_error_vs_eager``, bounded in tests/quant).

Applied by :func:`torchslim.profiler.export_onnx` to every model holding an int8 module
(the modules' ``rewrite_onnx`` hook), so the file the steps measure, check and write is the
rewritten one. Hand-written: ONNX Runtime's quantizer works on float models only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

_FUSABLE = frozenset({"Add", "Mul", "Concat"})


def share_quantized_outputs(model: Any) -> bool:
    """Rewrite the ``onnx.ModelProto`` in place (module docstring); True when anything changed."""
    from onnx import helper

    graph = model.graph
    constants = {init.name for init in graph.initializer}
    producers: dict[str, Any] = {}
    consumers: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in graph.node:
        for out in node.output:
            producers[out] = node
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
    outputs = {o.name for o in graph.output}
    after: dict[int, Any] = {}  # id(Q node) -> the DQ to insert right after it
    for node in graph.node:
        if node.op_type not in _FUSABLE or node.output[0] in outputs:
            continue
        sources = [producers.get(name) for name in node.input]
        if not all(name in constants or (src is not None and src.op_type in ("DequantizeLinear", "Constant"))
                   for name, src in zip(node.input, sources)):
            continue
        users = consumers[node.output[0]]
        quantizers = [user for user, _ in users if user.op_type == "QuantizeLinear"]
        if not quantizers or len(users) == 1:
            continue
        q = quantizers[0]
        shared = f"{node.output[0]}_int8_shared"
        after[id(q)] = producers[shared] = helper.make_node(
            "DequantizeLinear", [q.output[0], *q.input[1:]], [shared], name=f"{node.name or node.output[0]}_shared_dq")
        for user, i in users:
            if user is not q:
                user.input[i] = shared
    if not after:
        return False
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if id(node) in after:
            nodes.append(after[id(node)])
    del graph.node[:]
    graph.node.extend(nodes)
    return True
