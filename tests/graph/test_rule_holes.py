"""Ops whose rules used to link one operand and ignore the others, and ops with more than 64
tuple outputs: each case is an oracle toy model (pruning what the graph calls prunable gives
a model that runs and, for exact groups whose consumers ignore the removed channels, the same
output) or a must-not-prune case (the group is absent and the op is named in a warning).

Every toy here failed before: the graph left ``a`` prunable while ``b`` (or the consumer
``c``) could not follow, so the pruned model no longer ran.
"""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from torchslim.graph import build_dependency_graph
from torchslim.graph.elementwise_rules import broadcast

sys.path.insert(0, str(Path(__file__).parents[1] / "prune"))
from prune_oracle import assert_oracle, oracle  # noqa: E402


class TwoProducers(nn.Module):
    """a, b: conv outputs of 8 channels combined by ``op``; c consumes the result."""

    def __init__(self, op):
        super().__init__()
        self.op = op
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.c(self.op(self.a(x), self.b(x)))


OPERAND_OPS = {
    "clamp_tensor_bounds": lambda a, b: torch.clamp(a, min=b, max=b + 1.0),
    "clamp_min_tensor": lambda a, b: torch.clamp_min(a, b),
    "clamp_max_tensor": lambda a, b: torch.clamp_max(a, b),
    "expand_as": lambda a, b: a.expand_as(b) * 2.0,
    "where": lambda a, b: torch.where(a > 0, a, b),
    "lerp_tensor_weight": lambda a, b: torch.lerp(a, b, torch.sigmoid(b)),
    "addcmul": lambda a, b: torch.addcmul(a, a, b, value=0.5),
    "masked_fill": lambda a, b: a.masked_fill(b > 0, 0.0),
}


def _producers(graph) -> set[tuple[str, ...]]:
    return {tuple(g.producers()) for g in graph.groups}


@pytest.mark.parametrize("name", sorted(OPERAND_OPS))
def test_every_tensor_operand_follows_the_output(name):
    torch.manual_seed(0)
    model, x = TwoProducers(OPERAND_OPS[name]).eval(), torch.randn(2, 3, 4, 4)
    result = assert_oracle(model, x, min_pruned=1)
    assert ("a", "b") in _producers(result["graph"]), result["graph"].groups  # coupled, not a alone
    assert result["model"].b.out_channels == result["model"].a.out_channels < 8


class Broadcast(nn.Module):
    """A one-channel map expanded to b's channels: b stays prunable, the map broadcasts."""

    def __init__(self):
        super().__init__()
        self.s, self.b, self.c = nn.Conv2d(3, 1, 1), nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        b = self.b(x)
        return self.c(self.s(x).expand_as(b) + b)


def test_expand_as_from_one_channel_keeps_b_prunable():
    result = assert_oracle(Broadcast().eval(), torch.randn(2, 3, 4, 4))
    assert ("b",) in _producers(result["graph"])


class ManyPieces(nn.Module):
    """100 pieces along H (beyond the 64 tuple outputs the builder used to read); c reads piece 70."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.a, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.a(x)  # (N, 8, 100, 1)
        if self.how == "chunk":
            piece = y.chunk(100, dim=2)[70]
        elif self.how == "split":
            piece = torch.split(y, 1, dim=2)[70]
        elif self.how == "unbind":
            piece = y.unbind(2)[70].unsqueeze(2)
        else:
            piece = torch.tensor_split(y, 100, dim=2)[70]
        return self.c(piece)


@pytest.mark.parametrize("how", ["chunk", "split", "unbind"])
def test_ops_with_100_tuple_outputs_couple_every_output(how):
    result = assert_oracle(ManyPieces(how).eval(), torch.randn(2, 3, 100, 1))
    assert _producers(result["graph"]) == {("a",)}
    assert {s.param for s in result["graph"].groups[0].slices if s.role == "in"} == {"c.weight"}


def test_op_without_rule_with_100_outputs_blocks_and_is_named():
    result = oracle(ManyPieces("tensor_split").eval(), torch.randn(2, 3, 100, 1))
    graph = result["graph"]
    assert graph.groups == []  # before: c's input columns formed a prunable group of 8
    assert any(w.startswith("aten.tensor_split (in <root>): no pruning rule") for w in graph.warnings)


class IndexSelect(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)
        self.register_buffer("order", torch.arange(7, -1, -1))

    def forward(self, x):
        return self.c(self.a(x).index_select(1, self.order))


def test_index_select_with_a_tensor_index_blocks_and_is_named():
    graph = build_dependency_graph(IndexSelect().eval(), (torch.randn(1, 3, 4, 4),))
    assert graph.groups == []
    assert any(w.startswith("aten.index_select") for w in graph.warnings)


def test_a_rule_that_ignores_an_operand_blocks_its_group_and_is_named(monkeypatch):
    """The safety net: the old one-operand clamp rule, put back, no longer leaves a prunable."""
    from torchslim.graph.rules import RULES

    monkeypatch.setitem(RULES, "aten.clamp", lambda b, node: broadcast(b, node, [node.args[0]]))
    model = TwoProducers(OPERAND_OPS["clamp_tensor_bounds"]).eval()
    graph = build_dependency_graph(model, (torch.randn(1, 3, 4, 4),))
    assert ("a",) not in _producers(graph) and ("a", "b") not in _producers(graph)
    assert any(w.startswith("aten.clamp (in <root>): its rule does not read tensor operand 1") for w in graph.warnings)
