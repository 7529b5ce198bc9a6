"""Tests of bincf_lite.graph: the bipartite graph, its "Laplacians" and the sparse operator."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bincf_lite import graph


def star():
    """One user who interacted with three items: a star with the user at the centre."""
    return sp.csr_matrix(np.array([[1.0, 1.0, 1.0]]))


def test_bipartite_adjacency_blocks():
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]]))
    a = graph.bipartite_adjacency(r).toarray()
    expected = np.zeros((5, 5))
    expected[:2, 2:] = r.toarray()
    expected[2:, :2] = r.toarray().T
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(graph.degrees(graph.bipartite_adjacency(r)), [2, 1, 1, 1, 1])


def test_star_normalized_adjacency_by_hand():
    # degrees: user 3, items 1 each -> L[u, i] = 1 / sqrt(3 * 1)
    lap = graph.normalized_adjacency(star()).toarray()
    c = 1 / np.sqrt(3)
    expected = np.array([[0, c, c, c], [c, 0, 0, 0], [c, 0, 0, 0], [c, 0, 0, 0]])
    np.testing.assert_allclose(lap, expected)
    # its spectrum: +-1 (the star is bipartite) and 0 twice
    vals, _ = graph.spectrum(lap)
    np.testing.assert_allclose(vals, [-1, 0, 0, 1], atol=1e-12)


def test_star_random_walk_laplacian_by_hand():
    lap = graph.laplacian(star(), "rw").toarray()
    t = 1 / 3
    expected = np.array([[1, -t, -t, -t], [-1, 1, 0, 0], [-1, 0, 1, 0], [-1, 0, 0, 1]])
    np.testing.assert_allclose(lap, expected)
    np.testing.assert_allclose(graph.propagation_matrix(star(), "rw").toarray(), np.eye(4) + expected)
    # D^-1 A is similar to D^-1/2 A D^-1/2: the same eigenvalues, so I - D^-1 A has 1 - {-1,0,0,1}
    vals, vecs = graph.spectrum(lap)
    np.testing.assert_allclose(vals, [0, 1, 1, 2], atol=1e-9)
    assert vecs.shape == (4, 0)


def test_zero_degree_nodes_give_zero_not_nan():
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0]]))  # user 1 and item 1 isolated
    for kind in graph.LAPLACIANS:
        lap = graph.laplacian(r, kind).toarray()
        assert np.isfinite(lap).all()
        assert not np.any(lap[1, np.arange(6) != 1])  # the isolated user's row
        assert lap[1, 1] == (0 if kind == "sym" else 1)  # I - D^-1 A keeps the identity
    np.testing.assert_array_equal(graph.inverse_degree_power(np.array([0.0, 4.0]), 0.5), [0, 0.5])


def test_propagation_matrix_is_identity_plus_laplacian_and_stays_sparse():
    r = sp.random(20, 15, density=0.2, random_state=1, format="csr")
    p = graph.propagation_matrix(r)
    assert sp.issparse(p)
    lap = graph.normalized_adjacency(r)
    np.testing.assert_allclose(p.toarray(), np.eye(35) + lap.toarray())
    vals, _ = graph.spectrum(lap)
    assert vals.min() >= -1 - 1e-9 and vals.max() <= 1 + 1e-9
    np.testing.assert_allclose(np.sort(vals), np.sort(-vals), atol=1e-9)  # bipartite: symmetric


def test_spectrum_refuses_large_graphs():
    big = sp.identity(graph.MAX_DENSE_NODES + 1, format="csr")
    with pytest.raises(ValueError, match="small graphs"):
        graph.spectrum(big)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown Laplacian"):
        graph.laplacian(star(), "combinatorial")


@pytest.mark.parametrize("kind", graph.LAPLACIANS)
def test_sparse_operator_gradient_equals_dense(kind):
    r = sp.random(12, 9, density=0.3, random_state=2, format="csr")
    m = graph.propagation_matrix(r, kind)
    op = graph.SparseOperator(m, dtype=torch.float64)
    assert op.symmetric == (kind == "sym")
    x = torch.randn(21, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(21, 4, dtype=torch.float64)
    (op @ x * g).sum().backward()
    dense = torch.from_numpy(m.toarray())
    x2 = x.detach().clone().requires_grad_(True)
    (dense @ x2 * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close((op @ x).detach(), dense @ x.detach())


def test_sparse_operator_gradcheck():
    r = sp.random(6, 5, density=0.4, random_state=3, format="csr")
    op = graph.SparseOperator(graph.propagation_matrix(r, "rw"), dtype=torch.float64)
    x = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: graph.sparse_matmul(op, t), (x,))


def test_sparse_operator_shape_errors():
    with pytest.raises(ValueError, match="square"):
        graph.SparseOperator(sp.csr_matrix((2, 3)))
    op = graph.propagation_operator(star())
    with pytest.raises(ValueError, match="cannot multiply"):
        op @ torch.zeros(3, 2)
