"""quant.kmeans: k-means against scikit-learn, Han's centroid gradient, pruned weights stay zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.prune import prune_magnitude_
from torchslim.quant import KMeansConfig, kmeans_
from torchslim.quant.kmeans import cluster_layer, init_centroids, kmeans_1d
from torchslim.train import TrainConfig


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_kmeans_matches_sklearn_from_the_same_start(init):
    from sklearn.cluster import KMeans

    # Seeded: sklearn relocates an empty cluster, ours keeps its centroid (documented), so the
    # comparison holds only where no cluster empties; with these values none does (asserted).
    gen = torch.Generator().manual_seed(1)
    values = torch.cat([torch.randn(3000, generator=gen) * 0.05, torch.randn(500, generator=gen) * 0.3 + 0.4])
    start = init_centroids(values, 16, init, torch.Generator().manual_seed(0))
    ours, assign = kmeans_1d(values, start, iterations=300)
    assert torch.bincount(assign, minlength=16).min() > 0
    ref = KMeans(16, init=start.numpy().reshape(-1, 1), n_init=1, max_iter=300, tol=0.0,
                 algorithm="lloyd").fit(values.double().numpy().reshape(-1, 1))
    assert np.allclose(np.sort(ref.cluster_centers_.ravel()), ours.numpy(), atol=1e-9)
    assert torch.equal(ours[assign], ours[(values.double()[:, None] - ours).abs().argmin(1)])


def test_empty_cluster_keeps_its_centroid():
    # 0 and 1 take every value; the centroid at 50 never gets one and stays where it started.
    centroids, assign = kmeans_1d(torch.tensor([0.0, 0.2, 1.0, 1.2]), torch.tensor([0.0, 1.0, 50.0]), 10)
    assert centroids.tolist() == pytest.approx([0.1, 1.1, 50.0])
    assert assign.tolist() == [0, 0, 1, 1]


def test_initialisations_by_hand():
    values = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])
    assert init_centroids(values, 3, "linear").tolist() == [0.0, 5.0, 10.0]
    # density: the CDF's inverse at (i + 1/2) / k, linearly interpolated between sorted values.
    assert init_centroids(values, 5, "density").tolist() == pytest.approx([0.4, 1.2, 2.0, 2.8, 7.2])


def test_centroid_gradient_is_the_sum_of_its_weights_gradients():
    # Han et al. 2016, eq. 3: dL/dc_k = sum over weights i in cluster k of dL/dW_i.
    torch.manual_seed(0)
    layer = nn.Linear(20, 8)
    with torch.no_grad():
        layer.weight[layer.weight.abs() < 0.05] = 0.0
    param = cluster_layer(layer.weight, 3, "linear", 30)
    dense = nn.Linear(20, 8)
    x = torch.randn(5, 20)
    parametrize.register_parametrization(layer, "weight", param, unsafe=True)
    with torch.no_grad():
        dense.weight.copy_(layer.weight)
        dense.bias.copy_(layer.bias)
    layer(x).pow(2).sum().backward()
    dense(x).pow(2).sum().backward()
    expected = torch.zeros(8).index_add_(0, param.index[param.mask], dense.weight.grad[param.mask])
    assert torch.allclose(layer.parametrizations.weight.original.grad, expected, atol=1e-5)


def _pruned_lenet():
    model, _ = small_model("lenet300")
    return prune_magnitude_(model, {"criterion": "uniform", "sparsity": 0.9, "schedule": "oneshot",
                                    "finetune": {"epochs": 0}})


def _check_shared(model, masks, bits):
    for name, layer in model.named_modules():
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach()
            assert torch.equal(w != 0, masks[name])  # pruned weights stay zero, survivors stay non-zero
            assert torch.unique(w[w != 0]).numel() <= 2**bits
            assert not parametrize.is_parametrized(layer)


def test_kmeans_without_finetuning_keeps_masks_and_bounds_values():
    model = _pruned_lenet()
    masks = {n: m.weight.detach() != 0 for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    ctx = Context((torch.zeros(1, 1, 28, 28),))
    kmeans_(model, KMeansConfig(bits=4, finetune=TrainConfig(epochs=0)), ctx)
    details = ctx.results[-1].details
    _check_shared(model, masks, 4)
    assert all(d["clusters"] == 16 and d["sqnr_db"] > 15 for d in details["layers"].values())


def test_kmeans_with_finetuning(tiny_data):
    model = _pruned_lenet()
    masks = {n: m.weight.detach() != 0 for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    ctx = Context((torch.zeros(1, 1, 28, 28),), data=tiny_data, progress=False)
    kmeans_(model, KMeansConfig(bits=3, finetune=TrainConfig(epochs=1, lr=1e-3), float16=True), ctx)
    assert len(ctx.results[-1].details["val_accuracy"]) == 1
    _check_shared(model, masks, 3)
    for p in (model.get_submodule("1").bias.detach(), model.get_submodule("1").weight.detach()):
        assert torch.equal(p, p.half().float())


def test_float16_rounding_never_leaves_negative_zeros():
    # A value below float16's smallest subnormal (2**-24) rounds to zero keeping its sign, and
    # -0.0 has a non-zero bit pattern that the codec would store as a weight.
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1e-9, 0.0, 0.25], [-0.5, -1e-9, 0.5, 0.0]]))
        layer.bias.copy_(torch.tensor([-1e-9, 0.125]))
    model = nn.Sequential(layer)
    kmeans_(model, {"bits": 3, "float16": True, "finetune": {"epochs": 0}}, Context((torch.zeros(1, 4),)))
    for p in (layer.weight, layer.bias):
        assert np.all(p.detach()[p == 0].numpy().view(np.uint32) == 0)  # every zero is +0.0
    assert layer.bias.tolist() == [0.0, 0.125]


def test_layer_bits_names_a_selected_layer():
    from torchslim.errors import UserError

    model = _pruned_lenet()
    # '2' is a module of the model, but not a layer the step selects (a name of no module at all
    # is refused before the step by the shared layer-name check)
    with pytest.raises(UserError, match=r"field 'layer_bits': '2' matches no layer \(3 layers, e.g. 1, 3, 5\)"):
        kmeans_(model, {"layer_bits": {"2": 3}, "finetune": {"epochs": 0}})
