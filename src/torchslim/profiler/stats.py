"""Result records of the profiler and their renderings (hand-written dataclasses).

``to_dict()`` is the canonical JSON-serialisable form; ``table()`` is a plain-text
rendering of it for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LayerStats:
    """Costs charged to one module: the ops run directly in its ``forward``, children excluded.

    ``params`` counts the module's own parameters (``recurse=False``): a tensor tied
    between two layers shows in both rows but once in ``ModelStats.params``.
    ``output_shape`` is the shape of the (first) output tensor of the first call.
    """

    name: str
    module_type: str
    params: int
    macs: int
    other_flops: dict[str, int]
    uncounted_ops: dict[str, int]
    output_shape: tuple[int, ...] | None
    calls: int

    @property
    def flops(self) -> int:
        """2 x ``macs``: one multiply and one add per multiply-accumulate."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module_type": self.module_type,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "other_flops": dict(self.other_flops),
            "uncounted_ops": dict(self.uncounted_ops),
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "calls": self.calls,
        }


@dataclass(frozen=True)
class ModelStats:
    """What ``profile_model`` measures for one model and one input.

    - ``params``: parameter elements, tied tensors once.
    - ``macs``: multiply-accumulates of conv, linear/matmul and attention; ``flops`` is
      2 x ``macs``. Biases, norms, activations, pooling, softmax are not in them but in
      ``other_flops`` (flops by category, formulas in ``formulas.py``).
    - ``uncounted_ops``: aten ops that ran but have no formula (op name -> calls).
    - ``peak_activation_bytes``: live-range estimate, see ``memory.py``.
    - ``size_bytes``: exact size of the state dict saved as safetensors.
    - ``execution``: "fake" (shapes only, no arithmetic) or "real" (fallback for models
      whose forward needs data, e.g. ``.item()``).
    """

    params: int
    macs: int
    other_flops: dict[str, int]
    uncounted_ops: dict[str, int]
    layers: list[LayerStats]
    peak_activation_bytes: int
    size_bytes: int
    input_shapes: list[tuple[int, ...]]
    execution: str
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def flops(self) -> int:
        """2 x ``macs``: one multiply and one add per multiply-accumulate."""
        return 2 * self.macs

    @property
    def other_flops_total(self) -> int:
        """Sum of ``other_flops`` over categories."""
        return sum(self.other_flops.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (plain ints, strings, lists, dicts)."""
        return {
            "schema_version": self.schema_version,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "other_flops": dict(self.other_flops),
            "uncounted_ops": dict(self.uncounted_ops),
            "peak_activation_bytes": self.peak_activation_bytes,
            "size_bytes": self.size_bytes,
            "input_shapes": [list(s) for s in self.input_shapes],
            "execution": self.execution,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def table(self, *, max_layers: int | None = None) -> str:
        """Summary lines plus one row per layer (the first ``max_layers`` if given)."""
        shapes = ", ".join("x".join(map(str, s)) for s in self.input_shapes)
        lines = [
            f"input {shapes}: {human(self.params)} params, {human(self.macs, 'MACs')} "
            f"({human(self.flops, 'FLOPs')}) + {human(self.other_flops_total, 'FLOPs')} other, "
            f"size {human(self.size_bytes, 'B')}, peak activations "
            f"{human(self.peak_activation_bytes, 'B')}",
        ]
        if self.other_flops:
            parts = ", ".join(f"{k} {human(v)}" for k, v in sorted(self.other_flops.items()))
            lines.append(f"other FLOPs: {parts}")
        if self.uncounted_ops:
            parts = ", ".join(f"{k} x{v}" for k, v in sorted(self.uncounted_ops.items()))
            lines.append(f"uncounted ops (no formula): {parts}")
        rows = [("layer", "type", "params", "MACs", "other FLOPs", "output")]
        layers = self.layers if max_layers is None else self.layers[:max_layers]
        for layer in layers:
            shape = "" if layer.output_shape is None else "x".join(map(str, layer.output_shape))
            rows.append(
                (
                    layer.name or "(root)",
                    layer.module_type,
                    human(layer.params),
                    human(layer.macs),
                    human(sum(layer.other_flops.values())),
                    shape,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [
                cell.ljust(w) if i < 2 or i == 5 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths))
            ]
            lines.append("  ".join(cells).rstrip())
        if max_layers is not None and len(self.layers) > max_layers:
            lines.append(f"... {len(self.layers) - max_layers} more layers")
        return "\n".join(lines)


def human(n: float, unit: str = "") -> str:
    """1234567, "B" -> '1.23 MB' (SI prefixes, 3 significant digits); 12 -> '12'."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()
