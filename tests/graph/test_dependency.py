"""Dependency groups against hand-derived structure."""

import numpy as np
import pytest
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.graph import build_dependency_graph
from torchslim.zoo import create_model


def _group(graph, producer):
    return next(g for g in graph.groups if producer in g.producers())


def test_resnet20_groups_match_the_architecture():
    model = create_model("resnet20").eval()
    graph = build_dependency_graph(model, (torch.randn(1, 3, 32, 32),))
    # 9 inner block convs + 3 residual streams (one per stage, including the projections).
    assert len(graph.groups) == 12
    stream = _group(graph, "layer2.0.downsample.0")
    assert stream.channels == 32
    assert set(stream.producers()) == {"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2", "layer2.2.conv2"}
    consumers = {s.param for s in stream.slices if s.role == "in"}
    assert consumers == {"layer2.1.conv1.weight", "layer2.2.conv1.weight", "layer3.0.conv1.weight",
                         "layer3.0.downsample.0.weight"}
    inner = _group(graph, "layer1.0.conv1")
    assert {(s.param, s.dim, s.role) for s in inner.slices} >= {
        ("layer1.0.conv1.weight", 0, "out"), ("layer1.0.bn1.weight", 0, "affine"), ("layer1.0.conv2.weight", 1, "in")}
    assert graph.macs() == 40_813_184  # = profiler MACs at 32x32, batch 1


def test_flatten_expands_channel_to_hw_columns():
    model = create_model("lenet5").eval()
    graph = build_dependency_graph(model, (torch.randn(1, 1, 28, 28),))
    conv2 = _group(graph, "features.3")
    fc_slice = next(s for s in conv2.slices if s.param == "classifier.0.weight")
    assert fc_slice.dim == 1 and len(fc_slice.index) == 16 * 25
    # Channel c owns columns c*25 ... c*25+24 (C x H x W flattening).
    np.testing.assert_array_equal(fc_slice.index[fc_slice.channel == 3], np.arange(75, 100))


def test_vit_heads_are_whole_heads_and_embed_dim_is_inexact():
    model = create_model("vit").eval()
    graph = build_dependency_graph(model, (torch.randn(1, 3, 32, 32),))
    heads = _group(graph, "blocks.0.attn.q")
    assert heads.channels == 4 and heads.exact
    q = next(s for s in heads.slices if s.param == "blocks.0.attn.q.weight")
    np.testing.assert_array_equal(q.index[q.channel == 1], np.arange(16, 32))  # head 1 = rows 16..31
    assert {s.param for s in heads.slices if s.role == "in"} == {"blocks.0.attn.proj.weight"}
    embed = _group(graph, "patch_embed")
    assert not embed.exact  # LayerNorm statistics mix the embedding dims
    assert {"cls_token", "pos_embed"} <= {s.param for s in embed.slices}


def test_unknown_op_blocks_its_channels_and_is_named():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.c(torch.cumsum(self.a(x), dim=1) + self.b(self.a(x)))

    graph = build_dependency_graph(Odd().eval(), (torch.randn(1, 3, 4, 4),))
    assert any("aten.cumsum" in w for w in graph.warnings)
    assert all("a" not in g.producers() for g in graph.groups)  # a's channels pass through cumsum


def test_chunk_keeps_halves_equal_and_split_with_sizes_is_blocked():
    class Halves(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            p, q = self.a(x).chunk(2, dim=1)
            r, s = torch.split(self.a(x), [3, 5], dim=1)
            return self.b(p) + self.c(q), r.sum() + s.sum()

    graph = build_dependency_graph(Halves().eval(), (torch.randn(1, 3, 4, 4),))
    assert all("a" not in g.producers() for g in graph.groups)
    assert any("split" in w for w in graph.warnings)


def test_capture_failure_is_a_user_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(UserError, match="torch.export"):
        build_dependency_graph(DataDependent(), (torch.randn(1, 3),))


# Hand-counted groups: EfficientNet-B0 has 7 stage streams, 16 expanded widths (block 1 has no
# expansion: its width is the stem's), 16 SE squeezes and the head conv; MobileNetV3-Large has
# 6 streams (the stem's joins block 1's residual), 14 expanded widths (block 1 has none and its
# depthwise conv ties its width to the stream), 8 SE squeezes, the head conv and the classifier's
# hidden layer.
SE_NETS = {"efficientnet_b0": 7 + 16 + 16 + 1, "mobilenetv3": 6 + 14 + 8 + 2}


@pytest.mark.parametrize("name", sorted(SE_NETS))
def test_se_gate_couples_the_expanded_channels_it_scales(name):
    """x * gate(fc2(...)): the gate's channels are x's, so fc2's rows join the expansion group
    (expand conv, depthwise conv, fc1 and project columns); the squeeze width is a group of its own."""
    from torchslim.zoo.blocks import SqueezeExcitation

    model = create_model(name, image_size=32, width_mult=0.5, num_classes=10).eval()
    graph = build_dependency_graph(model, (torch.randn(1, 3, 32, 32),))
    assert len(graph.groups) == SE_NETS[name] and all(g.exact for g in graph.groups)
    blocks = [(n, m) for n, m in model.named_modules() if hasattr(m, "block")]
    checked = 0
    for block_name, block in blocks:
        se = [(i, m) for i, m in enumerate(block.block) if isinstance(m, SqueezeExcitation)]
        if not se:
            continue
        (i, module), prefix = se[0], f"{block_name}.block"
        expanded = _group(graph, f"{prefix}.{i}.fc2")
        assert f"{prefix}.{i - 1}.0" in expanded.producers()  # the depthwise conv
        consumers = {s.param for s in expanded.slices if s.role == "in"}
        assert {f"{prefix}.{i}.fc1.weight", f"{prefix}.{i + 1}.0.weight"} <= consumers
        assert expanded.channels == module.fc2.out_channels
        squeeze = _group(graph, f"{prefix}.{i}.fc1")
        assert squeeze.producers() == [f"{prefix}.{i}.fc1"] and squeeze.channels == module.fc1.out_channels
        assert {s.param for s in squeeze.slices if s.role == "in"} == {f"{prefix}.{i}.fc2.weight"}
        checked += 1
    assert checked == {"efficientnet_b0": 16, "mobilenetv3": 8}[name]
