"""lowrank.regularize: nuclear-norm training through the one fine-tune helper, its nested
``finetune:`` section, and what it costs."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import small_model
from tests.lowrank.conftest import run_step, tiny_data
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.lowrank import RegularizeConfig, regularize_
from torchslim.lowrank.regularize import nuclear_norm, regularized_layers


@pytest.mark.parametrize("mode", ["proximal", "penalty"])
def test_regularizer_lowers_the_nuclear_norm_against_plain_training(mode):
    """Same seed, data and schedule: strength > 0 ends with a smaller sum of nuclear norms than 0."""
    norms, details = {}, {}
    for strength in (0.0, 0.5):
        model, x = small_model("lenet300")
        config = RegularizeConfig.from_dict({"strength": strength, "mode": mode, "finetune": {"epochs": 2}})
        with torch.enable_grad():
            result = run_step(regularize_, model, x, Context((x,), data=tiny_data(x), seed=0, progress=False),
                              **config.to_dict())
        norms[strength] = float(nuclear_norm([m.weight for _, m in regularized_layers(model, config)]))
        details[strength] = result.details
    assert norms[0.5] < 0.9 * norms[0.0]
    assert set(details[0.5]["layers"]) == {"1", "3", "5"}
    assert details[0.5]["regularizer_seconds"] > 0 and 0 < details[0.5]["regularizer_time_fraction"] < 1
    assert details[0.5]["finetune"]["lr"] == 0.05 and len(details[0.5]["finetune"]["train_loss"]) == 2


def test_regularize_without_data_is_a_user_error():
    model, x = small_model("lenet300")
    with pytest.raises(UserError, match="data"):
        regularize_(model, None, Context((x,)))


def test_regularize_training_fields_are_the_nested_finetune_section():
    config = RegularizeConfig.from_dict({"finetune": {"epochs": 1}})
    assert (config.finetune.epochs, config.finetune.lr, config.finetune.weight_decay) == (1, 0.05, 5e-4)
    for fields, message in [({"epochs": 3}, "unknown field 'epochs'"), ({"finetune": {"epochs": 0}}, "finetune.epochs")]:
        with pytest.raises(UserError, match=message):
            RegularizeConfig.from_dict(fields)
