"""Every registered model against references: parameter and MAC counts, shapes, rebuild
from origin, determinism, torch.export / fx / ONNX round trips.

Large models are built on the meta device for counts and shapes (no memory, no compute);
real forwards use FAST_KWARGS, the smallest input each architecture supports.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from torchslim.zoo import create_model, example_input, list_models
from torchslim.zoo.shufflenet import channel_shuffle

# Smallest supported inputs, to keep real forwards fast; unlisted models use defaults.
FAST_KWARGS: dict[str, dict] = {
    "resnet50": {"image_size": 64},
    "vgg11": {"image_size": 32},
    "vgg16": {"image_size": 32},
    "mobilenetv2": {"image_size": 32},
    "mobilenetv3": {"image_size": 32},
    "efficientnet_b0": {"image_size": 32},
    "squeezenet": {"image_size": 32},
    "shufflenetv2": {"image_size": 32},
}


def _fast(name: str, **overrides) -> torch.nn.Module:
    return create_model(name, **{**FAST_KWARGS.get(name, {}), **overrides}).eval()


def _meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def _cifar_resnet_params(n: int) -> int:
    """ResNet-(6n+2), option B: stem, 3 stages of n basic blocks, 2 projections, fc."""
    total = _conv(3, 16, 3) + 2 * 16
    for cin, c in ((16, 16), (16, 32), (32, 64)):
        total += _conv(cin, c, 3) + _conv(c, c, 3) + 4 * c  # first block
        if cin != c:
            total += _conv(cin, c, 1) + 2 * c  # 1x1 conv + BN projection
        total += (n - 1) * (2 * _conv(c, c, 3) + 4 * c)
    return total + _linear(64, 10)


def _densenet_bc_params(n: int = 6, k: int = 12) -> int:
    total, c = _conv(3, 2 * k, 3), 2 * k
    for block in range(3):
        for _ in range(n):
            total += 2 * c + _conv(c, 4 * k, 1) + 2 * 4 * k + _conv(4 * k, k, 3)
            c += k
        if block < 2:
            total += 2 * c + _conv(c, c // 2, 1)
            c //= 2
    return total + 2 * c + _linear(c, 10)


def _vit_params(dim: int = 64, depth: int = 4, mlp: int = 128, tokens: int = 65) -> int:
    block = 2 * 2 * dim + 4 * _linear(dim, dim) + _linear(dim, mlp) + _linear(mlp, dim)
    return _conv(3, dim, 4, bias=True) + dim + tokens * dim + depth * block + 2 * dim + _linear(dim, 10)


PARAM_COUNTS = [
    # 784*300+300 + 300*100+100 + 100*10+10
    ("lenet300", {}, 235_500 + 30_100 + 1_010),
    # conv 6*1*25+6, conv 16*6*25+16, fc 400*120+120, 120*84+84, 84*10+10
    ("lenet5", {}, 156 + 2_416 + 48_120 + 10_164 + 850),
    ("resnet20", {}, _cifar_resnet_params(3)),
    ("resnet56", {}, _cifar_resnet_params(9)),
    ("densenet", {}, _densenet_bc_params()),
    ("vit", {}, _vit_params()),
    # torchvision's counts for resnet50, vgg11_bn, vgg16_bn, mobilenet_v2, squeezenet1_1, shufflenet_v2_x0_5
    ("resnet50", {}, 25_557_032),
    ("vgg11", {}, 132_868_840),
    ("vgg16", {}, 138_365_992),
    ("vgg16", {"image_size": 32, "num_classes": 10}, 14_728_266),
    ("mobilenetv2", {}, 3_504_872),
    ("mobilenetv2", {"width_mult": 0.5}, 1_968_680),
    ("squeezenet", {}, 1_235_496),
    ("shufflenetv2", {}, 1_366_792),
    # torchvision's efficientnet_b0, mobilenet_v3_large, mobilenet_v3_small
    ("efficientnet_b0", {}, 5_288_548),
    # B1 = B0's widths at depth 1.1, B2 = width 1.1, depth 1.2 (torchvision's efficientnet_b1/_b2)
    ("efficientnet_b0", {"depth_mult": 1.1}, 7_794_184),
    ("efficientnet_b0", {"width_mult": 1.1, "depth_mult": 1.2}, 9_109_994),
    ("mobilenetv3", {}, 5_483_032),
    ("mobilenetv3", {"variant": "small"}, 2_542_856),
]


def test_reference_counts_are_what_we_claim():
    assert PARAM_COUNTS[0][2] == 266_610 and PARAM_COUNTS[1][2] == 61_706
    assert _cifar_resnet_params(3) == 272_474 and _cifar_resnet_params(9) == 855_770
    assert {name for name, _, _ in PARAM_COUNTS} == set(list_models())


@pytest.mark.parametrize("name, kwargs, expected", PARAM_COUNTS, ids=lambda v: str(v))
def test_param_count(name, kwargs, expected):
    assert _num_params(_meta(name, **kwargs)) == expected


MACS = [
    # lenet5: 28*28*6*25 + 10*10*16*150 + 400*120 + 120*84 + 84*10 (exact)
    ("lenet5", 117_600 + 240_000 + 48_000 + 10_080 + 840, 0.0),
    ("lenet300", 784 * 300 + 300 * 100 + 100 * 10, 0.0),
    # torchvision's published GFLOPS (which are MACs)
    ("resnet50", 4.09e9, 0.005),
    ("vgg16", 15.47e9, 0.005),
    ("mobilenetv2", 300.8e6, 0.005),
    ("squeezenet", 0.35e9, 0.02),
    ("shufflenetv2", 0.04e9, 0.05),
    # torchvision's published GFLOPS: 0.39 (B0), 0.22 (V3-Large), 0.06 (V3-Small), given to 2 digits
    ("efficientnet_b0", 0.39e9, 0.015),
    ("mobilenetv3", 0.22e9, 0.025),
    ("mobilenetv3:small", 0.06e9, 0.06),
]


@pytest.mark.parametrize("name, expected, rel", MACS, ids=[m[0] for m in MACS])
def test_macs(name, expected, rel):
    name, _, variant = name.partition(":")
    model = _meta(name, **({"variant": variant} if variant else {})).eval()
    with FlopCounterMode(display=False) as counter:
        model(example_input(model).to("meta"))
    assert counter.get_total_flops() / 2 == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_forward_shape(name, in_channels):
    torch.manual_seed(0)
    model = _fast(name, in_channels=in_channels, num_classes=7)
    x = example_input(model, batch_size=2)
    assert x.shape == (2, in_channels, *model._torchslim_origin["input_shape"][1:])
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 7) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", list_models())
def test_default_layout_shape_on_meta(name):
    model = _meta(name).eval()
    shape = model._torchslim_origin["input_shape"]
    assert model(torch.empty(2, *shape, device="meta")).shape == (2, model._torchslim_origin["num_classes"])


@pytest.mark.parametrize("name", list_models())
def test_rebuild_from_origin(name):
    for kwargs in ({}, {"in_channels": 1, "num_classes": 5, **FAST_KWARGS.get(name, {})}):
        model = _meta(name, **kwargs)
        origin = json.loads(json.dumps(model._torchslim_origin))
        rebuilt = _meta(origin["name"], **origin["kwargs"])
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
        assert rebuilt._torchslim_origin == origin


@pytest.mark.parametrize("name", list_models())
def test_deterministic_under_seed(name):
    torch.manual_seed(123)
    a = _fast(name).state_dict()
    torch.manual_seed(123)
    b = _fast(name).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", list_models())
def test_torch_export_and_fx_match_eager(name):
    torch.manual_seed(0)
    model = _fast(name)
    x = example_input(model, batch_size=2)
    with torch.no_grad():
        ref = model(x)
        exported = torch.export.export(model, (x,), strict=False).module()(x)
        traced = torch.fx.symbolic_trace(model)(x)
    torch.testing.assert_close(exported, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(traced, ref, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", ["lenet5", "resnet20", "efficientnet_b0", "mobilenetv3"])
def test_onnx_export_matches_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _fast(name)
    x = example_input(model, batch_size=2)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-4)


# --- architecture details the compression code relies on ---------------------------------


@pytest.mark.parametrize(
    "name, kwargs, spatial",
    [
        ("mobilenetv2", {"image_size": 32}, 4),  # stem and first stride-2 stage at stride 1
        ("mobilenetv2", {"image_size": 96}, 3),  # ImageNet layout, /32
        ("squeezenet", {"image_size": 32}, 3),  # stem stride 1
        ("vgg16", {"image_size": 64}, 2),
        ("efficientnet_b0", {"image_size": 32}, 4),
        ("efficientnet_b0", {"image_size": 96}, 3),
        ("mobilenetv3", {"image_size": 32}, 4),
        ("mobilenetv3", {"image_size": 32, "variant": "small"}, 4),
        ("mobilenetv3", {"image_size": 224, "variant": "small"}, 7),
    ],
)
def test_small_image_feature_maps(name, kwargs, spatial):
    model = _meta(name, **kwargs)
    x = torch.empty(1, *model._torchslim_origin["input_shape"], device="meta")
    assert model.features(x).shape[-2:] == (spatial, spatial)


def test_vgg_head_switches_above_64():
    assert isinstance(_meta("vgg11", image_size=64).avgpool.output_size, int)
    assert _meta("vgg11", image_size=64).classifier[0].in_features == 512
    assert _meta("vgg11", image_size=65).classifier[0].in_features == 512 * 7 * 7


def test_shufflenet_small_image_feature_map():
    model = _meta("shufflenetv2", image_size=32)
    x = model.maxpool(model.conv1(torch.empty(1, 3, 32, 32, device="meta")))
    assert model.stage4(model.stage3(model.stage2(x))).shape[-2:] == (4, 4)


def test_resnet50_is_v1_5_stride_on_3x3():
    block = _meta("resnet50").layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_vit_removing_a_dead_head_is_exact():
    """Zero head 1's columns of the output projection, then delete the head: same output."""
    torch.manual_seed(0)
    model = create_model("vit").eval()
    attn = model.blocks[0].attn
    head_dim = attn.q.out_features // attn.num_heads
    dead = slice(head_dim, 2 * head_dim)
    keep = torch.cat([torch.arange(0, head_dim), torch.arange(2 * head_dim, attn.q.out_features)])
    x = example_input(model, batch_size=2)
    with torch.no_grad():
        attn.proj.weight[:, dead] = 0
        ref = model(x)
        for attr in ("q", "k", "v"):
            lin = getattr(attn, attr)
            new = torch.nn.Linear(lin.in_features, len(keep))
            new.weight.copy_(lin.weight[keep])
            new.bias.copy_(lin.bias[keep])
            setattr(attn, attr, new)
        proj = torch.nn.Linear(len(keep), attn.proj.out_features)
        proj.weight.copy_(attn.proj.weight[:, keep])
        proj.bias.copy_(attn.proj.bias)
        attn.proj = proj
        attn.num_heads -= 1
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_lenet5_batch_norm_variant_adds_four_norm_layers():
    import torch
    from torch import nn

    from torchslim.zoo import create_model

    plain, bn = create_model("lenet5"), create_model("lenet5", batch_norm=True)
    norms = [m for m in bn.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert [m.num_features for m in norms] == [6, 16, 120, 84]
    # each BN adds gamma and beta
    assert sum(p.numel() for p in bn.parameters()) - sum(p.numel() for p in plain.parameters()) == 2 * (6 + 16 + 120 + 84)
    assert bn.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _blocks(model: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_efficientnet_b0_stage_table_and_se_widths():
    """Table 1 of the paper: 16 MBConv blocks in 7 stages; SE squeezes to in_ch // 4, gated by a sigmoid."""
    from torchslim.zoo.efficientnet import MBConv

    model = _meta("efficientnet_b0")
    assert [len(stage) for stage in model.features[1:-1]] == [1, 2, 2, 3, 3, 4, 1]
    blocks = _blocks(model, MBConv)
    kernels = [next(c for c in b.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1).kernel_size[0]
               for b in blocks]
    assert kernels == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    first = blocks[1].block  # 16 -> 24, expansion 6, SE squeeze 16 // 4
    assert first[0][0].out_channels == 96 and first[2].fc1.out_channels == 4
    assert isinstance(first[2].gate, torch.nn.Sigmoid) and isinstance(first[2].act, torch.nn.SiLU)
    assert sum(b.use_residual for b in blocks) == 9
    assert not _blocks(model, torch.nn.ReLU)


def test_mobilenetv3_large_activations_and_se_placement():
    """Table 1 of the paper: ReLU in the first 6 bnecks, hardswish after; SE in bnecks 4-6 and 11-15."""
    from torchslim.zoo.mobilenetv3 import InvertedResidualV3
    from torchslim.zoo.blocks import SqueezeExcitation

    blocks = _blocks(_meta("mobilenetv3"), InvertedResidualV3)
    assert len(blocks) == 15
    hs = [bool(_blocks(b, torch.nn.Hardswish)) for b in blocks]
    assert hs == [False] * 6 + [True] * 9
    se = [i for i, b in enumerate(blocks, 1) if _blocks(b, SqueezeExcitation)]
    assert se == [4, 5, 6, 11, 12, 13, 14, 15]
    gate = _blocks(blocks[3], SqueezeExcitation)[0]
    assert isinstance(gate.gate, torch.nn.Hardsigmoid) and gate.fc1.out_channels == 24  # 72 / 4 -> 8k
    small = _blocks(_meta("mobilenetv3", variant="small"), InvertedResidualV3)
    assert len(small) == 11 and [i for i, b in enumerate(small, 1) if not _blocks(b, SqueezeExcitation)] == [2, 3]


def test_squeeze_excitation_is_a_per_channel_gate():
    """The SE output is x times sigmoid(fc2(silu(fc1(mean over H, W)))), computed here by hand."""
    from torchslim.zoo.blocks import SqueezeExcitation

    torch.manual_seed(0)
    se = SqueezeExcitation(6, 2, torch.nn.SiLU, torch.nn.Sigmoid)
    x = torch.randn(2, 6, 5, 5)
    mean = x.mean(dim=(2, 3))
    hidden = torch.nn.functional.silu(mean @ se.fc1.weight.view(2, 6).T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight.view(6, 2).T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
