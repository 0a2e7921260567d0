import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.fold.bn import fold_bn_
from torchslim.quant import PTQConfig, QuantizedActivation, QuantizedConv2d, QuantizedLinear, ptq_
from torchslim.quant.onnx_check import FLOAT_COMPUTE_OPS, INTEGER_OPS
from torchslim.quant.plan import build_plan


def _ctx(x: torch.Tensor, n: int = 64, seed: int = 0, **kw) -> Context:
    gen = torch.Generator().manual_seed(seed)
    data = SimpleNamespace(train=TensorDataset(torch.randn(n, *x.shape[1:], generator=gen), torch.zeros(n)),
                           val=None)
    return Context((x[:1],), data=data, **kw)


def _ptq(model: nn.Module, config: PTQConfig, ctx: Context):
    """quant.ptq through its public function; the step's HandlerResult."""
    assert ptq_(model, config, ctx) is model
    return ctx.results[-1]


def _sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    return 10 * torch.log10(ref.pow(2).sum() / (ref - out).pow(2).sum()).item()


def test_quantized_conv_matches_hand_simulation():
    conv = nn.Conv2d(2, 3, 3, padding=1).eval()
    torch.manual_seed(0)
    x = torch.randn(4, 2, 6, 6)
    model = nn.Sequential(conv, nn.ReLU())
    ref_model = copy.deepcopy(model)
    ptq_(model, PTQConfig(latency_check=False, observer="minmax", export_onnx=False), _ctx(x))
    q = model[0]
    assert isinstance(q, QuantizedConv2d) and q.activation == "relu" and isinstance(model[1], nn.Identity)
    assert q.weight_int8.dtype == torch.int8
    # hand simulation: minmax ranges of the calibration data, per-channel symmetric weights
    calib = _ctx(x).data.train.tensors[0]
    lo, hi = min(calib.min().item(), 0.0), max(calib.max().item(), 0.0)
    s_in = (hi - lo) / 255
    z_in = round(-lo / s_in)
    assert q.input_scale.item() == pytest.approx(s_in, rel=1e-6) and q.input_zero_point.item() == z_in
    w = ref_model[0].weight.detach()
    s_w = w.abs().amax(dim=(1, 2, 3)) / 127
    w_q = torch.clamp(torch.round(w / s_w[:, None, None, None]), -127, 127) * s_w[:, None, None, None]
    x_q = (torch.clamp(torch.round(x / s_in) + z_in, 0, 255) - z_in) * s_in
    y = torch.relu(nn.functional.conv2d(x_q, w_q, ref_model[0].bias, padding=1))
    s_out = q.output_scale.item()
    y_q = torch.clamp(torch.round(y / s_out), 0, 255) * s_out
    torch.testing.assert_close(model(x), y_q, atol=s_out * 1.01, rtol=0)  # at most one step apart (ties)
    assert (model(x) - y_q).abs().gt(s_out / 2).float().mean() < 0.01


def test_plan_fuses_relu_and_shares_grid_through_maxpool():
    model, x = small_model("lenet5")
    plan = build_plan(model, Context((x[:1],)).module_graph(model))
    assert plan.layers["features.0"].activation_module == "features.1"
    quantized = set(plan.layers)
    sources = plan.input_sources(quantized)
    assert sources["features.0"] is None  # model input: own parameters
    assert sources["features.3"] == "features.0"  # conv -> relu -> maxpool -> conv: same grid
    assert sources["classifier.0"] == "features.3"  # through maxpool + flatten
    ptq_(model, PTQConfig(latency_check=False, export_onnx=False), _ctx(x))
    assert model.features[3].input_scale.item() == model.features[0].output_scale.item()


@pytest.mark.parametrize("name,floor_db", [("lenet5", 30.0), ("resnet20", 25.0), ("mobilenetv2", 25.0)])
def test_ptq_output_sqnr_floor(name, floor_db):
    model, x = small_model(name)
    reference = model(x)
    result = _ptq(model, PTQConfig(latency_check=False, export_onnx=False), _ctx(x))
    assert _sqnr(reference, model(x)) > floor_db
    assert all(v > 15.0 for v in result.details["sqnr_db"].values()), result.details["sqnr_db"]
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert n_layers == 0
    assert result.details["quantized_layers"] == sum(
        isinstance(m, (QuantizedConv2d, QuantizedLinear)) for m in model.modules())


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_int8_onnx_runs_on_integer_kernels(name, tmp_path):
    model, x = small_model(name)
    ctx = _ctx(x, out_dir=tmp_path)
    result = _ptq(model, PTQConfig(latency_check=False), ctx)
    d = result.details
    assert d["onnx_exporter"] == "torchscript" and result.warnings == []
    ops = d["ort_ops"]
    convs = sum(isinstance(m, QuantizedConv2d) for m in model.modules())
    linears = sum(isinstance(m, QuantizedLinear) for m in model.modules())
    assert ops.get("QLinearConv", 0) == convs  # every conv runs u8 x s8 in ONNX Runtime
    assert ops.get("QGemm", 0) == linears
    assert not any(op in FLOAT_COMPUTE_OPS for op in ops), ops
    if name == "resnet20":
        assert ops.get("QLinearAdd", 0) == 9  # residual adds run in integer too
    assert (tmp_path / "quant_ptq_int8.onnx").exists()
    # ORT's integer result is eager's simulation up to rounding of intermediate requantization
    out_scale = [m for m in model.modules() if isinstance(m, QuantizedLinear)][-1].output_scale.item()
    assert d["onnx_max_abs_error_vs_eager"] <= 4 * out_scale + 0.05 * model(x[:1]).abs().max().item()


def test_int8_model_size_and_save_load_round_trip(tmp_path):
    from torchslim.profiler import profile_model
    from torchslim.serialize import load, save

    model, x = small_model("resnet20")
    before = profile_model(model, x[:1])
    ptq_(model, PTQConfig(latency_check=False, export_onnx=False), _ctx(x))
    after = profile_model(model, x[:1])
    assert after.params == before.params - sum(  # BN folded: gamma/beta gone, conv biases added
        m.weight.numel() + m.bias.numel() - m.num_features
        for m in small_model("resnet20")[0].modules() if isinstance(m, nn.BatchNorm2d))
    assert after.size_bytes < 0.3 * before.size_bytes  # int8 weights + float scales/biases
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert any(isinstance(m, QuantizedActivation) for m in loaded.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(loaded(x), model(x))


def test_missing_data_is_a_user_error_naming_the_step():
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match="quant.ptq needs calibration data"):
        ptq_(model, PTQConfig(latency_check=False), Context((x,)))


def test_mixed_precision_keeps_worst_sqnr_layer_float():
    model, x = small_model("lenet5")

    def eval_fn(m):  # accuracy recovers once one layer is back in float
        n_float = sum(isinstance(c, (nn.Conv2d, nn.Linear)) for c in m.modules())
        return 0.99 if n_float == 0 else 1.0 if n_float >= 1 else 0.0

    result = _ptq(model, PTQConfig(latency_check=False, max_accuracy_drop=0.3, export_onnx=False), _ctx(x, eval_fn=eval_fn))
    d = result.details
    sqnr = d["sqnr_db"]
    assert d["float_layers"] == [min(sqnr, key=sqnr.get)]
    assert isinstance(model.get_submodule(d["float_layers"][0]), (nn.Conv2d, nn.Linear))
    assert d["quantized_layers"] == len(sqnr) - 1


@pytest.mark.parametrize("name", ["vit", "lenet300"])
def test_dynamic_int8_linear_runs_on_integer_matmuls(name, tmp_path):
    from torchslim.quant import DynamicConfig, DynamicQuantizedLinear, dynamic_

    model, x = small_model(name)
    reference = model(x)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    ctx = Context((x[:1],), out_dir=tmp_path)
    dynamic_(model, DynamicConfig(), ctx)
    result = ctx.results[-1]
    assert sum(isinstance(m, DynamicQuantizedLinear) for m in model.modules()) == n_linear
    assert _sqnr(reference, model(x)) > 30.0
    ops = result.details["ort_ops"]
    # every Linear becomes DynamicQuantizeMatMul or MatMulIntegerToFloat (u8 x s8 -> int32)
    assert ops.get("DynamicQuantizeMatMul", 0) + ops.get("MatMulIntegerToFloat", 0) == n_linear
    assert result.details["onnx_max_abs_error_vs_eager"] < 1e-4  # eager simulates ORT's arithmetic


def test_ptq_step_through_compress_reports_int8_size_and_ort_latency(tmp_path):
    from torchslim.pipeline import compress
    from torchslim.data import load_data
    from torchslim.profiler.snapshot import MeasureConfig

    data = load_data("mnist5k")
    model, _ = small_model("lenet5")
    # every layer pinned int8 (the recipe's `decisions`): the latency check times nothing
    pinned = dict.fromkeys(["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"], True)
    result = compress(model, ["fold.bn", ("quant.ptq", {"num_samples": 128, "decisions": pinned})], data=data,
                      progress=False, measure=MeasureConfig(runtimes=("onnxruntime",)), out_dir=tmp_path)
    step = result.report.steps[-1]
    assert step.details["speed_check"]["trials"] == [] and step.details["float_for_speed"] == {}
    assert step.after.size_bytes < 0.3 * step.before.size_bytes
    assert step.after.params == step.before.params and step.after.macs == step.before.macs
    assert step.after.latency[0].runtime == "onnxruntime"
    assert step.details["ort_float_compute_ops"] == 0 and (tmp_path / "quant_ptq_int8.onnx").exists()
    assert abs(step.after.accuracy - step.before.accuracy) < 0.05  # untrained net: outputs near chance


def test_capture_readers_after_ptq_see_the_quantized_model():
    """quant.ptq replaces modules without telling the Context; a capture cached by id(model) alone
    (the old ``ctx.graph``) kept showing the float model to the next reader on the same ctx."""
    model, x = small_model("lenet5")
    ctx = _ctx(x)
    before = ctx.module_graph(model)
    assert [n.name for n in before.calls("features.1")] == ["features.1"]  # the float ReLU
    ptq_(model, PTQConfig(latency_check=False, export_onnx=False), ctx)
    after = ctx.module_graph(model)
    assert after is not before
    assert after.calls("features.1") == []  # fused into the conv: an Identity runs no op
    assert isinstance(model.get_submodule(after.calls("features.0")[0].target), QuantizedConv2d)
    fold_bn_(model, None, ctx)  # another capture reader on the same ctx: nothing to fold, no stale pairs
    assert ctx.results[-1].details["folded"] == []


def test_module_called_twice_stays_float_with_a_warning():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.conv(torch.relu(self.conv(x))).mean((2, 3)))

    model = Shared().eval()
    x = torch.randn(2, 3, 8, 8)
    ctx = _ctx(x)
    result = _ptq(model, PTQConfig(latency_check=False, export_onnx=False), ctx)
    assert type(model.conv) is nn.Conv2d and isinstance(model.head, QuantizedLinear)
    assert result.warnings == ["conv: called more than once, left in float"]


def test_untraceable_model_is_the_one_line_export_error():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else self.fc(-x)

    with pytest.raises(UserError, match="^torch.export could not capture Dynamic") as info:
        ptq_(Dynamic().eval(), PTQConfig(latency_check=False, export_onnx=False), _ctx(torch.rand(2, 4)))
    assert "\n" not in str(info.value)


def test_config_errors_name_the_field():
    with pytest.raises(UserError, match=r"quant.ptq: field 'max_accuracy_drop' must be >= 0 \(top-1 points\)"):
        PTQConfig.from_dict({"max_accuracy_drop": -1.0}, where="quant.ptq")
    with pytest.raises(UserError, match="field 'calibration_batch_size' must be >= 1"):
        PTQConfig.from_dict({"calibration_batch_size": 0}, where="quant.ptq")


def test_model_with_nothing_to_quantize_is_a_warning_not_a_failure():
    """A technique that does not apply to a model says so and leaves it unchanged (it used to
    raise): no Linear for quant.dynamic; only a layer called twice for quant.ptq."""
    from torchslim.quant import DynamicConfig, dynamic_

    convs = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    x = torch.randn(2, 3, 8, 8)
    ctx = _ctx(x)
    assert dynamic_(convs, DynamicConfig(), ctx) is convs and type(convs[0]) is nn.Conv2d
    assert ctx.results[-1].warnings == ["quant.dynamic: no Linear layer to quantize (none in the model, or none "
                                        "selected by include/exclude); the model is unchanged"]

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = Twice().eval()
    result = _ptq(model, PTQConfig(latency_check=False), _ctx(x))
    assert type(model.conv) is nn.Conv2d and result.details == {"planned_layers": 0, "quantized_layers": 0}
    assert result.warnings[0] == "conv: called more than once, left in float"
    assert "no Conv2d/Linear layer to quantize" in result.warnings[1]


def _se_net(name: str, **kwargs) -> tuple[nn.Module, torch.Tensor]:
    """The zoo's SE nets at a quarter width on 32x32 (every block kind), BN statistics randomised."""
    from torchslim.zoo import create_model

    torch.manual_seed(0)
    model = create_model(name, width_mult=0.25, image_size=32, **kwargs).eval()
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2, generator=gen)
            m.running_var.uniform_(0.8, 1.2, generator=gen)
    return model, torch.randn(2, 3, 32, 32, generator=gen)


def _count(model: nn.Module, *types: type) -> int:
    return sum(type(m) in types for m in model.modules())


def _residual_adds(model: nn.Module) -> int:
    return sum(bool(getattr(m, "use_residual", False)) for m in model.modules())


@pytest.mark.parametrize("name,kwargs", [("efficientnet_b0", {}), ("mobilenetv3", {"variant": "small"})])
def test_se_blocks_activations_and_residual_adds_stay_on_integer_kernels(name, kwargs):
    """Between two integer ops of ORT's optimised graph there is no float op left on these nets:
    SiLU = QLinearSigmoid + QLinearMul; hardsigmoid = QLinearAdd (x + 3 saturating on the grid
    6/255, read back at 1/255), hardswish that + QLinearMul (ORT has no integer hardsigmoid and
    its own quantize_static leaves it float); the SE scale a QLinearMul; every global average
    pool and residual add integer; one Q at the input, one DQ at the logits. Counts are the
    model's own module counts (MobileNetV2's residual adds: the same rewrite)."""
    model, x = _se_net(name, **kwargs)
    reference = model(x)
    silu, sigmoid = _count(model, nn.SiLU), _count(model, nn.Sigmoid)
    hardswish, hardsigmoid = _count(model, nn.Hardswish), _count(model, nn.Hardsigmoid)
    pools, adds = _count(model, nn.AdaptiveAvgPool2d), _residual_adds(model)
    result = _ptq(model, PTQConfig(latency_check=False, num_samples=16), _ctx(x, n=16))
    ops = result.details["ort_ops"]
    assert result.warnings == []
    float_ops = {op: n for op, n in ops.items() if op not in INTEGER_OPS | {"QuantizeLinear", "DequantizeLinear",
                                                                          "Transpose", "Flatten"}}
    assert float_ops == {}
    assert ops.get("QLinearSigmoid", 0) == silu + sigmoid
    assert ops.get("QLinearMul", 0) == silu + hardswish + sigmoid + hardsigmoid  # x * gate, SE x * scale
    assert ops["QLinearGlobalAveragePool"] == pools and adds > 0
    assert ops["QLinearAdd"] == adds + hardswish + hardsigmoid
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] == 1
    # the export feeds each residual sum's second user the quantized sum (quant/onnx_rewrite.py);
    # ORT vs eager stays within a few output steps
    out_scale = [m for m in model.modules() if isinstance(m, QuantizedLinear)][-1].output_scale.item()
    assert result.details["onnx_max_abs_error_vs_eager"] <= 4 * out_scale + 0.05 * reference.abs().max().item()
    assert _sqnr(reference, model(x)) > 15.0
