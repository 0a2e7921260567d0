"""prune_channels_: selection, targets, criteria against naive references, round trips."""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import torchslim
from torchslim.core import Context
from torchslim.data.splits import DataSplits
from torchslim.errors import UserError
from torchslim.graph import build_dependency_graph
from torchslim.profiler import profile_model
from torchslim.prune import PruneChannelsConfig, group_importance, prune_channels_
from torchslim.zoo import create_model

from tests.conftest import small_model

sys.path.insert(0, str(Path(__file__).parent))
from prune_oracle import toy  # noqa: E402

X32 = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def splits(ds: TensorDataset) -> DataSplits:
    x = ds.tensors[0]
    return DataSplits(name="toy", train=ds, val=ds, test=ds, num_classes=3, input_shape=tuple(x.shape[1:]),
                      class_names=("a", "b", "c"), mean=(0.0,), std=(1.0,), pixel_scale=1.0)


def prune(model: nn.Module, x: torch.Tensor, **fields) -> tuple[nn.Module, dict]:
    """prune.channels through its public wrapper; returns the model and the step details."""
    ctx = Context((x,))
    model = prune_channels_(model, fields, ctx)
    return model, ctx.results[-1].details


def test_uniform_ratio_halves_every_group_of_resnet20():
    model, _ = prune(create_model("resnet20").eval(), X32, ratio=0.5)
    assert model.conv1.out_channels == 8
    assert model.layer2[0].conv1.out_channels == 16 and model.layer2[0].conv1.in_channels == 8
    assert model.layer3[2].conv2.out_channels == 32 and model.fc.in_features == 32
    assert model.layer2[0].bn1.num_features == 16
    assert model(X32).shape == (1, 10)


@pytest.mark.parametrize("ratio, expected", [(0.3, 16), (0.6, 8), (0.99, 8)])
def test_round_to_rounds_kept_channels_up(ratio, expected):
    model, _ = prune(create_model("resnet20").eval(), X32, ratio=ratio, round_to=8, max_group_ratio=0.95)
    assert model.layer1[0].conv1.out_channels == expected


def test_target_macs_is_met_and_measured_by_the_profiler():
    base = create_model("resnet20").eval()
    before = profile_model(base, X32).macs
    pruned, details = prune(copy.deepcopy(base), X32, importance="l1", target_macs=2.0)
    after = profile_model(pruned, X32).macs
    assert after == details["macs_after"]
    assert 2.0 <= before / after < 2.3


def test_target_params_and_global_scope():
    base = create_model("vgg11", image_size=32).eval()
    before = sum(p.numel() for p in base.parameters())
    pruned, _ = prune(base, X32, scope="global", target_params=3.0)
    after = sum(p.numel() for p in pruned.parameters())
    assert 3.0 <= before / after < 3.6


def test_ignore_keeps_output_channels():
    model, _ = prune(create_model("resnet20").eval(), X32, ratio=0.5, ignore=("layer1.0.conv1", "re:layer3\\..*"))
    assert model.layer1[0].conv1.out_channels == 16
    assert model.layer1[1].conv1.out_channels == 8
    assert model.layer3[1].conv1.out_channels == 64


@pytest.mark.parametrize("fields, match", [
    ({"ratio": 1.5}, "field 'ratio' must be in"), ({"importance": "magic"}, "importance"),
    ({"target_macs": 0.5}, "field 'target_macs' must be a reduction factor > 1"),
    ({"target_macs": 1000.0}, "not reachable"), ({"round_to": 0}, "field 'round_to'"), ({"scope": "local"}, "scope"),
    ({"importance": "taylor"}, "needs data"), ({"ignore": ["features.9"]}, "field 'ignore': 'features.9' matches no"),
    ({"group_ratios": {"featurs.0": 0.5}}, "field 'group_ratios': 'featurs.0' matches no group .*features.0"),
    ({"num_batches": 0}, "field 'num_batches'"), ({"finetune": {"lrr": 1}}, "finetune: unknown field 'lrr'"),
])
def test_user_errors_are_one_line(fields, match):
    with pytest.raises(UserError, match=match) as info:
        prune(create_model("lenet5").eval(), torch.randn(1, 1, 28, 28), **fields)
    assert "\n" not in str(info.value)


def test_config_validation_lives_in_the_config():
    with pytest.raises(ValueError, match="field 'max_group_ratio' must be in \\(0, 1\\)"):
        PruneChannelsConfig(max_group_ratio=1.0)
    with pytest.raises(ValueError, match="field 'target_params'"):
        PruneChannelsConfig(target_params=1.0)


class TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.bn, self.b = nn.Conv2d(2, 4, 1, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.b(F.relu(self.bn(self.a(x)))).mean((2, 3))


def _scores(model, criterion, **kw):
    graph = build_dependency_graph(model, (torch.randn(1, 2, 4, 4),))
    (group,) = graph.groups
    return group_importance(model, [group], criterion, **kw)[group.id]


def test_l1_l2_bn_scale_fpgm_against_hand_values():
    model = TwoConv().eval()
    w = torch.tensor([[1.0, 1.0], [3.0, -1.0], [0.0, 0.5], [-2.0, 2.0]])
    model.a.weight.data = w[:, :, None, None]
    model.bn.weight.data = torch.tensor([0.5, -2.0, 1.0, 0.1])
    np.testing.assert_allclose(_scores(model, "l1"), [2.0, 4.0, 0.5, 4.0])
    np.testing.assert_allclose(_scores(model, "l2"), np.sqrt([2.0, 10.0, 0.25, 8.0]))
    np.testing.assert_allclose(_scores(model, "bn_scale"), [0.5, 2.0, 1.0, 0.1])
    np.testing.assert_allclose(_scores(model, "fpgm"), torch.cdist(w, w).sum(1).numpy(), rtol=1e-6)
    removed, _ = prune(copy.deepcopy(model), torch.randn(1, 2, 4, 4), ratio=0.5, importance="l1")
    torch.testing.assert_close(removed.a.weight.flatten(1), w[[1, 3]])


def test_taylor_and_fisher_equal_the_gate_gradient_reference():
    torch.manual_seed(0)
    model = TwoConv().eval()
    x, y = torch.randn(6, 2, 4, 4), torch.randint(0, 3, (6,))
    data = TensorDataset(x, y)

    def gate_grad(xb, yb):  # dL/dm for a gate m = 1 multiplying the BN output (Molchanov 2019)
        m = torch.ones(1, 4, 1, 1, requires_grad=True)
        out = model.b(F.relu(model.bn(model.a(xb)) * m)).mean((2, 3))
        (g,) = torch.autograd.grad(F.cross_entropy(out, yb), m)
        return g.flatten().double().numpy()

    np.testing.assert_allclose(_scores(model, "taylor", data=data, batch_size=6, num_batches=1),
                               gate_grad(x, y) ** 2, rtol=1e-5)
    fisher = sum(gate_grad(x[i:i + 1], y[i:i + 1]) ** 2 for i in range(6)) / 12  # 1/(2N) sum_n g_n^2
    np.testing.assert_allclose(_scores(model, "fisher", data=data, batch_size=6, num_batches=1), fisher, rtol=1e-5)


@pytest.mark.parametrize("name", ["mobilenetv2", "shufflenetv2", "vit", "densenet"])
def test_pruned_model_saves_loads_and_exports_to_onnx(name, tmp_path):
    import onnxruntime as ort

    model, x = small_model(name)
    prune(model, x[:1], target_macs=2.0 if name != "vit" else 1.5, round_to=2)
    torchslim.save(model, tmp_path / "m")
    loaded = torchslim.load(tmp_path / "m").eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    from torchslim.profiler import export_onnx

    export_onnx(model, (x[:1],), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    out = session.run(None, {session.get_inputs()[0].name: x[:1].numpy()})[0]
    np.testing.assert_allclose(out, model(x[:1]).detach().numpy(), atol=1e-4, rtol=1e-4)


def test_vit_head_pruning_updates_num_heads():
    model, x = toy("heads")
    prune(model, x, ratio=0.5)
    assert model.num_heads == 2 and model.q.out_features == 8 and model.proj.in_features == 8
    zoo, xz = small_model("vit")
    prune(zoo, xz, ratio=0.5)
    assert zoo.blocks[0].attn.num_heads == 2 and zoo.blocks[0].attn.q.in_features == 64


def test_recipe_step_through_compress():
    from torchslim import compress
    from torchslim.profiler.snapshot import MeasureConfig

    result = compress(create_model("resnet20"), [("prune.channels", {"target_macs": 2.0, "round_to": 2})],
                      example_inputs=X32, measure=MeasureConfig(runtimes=()), progress=False)
    step = result.report.steps[0]
    assert step.details["macs_reduction"] >= 2.0
    assert step.before.macs / step.after.macs >= 2.0
    assert step.after.macs == step.details["macs_after"]


class FrozenStem(nn.Module):
    """A training model whose stem BatchNorm is frozen in eval mode (a common fine-tuning setup)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.body, self.head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(F.relu(self.bn(self.conv(x)))).mean((2, 3)))


@pytest.mark.parametrize("importance", ["l1", "taylor"])
def test_each_module_keeps_its_own_train_mode(importance):
    # Before: capture, importance and the check forward ended in model.train(was_training),
    # which put the frozen BN back into training mode.
    model = FrozenStem().train()
    model.bn.eval()
    x = torch.randn(4, 3, 8, 8)
    ctx = Context((x[:1],), data=splits(TensorDataset(x, torch.randint(0, 3, (4,)))))
    prune_channels_(model, {"ratio": 0.5, "importance": importance}, ctx)
    assert model.conv.out_channels == 4
    assert model.training and model.body.training and not model.bn.training


class ConstantWidth(nn.Module):
    """Reads its channel count from a constant: pruning ``a`` cannot be seen in the graph."""

    def __init__(self):
        super().__init__()
        self.a, self.fc = nn.Conv2d(3, 8, 1), nn.Linear(8, 2)

    def forward(self, x):
        y = self.a(x)
        return self.fc(y.reshape(y.size(0), 8, -1).mean(-1))


def test_a_pruned_model_that_no_longer_runs_is_a_one_line_error_naming_the_module():
    with pytest.raises(UserError, match="pruned model no longer runs in 'fc' .*'ignore'") as info:
        prune(ConstantWidth().eval(), torch.randn(1, 3, 4, 4), ratio=0.5)
    assert "\n" not in str(info.value) and isinstance(info.value.__cause__, RuntimeError)
    model, _ = prune(ConstantWidth().eval(), torch.randn(1, 3, 4, 4), ratio=0.5, ignore=["a"])
    assert model.a.out_channels == 8
