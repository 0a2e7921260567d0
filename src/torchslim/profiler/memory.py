"""Peak activation memory by live-range analysis over the recorded aten ops (hand-written).

PyTorch has no inference-time estimator of this number that works on fake tensors
(``torch.cuda.max_memory_allocated`` needs a GPU and a real run), so this is written
here. It models an ideal memory planner that frees each tensor right after its last use:

* An activation is a tensor storage that an aten op allocates during the forward, plus
  the model's inputs. Parameters, buffers and views of them never count.
* A storage is live from the op that creates it (inputs: from the start) to the last op
  that reads it or a view of it; the model's outputs stay live to the end.
* Views and in-place ops allocate nothing (they reuse their input's storage); the op
  schema's alias annotations say which outputs those are.
* ``peak_bytes`` is the largest sum of live storage sizes over op steps, the step's
  inputs and outputs both counted.

So the estimate excludes kernel scratch space and allocator rounding, and eager PyTorch,
which frees a tensor only when its last Python reference dies, can hold more.
While recording, every activation is kept referenced (so storage addresses stay unique):
free under fake tensors, but a real-execution fallback holds all of them until the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef


@dataclass
class _Range:
    nbytes: int
    first: int
    last: int


class LiveRanges:
    """Collects storage live ranges, one ``step`` per aten op."""

    def __init__(self) -> None:
        self._ranges: dict[StorageWeakRef, _Range] = {}
        self._external: set[StorageWeakRef] = set()
        # Strong references keep storages alive so a freed storage's address (the key)
        # cannot be reused by a later allocation while we record.
        self._keep_alive: list[torch.Tensor] = []
        self._step = 0

    @staticmethod
    def _tensors(tree: Any) -> Iterable[torch.Tensor]:
        if isinstance(tree, torch.Tensor):
            yield tree
        elif isinstance(tree, (tuple, list)):
            for item in tree:
                yield from LiveRanges._tensors(item)
        elif isinstance(tree, dict):
            for item in tree.values():
                yield from LiveRanges._tensors(item)

    def add_inputs(self, inputs: Any) -> None:
        """Model inputs: activations live from step 0."""
        for t in self._tensors(inputs):
            key = StorageWeakRef(t.untyped_storage())
            if key not in self._ranges:
                self._ranges[key] = _Range(t.untyped_storage().nbytes(), 0, 0)
                self._keep_alive.append(t)

    def step(self, args: Any, out: Any, aliases: tuple[bool, ...] = ()) -> None:
        """One aten op: ``args`` are read at this step, new storages in ``out`` born here.

        ``aliases[i]`` says whether return ``i`` is a view of / writes into an input (the
        op schema's alias annotation): such an output allocates nothing, and if its
        storage is not an activation it belongs to a weight (a fake tensor's view of a
        real parameter has a storage of its own, hence the annotation, not the key).
        """
        self._step += 1
        for t in self._tensors(args):
            key = StorageWeakRef(t.untyped_storage())
            record = self._ranges.get(key)
            if record is not None:
                record.last = self._step
            elif key not in self._external:
                self._external.add(key)  # parameter, buffer or constant
                self._keep_alive.append(t)
        returns = out if isinstance(out, tuple) and len(out) == len(aliases) else (out,)
        for index, item in enumerate(returns):
            aliasing = aliases[index] if index < len(aliases) else False
            for t in self._tensors(item):
                storage = t.untyped_storage()
                key = StorageWeakRef(storage)
                record = self._ranges.get(key)
                if record is not None:
                    record.last = self._step
                elif key in self._external:
                    continue
                elif aliasing:
                    self._external.add(key)
                    self._keep_alive.append(t)
                else:
                    self._ranges[key] = _Range(storage.nbytes(), self._step, self._step)
                    self._keep_alive.append(t)

    def add_outputs(self, outputs: Any) -> None:
        """Model outputs stay live to the end."""
        end = self._step + 1
        for t in self._tensors(outputs):
            record = self._ranges.get(StorageWeakRef(t.untyped_storage()))
            if record is not None:
                record.last = end

    def peak_bytes(self) -> int:
        """Maximum over steps of the bytes of all live activation storages."""
        delta = [0] * (self._step + 3)
        for r in self._ranges.values():
            delta[r.first] += r.nbytes
            delta[r.last + 1] -= r.nbytes
        peak = live = 0
        for d in delta:
            live += d
            peak = max(peak, live)
        return peak

    def close(self) -> None:
        """Drop the references held while recording."""
        self._keep_alive.clear()
