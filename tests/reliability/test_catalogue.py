"""Every user mistake in the catalogue (cases.py) is one line and exit code 2 / a UserError,
with no traceback and nothing the user had changed; every setting that is capped, overridden
or has no effect says so in the step's warnings, and the details record what was applied."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # harness.py, cases.py (tests use importlib mode)

from cases import API_CASES, CLI_CASES, RECIPE_CASES, DataDependent  # noqa: E402
from cases_others import OTHER_API_CASES, OTHER_CLI_CASES  # noqa: E402
from harness import check_api, check_cli  # noqa: E402

import torchslim  # noqa: E402
from torchslim.core import Context  # noqa: E402


def test_catalogue_is_large_and_ids_unique():
    ids = [c.id for c in RECIPE_CASES + CLI_CASES + API_CASES + OTHER_CLI_CASES + OTHER_API_CASES]
    assert len(ids) == len(set(ids)) and len(ids) + len(WARNING_CASES) >= 60


@pytest.mark.parametrize("case", RECIPE_CASES + CLI_CASES + OTHER_CLI_CASES, ids=lambda c: c.id)
def test_cli_mistake_is_one_line_exit_2(case, tmp_path, capsys):
    check_cli(case, tmp_path, capsys)


@pytest.mark.parametrize("case", API_CASES + OTHER_API_CASES, ids=lambda c: c.id)
def test_python_mistake_is_one_line_user_error(case, tmp_path, capsys):
    check_api(case, tmp_path, capsys)


def _prune_report(name: str, fields: dict) -> tuple[list[str], dict]:
    from torchslim.prune import prune_channels_

    model = torchslim.create_model(name)
    ctx = Context((torch.zeros(1, *model._torchslim_origin["input_shape"]),))
    prune_channels_(model, fields, ctx)
    return ctx.results[-1].warnings, ctx.results[-1].details


# (case id, zoo model, prune.channels fields, warning text, details that record what was applied)
WARNING_CASES = [
    ("warn-ratio-capped", "zoo:lenet5", {"ratio": 0.999},
     "ratio 0.999 capped by max_group_ratio 0.9", {"ratio": 0.9}),
    ("warn-ratio-and-target", "zoo:resnet20", {"ratio": 0.3, "target_macs": 2.0},
     "ratio 0.3 ignored: target_macs set the ratio", {"ratio": 0.3125}),
    ("warn-round-to-prunes-nothing", "zoo:resnet20", {"ratio": 0.1, "round_to": 8},
     "no channel removed: round_to 8 rounds every group back up", {"macs_reduction": 1.0, "removed_channels": {}}),
    ("warn-round-to-overshoot", "zoo:resnet20", {"target_macs": 2.0, "round_to": 8},
     "target_macs 2.0 asked, 3.96x done", {"macs_reduction": 3.957}),
]


@pytest.mark.parametrize("case", WARNING_CASES, ids=lambda c: c[0])
def test_capped_or_ignored_setting_is_a_warning_and_recorded(case):
    _, name, fields, warning, applied = case
    warnings, details = _prune_report(name, fields)
    assert any(warning in w for w in warnings), warnings
    assert {k: details[k] for k in applied} == applied


def test_plain_settings_give_no_such_warning():
    warnings, details = _prune_report("zoo:resnet20", {"target_macs": 2.0})
    assert not [w for w in warnings if "ignored" in w or "capped" in w or "asked" in w or "no channel" in w]
    assert 2.0 <= details["macs_reduction"] < 2.2


def test_capture_fallback_prints_no_torch_dump(capfd):
    """fold.bn falls back when torch.export cannot capture: a warning, not pages of torch's logs."""
    from torchslim.fold.bn import fold_bn_

    ctx = Context((torch.randn(1, 1, 8, 8),))
    fold_bn_(DataDependent().eval(), {}, ctx)
    out, err = capfd.readouterr()
    assert "torch.export could not capture DataDependent" in ctx.results[-1].warnings[0]
    assert err == "" and out == ""


def test_a_folder_named_like_a_builtin_recipe_does_not_shadow_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # what `torchslim demo --out demo` leaves behind
    from torchslim.cli.main import main

    assert main(["validate", "demo"]) == 0
    assert "ok (" in capsys.readouterr().out


def test_batchnorm_last_batch_of_one_is_skipped_with_a_warning():
    from torchslim.train import fit

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    data = torch.utils.data.TensorDataset(torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1]))
    with pytest.warns(UserWarning, match="skipping a training batch of 1 example"):
        fit(model, data, epochs=1, batch_size=4, progress=False)
