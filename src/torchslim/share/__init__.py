"""Parameter sharing: many weights read one stored parameter.

Recipe steps: ``share.hashed`` (HashedNets, Chen et al. 2015). Weight sharing by k-means
clustering is quantization and lives in :mod:`torchslim.quant.kmeans`. See docs/share.md.
"""

from torchslim.share.hashed import HashedConfig, HashedConv2d, HashedLinear, hashed_

__all__ = ["HashedConfig", "HashedConv2d", "HashedLinear", "hashed_"]
