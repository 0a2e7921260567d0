"""The explicit allow-list of aten ops that do no arithmetic (hand-written).

Views, layout changes, copies, concatenation, indexing, padding, nearest-neighbour
upsampling, tensor creation and inference-time dropout cost 0 flops (their memory traffic
shows in the activation estimate instead). Ops that can do arithmetic in some overload
(``scatter`` with a reduce, ``index_put`` with accumulate) are deliberately absent, so
they surface in ``uncounted_ops``. ``IGNORED`` ops are metadata queries, not
computations: they are neither counted nor reported.
"""

from __future__ import annotations

from typing import Any

import torch

from torchslim.profiler.formulas import MAC_FORMULAS, OTHER_FORMULAS, packets

_ZERO_COST_NAMES = (
    # views and layout
    "view", "_unsafe_view", "reshape", "_reshape_alias", "view_as", "permute", "transpose",
    "t", "expand", "expand_as", "squeeze", "unsqueeze", "flatten", "unflatten", "alias",
    "as_strided", "slice", "select", "narrow", "diagonal", "unfold", "movedim", "split",
    "split_with_sizes", "unsafe_split", "chunk", "unbind", "detach", "lift_fresh",
    "view_as_real", "view_as_complex", "_local_scalar_dense",
    # copies and data movement
    "clone", "copy", "copy_", "_to_copy", "contiguous", "lift_fresh_copy", "cat", "stack",
    "repeat", "tile", "roll", "flip", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "replication_pad1d", "replication_pad2d", "index", "_unsafe_index",
    "index_select", "gather", "embedding", "slice_scatter", "select_scatter",
    "masked_select", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    "native_channel_shuffle", "upsample_nearest1d", "upsample_nearest2d",
    "upsample_nearest3d", "_upsample_nearest_exact2d", "tril", "triu",
    # creation
    "empty", "empty_strided", "empty_like", "zeros", "zeros_like", "ones", "ones_like",
    "full", "full_like", "new_empty", "new_empty_strided", "new_zeros", "new_ones",
    "new_full", "fill", "fill_", "zero_", "arange", "scalar_tensor", "_to_dense",
    # dropout is the identity at inference
    "dropout", "native_dropout", "feature_dropout", "alpha_dropout",
)
ZERO_COST: frozenset[Any] = frozenset(packets(_ZERO_COST_NAMES))

# Metadata queries that are not computations at all: never counted, never reported.
IGNORED: frozenset[Any] = frozenset(
    packets(
        ["size", "sym_size", "stride", "sym_stride", "storage_offset", "sym_storage_offset",
         "numel", "sym_numel", "dim", "is_contiguous", "sym_is_contiguous", "is_same_size",
         "is_strides_like_format", "is_non_overlapping_and_dense"]
    )
    + [torch.ops.prim.device, torch.ops.prim.layout]
)


def has_formula(packet: Any) -> bool:
    """True if ``packet`` is costed (MACs or other flops) or known to cost nothing."""
    return packet in MAC_FORMULAS or packet in OTHER_FORMULAS or packet in ZERO_COST
