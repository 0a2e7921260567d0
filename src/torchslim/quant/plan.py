"""Where quantize/dequantize pairs go: a module-level plan read from the Context's capture.

The plan reads the module graph of the one torch.export capture (``ctx.module_graph``,
:mod:`torchslim.graph.modules`). The quantized model must keep its original ``forward`` (so
``torchslim.save/load`` rebuild it from the zoo architecture), so quantization happens at
module boundaries only:

- every selected Conv2d / Linear becomes a quantized layer that quantizes its input and its
  output; a ReLU/ReLU6 module that is the layer's only consumer (possibly through a Dropout;
  the Identity left by BN folding runs no op, so it is not in the graph) is fused into it, so
  ONNX Runtime sees ``DQ -> Conv -> Relu -> Q`` and removes the Relu (its ReluQuantFusion)
  before making a ``QLinearConv``;
- a standalone ReLU/ReLU6 (after a residual add) quantizes its output, so the add becomes
  ``QLinearAdd``;
- a layer whose input is another quantized output seen through value-preserving ops
  (max-pool, flatten, view/reshape, dropout, ReLU) reuses that output's scale and zero point,
  so the re-quantization is exact and ONNX Runtime drops the redundant DQ -> Q pair.

Modules called more than once (shared weights or a reused ReLU) are left in float: one set
of activation parameters cannot serve several call sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from torchslim.graph.modules import ModuleGraph, Node

LAYER_TYPES = (nn.Conv2d, nn.Linear)
# Activations a Conv2d/Linear absorbs (ORT drops them before Q when fusing the layer).
FUSED_ACTIVATION_TYPES = {nn.ReLU: "relu", nn.ReLU6: "relu6"}
# Modules that quantize their own output when they stand alone (QuantizedActivation kinds).
ACTIVATION_TYPES = {**FUSED_ACTIVATION_TYPES, nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "hardsigmoid",
                    nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.AdaptiveAvgPool2d: "avgpool"}
_TRANSPARENT_MODULES = (nn.Identity, nn.Dropout)
# Modules and ATen ops that map values on a quantization grid to values on the same grid.
_GRID_PRESERVING_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.Identity, nn.Dropout, nn.Flatten, nn.ReLU)
_GRID_PRESERVING_OPS = frozenset({"view", "reshape", "_unsafe_view", "flatten", "contiguous", "relu", "relu_",
                                  "max_pool1d", "max_pool2d", "dropout"})
_WITH_INDICES = frozenset({"max_pool1d_with_indices", "max_pool2d_with_indices"})


@dataclass
class LayerPlan:
    """``activation``: fused "relu"/"relu6"/"none"; ``activation_module``: its module name or None."""

    name: str
    activation: str = "none"
    activation_module: str | None = None


@dataclass
class QuantPlan:
    """``layers``: quantizable Conv2d/Linear in graph order; ``activations``: standalone activations
    (ReLU, ReLU6, sigmoid, hardsigmoid, SiLU, hardswish, global average pool) by kind;
    ``modules``: the model's modules by name, as planned; ``model_outputs``: modules whose output
    is the model's output; ``model_inputs``: layers fed by the model's input. Neither range is
    ever clipped: clipping logits makes top classes tie, and standardised images are not
    bell-shaped (MNIST: a spike at the background value), which misleads the entropy observer
    into clipping the strokes."""

    graph: ModuleGraph
    modules: dict[str, nn.Module]
    layers: dict[str, LayerPlan] = field(default_factory=dict)
    activations: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    model_outputs: set[str] = field(default_factory=set)
    model_inputs: set[str] = field(default_factory=set)

    def output_module(self, layer: str) -> str:
        """The module whose output is ``layer``'s quantized output (the fused activation, if any)."""
        plan = self.layers[layer]
        return plan.activation_module or plan.name

    def input_sources(self, quantized: set[str]) -> dict[str, str | None]:
        """For each quantized layer, the quantized module (layer or standalone activation) whose
        output grid its input lies on, or None when the input needs its own parameters."""
        fused = {p.activation_module for p in self.layers.values() if p.activation_module}
        producers: dict[Node, str] = {}
        for name in quantized:
            producers[self._call(self.output_module(name))] = name
        for name in self.activations:
            if name not in fused:
                producers[self._call(name)] = name
        return {name: _trace_back(self._call(name).inputs, producers, self.modules) for name in quantized}

    def quantized_activations(self, quantized: set[str]) -> dict[str, str]:
        """The standalone activations to quantize when ``quantized`` layers are int8 (see
        :func:`activations_to_quantize`)."""
        fused = {p.activation_module for p in self.layers.values() if p.activation_module}
        kept = activations_to_quantize(self.graph, self.modules,
                                       {self.output_module(name) for name in quantized},
                                       {self.output_module(name) for name in self.layers if name not in quantized},
                                       set(self.activations) - fused)
        return {name: self.activations[name] for name in kept}

    def _call(self, module: str) -> Node:
        return self.graph.calls(module)[0]


def _grid_source(node: Node, modules: dict[str, nn.Module]) -> Node | None:
    """The node whose output ``node`` passes on unchanged in grid terms, or None."""
    if len(node.inputs) != 1:
        return None
    (src,) = node.inputs
    if node.kind == "call" and isinstance(modules[node.target], _GRID_PRESERVING_MODULES):
        return src
    if node.kind == "op" and node.op in _GRID_PRESERVING_OPS:
        return src
    if node.kind == "op" and node.op == "getitem" and src.kind == "op" and src.op in _WITH_INDICES \
            and node.aten[0].args[1] == 0:  # the values of max_pool*_with_indices, not the indices
        return src
    return None


def activations_to_quantize(graph: ModuleGraph, modules: dict[str, nn.Module], int_outputs: set[str],
                            float_outputs: set[str], activations: set[str]) -> set[str]:
    """Of the standalone ``activations`` (module names), those to quantize given the modules whose
    outputs are int8 (``int_outputs``) or float (``float_outputs``): those fed by an int8 output
    (through grid-preserving ops), and those fed by other ops (a residual add, a multiply)
    between the first and the last int8 output in graph order; never one fed by a float layer
    or a float activation: a quantized output after a float layer only adds a Q -> DQ pair, or
    makes ONNX Runtime quantize that layer itself."""
    order = {node: i for i, node in enumerate(graph.nodes)}
    ints = {node for node in graph.nodes if node.kind == "call" and node.target in int_outputs}
    floats = {node for node in graph.nodes if node.kind == "call" and node.target in float_outputs}
    if not ints:
        return set()
    first, last = min(map(order.get, ints)), max(map(order.get, ints))
    chosen = set()
    for node in graph.nodes:
        if node.kind != "call" or node.target not in activations:
            continue
        source = node.inputs[0] if len(node.inputs) == 1 else None
        while source is not None and source not in floats | ints and _grid_source(source, modules):
            source = _grid_source(source, modules)
        if source in ints or (source not in floats and first < order[node] < last):
            chosen.add(node.target)
            ints.add(node)
        else:
            floats.add(node)
    return chosen


def _trace_back(inputs: list[Node], producers: dict[Node, str], modules: dict[str, nn.Module]) -> str | None:
    node = inputs[0] if len(inputs) == 1 else None
    while node is not None:
        if node in producers:
            return producers[node]
        node = _grid_source(node, modules)
    return None


def _is_input(inputs: list[Node], modules: dict[str, nn.Module]) -> bool:
    """True when the layer's only input is a model input, possibly through grid-preserving ops."""
    node = inputs[0] if len(inputs) == 1 else None
    while node is not None and node.kind != "input":
        node = _grid_source(node, modules)
    return node is not None


def _standalone_kind(module: nn.Module) -> str | None:
    """The QuantizedActivation kind ``module`` becomes, or None (AdaptiveAvgPool2d: only to 1x1)."""
    if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size not in (1, (1, 1)):
        return None
    return ACTIVATION_TYPES.get(type(module))


def build_plan(model: nn.Module, graph: ModuleGraph, select: set[str] | None = None) -> QuantPlan:
    """Decide fusions on ``graph`` (``model``'s module graph); ``select``: layer names allowed (None: all)."""
    modules = dict(model.named_modules())
    calls = graph.call_counts()
    plan = QuantPlan(graph, modules)
    for node in graph.nodes:
        if node.kind != "call" or node.call != 0:
            continue
        name = node.target
        module = modules[name]
        if _standalone_kind(module) and calls[name] == 1:
            plan.activations[name] = _standalone_kind(module)
        if not isinstance(module, LAYER_TYPES) or (select is not None and name not in select):
            continue
        if calls[name] != 1:
            plan.skipped.append(name)
            continue
        layer = LayerPlan(name)
        if _is_input(node.inputs, modules):
            plan.model_inputs.add(name)
        follow = node
        while len(follow.users) == 1:
            user = follow.users[0]
            if user.kind != "call" or calls[user.target] != 1:
                break
            user_module = modules[user.target]
            if isinstance(user_module, _TRANSPARENT_MODULES):
                follow = user
                continue
            if type(user_module) in FUSED_ACTIVATION_TYPES:
                layer.activation = FUSED_ACTIVATION_TYPES[type(user_module)]
                layer.activation_module = user.target
            break
        plan.layers[name] = layer
    for source in graph.output.inputs:
        while source.kind == "op" and source.inputs:
            source = source.inputs[0]
        if source.kind == "call":
            plan.model_outputs.add(source.target)
    return plan
