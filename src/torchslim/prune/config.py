"""What a structural-pruning step may be told: the fields its configs share, and ``prune.channels``'s.

Every step that removes channels (``prune.channels``, ``prune.iterative``,
``prune.group_lasso``, ``prune.sensitivity``) chooses groups the same way
(:class:`ChannelChoice`); the steps that score channels also share :class:`ScoredChoice`.
Values are checked here, in ``__post_init__``, and nowhere else (a recipe gets a one-line
error naming the step and the field).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from torchslim.core.config import TechniqueConfig
from torchslim.prune.importance import CRITERIA
from torchslim.train.config import TrainConfig

Importance = Literal["l1", "l2", "bn_scale", "taylor", "fisher", "fpgm", "random"]


def require(config: Any, ok: bool, name: str, rule: str) -> None:
    """``ValueError("field 'name' must be <rule>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"field '{name}' must be {rule}, got {getattr(config, name)!r}")


def is_factor(value: float | None) -> bool:
    """A reduction target: None, or a factor > 1 (2.0 = 2x fewer)."""
    return value is None or value > 1.0


@dataclass(frozen=True)
class ChannelChoice(TechniqueConfig):
    """Which groups may shrink, and how far.

    ``ignore``: layer names / ``re:`` patterns whose output channels are kept (a pattern that
    matches no layer is an error). ``include_inexact``: also prune groups whose removal is not
    exact because a normalisation shares statistics across their channels (a LayerNorm'd
    embedding width); off by default, fine-tune after turning it on. ``round_to``: kept
    channels per group are a multiple of it (SIMD-friendly widths). ``max_group_ratio``: no
    group loses more than this fraction.
    """

    keeps_layer_names: ClassVar[bool] = True  # layers keep their names (no containers)

    ignore: tuple[str, ...] = ()
    include_inexact: bool = False
    round_to: int = 1
    max_group_ratio: float = 0.9

    def __post_init__(self) -> None:
        require(self, not isinstance(self.round_to, bool) and isinstance(self.round_to, int) and self.round_to >= 1,
                "round_to", "a positive integer")
        require(self, 0.0 < self.max_group_ratio < 1.0, "max_group_ratio", "in (0, 1)")


@dataclass(frozen=True)
class ScoredChoice(ChannelChoice):
    """Plus how channels are ranked: ``importance`` (see :mod:`torchslim.prune.importance`);
    ``num_batches`` of 32 training examples for the data-driven ``taylor`` / ``fisher``."""

    importance: Importance = "l1"
    num_batches: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, self.importance in CRITERIA, "importance", "one of " + ", ".join(CRITERIA))
        require(self, self.num_batches >= 1, "num_batches", ">= 1")

    def needs_data(self) -> str | None:
        return f"importance '{self.importance}'" if self.importance in ("taylor", "fisher") else None


def shared_fields(config: ChannelChoice, base: type[ChannelChoice]) -> dict[str, Any]:
    """The values of ``base``'s fields in ``config`` (to build a :class:`PruneChannelsConfig`)."""
    return {f.name: getattr(config, f.name) for f in fields(base)}


@dataclass(frozen=True)
class PruneChannelsConfig(ScoredChoice):
    """Remove channels (filters, neurons, heads) across coupled layers, then fine-tune.

    ``ratio``: fraction of each group's channels (``scope: uniform``) or of all channels ranked
    together after dividing each group's scores by its mean (``scope: global``) to remove
    (None: 0.5); with ``target_macs`` / ``target_params`` (reduction factors > 1, e.g. 2.0),
    which bisect the ratio on the graph's analytic count, a ratio given too is ignored with a
    warning. ``group_ratios``: per-group
    ratios by group name (e.g. from ``prune.sensitivity``), overriding ``ratio``.
    ``finetune``: recovery training (:class:`torchslim.train.TrainConfig`, e.g.
    ``{epochs: 2, distill: kd}``); none by default.
    """

    ratio: float | None = None
    scope: Literal["uniform", "global"] = "uniform"
    target_macs: float | None = None
    target_params: float | None = None
    group_ratios: dict[str, float] = field(default_factory=dict)
    finetune: TrainConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, self.ratio is None or 0.0 <= self.ratio < 1.0, "ratio", "in [0, 1)")
        require(self, self.scope in ("uniform", "global"), "scope", "'uniform' or 'global'")
        for name in ("target_macs", "target_params"):
            require(self, is_factor(getattr(self, name)), name, "a reduction factor > 1 (e.g. 2.0 for 2x fewer)")
        require(self, all(0.0 <= r < 1.0 for r in self.group_ratios.values()), "group_ratios", "ratios in [0, 1)")

    @property
    def ratio_or_default(self) -> float:
        """``ratio``, or 0.5 when not given."""
        return 0.5 if self.ratio is None else self.ratio
