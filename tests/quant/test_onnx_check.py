"""What ONNX Runtime really runs after an int8 step: warnings when it runs no integer op or
still runs float Conv/Gemm/MatMul, and which exporter wrote the file."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.quant import PTQConfig, QuantizedConv2d, QuantizedLinear, ptq_


def _ctx(x: torch.Tensor, **kw) -> Context:
    gen = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train=TensorDataset(torch.randn(32, *x.shape[1:], generator=gen), torch.zeros(32)),
                           val=None)
    return Context((x[:1],), data=data, progress=False, **kw)


def _n_int8(model: nn.Module) -> int:
    return sum(isinstance(m, (QuantizedConv2d, QuantizedLinear)) for m in model.modules())


def test_every_layer_back_in_float_warns_no_integer_op_and_float_compute():
    """Mixed precision that sends every layer back to float leaves an fp32 model; the step now
    says ONNX Runtime runs no integer op and which float ops remain (it said nothing before)."""
    model, x = small_model("lenet5")

    def eval_fn(m: nn.Module) -> float:  # accuracy recovers only with every layer in float
        return 1.0 if _n_int8(m) == 0 else 0.5

    ctx = _ctx(x, eval_fn=eval_fn)
    ptq_(model, PTQConfig(latency_check=False, num_samples=32, max_accuracy_drop=0.5, max_float_layers=8), ctx)
    result = ctx.results[-1]
    assert _n_int8(model) == 0 and result.details["quantized_layers"] == 0
    assert len(result.details["float_layers"]) == 5
    assert result.details["ort_integer_ops"] == 0 and result.details["ort_float_compute_ops"] == 5
    assert any("runs no integer op" in w for w in result.warnings), result.warnings
    assert any("still runs float 2 Conv, 2 FusedGemm, 1 Gemm" in w for w in result.warnings), result.warnings


def test_layer_kept_float_by_mixed_precision_stays_float_in_onnx_runtime():
    """The layer mixed precision keeps in float must run in float in ONNX Runtime too. Before,
    its ReLU became a standalone QuantizedActivation, so ORT saw DQ -> Conv -> Relu -> Q, quantized
    the float conv itself and ran 2 QLinearConv for 1 int8 conv: not the model eager measured."""
    model, x = small_model("lenet5")

    def eval_fn(m: nn.Module) -> float:  # one float layer is enough
        return 1.0 if _n_int8(m) < 5 else 0.9

    ctx = _ctx(x, eval_fn=eval_fn)
    ptq_(model, PTQConfig(latency_check=False, num_samples=32, max_accuracy_drop=0.5), ctx)
    result = ctx.results[-1]
    (kept,) = result.details["float_layers"]
    assert kept == "features.3"  # lowest local SQNR on this seed
    assert type(model.features[3]) is nn.Conv2d and type(model.features[4]) is nn.ReLU
    ops = result.details["ort_ops"]
    assert ops["QLinearConv"] == 1 and ops["QGemm"] == 3 and ops["Conv"] == 1
    assert [w for w in result.warnings if "ONNX Runtime" in w] == [
        "quant_ptq_int8.onnx: ONNX Runtime still runs float 1 Conv (layers kept in float, not fused to integer "
        "kernels, or activation x activation matmuls)"]


def test_onnx_runtime_quantizing_a_float_layer_itself_is_a_warning(tmp_path):
    """A float conv between quantized tensors (here: its ReLU made a QuantizedActivation by hand)
    is quantized by ONNX Runtime's own QDQ transformers; the step says its outputs differ."""
    from torchslim.quant import QuantizedActivation
    from torchslim.quant.onnx_check import export_and_check

    model, x = small_model("lenet5")
    ctx = _ctx(x)
    ptq_(model, PTQConfig(latency_check=False, num_samples=32, export_onnx=False), ctx)
    model.features[3] = small_model("lenet5")[0].features[3]  # back to a float conv ...
    act = QuantizedActivation("relu")
    act.output_scale.fill_(0.05)
    model.features[4] = act  # ... with a quantized output (its input already is)
    details, warnings = export_and_check(model, ctx, "m.onnx")
    assert details["ort_ops"]["QLinearConv"] == 2  # for 1 QuantizedConv2d
    assert any("runs 5 integer Conv/Gemm/MatMul layers for 4 int8 layers" in w for w in warnings), warnings


@pytest.mark.parametrize("bound,float_layers", [(0.3, 1), (1.0, 0)])
def test_max_accuracy_drop_is_in_points(bound, float_layers):
    """eval_fn gives accuracies in [0, 1]; a 0.5-point drop exceeds a 0.3 bound, not a 1.0 one."""
    model, x = small_model("lenet5")

    def eval_fn(m: nn.Module) -> float:
        return 0.995 if _n_int8(m) == 5 else 1.0

    ctx = _ctx(x, eval_fn=eval_fn)
    ptq_(model, PTQConfig(latency_check=False, num_samples=32, max_accuracy_drop=bound, export_onnx=False), ctx)
    assert len(ctx.results[-1].details["float_layers"]) == float_layers


def test_exporter_fallback_is_recorded_in_details_and_warnings(monkeypatch):
    """When the TorchScript exporter fails, the dynamo exporter writes the file, but it does not
    know the int8 layers' ONNX symbolics: dynamic int8 becomes its float simulation. Both facts
    reach the step (they were silent before)."""
    from torchslim.profiler import onnx_export
    from torchslim.quant import DynamicConfig, dynamic_

    def unavailable(*args, **kwargs):
        raise RuntimeError("TorchScript exporter unavailable")

    monkeypatch.setattr(onnx_export, "_export_torchscript", unavailable)
    model, x = small_model("lenet300")
    ctx = _ctx(x)
    dynamic_(model, DynamicConfig(), ctx)
    result = ctx.results[-1]
    assert result.details["onnx_exporter"] == "dynamo"
    assert result.details["ort_integer_ops"] == 0
    assert any("written by the dynamo ONNX exporter" in w and "TorchScript exporter unavailable" in w
               for w in result.warnings), result.warnings
    assert any("runs no integer op" in w for w in result.warnings), result.warnings
