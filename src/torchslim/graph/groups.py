"""Groups: the removable channels of a dependency graph and the parameter slices each owns.

A *component* of the element-link graph is one removable channel; components that touch the
same set of (parameter, dim) pairs form a :class:`Group` (e.g. the 64 channels of a residual
stage), which importance criteria rank and ratios apply to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from torchslim.graph.elements import ElementLinks
from torchslim.graph.export import ExportedGraph


@dataclass
class ParamSlice:
    """Indices ``index`` along ``dim`` of state-dict tensor ``param``; ``channel[i]`` is the
    group channel that ``index[i]`` belongs to. ``role``: out (a filter / row of a producer),
    in (a consumer's input column), bias, affine (norm scale / shift / statistics), free."""

    param: str
    dim: int
    role: str
    index: np.ndarray
    channel: np.ndarray


@dataclass
class Group:
    """``channels`` removable units that share the same parameter slices.

    ``exact``: removing a channel whose consumers ignore it leaves the output unchanged
    (false when a normalisation or contraction mixes the channels, e.g. LayerNorm).
    """

    id: int
    channels: int
    components: np.ndarray
    slices: list[ParamSlice]
    exact: bool
    name: str = ""

    @property
    def modules(self) -> list[str]:
        return sorted({s.param.rpartition(".")[0] for s in self.slices})

    def producers(self) -> list[str]:
        return sorted({s.param.rpartition(".")[0] for s in self.slices if s.role == "out"})

    def describe(self) -> str:
        names = self.producers() or self.modules
        more = f" +{len(names) - 3}" if len(names) > 3 else ""
        return f"{', '.join(names[:3])}{more} ({self.channels} ch)"


def make_groups(b: ElementLinks, exported: ExportedGraph, labels: np.ndarray, blocked: np.ndarray,
                 inexact: np.ndarray, param_spaces: dict[str, Any]) -> tuple[list[Group], np.ndarray]:
    """Components touching the same (param, dim) set, unblocked, with parameters -> Group.

    Also returns which components touch any parameter at all (blocked or not)."""
    ncomp = len(blocked)
    rng = np.random.default_rng(0)
    signature = np.zeros(ncomp, dtype=np.uint64)
    touches = np.zeros(ncomp, dtype=bool)
    pds = []  # (param name, dim, placeholder key)
    for pname, key in sorted(param_spaces.items()):
        for d, (offset, size) in enumerate(b.spaces[key]):
            comps = np.unique(labels[offset:offset + size])
            signature[comps] += rng.integers(1, 2**63, dtype=np.uint64)
            touches[comps] = True
            pds.append((pname, d, key))
    candidate = touches & ~blocked
    sigs, group_of = np.unique(signature[candidate], return_inverse=True)
    comp_ids = np.flatnonzero(candidate)
    group_index = np.full(ncomp, -1, dtype=np.int64)
    group_index[comp_ids] = group_of
    channel_of = np.full(ncomp, -1, dtype=np.int64)
    groups: list[Group] = []
    for g in range(len(sigs)):
        members = comp_ids[group_of == g]
        channel_of[members] = np.arange(len(members))
        groups.append(Group(g, len(members), members, [], bool(not inexact[members].any())))
    for pname, d, key in pds:
        offset, size = b.spaces[key][d]
        lab = labels[offset:offset + size]
        gidx = group_index[lab]
        for g in np.unique(gidx[gidx >= 0]):
            pos = np.flatnonzero(gidx == g)
            groups[g].slices.append(ParamSlice(pname, d, b.roles.get((key, d), "free"), pos, channel_of[lab[pos]]))
    # Order groups by where their first parameter appears (readable reports, stable ids).
    order = {name: i for i, name in enumerate(exported.param_of.values())}
    groups.sort(key=lambda g: min(order.get(s.param, 0) for s in g.slices))
    seen: dict[str, int] = {}
    for i, g in enumerate(groups):
        g.id = i
        producers = sorted({s.param.rpartition(".")[0] for s in g.slices if s.role == "out"},
                           key=lambda m: order.get(f"{m}.weight" if m else "weight", 0))
        base = (producers or g.modules or ["<root>"])[0] or "<root>"
        seen[base] = seen.get(base, 0) + 1
        g.name = base if seen[base] == 1 else f"{base}#{seen[base]}"
    return groups, touches
