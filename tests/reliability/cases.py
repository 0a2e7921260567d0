"""The bad-input catalogue: one row per mistake, table-driven (see harness.py for what each
row asserts). Issue 18's own examples are rows; this map names them (example -> case id):

Section 1, validate catches what run would reject:
  ``ratio: 1.5`` -> prune-ratio-1.5 / ``.nan`` -> prune-ratio-nan;
  folder data without image_size -> data-folder-no-image-size; unknown model kwargs -> model-kwarg-unknown;
  finetune without data -> finetune-no-data; quant.ptq without data -> ptq-no-data;
  ``measure.threads: 100000`` -> measure-threads-100000; ``image_size: 4096`` -> data-image-size-4096;
  ``epochs: 10**12`` -> train-epochs-1e12; run calls the same validation -> run-* rows.
Section 2, never a traceback: deepcomp/codec.encode path that is a directory -> codec-path-is-dir,
  api-codec-path-is-dir; torch's symbolic-shapes dump on a failed capture -> api-capture-fails-one-line
  and (fallback, no error) test_catalogue.py::test_capture_fallback_prints_no_torch_dump.
Section 3, nothing silently wrong: ``ignore: [classifer.0]`` -> prune-ignore-typo; include -> svd-include-typo;
  exclude -> fold-exclude-typo, ptq-exclude-typo; hint_layer -> finetune-hint-layer-typo; YAML duplicate
  keys -> yaml-duplicate-key; ``batch_norm: maybe`` -> model-batch-norm-maybe, api-create-model-maybe;
  NaN learning rate -> finetune-lr-nan, api-train-config-lr-nan.
  Capped / overridden / no-effect settings (warnings, not errors; test_catalogue.py WARNING_CASES):
  ``ratio: 0.999`` capped -> warn-ratio-capped; ratio next to target_macs -> warn-ratio-and-target;
  round_to that prunes nothing -> warn-round-to-prunes-nothing; overshoots target_macs -> warn-round-to-overshoot.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from harness import Api, Cli, recipe

import torchslim
from torchslim.core import Context

LENET = "model: zoo:lenet5\n"
DATA = "data: mnist5k\n"


def step(text: str, data: bool = False) -> str:
    """A recipe of LeNet-5 and one step (``text`` is the step's YAML flow mapping)."""
    return LENET + (DATA if data else "") + f"steps:\n  - {text}\n"


RECIPE_CASES = [
    # the file itself
    recipe("yaml-malformed", "model: zoo:lenet5\nsteps: [\n", "malformed YAML at line 3"),
    recipe("yaml-duplicate-key", "model: zoo:lenet5\nmodel: zoo:resnet20\nsteps: []\n",
           "duplicate key 'model' at line 2"),
    recipe("yaml-duplicate-nested-key", step("prune.channels: {ratio: 0.3, ratio: 0.6}"), "duplicate key 'ratio'"),
    recipe("yaml-not-a-mapping", "- model\n- steps\n", "a recipe is a mapping"),
    recipe("section-unknown", "modle: zoo:lenet5\n", "unknown section 'modle'"),
    recipe("section-model-missing", "steps: []\n", "missing section 'model'"),
    recipe("seed-float", LENET + "seed: 1.5\n", "field 'seed' must be an integer"),
    recipe("allow-large-not-bool", LENET + "allow_large: maybe\n", "field 'allow_large' must be true or false"),
    recipe("steps-not-a-list", LENET + "steps: {fold.bn: {}}\n", "steps: expected a list"),
    recipe("step-two-keys", LENET + "steps:\n  - {fold.bn: {}, prune.channels: {}}\n",
           "steps[1]: a step is a technique"),
    recipe("technique-unknown", step("fold.bm: {}"), "steps[1]: unknown technique 'fold.bm'"),
    recipe("field-unknown", step("fold.bn: {exlude: [x]}"), "steps[1] (fold.bn): unknown field 'exlude'"),
    recipe("field-wrong-type", step("fold.bn: {exclude: 3}"), "field 'exclude' must be"),
    # model
    recipe("model-unknown", "model: zoo:resnet2000\n", "unknown model 'zoo:resnet2000'"),
    recipe("model-kwarg-unknown", "model: {name: zoo:lenet5, kwargs: {widht: 2}}\n", "unknown argument 'widht'"),
    recipe("model-batch-norm-maybe", "model: {name: zoo:lenet5, kwargs: {batch_norm: maybe}}\n",
           "argument 'batch_norm' must be true or false, got 'maybe'"),
    recipe("model-width-mult-bad", "model: {name: zoo:vgg11, kwargs: {width_mult: -1}}\n", "width_mult"),
    recipe("model-nothing-to-build", "model: {kwargs: {}}\n", "model: give one of 'name' (zoo model), 'builder'"),
    recipe("model-checkpoint-not-saved", "model: {checkpoint: nowhere}\n", "is not a saved torchslim model"),
    # data
    recipe("data-unknown", LENET + "data: mnist6k\n", "unknown dataset 'mnist6k'"),
    recipe("data-npz-missing", LENET + "data: npz:missing.npz\n", "missing.npz' does not exist"),
    recipe("data-folder-no-image-size", LENET + "data: folder:{tmp}\n",
           "field 'image_size' is needed with folder data"),
    recipe("data-image-size-4096", LENET + "data: {name: mnist5k, image_size: 4096}\n",
           "data: field 'image_size' is 4096, above the maximum 1024 (set 'allow_large: true'"),
    recipe("data-image-size-0", LENET + "data: {name: mnist5k, image_size: 0}\n", "field 'image_size' must be >= 1"),
    # train and finetune
    recipe("train-epochs-1e12", LENET + DATA + "train: {epochs: 1000000000000}\n",
           "train: field 'epochs' is 1000000000000, above the maximum 10000"),
    recipe("train-no-data", LENET + "train: {epochs: 1}\n", "train: needs a 'data' section"),
    recipe("train-distill", LENET + DATA + "train: {distill: kd}\n", "train: field 'distill'"),
    recipe("train-batch-size-huge", LENET + DATA + "train: {batch_size: 1000000000}\n",
           "field 'batch_size' is 1000000000, above the maximum 4096"),
    recipe("train-momentum", LENET + DATA + "train: {momentum: 1.5}\n", "field 'momentum' must be in [0, 1)"),
    recipe("finetune-no-data", step("finetune: {epochs: 1}"), "steps[1] (finetune): training needs a 'data' section"),
    recipe("nested-finetune-no-data", step("prune.channels: {finetune: {epochs: 1}}"),
           "steps[1] (prune.channels): finetune: training needs a 'data' section"),
    recipe("finetune-lr-nan", step("finetune: {lr: .nan}", data=True), "field 'lr' must be a finite number, got nan"),
    recipe("finetune-lr-inf", step("finetune: {lr: .inf}", data=True), "field 'lr' must be a finite number, got inf"),
    recipe("nested-finetune-epochs-huge", step("prune.channels: {finetune: {epochs: 99999999}}", data=True),
           "steps[1] (prune.channels): finetune: field 'epochs' is 99999999, above the maximum 10000"),
    recipe("nested-finetune-field-typo", step("prune.channels: {finetune: {lrr: 0.1}}", data=True),
           "steps[1] (prune.channels): finetune: unknown field 'lrr'"),
    recipe("finetune-fitnets-no-hint", step("finetune: {distill: fitnets}", data=True), "field 'hint_layer' must be"),
    recipe("finetune-hint-layer-typo", step("finetune: {distill: fitnets, hint_layer: featurs.3}", data=True),
           "field 'hint_layer': 'featurs.3' matches no layer (close matches: features.3"),
    recipe("finetune-feature-layer-typo", step("finetune: {distill: adversarial, feature_layer: 'clasifier.0:input'}",
                                               data=True), "field 'feature_layer': 'clasifier.0' matches no layer"),
    # pruning
    recipe("prune-ratio-1.5", step("prune.channels: {ratio: 1.5}"),
           "steps[1] (prune.channels): field 'ratio' must be in [0, 1)"),
    recipe("prune-ratio-nan", step("prune.channels: {ratio: .nan}"), "field 'ratio' must be a finite number, got nan"),
    recipe("prune-ratio-negative", step("prune.channels: {ratio: -0.1}"), "field 'ratio' must be in [0, 1)"),
    recipe("prune-target-below-1", step("prune.channels: {target_macs: 0.5}"),
           "field 'target_macs' must be a reduction factor > 1"),
    recipe("prune-ignore-typo", step("prune.channels: {ignore: [classifer.0]}"),
           "field 'ignore': 'classifer.0' matches no layer (close matches: classifier.0"),
    recipe("prune-round-to-0", step("prune.channels: {round_to: 0}"), "field 'round_to' must be a positive integer"),
    recipe("prune-taylor-no-data", step("prune.channels: {importance: taylor}"),
           "importance 'taylor' needs a 'data' section"),
    recipe("prune-importance-unknown", step("prune.channels: {importance: l3}"), "field 'importance' must be one of"),
    recipe("prune-max-group-ratio-1", step("prune.channels: {max_group_ratio: 1.0}"),
           "field 'max_group_ratio' must be in (0, 1)"),
    recipe("prune-group-ratio-bool", step("prune.channels: {group_ratios: {features.0: yes}}"),
           "field 'group_ratios' entry 'features.0' must be a number, got True"),
    recipe("ptq-include-bad-regex", step("quant.ptq: {include: ['re:conv[']}", data=True),
           "field 'include': 're:conv[' is not a valid regular expression"),
    recipe("magnitude-include-typo", step("prune.magnitude: {include: [featurs]}", data=True),
           "field 'include': 'featurs' matches no layer"),
    recipe("sensitivity-no-data", step("prune.sensitivity: {}"),
           "steps[1] (prune.sensitivity): scoring each ratio needs an accuracy evaluation"),
    recipe("iterative-steps-huge", step("prune.iterative: {steps: 100000, finetune: {epochs: 0}}"),
           "field 'steps' is 100000, above the maximum 1000"),
    # quantization
    recipe("ptq-no-data", step("quant.ptq: {}"), "steps[1] (quant.ptq): calibration needs a 'data' section"),
    recipe("qat-no-data", step("quant.qat: {finetune: {epochs: 0}}"),
           "steps[1] (quant.qat): calibration needs a 'data' section"),
    recipe("ptq-exclude-typo", step("quant.ptq: {exclude: [classifier.9]}", data=True),
           "field 'exclude': 'classifier.9' matches no layer"),
    recipe("ptq-percentile", step("quant.ptq: {percentile: 10}", data=True), "field 'percentile' must be in (50, 100]"),
    recipe("ptq-num-samples-huge", step("quant.ptq: {num_samples: 10000000}", data=True),
           "field 'num_samples' is 10000000, above"),
    recipe("binary-no-data", step("quant.binary: {finetune: {epochs: 0}}"),
           "steps[1] (quant.binary): training needs a 'data' section"),
    # low-rank
    recipe("svd-include-typo", step("lowrank.svd: {include: [classifier.O]}"),
           "field 'include': 'classifier.O' matches no layer"),
    recipe("svd-latency-threads", step("lowrank.svd: {latency_threads: 100000}"),
           "field 'latency_threads' must be at most this machine's"),
    recipe("svd-decisions-typo", step("lowrank.svd: {decisions: {classifier.9: true}}"),
           "field 'decisions': 'classifier.9' matches no layer"),
    recipe("svd-decisions-not-bool", step("lowrank.svd: {decisions: {classifier.0: maybe}}"),
           "field 'decisions' entry 'classifier.0' must be true or false"),
    recipe("svd-energy", step("lowrank.svd: {energy: 1.5}"), "field 'energy' must be in (0, 1]"),
    recipe("svd-layer-types", step("lowrank.svd: {layer_types: [lstm]}"), "field 'layer_types'"),
    # other steps
    recipe("fold-exclude-typo", step("fold.bn: {exclude: [features.9]}"),
           "field 'exclude': 'features.9' matches no layer"),
    recipe("codec-path-is-dir", step("codec.encode: {path: '{tmp}'}"), "field 'path': '"),
    recipe("codec-index-bits", step("codec.encode: {index_bits: 17}"), "must be in 1..16"),
    recipe("kmeans-layer-bits-typo", step("quant.kmeans: {layer_bits: {features.9: 4}, finetune: {epochs: 0}}"),
           "field 'layer_bits': 'features.9' matches no layer"),
    recipe("codec-path-unwritable", step("codec.encode: {path: /proc/torchslim-test.tsc}"),
           "step 1 (codec.encode): field 'path': cannot write '/proc/torchslim-test.tsc'", "run", None),
    recipe("kmeans-include-typo", step("quant.kmeans: {include: [re:conv.*], finetune: {epochs: 0}}"),
           "field 'include': 're:conv.*' matches no layer"),
    # measure and eval
    recipe("measure-threads-100000", LENET + "measure: {threads: 100000}\n",
           "measure: field 'threads' must be at most this machine's"),
    recipe("measure-batch-size-0", LENET + "measure: {batch_sizes: [0]}\n",
           "field 'batch_sizes' must hold integers >= 1"),
    recipe("measure-batch-size-huge", LENET + "measure: {batch_sizes: [1, 100000]}\n",
           "measure: field 'batch_sizes' is 100000, above"),
    recipe("measure-runtime-unknown", LENET + "measure: {runtimes: [tensorrt]}\n", "unknown runtime 'tensorrt'"),
    recipe("eval-split", LENET + DATA + "eval: {split: train}\n", "eval: field 'split' must be one of"),
    recipe("eval-batch-size-huge", LENET + DATA + "eval: {batch_size: 1000000}\n",
           "eval: field 'batch_size' is 1000000, above"),
    # run: the same validation first, nothing in --out touched
    recipe("run-ratio-1.5", step("prune.channels: {ratio: 1.5}"), "field 'ratio' must be in [0, 1)", command="run"),
    recipe("run-ignore-typo", step("prune.channels: {ignore: [classifer.0]}"),
           "'classifer.0' matches no layer", command="run"),
    recipe("run-threads", LENET + "measure: {threads: 100000}\n", "field 'threads' must be at most", command="run"),
    recipe("run-duplicate-key", "model: zoo:lenet5\nmodel: zoo:resnet20\n", "duplicate key 'model'", command="run"),
]

CLI_CASES = [
    Cli("cli-recipe-missing", ("validate", "{tmp}/missing.yaml"), "no such recipe file"),
    Cli("cli-recipe-not-text", ("validate", "{tmp}/r.bin"), "not a text file", {"r.bin": b"\xff\xfe\x00model"}),
    Cli("cli-override-no-equals", ("validate", "{tmp}/r.yaml", "train.epochs"), "expected key=value",
        {"r.yaml": LENET}),
    Cli("cli-override-bad-value", ("validate", "{tmp}/r.yaml", "train.epochs=x"),
        "train: field 'epochs' must be an integer",
        {"r.yaml": LENET + DATA + "train: {epochs: 1}\n"}),
    Cli("cli-override-huge", ("validate", "{tmp}/r.yaml", "train.epochs=100000"), "field 'epochs' is 100000, above",
        {"r.yaml": LENET + DATA + "train: {epochs: 1}\n"}),
    Cli("cli-run-out-is-file", ("run", "{tmp}/r.yaml", "--out", "{tmp}/r.yaml"),
        "output path exists and is not a directory",
        {"r.yaml": LENET}),
    Cli("cli-profile-unknown-model", ("profile", "zoo:resnet2000"), "unknown model 'zoo:resnet2000'"),
    Cli("cli-profile-bad-shape", ("profile", "lenet5", "--input-shape", "a,b"), "--input-shape 'a,b'"),
]


def _lenet(tmp_path: Path | None = None) -> torch.nn.Module:
    return torchslim.create_model("zoo:lenet5")


class DataDependent(torch.nn.Module):
    """A forward whose control flow depends on values: torch.export cannot capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if y.sum() > 0:
            y = y * 2
        return self.fc(y.mean((2, 3)))


def _prune(model: torch.nn.Module, fields: dict, inputs: tuple = ()) -> torch.nn.Module:
    from torchslim.prune import prune_channels_

    ctx = Context(inputs or (torch.randn(1, 1, 28, 28),))
    return prune_channels_(model, fields, ctx)


def _digits() -> torch.utils.data.Dataset:
    return torch.utils.data.TensorDataset(torch.randn(8, 1, 28, 28), torch.arange(8) % 10)


def _save_lenet(tmp_path: Path) -> None:
    torchslim.save(_lenet(), tmp_path / "saved")


def _encode_into_saved(tmp_path: Path) -> None:
    from torchslim.codec.encode import EncodeConfig

    torchslim.compress(_lenet(), [EncodeConfig(path=str(tmp_path / "saved"))], measure=_NO_LATENCY)


def _no_latency():  # noqa: ANN202
    from torchslim.profiler.snapshot import MeasureConfig

    return MeasureConfig(runtimes=())


_NO_LATENCY = _no_latency()


def _config(module: str, name: str, *args: object, **fields: object) -> object:
    """``module.name(*args, **fields)``, imported when the case runs."""
    import importlib

    return getattr(importlib.import_module(module), name)(*args, **fields)


API_CASES = [
    Api("api-prune-config-ratio-1.5", lambda t: _config("torchslim.prune", "PruneChannelsConfig", ratio=1.5),
        "field 'ratio' must be in [0, 1)"),
    Api("api-prune-config-ratio-nan", lambda t: _config("torchslim.prune", "PruneChannelsConfig", ratio=math.nan),
        "field 'ratio' must be a finite number"),
    Api("api-prune-config-ignore-type", lambda t: _config("torchslim.prune", "PruneChannelsConfig", ignore=3),
        "field 'ignore' must be"),
    Api("api-train-config-lr-nan", lambda t: _config("torchslim.train.config", "TrainConfig", lr=math.nan),
        "field 'lr' must be a finite number"),
    Api("api-train-config-epochs-str", lambda t: _config("torchslim.train.config", "TrainConfig", epochs="3"),
        "field 'epochs' must be an integer"),
    Api("api-measure-threads", lambda t: _config("torchslim.profiler.snapshot", "MeasureConfig", threads=100000),
        "field 'threads' must be at most this machine's"),
    Api("api-measure-latency-threads", lambda t: torchslim.measure_latency(_lenet(), torch.zeros(1, 1, 28, 28),
                                                                         threads=100000),
        "threads must be an int from 1 to this machine's"),
    Api("api-create-model-maybe", lambda t: torchslim.create_model("zoo:lenet5", batch_norm="maybe"),
        "argument 'batch_norm' must be true or false"),
    Api("api-create-model-unknown-kwarg", lambda t: torchslim.create_model("zoo:lenet5", widht=2),
        "unknown argument 'widht'"),
    Api("api-prune-mapping-nan", lambda t: _prune(_lenet(), {"ratio": math.nan}),
        "prune.channels: field 'ratio' must be a finite"),
    Api("api-prune-ignore-typo", lambda t: _prune(_lenet(), {"ignore": ["classifer.0"]}),
        "field 'ignore': 'classifer.0' matches no layer (close matches: classifier.0"),
    Api("api-compress-steps-not-list", lambda t: torchslim.compress(_lenet(), "fold.bn"), "steps must be a list"),
    Api("api-compress-ignore-typo",
        lambda t: torchslim.compress(_lenet(), [("prune.channels", {"ignore": ["classifer.0"]})], measure=_NO_LATENCY),
        "'classifer.0' matches no layer"),
    Api("api-compress-finetune-no-data", lambda t: torchslim.compress(_lenet(), [("finetune", {"epochs": 1})]),
        "steps[1] (finetune): training needs a 'data' section"),
    Api("api-compress-ptq-no-data", lambda t: torchslim.compress(_lenet(), ["quant.ptq"]),
        "steps[1] (quant.ptq): calibration needs a 'data' section"),
    Api("api-compress-epochs-huge", lambda t: torchslim.compress(_lenet(), [("finetune", {"epochs": 10**12})],
                                                                data={"train": _digits()}),
        "field 'epochs' is 1000000000000, above the maximum 10000 (pass allow_large=True"),
    Api("api-compress-measure-huge", lambda t: torchslim.compress(
        _lenet(), [], measure=_config("torchslim.profiler.snapshot", "MeasureConfig", batch_sizes=(10**6,))),
        "measure: field 'batch_sizes' is 1000000, above"),
    Api("api-sensitivity-no-test-split", lambda t: torchslim.compress(
        _lenet(), ["prune.sensitivity"], data={"train": _digits()}, measure=_NO_LATENCY),
        "steps[1] (prune.sensitivity): scoring each ratio needs an accuracy evaluation (data with a test split"),
    Api("api-codec-path-is-dir", _encode_into_saved, "field 'path': '", setup=_save_lenet),
    Api("api-capture-fails-one-line", lambda t: _prune(DataDependent(), {}, (torch.randn(1, 1, 8, 8),)),
        "torch.export could not capture DataDependent: Could not guard on data-dependent expression"),
    Api("api-select-layers-bad-regex", lambda t: _config("torchslim.core.select", "select_layers", _lenet(),
                                                         include=["re:conv("]),
        "'re:conv(' is not a valid regular expression"),
    Api("api-load-missing", lambda t: torchslim.load(t / "nothing"), "nothing"),
    Api("api-example-inputs-type", lambda t: torchslim.compress(_lenet(), [], example_inputs="x"),
        "example_inputs must be a tensor"),
]
