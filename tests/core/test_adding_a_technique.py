"""docs/adding-a-technique.md's example is executed: it registers a new name and works
through the Python convention, compress() and a recipe with a nested finetune section."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import torch
from torch import nn

from tests.conftest import small_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-technique.md"


def _first_code_block() -> str:
    return re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)


def test_the_documented_example_registers_a_new_technique_and_runs(monkeypatch):
    from torchslim import compress
    from torchslim.core.context import Context
    from torchslim.core.registry import TECHNIQUES, techniques
    from torchslim.data import load_dataset
    from torchslim.profiler.snapshot import MeasureConfig
    from torchslim.recipes.schema import parse_recipe

    techniques()  # the built-ins first: the example must not collide with any of them
    monkeypatch.setattr(TECHNIQUES, "_entries", dict(TECHNIQUES._entries))
    assert "example.round_fp16" not in TECHNIQUES
    module = types.ModuleType("adding_a_technique_doc")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    exec(compile(_first_code_block(), str(DOC), "exec", dont_inherit=True), namespace)  # noqa: S102 - our own doc
    assert "example.round_fp16" in TECHNIQUES

    model, x = small_model("lenet5")
    ctx = Context((x[:1],))
    out = namespace["round_fp16_"](model, namespace["RoundFP16Config"](exclude=("classifier.4",)), ctx)
    assert out is model and ctx.results[-1].details["rounded"][:2] == ["features.0", "features.3"]
    fc = model.get_submodule("features.0").weight
    assert torch.equal(fc, fc.half().float())
    last = model.get_submodule("classifier.4").weight
    assert not torch.equal(last, last.half().float())  # excluded: untouched

    data = load_dataset("digits", image_size=28)
    fresh, _ = small_model("lenet5")
    result = compress(fresh, [("example.round_fp16", {"finetune": {"epochs": 1, "distill": "kd"}})], data=data,
                      measure=MeasureConfig(runtimes=()), progress=False)
    step = result.report.steps[0]
    assert step.details["distill"] == "kd" and len(step.details["train_loss"]) == 1
    assert all(torch.equal(m.weight, m.weight.half().float())
               for m in result.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    recipe = parse_recipe({"model": "zoo:lenet5", "data": "digits",
                           "steps": [{"example.round_fp16": {"finetune": {"epochs": 2}}}]})
    assert recipe.steps[0].finetune.epochs == 2
