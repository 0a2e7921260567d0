"""Structural pruning: remove channels, filters and attention heads across coupled layers.

``prune_channels_(model, example_inputs, ratio=0.5, importance="l1")`` and the recipe steps
``prune.channels``, ``prune.group_lasso``, ``prune.iterative``, ``prune.sensitivity``; see docs/prune.md.
"""

from torchslim.prune.channels import (
    PruneChannelsConfig,
    PruneResult,
    prune_channels_,
    prune_channels_report_,
    select_channels,
)
from torchslim.prune.importance import CRITERIA, group_importance
from torchslim.prune.iterative import IterativePruneConfig, prune_iterative_
from torchslim.prune.lasso import GroupLassoConfig, group_lasso_, proximal_step, sparsity_penalty
from torchslim.prune.sensitivity import SensitivityConfig, plot_sensitivity, ratios_for_drop, sensitivity, sensitivity_
from torchslim.prune.surgery import remove_channels_

__all__ = [
    "CRITERIA",
    "GroupLassoConfig",
    "IterativePruneConfig",
    "PruneChannelsConfig",
    "PruneResult",
    "group_importance",
    "proximal_step",
    "prune_channels_",
    "prune_channels_report_",
    "SensitivityConfig",
    "group_lasso_",
    "plot_sensitivity",
    "prune_iterative_",
    "ratios_for_drop",
    "remove_channels_",
    "select_channels",
    "sensitivity",
    "sensitivity_",
    "sparsity_penalty",
]
