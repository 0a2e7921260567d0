"""Deep Compression (Han et al. 2015, 2016) and relatives: unstructured magnitude pruning,
trained weight sharing, the compressed file, CLIP-Q and HashedNets.

Recipe steps: ``deepcomp.prune``, ``deepcomp.share``, ``deepcomp.encode``, ``deepcomp.clipq``,
``deepcomp.hash``, ``deepcomp.sparse_linear``. The file format lives in :mod:`torchslim.codec`.
"""

from torchslim.deepcomp import clipq, encode, hashed, prune, share, sparse_linear  # noqa: F401  (registers the techniques)
from torchslim.deepcomp.hashed import HashedConv2d, HashedLinear

__all__ = ["HashedConv2d", "HashedLinear"]
