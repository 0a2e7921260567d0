"""Exact re-parameterisations: folding BatchNorm into the preceding Conv/Linear."""

from torchslim.fold.bn import FoldBNConfig, fold_bn_

__all__ = ["FoldBNConfig", "fold_bn_"]
