"""Exactness oracles for the four decompositions (the issue's Correctness section)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchslim.lowrank.cp import cp_conv, cp_macs, cp_reconstruct
from torchslim.lowrank.layers import Layer
from torchslim.lowrank.spatial import spatial_conv, spatial_macs, spatial_matrix
from torchslim.lowrank.svd import svd_conv, svd_linear, svd_macs
from torchslim.lowrank.tucker import tucker2_conv, tucker2_factors, tucker_macs

CONVS = {  # (in, out, kernel, stride, padding, dilation, bias)
    "plain": (6, 8, 3, 1, 1, 1, True),
    "strided": (5, 7, 3, 2, 1, 1, False),
    "dilated_rect": (4, 6, (3, 5), (2, 1), (2, 1), (2, 1), True),
    "valid": (3, 5, 3, 1, 0, 1, True),
}


def make_conv(key: str, seed: int = 0) -> nn.Conv2d:
    i, o, k, s, p, d, b = CONVS[key]
    torch.manual_seed(seed)
    return nn.Conv2d(i, o, k, stride=s, padding=p, dilation=d, bias=b).double()


def x_for(conv: nn.Conv2d, size: int = 11) -> torch.Tensor:
    return torch.randn(2, conv.in_channels, size, size + 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def with_weight(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation)


def test_svd_linear_full_rank_reconstructs():
    torch.manual_seed(0)
    layer = nn.Linear(12, 7)
    x = torch.randn(5, 12)
    assert torch.allclose(svd_linear(layer, 7)(x), layer(x), atol=1e-5)


@pytest.mark.parametrize("key", sorted(CONVS))
def test_svd_conv_full_rank_reconstructs(key):
    conv = make_conv(key)
    x = x_for(conv)
    full = min(conv.out_channels, conv.weight[0].numel())
    assert torch.allclose(svd_conv(conv, full)(x), conv(x), atol=1e-5)


@pytest.mark.parametrize("conv_cls, size", [(nn.Conv1d, (13,)), (nn.Conv3d, (5, 6, 7))])
def test_svd_of_1d_and_3d_convs_reconstructs_at_full_rank_and_counts_macs(conv_cls, size):
    """The (O, I*prod(k)) unfolding is the same for every conv dimension; MACs as the profiler counts."""
    from torchslim.profiler import profile_model

    torch.manual_seed(0)
    conv = conv_cls(4, 6, 3, stride=2, padding=1, dilation=1).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full = min(conv.out_channels, conv.weight[0].numel())
    module = svd_conv(conv, full)
    assert [type(m) for m in module] == [conv_cls, conv_cls]
    assert torch.allclose(module(x), conv(x), atol=1e-10)
    layer = Layer("c", conv, tuple(x[:1].shape), tuple(conv(x[:1]).shape))
    assert profile_model(svd_conv(conv, 2).float(), (x[:1].float(),)).macs == svd_macs(layer, 2)


@pytest.mark.parametrize("shape, rank", [((30, 20), 1), ((30, 20), 7), ((16, 40), 15)])
def test_svd_error_equals_discarded_singular_values(shape, rank):
    """Eckart-Young: ||W - W_r||_F^2 = sum_{i>r} s_i^2 for the two-Linear factorization."""
    torch.manual_seed(rank)
    layer = nn.Linear(shape[1], shape[0]).double()
    seq = svd_linear(layer, rank)
    w_r = seq[1].weight @ seq[0].weight
    s = torch.linalg.svdvals(layer.weight)
    assert torch.linalg.matrix_norm(layer.weight - w_r) ** 2 == pytest.approx(float((s[rank:] ** 2).sum()), rel=1e-9)
    assert torch.linalg.matrix_rank(w_r) == rank


@pytest.mark.parametrize("key", sorted(CONVS))
def test_tucker2_full_rank_reconstructs(key):
    conv = make_conv(key)
    x = x_for(conv)
    o, i = conv.weight.shape[:2]
    assert torch.allclose(tucker2_conv(conv, (o, i))(x), conv(x), atol=1e-5)


@pytest.mark.parametrize("key", ["plain", "dilated_rect"])
def test_tucker2_forward_equals_conv_with_reconstructed_weight(key):
    conv = make_conv(key)
    x = x_for(conv)
    core, u_out, u_in = tucker2_factors(conv.weight, (3, 2))
    weight = torch.einsum("abhw,oa,ib->oihw", core, u_out, u_in)
    assert torch.allclose(tucker2_conv(conv, (3, 2))(x), with_weight(conv, x, weight), atol=1e-10)


def test_tucker2_error_decreases_with_rank():
    conv = make_conv("plain")
    errors = []
    for r in range(1, 9):  # O = 8, I = 6
        core, u_out, u_in = tucker2_factors(conv.weight, (r, min(r, 6)))
        errors.append(float((conv.weight - torch.einsum("abhw,oa,ib->oihw", core, u_out, u_in)).norm()))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10  # full rank on both modes
    # HOSVD bound used for rank allocation holds: error^2 <= discarded energy of both unfoldings
    w = conv.weight
    s0, s1 = torch.linalg.svdvals(w.reshape(8, -1)), torch.linalg.svdvals(w.transpose(0, 1).reshape(6, -1))
    assert errors[1] ** 2 <= float((s0[2:] ** 2).sum() + (s1[2:] ** 2).sum()) + 1e-12


@pytest.mark.parametrize("key", sorted(CONVS))
def test_cp_forward_equals_conv_with_reconstructed_weight(key):
    """Stride, padding and dilation split between the two depthwise convs is exact."""
    conv = make_conv(key)
    x = x_for(conv)
    weight = cp_reconstruct(conv, 5, n_iter_max=30)
    assert torch.allclose(cp_conv(conv, 5, n_iter_max=30)(x), with_weight(conv, x, weight), atol=1e-10)


@pytest.mark.filterwarnings("ignore:Trying to compute SVD with n_eigenvecs")  # TensorLy on its own padding
@pytest.mark.parametrize("shape, rank", [((6, 5, 3, 3), 3), ((8, 7, 3, 5), 2), ((16, 8, 3, 3), 20)])
def test_cp_als_equals_tensorly_parafac(shape, rank):
    """The hand-written CP-ALS (its MTTKRP never forms the Khatri-Rao product) is TensorLy's
    ``parafac`` step for step: the same SVD init (and the same seeded padding of modes smaller
    than the rank), the same sweeps, the same kernel to rounding."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    from torchslim.lowrank.cp import cp_factors

    w = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with tl.backend_context("pytorch"):
        ref = parafac(w, rank=rank, init="svd", n_iter_max=30, random_state=0, tol=1e-8)
    lam, factors = cp_factors(w, rank, n_iter_max=30)
    kernel = "r,or,ir,hr,wr->oihw"
    assert torch.allclose(torch.einsum(kernel, lam, *factors), torch.einsum(kernel, ref.weights, *ref.factors),
                          atol=1e-12)


def test_cp_error_decreases_with_rank():
    conv = make_conv("plain")
    errors = [float((conv.weight - cp_reconstruct(conv, r, n_iter_max=200)).norm()) for r in (1, 2, 4, 8, 16, 32)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.2 * errors[0]


@pytest.mark.parametrize("key", sorted(CONVS))
def test_spatial_full_rank_reconstructs(key):
    conv = make_conv(key)
    x = x_for(conv)
    full = min(spatial_matrix(conv.weight).shape)
    assert torch.allclose(spatial_conv(conv, full)(x), conv(x), atol=1e-5)


def test_spatial_rank_r_error_equals_discarded_singular_values():
    conv = make_conv("plain")
    seq = spatial_conv(conv, 4)
    # effective kernel: W_hat[o, c, i, j] = sum_k v[k, c, i] h[o, k, j]
    w_hat = torch.einsum("kci,okj->ocij", seq[0].weight[..., 0], seq[1].weight[:, :, 0, :])
    s = torch.linalg.svdvals(spatial_matrix(conv.weight))
    assert float((conv.weight - w_hat).norm() ** 2) == pytest.approx(float((s[4:] ** 2).sum()), rel=1e-9)
    x = x_for(conv)
    assert torch.allclose(seq(x), with_weight(conv, x, w_hat), atol=1e-10)


@pytest.mark.parametrize("key", sorted(CONVS))
def test_macs_formulas_match_the_profiler(key):
    """The MACs rank selection predicts are what the profiler counts on the built replacement."""
    from torchslim.profiler import profile_model

    conv = make_conv(key).float()
    x = x_for(conv)[:1].float()
    layer = Layer("c", conv, tuple(x.shape), tuple(conv(x).shape))
    assert profile_model(conv, (x,)).macs == conv.weight.numel() * layer.out_shape[2] * layer.out_shape[3]
    cases = [(svd_conv(conv, 3), svd_macs(layer, 3)), (tucker2_conv(conv, (3, 2)), tucker_macs(layer, (3, 2))),
             (cp_conv(conv, 4, n_iter_max=5), cp_macs(layer, 4)), (spatial_conv(conv, 3), spatial_macs(layer, 3))]
    for module, predicted in cases:
        assert profile_model(module.float(), (x,)).macs == predicted, module


def test_replacements_are_plain_sequentials_of_standard_layers():
    conv = make_conv("plain")
    for module in (svd_conv(conv, 2), tucker2_conv(conv, (2, 2)), cp_conv(conv, 2, n_iter_max=5), spatial_conv(conv, 2)):
        assert type(module) is nn.Sequential and all(type(m) is nn.Conv2d for m in module)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_non_zero_padding_modes_split_exactly(mode):
    """Padding along W commutes with a conv along H for reflect/circular padding too."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1, stride=(1, 2), padding_mode=mode).double()
    x = x_for(conv)
    full = min(spatial_matrix(conv.weight).shape)
    for module in (spatial_conv(conv, full), svd_conv(conv, 5), tucker2_conv(conv, (5, 4))):
        assert torch.allclose(module(x), conv(x), atol=1e-5)
    reference = nn.Conv2d(4, 5, 3, padding=1, stride=(1, 2), padding_mode=mode).double()
    reference.weight.copy_(cp_reconstruct(conv, 4, n_iter_max=20))
    reference.bias.copy_(conv.bias)
    assert torch.allclose(cp_conv(conv, 4, n_iter_max=20)(x), reference(x), atol=1e-10)
