"""Structural pruning: remove channels, filters and attention heads across coupled layers.

Structural steps ``prune.channels``, ``prune.group_lasso``, ``prune.iterative``,
``prune.sensitivity``, each also a Python call ``prune_channels_(model, PruneChannelsConfig(...), ctx)``
(config or mapping; what it did in ``ctx.results[-1]``); see docs/prune.md.
"""

from torchslim.prune.channels import prune_channels_
from torchslim.prune.config import PruneChannelsConfig
from torchslim.prune.importance import CRITERIA, group_importance
from torchslim.prune.iterative import IterativePruneConfig, prune_iterative_
from torchslim.prune.lasso import GroupLassoConfig, group_lasso_, proximal_step, sparsity_penalty
from torchslim.prune.magnitude import PruneMagnitudeConfig, prune_magnitude_
from torchslim.prune.plan import select_channels
from torchslim.prune.sensitivity import SensitivityConfig, plot_sensitivity, ratios_for_drop, sensitivity_
from torchslim.prune.sparse_linear import SparseLinear, SparseLinearConfig, sparse_linear_
from torchslim.prune.surgery import remove_channels_

__all__ = [
    "CRITERIA",
    "GroupLassoConfig",
    "IterativePruneConfig",
    "PruneChannelsConfig",
    "PruneMagnitudeConfig",
    "group_importance",
    "proximal_step",
    "prune_channels_",
    "prune_magnitude_",
    "SensitivityConfig",
    "SparseLinear",
    "SparseLinearConfig",
    "group_lasso_",
    "plot_sensitivity",
    "prune_iterative_",
    "ratios_for_drop",
    "remove_channels_",
    "select_channels",
    "sensitivity_",
    "sparse_linear_",
    "sparsity_penalty",
]
