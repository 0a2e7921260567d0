"""Correctness oracle (issue 3): removing channels whose consumers ignore them changes nothing.

Toy models cover each coupling pattern; every zoo model; and hypothesis-generated
architectures that mix them.
"""

import sys
from pathlib import Path

import pytest
import torch
import torchslim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from prune_oracle import TOYS, assert_oracle, cbr, channel_shuffle, randomize_bn, toy  # noqa: E402

# Minimum groups the oracle must find prunable per toy (hand-counted from the architectures).
EXPECTED_GROUPS = {
    "residual": 1,        # stem + a + b coupled by add/sub
    "squeeze_excite": 2,  # stem (with the SE scale rows), fc1 hidden
    "concat_split": 3,    # a, b (cat offsets), c (chunk halves tied)
    "grouped": 2,         # depthwise-coupled stem, grouped conv
    "norms": 3,           # GN whole groups, IN, BN1d
    "flatten_linear": 2,  # conv channels expanded to 16 Linear columns each, fc hidden
    "channels_last": 3,
    "shuffle": 2,         # stream through chunk/cat/shuffle, branch hidden
    "heads": 3,           # embed dim, whole heads, MLP hidden
    "resample": 3,        # upsample, pixel shuffle (4 groups of r^2), adaptive pool + flatten
}


@pytest.mark.parametrize("name", sorted(TOYS))
def test_oracle_on_each_coupling_pattern(name):
    model, x = toy(name)
    result = assert_oracle(model, x, min_pruned=EXPECTED_GROUPS[name])
    assert result["pruned"] == EXPECTED_GROUPS[name]


def test_oracle_on_every_zoo_model(zoo_model, tmp_path):
    name, model, x = zoo_model
    result = assert_oracle(model, x)
    assert result["pruned"] >= {"lenet300": 2, "lenet5": 4, "vit": 8}.get(name, 8), result
    # The pruned model is plain standard layers: it round-trips through torchslim.save/load.
    pruned = result["model"]
    torchslim.save(pruned, tmp_path / "m")
    torch.testing.assert_close(torchslim.load(tmp_path / "m").eval()(x), pruned(x), rtol=0, atol=0)


# ------------------------------------------------------------------ random architectures

BLOCKS = ("conv", "residual", "concat", "chunk", "depthwise", "grouped", "se", "shuffle", "gn", "upsample")


class RandomNet(nn.Module):
    """A chain of blocks drawn by hypothesis; every block keeps the spatial size except upsample."""

    def __init__(self, plan: list[tuple[str, int]], head: str) -> None:
        super().__init__()
        self.plan = [kind for kind, _ in plan]
        self.blocks = nn.ModuleList()
        c, size = 8, 8
        self.stem = cbr(3, c)
        for kind, width in plan:
            w = 4 * width
            if kind == "conv":
                block, c = cbr(c, w), w
            elif kind == "residual":
                block = nn.Sequential(cbr(c, w), nn.Conv2d(w, c, 3, padding=1), nn.BatchNorm2d(c))
            elif kind == "concat":
                block, c = nn.ModuleList([cbr(c, w), cbr(c, 4)]), w + 4
            elif kind == "chunk":
                block = cbr(c // 2, c // 2) if c % 2 == 0 else cbr(c, c)
            elif kind == "depthwise":
                block = cbr(c, c, groups=c)
            elif kind == "grouped":
                block, c = cbr(c, 4 * w, groups=4) if c % 4 == 0 else cbr(c, 4 * w), 4 * w
            elif kind == "se":
                block = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, c, 1), nn.Sigmoid())
            elif kind == "shuffle":
                block = cbr(c, c, 1)
            elif kind == "gn":
                block = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.GroupNorm(2, 8))
                c = 8
            else:  # upsample
                block, size = nn.Identity(), size * 2
            self.blocks.append(block)
        self.head_kind = head
        self.head = nn.Linear(c * (size // 4) ** 2 if head == "flatten" else c, 5)

    def forward(self, x):
        x = self.stem(x)
        for kind, block in zip(self.plan, self.blocks):
            if kind == "residual":
                x = torch.relu(x + block(x))
            elif kind == "concat":
                x = torch.cat([block[0](x), block[1](x)], dim=1)
            elif kind == "chunk":
                if x.size(1) % 2 == 0:
                    a, b = x.chunk(2, dim=1)
                    x = torch.cat([block(b), a], dim=1)
                else:
                    x = block(x)
            elif kind == "se":
                x = x * block(x.mean((2, 3), keepdim=True))
            elif kind == "shuffle":
                x = block(x)
                x = channel_shuffle(x, 2) if x.size(1) % 2 == 0 else x
            elif kind == "upsample":
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            else:
                x = block(x)
        if self.head_kind == "flatten":
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, x.size(-1) // 4), 1))
        return self.head(x.mean((2, 3)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(st.sampled_from(BLOCKS), st.integers(1, 3)), min_size=2, max_size=6),
    head=st.sampled_from(["pool", "flatten"]),
    seed=st.integers(0, 1000),
)
def test_oracle_on_random_architectures(plan, head, seed):
    if sum(kind == "upsample" for kind, _ in plan) > 1:
        plan = [p for p in plan if p[0] != "upsample"] + [("upsample", 1)]
    torch.manual_seed(seed)
    model = randomize_bn(RandomNet(plan, head), seed)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    assert_oracle(model, x, min_pruned=1, seed=seed)
