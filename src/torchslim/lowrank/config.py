"""``FactorizeConfig``: the fields every decomposition step shares (``lowrank.svd``,
``lowrank.tucker``, ``lowrank.cp``, ``lowrank.spatial``), validated in ``__post_init__`` only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torchslim.core.config import TechniqueConfig
from torchslim.core.limits import check_threads
from torchslim.core.select import LAYER_KINDS
from torchslim.train.config import TrainConfig

RankMethod = Literal["energy", "fraction", "rank", "vbmf", "macs"]


def check_layer_types(layer_types: tuple[str, ...]) -> None:
    """``layer_types`` (``lowrank.svd``, ``lowrank.regularize``): a non-empty list of layer kinds."""
    if not layer_types or any(t not in LAYER_KINDS for t in layer_types):
        raise ValueError(f"field 'layer_types' must list {' and/or '.join(map(repr, LAYER_KINDS))}, "
                         f"got {list(layer_types)}")


@dataclass(frozen=True)
class FactorizeConfig(TechniqueConfig):
    """How ranks are chosen, which layers are candidates, when a factorized layer is kept.

    ``rank_method`` (see :mod:`torchslim.lowrank.ranks`): "energy" keeps the smallest rank
    holding ``energy`` of the squared singular values; "fraction" keeps
    ``ceil(rank_fraction * full_rank)``; "rank" uses ``rank`` for every layer; "vbmf" the
    analytic empirical VBMF estimate (Nakajima et al. 2013); "macs" meets ``target_macs``,
    a reduction factor > 1 (2.0: half the MACs) of each layer (``scope: layer``) or of the
    selected layers together (``scope: model``, greedy allocation by weight error per MAC saved).

    ``latency_check``: time each candidate layer against its factorized form (eager, on an
    input of its real shape with ``latency_batch_size`` rows, ``latency_threads`` intra-op
    threads, interleaved: :func:`torchslim.core.timing.compare_interleaved`) and keep the
    factorized form only when at least ``min_speedup`` times faster. ``decisions`` pins that
    choice per layer name (true: factorize, false: leave alone) without timing, so a rerun on
    another machine builds the same model; the step details' ``decisions`` hold what was
    measured. ``finetune``: train the whole model afterwards (nested :class:`TrainConfig`,
    e.g. ``{epochs: 1, distill: kd}``); None trains nothing.
    """

    rank_method: RankMethod = "energy"
    energy: float = 0.95
    rank_fraction: float = 0.5
    rank: int = 8
    target_macs: float = 2.0
    scope: Literal["layer", "model"] = "model"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    latency_check: bool = True
    latency_batch_size: int | None = None
    latency_threads: int | None = None
    min_speedup: float = 1.0
    decisions: dict[str, bool] = field(default_factory=dict)
    finetune: TrainConfig | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.energy <= 1.0:
            raise ValueError(f"field 'energy' must be in (0, 1], got {self.energy}")
        if not 0.0 < self.rank_fraction <= 1.0:
            raise ValueError(f"field 'rank_fraction' must be in (0, 1], got {self.rank_fraction}")
        if not self.target_macs > 1.0:
            raise ValueError(f"field 'target_macs' must be a reduction factor > 1 (2.0: half the MACs), "
                             f"got {self.target_macs}")
        if self.rank < 1:
            raise ValueError(f"field 'rank' must be >= 1, got {self.rank}")
        if not self.min_speedup > 0:
            raise ValueError(f"field 'min_speedup' must be > 0, got {self.min_speedup}")
        for key in ("latency_batch_size", "latency_threads"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"field '{key}' must be >= 1, got {getattr(self, key)}")
        check_threads(self, "latency_threads")
