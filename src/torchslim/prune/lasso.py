"""Learn how many channels each group needs: sparsity training, then remove the zeroed channels.

Step ``prune.group_lasso``:

- ``penalty="group_lasso"`` (Alvarez & Salzmann 2016, "Learning the Number of Neurons in
  Deep Networks"): loss += strength * sum_groups sum_c ||theta_c||_2, where theta_c is every
  parameter slice of channel c in its coupled group (filters, biases, norm scales, consumer
  columns), so whole channels are driven to zero together;
- ``penalty="bn_l1"`` (Liu et al. 2017, network slimming): loss += strength * sum |gamma|
  over the BatchNorm scales of the groups.

Training runs through :func:`torchslim.train.fit` at a constant learning rate eta, with the
penalty applied as a proximal step after every optimizer step (an ``after_step`` hook), which
is what produces exact zeros (plain subgradients only shrink): group soft-thresholding
theta_c <- theta_c * max(0, 1 - eta * strength / ||theta_c||), and for ``bn_l1``
gamma <- sign(gamma) * max(|gamma| - eta * strength, 0). Afterwards a channel is removed when
its group norm is below ``threshold`` x the largest in its group, or, with ``target_macs``,
the smallest norms go first until the target is met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.errors import UserError
from torchslim.graph.dependency import Group, build_dependency_graph
from torchslim.prune.channels import finetune_, prunable_groups, prune_channels_report_
from torchslim.prune.importance import _is_bn_weight, tensor_of


def channel_norms_sq(model: nn.Module, groups: list[Group], bn_only: bool = False) -> dict[int, torch.Tensor]:
    """Differentiable ``{group id: (channels,) squared L2 norm of each channel's slices}``."""
    out = {}
    for g in groups:
        total = None
        for s in g.slices:
            if s.param.endswith(("running_mean", "running_var")):
                continue
            if bn_only and not (s.role == "affine" and _is_bn_weight(model, s)):
                continue
            t = tensor_of(model, s.param)
            idx = torch.as_tensor(s.index, dtype=torch.long, device=t.device)
            rows = t.index_select(s.dim, idx).movedim(s.dim, 0).reshape(len(s.index), -1)
            per = torch.zeros(g.channels, dtype=t.dtype, device=t.device)
            per = per.index_add(0, torch.as_tensor(s.channel, device=t.device), rows.pow(2).sum(1))
            total = per if total is None else total + per
        if total is not None:
            out[g.id] = total
    return out


def sparsity_penalty(groups: list[Group], strength: float, penalty: str) -> Callable[..., torch.Tensor]:
    """``extra_losses`` term for :func:`torchslim.train.fit`."""

    def loss(ctx) -> torch.Tensor:
        norms = channel_norms_sq(ctx.model, groups, bn_only=penalty == "bn_l1")
        terms = [torch.sqrt(v + 1e-12).sum() for v in norms.values()]
        return strength * torch.stack(terms).sum() if terms else ctx.outputs.new_zeros(())

    return loss


def proximal_step(groups: list[Group], step: float, penalty: str) -> Callable[..., None]:
    """``after_step`` hook: the proximal operator of ``step`` x the penalty (see module doc)."""

    @torch.no_grad()
    def hook(ctx) -> None:
        model = ctx.model
        norms = channel_norms_sq(model, groups, bn_only=penalty == "bn_l1")
        for g in groups:
            if g.id not in norms:
                continue
            for s in g.slices:
                if s.param.endswith(("running_mean", "running_var")):
                    continue
                if penalty == "bn_l1":
                    if not (s.role == "affine" and _is_bn_weight(model, s)):
                        continue
                    t = tensor_of(model, s.param)
                    t.copy_(torch.sign(t) * (t.abs() - step).clamp_min(0))
                    continue
                shrink = (1 - step / norms[g.id].sqrt().clamp_min(1e-12)).clamp_min(0)
                t = tensor_of(model, s.param)
                factor = shrink[torch.as_tensor(s.channel)]
                shape = [1] * t.dim()
                shape[s.dim] = -1
                idx = torch.as_tensor(s.index, dtype=torch.long)
                t.index_copy_(s.dim, idx, t.index_select(s.dim, idx) * factor.reshape(shape).to(t.dtype))

    return hook


@dataclass(frozen=True)
class GroupLassoConfig(TechniqueConfig):
    """Sparsity-train ``epochs`` with ``penalty``, then remove channels whose norm fell below
    ``threshold`` x the group's largest (or meet ``target_macs``), then fine-tune."""

    penalty: Literal["group_lasso", "bn_l1"] = "group_lasso"
    strength: float = 1e-3
    epochs: int = 3
    lr: float = 0.02
    batch_size: int = 64
    threshold: float = 0.05
    target_macs: float | None = None
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    max_group_ratio: float = 0.9
    finetune_epochs: int = 0


@register_technique("prune.group_lasso", GroupLassoConfig)
def group_lasso_(model: nn.Module, config: GroupLassoConfig, ctx: Context) -> HandlerResult:
    """Group-lasso (or BN-L1) sparsity training, then remove the channels it zeroed."""
    if ctx.data is None:
        raise UserError("prune.group_lasso needs data (the recipe's data section)")
    if config.strength < 0 or config.epochs < 1:
        raise UserError(f"strength must be >= 0 and epochs >= 1, got {config.strength}, {config.epochs}")
    from torchslim.train import fit

    graph = build_dependency_graph(model, ctx.example_inputs)
    groups = prunable_groups(graph, config.ignore)
    fit(model, ctx.data.train, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=ctx.seed,
        schedule="constant", after_step=[proximal_step(groups, config.lr * config.strength, config.penalty)],
        progress=ctx.progress)
    with torch.no_grad():
        norms = {gid: v.sqrt().cpu().double().numpy() for gid, v in
                 channel_norms_sq(model, groups, bn_only=config.penalty == "bn_l1").items()}
    scores = {g.id: norms.get(g.id, np.ones(g.channels)) for g in groups}
    group_ratios = None
    if config.target_macs is None:
        group_ratios = {g.name: float(np.mean(scores[g.id] <= config.threshold * scores[g.id].max())) for g in groups}
    result = prune_channels_report_(model, ctx.example_inputs, 0.0, "l1", "global", config.ignore, config.round_to,
                                    config.target_macs, None, max_group_ratio=config.max_group_ratio,
                                    group_ratios=group_ratios, graph=graph, scores=scores)
    ctx.invalidate_graph()
    details = result.to_dict()
    details.update(finetune_(model, ctx, config.finetune_epochs, config.lr, config.batch_size))
    return HandlerResult(model, result.warnings, details)
