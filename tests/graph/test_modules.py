"""Module-level dataflow from the torch.export capture: hand-derived edges on the hard
topologies (residual adds, a module called twice, concat, functional ops) and, on every zoo
model, call counts checked against forward hooks counting the real calls."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.graph.modules import module_graph


def _graph(model: nn.Module, x: torch.Tensor):
    return Context((x[:1],)).module_graph(model)


def _edges_touching(graph, prefix: str) -> set[tuple[str, str]]:
    return {(a, b) for a, b in graph.edges() if a.startswith(prefix) or b.startswith(prefix)}


def test_residual_block_with_projection_shortcut():
    model, x = small_model("resnet20")
    graph = _graph(model, x)
    # BasicBlock.forward: identity = downsample(x); relu1(bn1(conv1(x))); bn2(conv2(.)); relu2(out + identity)
    assert _edges_touching(graph, "layer2.0") == {
        ("layer1.2.relu2", "layer2.0.downsample.0"),
        ("layer2.0.downsample.0", "layer2.0.downsample.1"),
        ("layer1.2.relu2", "layer2.0.conv1"),
        ("layer2.0.conv1", "layer2.0.bn1"),
        ("layer2.0.bn1", "layer2.0.relu1"),
        ("layer2.0.relu1", "layer2.0.conv2"),
        ("layer2.0.conv2", "layer2.0.bn2"),
        ("layer2.0.bn2", "layer2.0/add"),
        ("layer2.0.downsample.1", "layer2.0/add"),  # the residual add is an op node of the block
        ("layer2.0/add", "layer2.0.relu2"),
        ("layer2.0.relu2", "layer2.1.conv1"),
        ("layer2.0.relu2", "layer2.1/add"),  # identity shortcut of the next block
    }
    add = next(n for n in graph.nodes if n.name == "layer2.0/add")
    assert add.kind == "op" and add.op == "add" and add.scope == "layer2.0"
    assert ("layer2.0.conv1", "layer2.0.bn1") in graph.exclusive_edges()
    # relu2's output feeds two nodes: no exclusive edge out of it
    assert not any(a == "layer2.0.relu2" for a, _ in graph.exclusive_edges())


class _CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.relu(self.bn(self.conv(x))))  # relu twice, back to back
        z = self.conv(y)  # conv again, shared weights
        return self.head(F.adaptive_avg_pool2d(z, 1).flatten(1))


def test_module_called_twice_is_two_calls():
    model = _CalledTwice().eval()
    graph = _graph(model, torch.randn(2, 2, 6, 6))
    assert graph.edges() == [
        ("x", "conv"), ("conv", "bn"), ("bn", "relu"), ("relu", "relu@1"), ("relu@1", "conv@1"),
        ("conv@1", "adaptive_avg_pool2d"), ("adaptive_avg_pool2d", "flatten"), ("flatten", "head"),
        ("head", "output"),
    ]
    assert graph.call_counts() == Counter({"conv": 2, "relu": 2, "bn": 1, "head": 1})
    assert [n.call for n in graph.calls("relu")] == [0, 1]
    assert graph.calls("conv")[1].params == ["conv.weight", "conv.bias"]
    # conv -> bn is exclusive at the graph level, but conv runs twice: folding would change call 2
    assert graph.exclusive_edges() == []


def test_concat_of_block_input_and_new_features():
    model, x = small_model("densenet")
    graph = _graph(model, x)
    # DenseLayer: cat([x, conv2(relu2(bn2(conv1(relu1(bn1(x))))))]); the first layer's x is the stem conv
    cat = next(n for n in graph.nodes if n.name == "features.0.0/cat")
    assert [n.name for n in cat.inputs] == ["conv1", "features.0.0.conv2"]
    assert [n.name for n in cat.users] == ["features.0.1.bn1", "features.0.1/cat"]
    stem = graph.calls("conv1")[0]
    assert [n.name for n in stem.users] == ["features.0.0.bn1", "features.0.0/cat"]


def test_functional_ops_split_shuffle_and_attention():
    model, x = small_model("shufflenetv2")
    graph = _graph(model, x)
    # stride-1 unit: x1, x2 = chunk(x); cat([x1, branch2(x2)]); view -> transpose -> contiguous -> view
    assert _edges_touching(graph, "stage2.1/") == {
        ("stage2.0/view@1", "stage2.1/chunk"),
        ("stage2.1/chunk", "stage2.1/getitem"),
        ("stage2.1/chunk", "stage2.1/getitem@1"),
        ("stage2.1/getitem@1", "stage2.1.branch2.0"),
        ("stage2.1/getitem", "stage2.1/cat"),
        ("stage2.1.branch2.7", "stage2.1/cat"),
        ("stage2.1/cat", "stage2.1/view"),
        ("stage2.1/view", "stage2.1/transpose"),
        ("stage2.1/transpose", "stage2.1/contiguous"),
        ("stage2.1/contiguous", "stage2.1/view@1"),
        ("stage2.1/view@1", "stage2.2/chunk"),
    }
    vit, xv = small_model("vit")
    graph = _graph(vit, xv)
    sdpa = next(n for n in graph.nodes if n.name == "blocks.0.attn/scaled_dot_product_attention")
    assert [n.name for n in sdpa.inputs] == ["blocks.0.attn/transpose", "blocks.0.attn/transpose@1",
                                             "blocks.0.attn/transpose@2"]
    assert [n.inputs[0].inputs[0].name for n in sdpa.inputs] == ["blocks.0.attn.q", "blocks.0.attn.k",
                                                                 "blocks.0.attn.v"]
    # parameters used by the root's own forward are recorded on its op nodes, never as nodes
    expand = next(n for n in graph.nodes if n.name == "expand")
    assert expand.inputs == [] and expand.params == ["cls_token"]
    assert next(n for n in graph.nodes if n.name == "add").params == ["pos_embed"]


def test_every_zoo_model_call_counts_match_forward_hooks(zoo_model):
    name, model, x = zoo_model
    counts: Counter[str] = Counter()
    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None and n]
    handles = [m.register_forward_hook(lambda *a, n=n: counts.update([n])) for n, m in leaves]
    with torch.no_grad():
        model(x[:1])
    for handle in handles:
        handle.remove()
    graph = _graph(model, x)
    silent = {n for n, m in leaves if isinstance(m, nn.Identity)}  # runs no ATen op
    assert graph.call_counts() == Counter({n: c for n, c in counts.items() if n not in silent})
    for node in graph.nodes:  # users and inputs mirror each other
        assert all(node in src.users for src in node.inputs)
        assert all(node in user.inputs for user in node.users)
    assert graph.nodes[0].kind == "input" and graph.output.kind == "output" and graph.output.inputs
    params = {p for node in graph.nodes for p in node.params}
    # every weight is read by some node; the rest are buffers (BN statistics)
    assert {k for k, _ in model.named_parameters()} <= params <= set(model.state_dict())


def test_built_from_an_existing_capture_without_context():
    from torchslim.graph.export import capture_export

    model, x = small_model("lenet5")
    graph = module_graph(model, capture_export(model, (x[:1],)))
    assert [n.name for n in graph.nodes if n.kind == "call"][:3] == ["features.0", "features.1", "features.2"]


def test_untraceable_model_is_one_line_user_error():
    from torchslim.errors import UserError

    class Dynamic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -x

    with pytest.raises(UserError) as info:
        _graph(Dynamic(), torch.randn(2, 3))
    assert "\n" not in str(info.value)
