"""Channel importance criteria, aggregated over every slice of a coupled group.

A group's channel ``c`` owns slices of several tensors (``ParamSlice.index`` where
``channel == c``): filters of its producers (role ``out``), BN/LN scales (``affine``),
consumer columns (``in``). Each criterion reduces those slices to one score per channel;
low scores are removed first.

- ``l1`` / ``l2``: norm of the producers' filters, summed over producers (Li et al. 2017,
  "Pruning Filters for Efficient ConvNets": s_c = sum |W_c|).
- ``bn_scale``: |gamma_c| of the normalisation layers (Liu et al. 2017, "Learning Efficient
  Convolutional Networks through Network Slimming"); groups without one fall back to l1.
- ``taylor``: first-order Taylor expansion of the loss for removing the channel, on the gate
  after the norm layer (Molchanov et al. 2019, "Importance Estimation for Neural Network
  Pruning"): s_c = mean_batches (sum_{slices} w * dL/dw)^2.
- ``fisher``: Group Fisher (Liu et al. 2021, "Group Fisher Pruning for Practical Network
  Compression"): one mask shared by all coupled layers, s_c = 1/(2N) sum_n (dL_n/dm_c)^2 with
  dL_n/dm_c = sum_{slices} w * dL_n/dw computed per sample.
- ``fpgm``: distance to the other filters of the layer (He et al. 2019, "Filter Pruning via
  Geometric Median"): s_c = sum_j ||F_c - F_j||_2; filters near the median are redundant.
- ``random``: uniform scores (baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from torchslim.core.modules import evaluating
from torchslim.data.access import batches
from torchslim.errors import UserError
from torchslim.graph.groups import Group, ParamSlice
from torchslim.train.evaluate import model_device

CRITERIA = ("l1", "l2", "bn_scale", "taylor", "fisher", "fpgm", "random")
NEEDS_DATA = ("taylor", "fisher")


def tensor_of(model: nn.Module, name: str) -> torch.Tensor:
    module_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_name), attr)


def _rows(t: torch.Tensor, s: ParamSlice, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(len(index), rest) rows of ``t`` along ``s.dim`` (float64 unless told)."""
    idx = torch.as_tensor(s.index, dtype=torch.long, device=t.device)
    return t.detach().index_select(s.dim, idx).movedim(s.dim, 0).reshape(len(s.index), -1).to(dtype)


def _per_channel(values: torch.Tensor, s: ParamSlice, channels: int) -> np.ndarray:
    return np.bincount(s.channel, weights=values.cpu().numpy(), minlength=channels)


def _filters(group: Group) -> list[ParamSlice]:
    out = [s for s in group.slices if s.role == "out"]
    return out or [s for s in group.slices if s.role in ("in", "free")]


def _norm_scores(model: nn.Module, group: Group, p: int) -> np.ndarray:
    total = np.zeros(group.channels)
    for s in _filters(group):
        t = tensor_of(model, s.param).detach()
        other = [d for d in range(t.dim()) if d != s.dim]
        per = ((t.abs() if p == 1 else t.square()).sum(other) if other else t.abs() ** p).double()
        total += _per_channel(per[torch.as_tensor(s.index, dtype=torch.long)], s, group.channels)
    return total if p == 1 else np.sqrt(total)


def is_bn_weight(model: nn.Module, s: ParamSlice) -> bool:
    module = model.get_submodule(s.param.rpartition(".")[0])
    return s.param.endswith("weight") and isinstance(module, nn.modules.batchnorm._BatchNorm)


def _bn_scores(model: nn.Module, group: Group) -> np.ndarray:
    slices = [s for s in group.slices if s.role == "affine" and is_bn_weight(model, s)]
    if not slices:
        return _norm_scores(model, group, 1)
    total = np.zeros(group.channels)
    for s in slices:
        total += _per_channel(_rows(tensor_of(model, s.param), s).abs().sum(1), s, group.channels)
    return total


def _fpgm_scores(model: nn.Module, group: Group) -> np.ndarray:
    total = np.zeros(group.channels)
    for s in _filters(group):
        rows = _rows(tensor_of(model, s.param), s)
        order = np.argsort(s.channel, kind="stable")
        counts = np.bincount(s.channel, minlength=group.channels)
        if counts.min() != counts.max() or counts.min() == 0:
            continue
        filters = rows[torch.as_tensor(order)].reshape(group.channels, -1)
        total += torch.cdist(filters[None], filters[None])[0].sum(1).cpu().numpy()
    return total


def _gate_slices(group: Group) -> list[ParamSlice]:
    """Slices whose (w * grad) sums to the gradient of a gate on the group's channels: the
    norm layers' scale and shift when there are any, else the producers' filters and biases."""
    affine = [s for s in group.slices if s.role == "affine" and not s.param.endswith(("running_mean", "running_var"))]
    return affine or [s for s in group.slices if s.role in ("out", "bias")]


def _gate_grads(model: nn.Module, groups: list[Group]) -> dict[int, np.ndarray]:
    """Per group: dL/dm_c = sum over gate slices of w * dL/dw (from the current .grad)."""
    result = {}
    for g in groups:
        total = np.zeros(g.channels)
        for s in _gate_slices(g):
            t = tensor_of(model, s.param)
            if t.grad is None:
                continue
            prod = _rows(t, s) * _rows(t.grad, s)
            total += _per_channel(prod.sum(1), s, g.channels)
        result[g.id] = total
    return result


def _batches(data: Any, batch_size: int, num_batches: int,
             device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``num_batches`` (inputs, labels) of a Dataset / DataLoader, or of an iterable of batches."""
    source = batches(data, batch_size, device=device) if isinstance(data, (Dataset, DataLoader)) else data
    for i, (x, y) in enumerate(source):
        if i >= num_batches:
            break
        yield x.to(device), y.to(device)


def _gradient_scores(model: nn.Module, groups: list[Group], data: Any, kind: str, batch_size: int,
                     num_batches: int, loss_fn: Callable[..., torch.Tensor]) -> dict[int, np.ndarray]:
    if data is None:
        raise UserError(f"importance '{kind}' needs data (a Dataset of (x, y) or batches); none was given")
    scores = {g.id: np.zeros(g.channels) for g in groups}
    count = 0
    params = [p for p in model.parameters()]
    try:
        with evaluating(model):  # BN running statistics, as at inference; each module's mode restored
            for x, y in _batches(data, batch_size, num_batches, model_device(model)):
                parts = [(x[i:i + 1], y[i:i + 1]) for i in range(len(x))] if kind == "fisher" else [(x, y)]
                for xb, yb in parts:
                    for p in params:
                        p.grad = None
                    loss_fn(model(xb), yb).backward()
                    for gid, g in _gate_grads(model, groups).items():
                        scores[gid] += g ** 2
                    count += 1
    finally:
        for p in params:
            p.grad = None
    if count == 0:
        raise UserError(f"importance '{kind}': the data yielded no batches")
    return {gid: s / (2 * count if kind == "fisher" else count) for gid, s in scores.items()}


def group_importance(
    model: nn.Module,
    groups: list[Group],
    criterion: str,
    *,
    data: Any = None,
    seed: int = 0,
    batch_size: int = 32,
    num_batches: int = 4,
    loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
) -> dict[int, np.ndarray]:
    """``{group id: score per channel}`` (higher = more important) for ``criterion``."""
    if criterion not in CRITERIA:
        raise UserError(f"importance must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if criterion in NEEDS_DATA:
        return _gradient_scores(model, groups, data, criterion, batch_size, num_batches, loss_fn)
    rng = np.random.default_rng(seed)
    fn = {
        "l1": lambda g: _norm_scores(model, g, 1),
        "l2": lambda g: _norm_scores(model, g, 2),
        "bn_scale": lambda g: _bn_scores(model, g),
        "fpgm": lambda g: _fpgm_scores(model, g),
        "random": lambda g: rng.random(g.channels),
    }[criterion]
    with torch.no_grad():
        return {g.id: np.asarray(fn(g), dtype=np.float64) for g in groups}
