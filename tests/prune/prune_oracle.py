"""The pruning correctness oracle (issue 3) and toy models, one per coupling pattern.

For every exact group, a third of its channels are chosen. Zeroing the input weights of every
consumer of those channels (role ``in``) must make the output independent of them (checked by
perturbing their producers); removing them must then leave the output unchanged.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torchslim.graph import build_dependency_graph
from torchslim.prune.importance import tensor_of
from torchslim.prune.surgery import remove_channels_


def oracle(model: nn.Module, x: torch.Tensor, seed: int = 0, fraction: float = 1 / 3) -> dict:
    """Returns {'groups', 'pruned', 'independence', 'error', 'scale', 'model'}; see module doc."""
    model = copy.deepcopy(model).eval()
    graph = build_dependency_graph(model, (x,))
    rng = np.random.default_rng(seed)
    removed = {}
    with torch.no_grad():
        for g in graph.groups:
            if not g.exact or g.channels < 2:
                continue
            removed[g.id] = rng.choice(g.channels, size=max(1, int(g.channels * fraction)), replace=False)
            for s in g.slices:
                if s.role == "in":
                    sel = torch.as_tensor(s.index[np.isin(s.channel, removed[g.id])])
                    tensor_of(model, s.param).index_fill_(s.dim, sel, 0.0)
        reference = model(x)
        perturbed = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(seed)
        for g in graph.groups:
            for s in g.slices if g.id in removed else ():
                if s.role in ("out", "bias", "affine", "free") and not s.param.endswith("running_var"):
                    sel = torch.as_tensor(s.index[np.isin(s.channel, removed[g.id])])
                    t = tensor_of(perturbed, s.param)
                    noise = torch.randn(t.index_select(s.dim, sel).shape, generator=gen)
                    t.index_add_(s.dim, sel, 0.5 * noise)
        independence = (perturbed(x) - reference).abs().max().item()
        remove_channels_(model, graph, graph.remove_mask(removed))
        error = (model(x) - reference).abs().max().item()
    return {"groups": len(graph.groups), "pruned": len(removed), "independence": independence, "error": error,
            "scale": max(1.0, reference.abs().max().item()), "model": model, "graph": graph}


def assert_oracle(model: nn.Module, x: torch.Tensor, min_pruned: int = 1, seed: int = 0) -> dict:
    r = oracle(model, x, seed)
    assert r["pruned"] >= min_pruned, f"only {r['pruned']} of {r['groups']} groups prunable"
    assert r["independence"] <= 1e-5 * r["scale"], r
    assert r["error"] <= 1e-5 * r["scale"], r
    return r


def cbr(i: int, o: int, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return model.eval()


class Residual(nn.Module):
    """add and sub of two branches (coupled channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = cbr(3, 8), cbr(8, 8), cbr(8, 8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head((x + self.a(x)) - self.b(x))


class SqueezeExcite(nn.Module):
    """mul with a broadcast (N, C, 1, 1) scale."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.fc1, self.fc2, self.out = cbr(3, 12), nn.Conv2d(12, 4, 1), nn.Conv2d(4, 12, 1), nn.Conv2d(12, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.out(x * s)


class ConcatSplit(nn.Module):
    """cat of two producers, then chunk (equal halves) and split consumers."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = cbr(3, 6), cbr(3, 10), cbr(16, 8)
        self.d, self.e = nn.Conv2d(4, 3, 1), nn.Conv2d(4, 3, 1)

    def forward(self, x):
        y = self.c(torch.cat([self.a(x), self.b(x)], dim=1))
        p, q = torch.chunk(y, 2, dim=1)
        return torch.cat([self.d(p), self.e(q)], dim=1)


class Grouped(nn.Module):
    """depthwise (multiplier 2) and grouped (4 groups) convs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.dw, self.gc = cbr(3, 8), cbr(8, 16, groups=8), cbr(16, 16, groups=4)
        self.out = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        return self.out(self.gc(self.dw(self.stem(x))))


class Norms(nn.Module):
    """GroupNorm (4 groups), InstanceNorm (affine), BatchNorm1d after a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.gn = nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16)
        self.c2, self.inorm = nn.Conv2d(16, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True)
        self.fc1, self.bn = nn.Linear(8, 12), nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        x = F.relu(self.inorm(self.c2(F.relu(self.gn(self.c1(x))))))
        return self.fc2(F.relu(self.bn(self.fc1(x.mean((2, 3))))))


class FlattenLinear(nn.Module):
    """flatten C x H x W into a Linear (index expansion), view into a second Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.fc, self.fc2 = cbr(3, 6), nn.Linear(6 * 4 * 4, 10), nn.Linear(10, 2)

    def forward(self, x):
        y = F.max_pool2d(self.c(x), 2)
        return self.fc2(F.relu(self.fc(y.view(y.size(0), -1))))


class ChannelsLast(nn.Module):
    """permute to channels-last, Linear + LayerNorm over channels, permute back."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.fc1, self.fc2, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 16), nn.Linear(16, 8), nn.Conv2d(8, 3, 1)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)  # layer scale (free parameter)

    def forward(self, x):
        y = self.c(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(y))) * self.scale
        return self.out(y.permute(0, 3, 1, 2))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Shuffle(nn.Module):
    """ShuffleNet unit: chunk, branch, cat, view-transpose-view shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.branch, self.head = cbr(3, 8), nn.Sequential(cbr(4, 6, 1), cbr(6, 4, 1)), nn.Conv2d(8, 3, 1)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        return self.head(channel_shuffle(torch.cat([a, self.branch(b)], 1), 2))


class Heads(nn.Module):
    """multi-head attention with separate q/k/v and a ``num_heads`` attribute, class token,
    position embedding; MLP."""

    def __init__(self, dim: int = 16, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 5, dim))
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2, self.head = nn.Linear(dim, 24), nn.Linear(24, dim), nn.Linear(dim, 3)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.size(0), -1, -1), t], 1) + self.pos
        hd = self.q.out_features // self.num_heads
        q, k, v = (m(t).unflatten(-1, (self.num_heads, hd)).transpose(1, 2) for m in (self.q, self.k, self.v))
        t = t + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        t = t + self.fc2(F.gelu(self.fc1(t)))
        return self.head(t[:, 0])


class Resample(nn.Module):
    """upsample (nearest), pixel shuffle (r=2), adaptive / global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = cbr(3, 8), nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        y = F.interpolate(self.a(x), scale_factor=2, mode="nearest")
        y = F.pixel_shuffle(self.b(y), 2)  # (N, 16, H, W) -> (N, 4, 2H, 2W)
        y = F.adaptive_avg_pool2d(F.relu(self.c(y)), 2)
        return self.fc(torch.flatten(y, 1))


TOYS = {
    "residual": (Residual, (3, 8, 8)),
    "squeeze_excite": (SqueezeExcite, (3, 8, 8)),
    "concat_split": (ConcatSplit, (3, 8, 8)),
    "grouped": (Grouped, (3, 8, 8)),
    "norms": (Norms, (3, 8, 8)),
    "flatten_linear": (FlattenLinear, (3, 8, 8)),
    "channels_last": (ChannelsLast, (3, 6, 6)),
    "shuffle": (Shuffle, (3, 8, 8)),
    "heads": (Heads, (3, 8, 8)),
    "resample": (Resample, (3, 4, 4)),
}


def toy(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    cls, shape = TOYS[name]
    torch.manual_seed(seed)
    model = randomize_bn(cls(), seed)
    return model, torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed))
