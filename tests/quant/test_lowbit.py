import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.quant import (
    BinaryConfig,
    INQConfig,
    QATConfig,
    QuantizedConv2d,
    QuantizedLinear,
    TTQConfig,
    UniformConfig,
    XNORConv2d,
    binary_,
    inq_,
    qat_,
    ttq_,
    uniform_,
)
from torchslim.quant.inq import inq_exponents, power_of_two_quantize
from torchslim.quant.ptq import PTQConfig, ptq_
from torchslim.quant.qat import lsq_quantize
from torchslim.quant.ttq import ternarize
from torchslim.train.config import TrainConfig


def _ctx(x: torch.Tensor, n: int = 64, **kw) -> Context:
    gen = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train=TensorDataset(torch.randn(n, *x.shape[1:], generator=gen),
                                               torch.randint(0, 10, (n,), generator=gen)), val=None)
    return Context((x[:1],), data=data, progress=False, **kw)


def _run(technique, model: nn.Module, config, ctx: Context):
    """A quant step through its public function; the step's HandlerResult."""
    assert technique(model, config, ctx) is model
    return ctx.results[-1]


def _epochs(n: int, **kw) -> TrainConfig:
    return TrainConfig(epochs=n, lr=kw.pop("lr", 0.001), weight_decay=0.0, **kw)


def _conv_linear(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_uniform_k_bit_grid_and_size(bits):
    model, x = small_model("lenet5")
    result = _run(uniform_, model, UniformConfig(bits=bits), _ctx(x))
    levels = 2 ** (bits - 1) - 1
    for _, layer in _conv_linear(model):
        w = layer.weight.detach()
        scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / levels
        codes = w / scale
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert codes.round().abs().max() <= levels
        assert (codes.round().reshape(w.shape[0], -1).unique(dim=None).numel()) <= 2 * levels + 1
    d = result.details
    n_w = sum(m.weight.numel() for _, m in _conv_linear(model))
    n_other = sum(t.numel() for k, t in model.state_dict().items() if not k.endswith("weight"))
    n_scales = sum(m.weight.shape[0] for _, m in _conv_linear(model))
    expected = sum(math.ceil(m.weight.numel() * bits / 8) for _, m in _conv_linear(model)) + 4 * (n_other + n_scales)
    assert d["size_bytes_at_bit_width"] == expected and d["size_bytes_float32"] == 4 * (n_w + n_other)


def test_inq_weights_are_zero_or_powers_of_two():
    model, x = small_model("lenet5")
    before = {n: inq_exponents(m.weight, 5) for n, m in _conv_linear(model)}
    result = _run(inq_, model, INQConfig(bits=5), _ctx(x))
    assert len(result.details["finetune_per_stage"]) == 3  # after 50, 75, 87.5 %; not after 100 %
    for name, layer in _conv_linear(model):
        n1, n2 = result.details["exponents"][name]
        assert n1 - n2 + 1 == 8  # 2^(b-2) exponents for b = 5
        w = layer.weight.detach()
        nonzero = w[w != 0].abs()
        exps = torch.log2(nonzero)
        assert torch.equal(exps, exps.round()), name  # every weight is 0 or ±2^n ...
        assert exps.min() >= n2 and exps.max() <= n1  # ... with n2 <= n <= n1
    assert len(before) == len(result.details["exponents"])


def test_inq_rule_hand_computed():
    # s = 1.0: n1 = floor(log2(4/3)) = 0; b = 3 -> n2 = n1 + 1 - 2 = -1; P = {±1, ±0.5, 0}
    w = torch.tensor([1.0, 0.8, 0.74, 0.3, 0.24, -0.6, -0.2])
    assert inq_exponents(w, 3) == (0, -1)
    q = power_of_two_quantize(w, 0, -1)
    assert q.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0, -0.5, 0.0]


def test_ttq_ternary_values_and_gradients():
    w = torch.tensor([0.9, 0.02, -0.5, 0.3], requires_grad=True)
    w_p = torch.tensor(0.7, requires_grad=True)
    w_n = torch.tensor(0.4, requires_grad=True)
    out = ternarize(w, w_p, w_n, threshold=0.05)  # Delta = 0.045
    assert out.tolist() == pytest.approx([0.7, 0.0, -0.4, 0.7])
    out.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert w_p.grad.item() == pytest.approx(5.0)  # sum of grads on I_p
    assert w_n.grad.item() == pytest.approx(-3.0)  # -sum on I_n
    assert w.grad.tolist() == pytest.approx([0.7, 2.0, 1.2, 2.8])  # scaled by W_p, 1, W_n


def test_ttq_layers_are_ternary_ends_float():
    model, x = small_model("lenet5")
    result = _run(ttq_, model, TTQConfig(finetune=_epochs(1)), _ctx(x))
    layers = _conv_linear(model)
    assert model.features[0].weight.detach().unique().numel() > 3  # first and last layers stay float
    for name, layer in layers[1:-1]:
        assert layer.weight.detach().unique().numel() <= 3, name
    assert result.details["compression_ratio"] > 1.0


@pytest.mark.parametrize("method", ["binaryconnect", "xnor"])
def test_binary_weights_have_one_magnitude_per_channel(method):
    model, x = small_model("lenet5")
    result = _run(binary_, model, BinaryConfig(method=method, finetune=_epochs(1, optimizer="adamw")), _ctx(x))
    layers = _conv_linear(model)
    for name, layer in layers[1:-1]:
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        assert torch.allclose(w.abs(), w.abs().mean(dim=1, keepdim=True), rtol=1e-5), name
    if method == "xnor":
        assert isinstance(model.features[3], XNORConv2d)
    assert model(x).shape == (2, 10) and result.details["bits"]


def test_xnor_save_load_round_trip(tmp_path):
    from torchslim.serialize import load, save

    model, x = small_model("lenet5")
    binary_(model, BinaryConfig(method="xnor", finetune=_epochs(0)), _ctx(x))
    save(model, tmp_path / "m")
    assert torch.equal(load(tmp_path / "m")(x), model(x))


def test_lsq_gradient_matches_paper_formula():
    # Esser et al. 2020 eq. 3: d v_hat / d s = -v/s + round(v/s) inside, Q_N or Q_P outside
    v = torch.tensor([0.26, -0.9, 3.0])
    s = torch.tensor(0.1, requires_grad=True)
    out = lsq_quantize(v, s, 0.0, -4, 3)
    out.sum().backward()
    g = 1 / math.sqrt(3 * 3)
    expected = ((-0.26 / 0.1 + round(0.26 / 0.1)) + (-4) + 3) * g
    assert s.grad.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("lsq", [False, True])
def test_qat_returns_int8_layers_that_run_on_integer_kernels(lsq):
    model, x = small_model("lenet5")
    ctx = _ctx(x)
    ptq_(model, PTQConfig(latency_check=False, export_onnx=False), ctx)
    result = _run(qat_, model, QATConfig(latency_check=False, finetune=_epochs(1, lr=0.005), lsq=lsq), ctx)
    convs = [m for m in model.modules() if isinstance(m, QuantizedConv2d)]
    assert len(convs) == 2 and all(m.weight_int8.dtype == torch.int8 for m in convs)
    assert result.details["ort_ops"].get("QLinearConv", 0) == 2
    assert result.details["ort_float_compute_ops"] == 0


def test_lowbit_steps_need_data():
    model, x = small_model("lenet5")
    for handler, config in [(inq_, INQConfig()), (ttq_, TTQConfig()), (binary_, BinaryConfig()), (qat_, QATConfig(latency_check=False))]:
        with pytest.raises(UserError, match=f"{config.name} needs training data"):
            handler(model, config, Context((x,)))


def test_finetune_section_distils_from_the_teacher():
    """``finetune: {distill: kd, alpha: 1}`` trains on the teacher's soft targets only: the labels
    cannot matter, so two runs on different labels give the same weights; without distillation
    they differ. The nested section comes from a recipe mapping (one-line errors name it)."""
    teacher, x = small_model("lenet5")
    results = {}
    for distill in ("kd", "none"):
        for labels_seed in (1, 2):
            model, _ = small_model("lenet5")
            ctx = _ctx(x, teacher=teacher)
            gen = torch.Generator().manual_seed(labels_seed)
            images = ctx.data.train.tensors[0]
            ctx.data.train = TensorDataset(images, torch.randint(0, 10, (len(images),), generator=gen))
            config = {"bits": 4, "finetune": {"epochs": 1, "lr": 0.01, "distill": distill, "alpha": 1.0}}
            uniform_(model, config, ctx)
            assert ctx.results[-1].details["finetune"]["distill"] == distill
            results[distill, labels_seed] = model.features[3].weight.detach().clone()
    assert torch.equal(results["kd", 1], results["kd", 2])
    assert not torch.equal(results["none", 1], results["none", 2])
    with pytest.raises(UserError, match=r"^steps\[0\] \(quant.uniform\): finetune: unknown field 'lrr'"):
        UniformConfig.from_dict({"finetune": {"lrr": 0.1}}, where="steps[0] (quant.uniform)")


@pytest.mark.parametrize("config_cls", [QATConfig, TTQConfig, BinaryConfig, INQConfig, UniformConfig])
def test_training_fields_live_only_in_the_nested_finetune_section(config_cls):
    import dataclasses

    fields = {f.name for f in dataclasses.fields(config_cls)}
    assert "finetune" in fields
    assert not fields & {f.name for f in dataclasses.fields(TrainConfig)}


def test_latent_training_keeps_the_layer_attributes_a_forward_reads():
    """The zoo ViT's attention reads ``self.q.out_features`` in its forward; while the latent
    wrapper stood in for the Linear, training failed with an AttributeError."""
    model, x = small_model("vit")
    result = _run(ttq_, model, TTQConfig(finetune=_epochs(1, batch_size=32)), _ctx(x, n=32))
    assert type(model.blocks[0].attn.q) is nn.Linear
    assert model.blocks[0].attn.q.weight.detach().unique().numel() <= 3
    assert result.details["finetune"]["epochs"] == 1


def test_qat_layer_keeps_the_layer_attributes_a_forward_reads():
    """Same for the QAT twin of an int8 Linear (the ViT failed with ``'QATLayer' object has no
    attribute 'out_features'``)."""
    model, x = small_model("vit")
    ctx = _ctx(x, n=32)
    ptq_(model, PTQConfig(latency_check=False, num_samples=32, export_onnx=False), ctx)
    _run(qat_, model, QATConfig(latency_check=False, finetune=_epochs(1, lr=0.005, batch_size=32), export_onnx=False), ctx)
    assert isinstance(model.blocks[0].attn.q, QuantizedLinear)
