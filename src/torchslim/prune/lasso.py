"""Learn how many channels each group needs: sparsity training, then remove the zeroed channels.

Step ``prune.group_lasso``:

- ``penalty="group_lasso"`` (Alvarez & Salzmann 2016, "Learning the Number of Neurons in
  Deep Networks"): loss += strength * sum_groups sum_c ||theta_c||_2, where theta_c is every
  parameter slice of channel c in its coupled group (filters, biases, norm scales, consumer
  columns), so whole channels are driven to zero together;
- ``penalty="bn_l1"`` (Liu et al. 2017, network slimming): loss += strength * sum |gamma|
  over the BatchNorm scales of the groups.

The sparsity training is the step's nested ``finetune`` section (a
:class:`torchslim.train.TrainConfig`, default 3 epochs at a constant lr 0.02; it may distill),
with the penalty applied as a proximal step after every optimizer step (an ``after_step``
hook), which is what produces exact zeros (plain subgradients only shrink): with eta_t the
learning rate of step t, group soft-thresholding theta_c <- theta_c * max(0, 1 - eta_t *
strength / ||theta_c||), and for ``bn_l1`` gamma <- sign(gamma) * max(|gamma| - eta_t *
strength, 0). Afterwards a channel is removed when its group norm is below ``threshold`` x
the largest in its group, or, with ``target_macs``, the smallest norms go first until the
target is met. The zeroed channels carry (almost) nothing, so the removal changes little;
recover with a following ``finetune`` step if needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.finetune import finetune_
from torchslim.graph.groups import Group
from torchslim.prune.channels import plan_and_remove_
from torchslim.prune.config import ChannelChoice, PruneChannelsConfig, is_factor, require, shared_fields
from torchslim.prune.importance import is_bn_weight, tensor_of
from torchslim.prune.plan import choose_groups
from torchslim.train import steps_per_epoch
from torchslim.train.config import TrainConfig
from torchslim.train.optim import cosine_factor


def channel_norms_sq(model: nn.Module, groups: list[Group], bn_only: bool = False) -> dict[int, torch.Tensor]:
    """Differentiable ``{group id: (channels,) squared L2 norm of each channel's slices}``."""
    out = {}
    for g in groups:
        total = None
        for s in g.slices:
            if s.param.endswith(("running_mean", "running_var")):
                continue
            if bn_only and not (s.role == "affine" and is_bn_weight(model, s)):
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


def proximal_step(groups: list[Group], step: float, penalty: str,
                  schedule: Callable[[int], float] | None = None) -> Callable[..., None]:
    """``after_step`` hook: the proximal operator of eta_t x the penalty (see module doc), with
    eta_t = ``step`` x ``schedule(t)`` after optimizer step t (``schedule`` None: constant)."""

    @torch.no_grad()
    def hook(ctx) -> None:
        model = ctx.model
        eta = step * (schedule(ctx.step) if schedule is not None else 1.0)
        norms = channel_norms_sq(model, groups, bn_only=penalty == "bn_l1")
        for g in groups:
            if g.id not in norms:
                continue
            for s in g.slices:
                if s.param.endswith(("running_mean", "running_var")):
                    continue
                if penalty == "bn_l1":
                    if not (s.role == "affine" and is_bn_weight(model, s)):
                        continue
                    t = tensor_of(model, s.param)
                    t.copy_(torch.sign(t) * (t.abs() - eta).clamp_min(0))
                    continue
                shrink = (1 - eta / norms[g.id].sqrt().clamp_min(1e-12)).clamp_min(0)
                t = tensor_of(model, s.param)
                factor = shrink[torch.as_tensor(s.channel)]
                shape = [1] * t.dim()
                shape[s.dim] = -1
                idx = torch.as_tensor(s.index, dtype=torch.long)
                t.index_copy_(s.dim, idx, t.index_select(s.dim, idx) * factor.reshape(shape).to(t.dtype))

    return hook


@dataclass(frozen=True)
class GroupLassoConfig(ChannelChoice):
    """Sparsity-train per ``finetune`` with ``penalty`` x ``strength``, then remove channels whose
    norm fell below ``threshold`` x the group's largest (or meet ``target_macs``, a factor > 1)."""

    penalty: Literal["group_lasso", "bn_l1"] = "group_lasso"
    strength: float = 1e-3
    threshold: float = 0.05
    target_macs: float | None = None
    finetune: TrainConfig = TrainConfig(epochs=3, lr=0.02, schedule="constant")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, self.penalty in ("group_lasso", "bn_l1"), "penalty", "'group_lasso' or 'bn_l1'")
        require(self, self.strength >= 0, "strength", ">= 0")
        require(self, 0.0 <= self.threshold < 1.0, "threshold", "in [0, 1)")
        require(self, is_factor(self.target_macs), "target_macs", "a reduction factor > 1 (e.g. 2.0 for 2x fewer)")
        require(self, self.finetune.epochs >= 1, "finetune", "at least one epoch of sparsity training")


def _schedule(config: TrainConfig, steps: int) -> Callable[[int], float] | None:
    """The lr multiplier of ``torchslim.train.fit`` after step t (None when constant); ``steps`` per epoch."""
    if config.schedule == "constant":
        return None
    total = config.epochs * steps
    return lambda t: cosine_factor(t, total)


@register_technique("prune.group_lasso", GroupLassoConfig)
def group_lasso_(model: nn.Module, config: GroupLassoConfig, ctx: Context) -> HandlerResult:
    """Group-lasso (or BN-L1) sparsity training, then remove the channels it zeroed."""
    graph = ctx.dependency_graph(model)
    groups = choose_groups(model, graph, config)
    train = config.finetune
    steps = steps_per_epoch(model, ctx.data.train, train.batch_size, config.name) if ctx.data is not None else 0
    prox = proximal_step(groups, train.effective_lr * config.strength, config.penalty, _schedule(train, steps))
    trained = finetune_(model, train, ctx, after_step=[prox])
    with torch.no_grad():
        norms = {gid: v.sqrt().cpu().double().numpy() for gid, v in
                 channel_norms_sq(model, groups, bn_only=config.penalty == "bn_l1").items()}
    scores = {g.id: norms.get(g.id, np.ones(g.channels)) for g in groups}
    group_ratios = {}
    if config.target_macs is None:
        group_ratios = {g.name: float(np.mean(scores[g.id] <= config.threshold * scores[g.id].max())) for g in groups}
    removal = PruneChannelsConfig(**shared_fields(config, ChannelChoice), scope="global",
                                  ratio=None if config.target_macs else 0.0,
                                  target_macs=config.target_macs,
                                  group_ratios={k: min(v, config.max_group_ratio) for k, v in group_ratios.items()})
    result = plan_and_remove_(model, removal, ctx, graph=graph, scores=scores)
    details = {**result.to_dict(), "sparsity_training": trained}
    return HandlerResult(model, result.warnings, details)
