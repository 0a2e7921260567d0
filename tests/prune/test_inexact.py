"""Inexact groups (channels that share normalisation statistics): off by default, and when
enabled, removal renormalises over the kept channels with a bounded output error."""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core import Context
from torchslim.core.numerics import sqnr_db
from torchslim.graph import build_dependency_graph
from torchslim.prune import prune_channels_
from torchslim.prune.importance import tensor_of

from tests.conftest import small_model


def _prune(model, x, **fields):
    ctx = Context((x[:1],))
    prune_channels_(model, fields, ctx)
    return ctx.results[-1]


def test_default_keeps_inexact_groups_and_says_so():
    # Before: include_inexact was True by default and not a recipe field, so the LayerNorm'd
    # embedding width of a ViT was always pruned (patch_embed went from 64 to 32 here).
    model, x = small_model("vit")
    result = _prune(model, x, ratio=0.5)
    assert model.patch_embed.out_channels == 64 and model.pos_embed.shape[-1] == 64
    assert model.blocks[0].attn.num_heads == 2 and model.blocks[0].mlp.fc1.out_features == 64  # exact groups pruned
    assert result.details["inexact_groups_kept"] == ["patch_embed"]
    assert not any("normalisation statistics" in w for w in result.warnings)


def test_include_inexact_prunes_the_embedding_and_warns():
    model, x = small_model("vit")
    result = _prune(model, x, ratio=0.0, include_inexact=True, group_ratios={"patch_embed": 0.25})
    assert model.patch_embed.out_channels == 48 and model.cls_token.shape[-1] == 48
    assert model.blocks[3].norm2.normalized_shape == (48,)
    assert any("normalisation statistics" in w and "patch_embed" in w for w in result.warnings)


class ChannelsLastNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.fc = nn.Conv2d(3, 8, 1), nn.LayerNorm(8), nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.norm(self.conv(x).permute(0, 2, 3, 1))).mean((1, 2))


def test_inexact_removal_renormalises_over_the_kept_channels():
    """Channels whose filters are zero carry 0 into the LayerNorm; removing them must equal a
    LayerNorm over the kept channels only (hand-built reference), not the unpruned output."""
    torch.manual_seed(0)
    model = ChannelsLastNorm().eval()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.uniform_(-0.5, 0.5)
        model.conv.weight[[1, 6]] = 0.0  # lowest L1: these two go first
        model.conv.bias[[1, 6]] = 0.0
    x = torch.randn(2, 3, 5, 5)
    kept = [0, 2, 3, 4, 5, 7]
    with torch.no_grad():
        y = model.conv(x).permute(0, 2, 3, 1)[..., kept]
        expected = F.linear(F.layer_norm(y, (6,), model.norm.weight[kept], model.norm.bias[kept]),
                            model.fc.weight[:, kept], model.fc.bias).mean((1, 2))
        unpruned = model(x)
    _prune(model, x, ratio=0.25, include_inexact=True)
    assert model.conv.out_channels == 6 and model.norm.normalized_shape == (6,)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
    assert (model(x) - unpruned).abs().max() > 1e-3  # inexact indeed


def test_inexact_vit_embedding_sqnr_floor():
    """SQNR floor 15 dB when 1/8 of a ViT's embedding channels, made unused (their producers
    and consumers zeroed, as the exact oracle does), are removed.

    Why 15 dB: the only change left is that every LayerNorm now averages over 7/8 of the
    channels. The zero channels lowered each norm's variance by that factor, so its output
    scales by sqrt(7/8): a relative error of 1 - sqrt(7/8) = 6.5%, 23.8 dB for one norm. The
    test-size ViT has 9 norms along its residual stream and the error compounds: 18.6-22.8 dB
    over seeds 0-2. A wrong index map (e.g. position-embedding columns shifted by one) gives
    -3 to +6 dB, well below the floor.
    """
    for seed in range(2):
        model, x = small_model("vit", seed)
        graph = build_dependency_graph(model, (x[:1],))
        (group,) = [g for g in graph.groups if not g.exact]
        removed = np.random.default_rng(seed).choice(group.channels, group.channels // 8, replace=False)
        with torch.no_grad():
            for s in group.slices:
                if s.role != "affine":  # filters, biases, cls / pos columns, consumer columns
                    tensor_of(model, s.param).index_fill_(s.dim, torch.as_tensor(s.index[np.isin(s.channel, removed)]), 0.0)
            reference = model(x)
        pruned = copy.deepcopy(model)
        _prune(pruned, x, ratio=0.0, include_inexact=True, group_ratios={group.name: 0.125})
        assert pruned.patch_embed.out_channels == group.channels - len(removed)
        assert sqnr_db(reference, pruned(x)) >= 15.0
