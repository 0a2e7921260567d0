from dataclasses import dataclass
from typing import Literal

import pytest

from torchslim.core.config import TechniqueConfig, from_mapping
from torchslim.errors import UserError


@dataclass(frozen=True)
class Cfg(TechniqueConfig):
    ratio: float = 0.5
    steps: int = 1
    mode: Literal["uniform", "global"] = "uniform"
    ignore: tuple[str, ...] = ()
    target: float | None = None
    verbose: bool = False


def test_valid_mapping_builds_config_with_coercions():
    cfg = Cfg.from_dict({"ratio": 1, "ignore": "fc", "mode": "global", "target": 2})
    assert cfg == Cfg(ratio=1.0, ignore=("fc",), mode="global", target=2.0)
    assert isinstance(cfg.ratio, float)
    assert cfg.to_dict() == {"ratio": 1.0, "steps": 1, "mode": "global", "ignore": ["fc"], "target": 2.0,
                             "verbose": False}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"ratoi": 0.3}, "x.yaml: step 2: unknown field 'ratoi' (known fields: ignore, mode, ratio, steps, target, verbose)"),
        ({"steps": 1.5}, "x.yaml: step 2: field 'steps' must be an integer, got 1.5"),
        ({"steps": True}, "field 'steps' must be an integer"),
        ({"ratio": "half"}, "field 'ratio' must be a number"),
        ({"mode": "local"}, "field 'mode' must be one of 'uniform', 'global', got 'local'"),
        ({"verbose": "yes"}, "field 'verbose' must be true or false"),
        ({"ignore": {"a": 1}}, "field 'ignore' must be a list"),
        ({"target": "x"}, "field 'target' must be float or null"),
    ],
)
def test_errors_name_the_place_and_field(values, message):
    with pytest.raises(UserError) as info:
        from_mapping(Cfg, values, "x.yaml: step 2")
    assert message in str(info.value)


def test_non_mapping_is_rejected():
    with pytest.raises(UserError, match="expected a mapping"):
        from_mapping(Cfg, [1, 2], "here")
