"""Deep Compression (Han et al. 2015, 2016) and relatives: unstructured magnitude pruning,
trained weight sharing, the compressed file, CLIP-Q and HashedNets.

Recipe steps: ``deepcomp.prune``, ``deepcomp.share``, ``deepcomp.encode``.
"""

from torchslim.deepcomp import encode, prune, share  # noqa: F401  (registers the techniques)
