"""Tests of bincf_lite.models: the cross op by hand, shapes, switches and configs."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bincf_lite import graph, models
from bincf_lite.models import (
    GCNCF,
    BPRMFConfig,
    GCNCFConfig,
    LightGCNConfig,
    SpectralCFConfig,
    build_model,
    cross_op,
    crossnet_op,
)


@pytest.fixture(scope="module")
def train():
    return sp.random(7, 5, density=0.5, random_state=0, format="csr")


def test_cross_op_by_hand():
    x = torch.tensor([1.0, 2.0])
    w = torch.tensor([0.5, -1.0])
    # w^T x = 0.5 - 2 = -1.5, so x * (-1.5) + x = -0.5 x
    torch.testing.assert_close(cross_op(x, w), torch.tensor([-0.5, -1.0]))


def test_vectorised_cross_op_is_eq_9():
    x = torch.randn(4, 3)
    w = torch.randn(4, 3)
    eq9 = torch.diag((x * w) @ torch.ones(3)) @ x + x
    torch.testing.assert_close(cross_op(x, w), eq9)
    rows = torch.stack([cross_op(x[n], w[n]) for n in range(4)])
    torch.testing.assert_close(cross_op(x, w), rows)


def test_crossnet_op_by_hand():
    x0 = torch.tensor([1.0, 0.0])
    xk = torch.tensor([2.0, 3.0])
    w = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(crossnet_op(x0, xk, w), torch.tensor([7.0, 3.0]))


def test_cross_op_degree_doubles():
    # on a scalar with w = 1: x -> x^2 + x, so two cross ops give a degree-4 polynomial
    x = torch.tensor([2.0])
    w = torch.tensor([1.0])
    assert cross_op(cross_op(x, w), w).item() == 6.0 * 6.0 + 6.0


@pytest.mark.parametrize(
    "name,config,width",
    [
        ("bpr-mf", BPRMFConfig(embed_dim=8), 8),
        ("lightgcn", LightGCNConfig(embed_dim=8), 8),
        ("spectralcf", SpectralCFConfig(embed_dim=8, num_layers=3), 32),
        ("gcn-cf", GCNCFConfig(embed_dim=8), 24),
    ],
)
def test_output_shapes(train, name, config, width):
    model = build_model(name, train, config)
    u, v = model()
    assert u.shape == (7, width) and v.shape == (5, width)
    assert model.out_dim == width
    assert torch.isfinite(u).all() and torch.isfinite(v).all()
    eu, ev = model.ego()
    assert eu.shape == (7, 8) and ev.shape == (5, 8)


def test_gcncf_concatenates_layers_0_1_4(train):
    model = GCNCF(train, GCNCFConfig(embed_dim=4))
    x0, x1, _, _, x4 = model.layers()
    u, v = model()
    torch.testing.assert_close(torch.cat([u, v]), torch.cat([x0, x1, x4], dim=1))
    torch.testing.assert_close(u[:, :4], model.embedding[:7])


def test_gcncf_first_layer_is_eq_8(train):
    cfg = GCNCFConfig(embed_dim=4, batchnorm=False)
    model = GCNCF(train, cfg)
    x0, x1, *_ = model.layers()
    dense = torch.from_numpy(graph.propagation_matrix(train).toarray()).float()
    torch.testing.assert_close(x1, torch.sigmoid(dense @ x0 @ model.theta0))


def test_zero_cross_weights_are_the_identity(train):
    with_cross = GCNCF(train, GCNCFConfig(embed_dim=4))
    without = GCNCF(train, GCNCFConfig(embed_dim=4, cross=False))
    torch.testing.assert_close(torch.cat(with_cross()), torch.cat(without()))


def test_batchnorm_same_in_train_and_eval(train):
    model = GCNCF(train, GCNCFConfig(embed_dim=4))
    a = torch.cat(model.train()())
    b = torch.cat(model.eval()())
    torch.testing.assert_close(a, b)


def test_lightgcn_is_mean_of_propagated_layers(train):
    model = build_model("lightgcn", train, LightGCNConfig(embed_dim=3, num_layers=2))
    a = torch.from_numpy(graph.normalized_adjacency(train).toarray()).float()
    e0 = model.embedding
    expected = (e0 + a @ e0 + a @ a @ e0) / 3
    torch.testing.assert_close(torch.cat(model()), expected)


def test_rw_laplacian_variant_trains_gradients(train):
    model = GCNCF(train, GCNCFConfig(embed_dim=4, laplacian="rw", activation="identity"))
    u, v = model()
    (u.sum() + v.pow(2).sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_same_seed_same_init(train):
    a = build_model("gcn-cf", train, GCNCFConfig(embed_dim=4, seed=3))
    b = build_model("gcn-cf", train, GCNCFConfig(embed_dim=4, seed=3))
    torch.testing.assert_close(torch.cat(a()), torch.cat(b()))


def test_config_checks_and_round_trip():
    with pytest.raises(ValueError, match="activation"):
        GCNCFConfig(activation="softplus")
    with pytest.raises(ValueError, match="laplacian"):
        SpectralCFConfig(laplacian="combinatorial")
    with pytest.raises(ValueError, match="lr"):
        BPRMFConfig(lr=0)
    cfg = GCNCFConfig(embed_dim=16, activation="identity")
    assert models.config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="no field"):
        models.config_from_dict({"model": "gcn-cf", "num_layer": 3})
    with pytest.raises(dataclasses_frozen_error()):
        cfg.lr = 1.0


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_build_model_errors(train):
    with pytest.raises(ValueError, match="unknown model"):
        build_model("ngcf", train)
    with pytest.raises(TypeError, match="GCNCFConfig"):
        build_model("gcn-cf", train, BPRMFConfig())
    assert np.isfinite(build_model("spectralcf", train).out_dim)


def test_gcncf_without_transform_is_plain_smoothing(train):
    cfg = GCNCFConfig(embed_dim=4, activation="identity", batchnorm=False, cross=False, transform=False)
    model = GCNCF(train, cfg)
    assert model.theta0 is None
    x0, x1, _, _, x4 = model.layers()
    p = torch.from_numpy(graph.propagation_matrix(train).toarray()).float()
    torch.testing.assert_close(x1, p @ x0)
    torch.testing.assert_close(x4, p @ p @ x0)


def test_gcncf_mean_combination(train):
    model = GCNCF(train, GCNCFConfig(embed_dim=4, combine="mean"))
    x0, x1, _, _, x4 = model.layers()
    u, v = model()
    assert model.out_dim == 4
    torch.testing.assert_close(torch.cat([u, v]), (x0 + x1 + x4) / 3)
