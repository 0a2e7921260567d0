"""Where quantize/dequantize pairs go: a module-level plan read from the ``torch.fx`` graph.

The quantized model must keep its original ``forward`` (so ``torchslim.save/load`` rebuild
it from the zoo architecture), so quantization happens at module boundaries only:

- every selected Conv2d / Linear becomes a quantized layer that quantizes its input and its
  output; a ReLU/ReLU6 module that is the layer's only consumer (possibly through Identity /
  Dropout left by BN folding) is fused into it, so ONNX Runtime sees
  ``DQ -> Conv -> Relu -> Q`` and removes the Relu (its ReluQuantFusion) before making a
  ``QLinearConv``;
- a standalone ReLU/ReLU6 (after a residual add) quantizes its output, so the add becomes
  ``QLinearAdd``;
- a layer whose input is another quantized output seen through value-preserving ops
  (max-pool, flatten, identity, ReLU) reuses that output's scale and zero point, so the
  re-quantization is exact and ONNX Runtime drops the redundant DQ -> Q pair.

Modules called more than once (shared weights or a reused ReLU) are left in float: one set
of activation parameters cannot serve several call sites.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import fx, nn

LAYER_TYPES = (nn.Conv2d, nn.Linear)
ACTIVATION_TYPES = {nn.ReLU: "relu", nn.ReLU6: "relu6"}
_TRANSPARENT_MODULES = (nn.Identity, nn.Dropout)
# Ops that map values on a quantization grid to values on the same grid.
_GRID_PRESERVING_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.Identity, nn.Dropout, nn.Flatten, nn.ReLU)
_GRID_PRESERVING_FUNCTIONS = {torch.flatten, torch.relu, torch.nn.functional.relu, torch.nn.functional.max_pool2d,
                              torch.nn.functional.dropout, torch.reshape}
_GRID_PRESERVING_METHODS = {"flatten", "reshape", "view", "contiguous", "relu"}


@dataclass
class LayerPlan:
    """``activation``: fused "relu"/"relu6"/"none"; ``activation_module``: its module name or None."""

    name: str
    activation: str = "none"
    activation_module: str | None = None


@dataclass
class QuantPlan:
    """``layers``: quantizable Conv2d/Linear in graph order; ``activations``: standalone ReLU(6)s;
    ``model_outputs``: modules whose output is the model's output; ``model_inputs``: layers fed by
    the model's input. Neither range is ever clipped: clipping logits makes top classes tie, and
    standardised images are not bell-shaped (MNIST: a spike at the background value), which
    misleads the entropy observer into clipping the strokes."""

    traced: fx.GraphModule
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
        producers: dict[fx.Node, str] = {}
        for node in self.traced.graph.nodes:
            if node.op != "call_module":
                continue
            target = str(node.target)
            if target in quantized:
                producers[_last_fused(node, self.layers[target])] = target
            elif target in self.activations and target not in self._fused_activation_names():
                producers[node] = target
        sources: dict[str, str | None] = {}
        for node in self.traced.graph.nodes:
            if node.op == "call_module" and str(node.target) in quantized:
                sources[str(node.target)] = _trace_back(node.args[0], producers, self.traced)
        return sources

    def _fused_activation_names(self) -> set[str]:
        return {p.activation_module for p in self.layers.values() if p.activation_module}


def _last_fused(node: fx.Node, plan: LayerPlan) -> fx.Node:
    """The node producing the layer's output after its fused activation."""
    while plan.activation_module and not (node.op == "call_module" and str(node.target) == plan.activation_module):
        node = next(iter(node.users))
    return node


def _trace_back(node: object, producers: dict[fx.Node, str], traced: fx.GraphModule) -> str | None:
    modules = dict(traced.named_modules())
    while isinstance(node, fx.Node):
        if node in producers:
            return producers[node]
        if node.op == "call_module" and isinstance(modules[str(node.target)], _GRID_PRESERVING_MODULES):
            node = node.args[0]
        elif node.op == "call_function" and node.target in _GRID_PRESERVING_FUNCTIONS:
            node = node.args[0]
        elif node.op == "call_method" and node.target in _GRID_PRESERVING_METHODS:
            node = node.args[0]
        else:
            return None
    return None


def build_plan(model: nn.Module, select: set[str] | None = None) -> QuantPlan:
    """Trace ``model`` with fx and decide fusions; ``select``: layer names allowed (None: all)."""
    traced = fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    calls = Counter(str(n.target) for n in traced.graph.nodes if n.op == "call_module")
    plan = QuantPlan(traced)
    for node in traced.graph.nodes:
        if node.op != "call_module":
            continue
        name = str(node.target)
        module = modules[name]
        if isinstance(module, tuple(ACTIVATION_TYPES)) and calls[name] == 1:
            plan.activations[name] = ACTIVATION_TYPES[type(module)]
        if not isinstance(module, LAYER_TYPES) or (select is not None and name not in select):
            continue
        if calls[name] != 1:
            plan.skipped.append(name)
            continue
        layer = LayerPlan(name)
        if _is_input(node.args[0], traced):
            plan.model_inputs.add(name)
        follow = node
        while len(follow.users) == 1:
            user = next(iter(follow.users))
            if user.op != "call_module":
                break
            user_module = modules[str(user.target)]
            if isinstance(user_module, _TRANSPARENT_MODULES) and calls[str(user.target)] == 1:
                follow = user
                continue
            if type(user_module) in ACTIVATION_TYPES and calls[str(user.target)] == 1:
                layer.activation = ACTIVATION_TYPES[type(user_module)]
                layer.activation_module = str(user.target)
            break
        plan.layers[name] = layer
    for node in traced.graph.nodes:
        if node.op == "output":
            for arg in _flat(node.args):
                source = arg
                while isinstance(source, fx.Node) and source.op != "call_module" and source.args:
                    source = source.args[0]
                if isinstance(source, fx.Node) and source.op == "call_module":
                    plan.model_outputs.add(str(source.target))
    return plan


def _is_input(node: object, traced: fx.GraphModule) -> bool:
    """True when ``node`` is a model input, possibly through grid-preserving ops."""
    modules = dict(traced.named_modules())
    while isinstance(node, fx.Node) and node.op != "placeholder":
        if node.op == "call_module" and isinstance(modules[str(node.target)], _GRID_PRESERVING_MODULES) or (
                node.op in ("call_function", "call_method") and (
                    node.target in _GRID_PRESERVING_FUNCTIONS or node.target in _GRID_PRESERVING_METHODS)):
            node = node.args[0]
        else:
            return False
    return isinstance(node, fx.Node)


def _flat(args: object) -> list[fx.Node]:
    flat: list[fx.Node] = []
    fx.node.map_arg(args, lambda n: flat.append(n) or n)
    return flat
