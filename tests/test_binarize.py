"""Tests of bincf_lite.binarize: Lemma 1 penalty, stochastic codes, sign codes (chapters 08-09)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bincf_lite import binarize

SETTINGS = settings(max_examples=25, deadline=None)


def _vertices(seed: int, rows: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(rows, d, generator=g) < 0.5, -1.0, 1.0).double()


# --------------------------------------------------------------------------- Lemma 1 penalty


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 64), p=st.sampled_from([1, 2, 0.5]))
def test_penalty_is_exactly_zero_on_vertices(seed, d, p):
    y = _vertices(seed, 3, d)
    assert binarize.binary_penalty(y, p=p).item() == 0.0
    assert (binarize.binary_penalty(y, p=p, reduction="none") == 0).all()


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 64))
def test_penalty_is_positive_off_the_vertices(seed, d):
    g = torch.Generator().manual_seed(seed)
    # strictly inside the open cube (condition (b)) ...
    inside = (torch.rand(5, d, generator=g, dtype=torch.float64) * 2 - 1) * 0.999
    assert (binarize.binary_penalty(inside, reduction="none").sum(-1) > 0).all()
    # ... and on a face of the cube that is not a vertex
    face = _vertices(seed, 5, d)
    face[:, 0] = 0.5
    assert (binarize.binary_penalty(face, reduction="none").sum(-1) > 0).all()


def test_penalty_values_and_reductions():
    x = torch.tensor([[-1.0, 0.0, 0.5], [1.0, -0.5, 0.9]])
    elementwise = torch.tensor([[0.0, 1.0, 0.25], [0.0, 0.25, 0.01]])
    assert torch.allclose(binarize.binary_penalty(x, reduction="none"), elementwise)
    # eq. (18): sum over rows of g(row) == sum over all entries
    assert torch.allclose(binarize.binary_penalty(x), elementwise.sum(-1).sum())
    assert torch.allclose(binarize.binary_penalty(x, reduction="mean"), elementwise.mean())
    assert torch.allclose(binarize.binary_penalty(x, p=1, reduction="none"), elementwise.sqrt())
    with pytest.raises(ValueError):
        binarize.binary_penalty(x, reduction="max")
    with pytest.raises(ValueError):
        binarize.binary_penalty(x, p=0)


def _approach(y: torch.Tensor, seed: int, t: float) -> torch.Tensor:
    """A point of the open cube at distance ~t from the vertex y, in a random direction inward."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(y.shape, generator=g, dtype=torch.float64) * 0.9 + 0.1
    return y - t * u * y


@pytest.mark.parametrize("seed", range(5))
def test_condition_c_holds_for_p1_and_fails_for_the_papers_square(seed):
    """Lemma 1 (c): g(x) >= eps * ||x - y|| for x near a vertex y, inside the cube."""
    d = 16
    y = _vertices(seed, 1, d)[0]
    ratios = {1: [], 2: []}
    for t in np.geomspace(1e-1, 1e-6, 11):
        x = _approach(y, seed, t)
        assert ((x > -1) & (x < 1)).all()
        for p in (1, 2):
            dist = torch.linalg.vector_norm(x - y, ord=p)  # any norm: they are equivalent
            ratios[p].append((binarize.binary_penalty(x, p=p) / dist).item())
            # near a vertex the penalty is exactly ||x - y||_p^p
            assert torch.allclose(binarize.binary_penalty(x, p=p), dist**p, rtol=1e-9)
    # p = 1: the ratio stays at 1 however close x gets, so eps(y) = 1 works
    assert np.allclose(ratios[1], 1.0)
    # p = 2 (the paper's g): the ratio shrinks linearly with the distance, no eps(y) > 0 works
    assert ratios[2][-1] / ratios[2][0] < 1e-4
    assert all(a > b for a, b in zip(ratios[2], ratios[2][1:]))


def test_exact_penalty_reaches_the_vertex_and_the_square_does_not():
    """1-D toy f(x) = (x - 0.3)^2 on [-1, 1]: the minimiser of f + beta g."""
    x = torch.linspace(-1, 1, 200_001, dtype=torch.float64)
    f = (x - 0.3) ** 2
    # p = 1: exact for beta >= 1.4 (f'(x) = 2(x - 0.3) <= 1.4 = beta on [0, 1])
    for beta in (1.5, 3.0):
        objective = f + beta * binarize.binary_penalty(x, p=1, reduction="none")
        assert x[objective.argmin()].item() == 1.0
    # p = 2: minimiser (0.3 + beta) / (1 + beta) < 1 for every finite beta
    for beta in (1.5, 10.0, 100.0):
        objective = f + beta * binarize.binary_penalty(x, p=2, reduction="none")
        xmin = x[objective.argmin()].item()
        assert xmin == pytest.approx((0.3 + beta) / (1 + beta), abs=2e-5)
        assert xmin < 1.0


# --------------------------------------------------------------------------- stochastic codes


def test_stochastic_sign_values_and_seed():
    x = torch.linspace(-1, 1, 101).repeat(20, 1)
    a = binarize.stochastic_sign(x, 0.5, torch.Generator().manual_seed(7))
    b = binarize.stochastic_sign(x, 0.5, torch.Generator().manual_seed(7))
    c = binarize.stochastic_sign(x, 0.5, torch.Generator().manual_seed(8))
    assert a.dtype == x.dtype and a.shape == x.shape
    assert set(a.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the noise takes only the two values of eq. (17)
    eps = a - x
    assert torch.isclose(eps, 1 - x).logical_or(torch.isclose(eps, -1 - x)).all()


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_stochastic_sign_mean_and_noise_match_the_closed_forms(tau):
    n = 40_000
    x = torch.linspace(-1, 1, 21, dtype=torch.float64)
    samples = binarize.stochastic_sign(
        x.expand(n, -1), tau, torch.Generator().manual_seed(2019)
    )
    # E[x~] = 2 sigmoid(x / tau) - 1 = tanh(x / 2 tau); std of a mean of n signs <= 1/sqrt(n)
    assert torch.allclose(samples.mean(0), binarize.expected_code(x, tau), atol=5 / n**0.5)
    assert torch.allclose(
        binarize.expected_code(x, tau), 2 * binarize.sign_probability(x, tau) - 1
    )
    # E[eps^2] per entry: Monte Carlo vs closed form (eps^2 <= 4: std of the mean <= 2/sqrt(n))
    mc = ((samples - x) ** 2).mean(0)
    closed = binarize.expected_noise(x, tau, reduction="none")
    assert torch.allclose(mc, closed, atol=10 / n**0.5)
    assert binarize.expected_noise(x, tau).item() == pytest.approx(closed.sum().item())
    assert binarize.expected_noise(x, tau, "mean").item() == pytest.approx(closed.mean().item())


def test_expected_noise_algebra():
    """1 + x^2 - 2x tanh(x / 2 tau) is the two-point expectation written out."""
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for tau in (0.05, 0.3, 1.0, 10.0):
        s = torch.sigmoid(x / tau)
        direct = s * (1 - x) ** 2 + (1 - s) * (1 + x) ** 2
        assert torch.allclose(binarize.expected_noise(x, tau, reduction="none"), direct)
    # at x = 0 the noise is a fair +-1: E eps^2 = 1; at a vertex it vanishes as tau -> 0
    assert binarize.expected_noise(torch.zeros(3), 0.5).item() == pytest.approx(3.0)
    assert binarize.expected_noise(torch.ones(1), 1e-3).item() == pytest.approx(0.0, abs=1e-12)


def test_straight_through_gradient():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 8, generator=g, requires_grad=True)
    x = torch.tanh(p)
    x.retain_grad()
    codes = binarize.stochastic_sign(x, 0.5, g)
    weights = torch.randn(4, 8, generator=g)
    (weights * codes).sum().backward()
    assert torch.equal(x.grad, weights)  # d x~ / d x = 1
    assert torch.allclose(p.grad, weights * (1 - x.detach() ** 2))


def test_small_tau_approaches_sign_and_bad_tau_raises():
    x = torch.tensor([-0.9, -0.2, 0.2, 0.9]).repeat(100, 1)
    codes = binarize.stochastic_sign(x, 1e-3, torch.Generator().manual_seed(0))
    assert torch.equal(codes, torch.sign(x))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            binarize.stochastic_sign(x, bad)
        with pytest.raises(ValueError):
            binarize.expected_noise(x, bad)


# --------------------------------------------------------------------------- sign codes, bits


def test_sign_codes():
    x = torch.tensor([[-0.3, 0.0, -0.0, 2.0]], requires_grad=True)
    codes = binarize.sign_codes(x)
    assert codes.dtype == torch.int8 and not codes.requires_grad
    assert codes.tolist() == [[-1, 1, 1, 1]]
    arr = binarize.sign_codes(np.array([[0.0, -1e-9, 5.0]]))
    assert arr.dtype == np.int8 and arr.tolist() == [[1, -1, 1]]
    with pytest.raises(ValueError):
        binarize.sign_codes(torch.tensor([float("nan")]))
    with pytest.raises(ValueError):
        binarize.sign_codes(np.array([np.nan]))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 6), d=st.integers(1, 200))
def test_codes_bytes_round_trip(seed, rows, d):
    """DESIGN §7: np.packbits rows, big-endian, bit 1 = +1; packing lives in bl.hashing."""
    hashing = pytest.importorskip("bincf_lite.hashing")
    x = torch.randn(rows, d, generator=torch.Generator().manual_seed(seed))
    codes = binarize.sign_codes(x).numpy()
    packed = hashing.packbits_rows(codes)
    assert packed.dtype == np.uint8 and packed.shape == (rows, -(-d // 8))
    assert np.array_equal(packed, np.packbits(codes > 0, axis=1))
    assert np.array_equal(hashing.unpackbits_rows(packed, d), codes)


def test_code_bit_order():
    """Code bit j is bit 7 - j % 8 of byte j // 8 (np.packbits' big-endian order)."""
    codes = binarize.sign_codes(np.array([[1, -1, -1, -1, -1, -1, -1, 1, 1]], dtype=float))
    assert np.packbits(codes > 0, axis=1).tolist() == [[0b10000001, 0b10000000]]


def test_itq_rotation_is_orthogonal_keeps_inner_products_and_lowers_quantisation_loss():
    rng = np.random.default_rng(0)
    # unequal column scales and correlated columns: the plain sign quantises poorly
    x = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    x -= x.mean(0)
    r = binarize.itq_rotation(x, num_iter=30)
    assert np.allclose(r.T @ r, np.eye(8), atol=1e-10)
    y = x @ r
    assert np.allclose(y @ y.T, x @ x.T)  # every inner product survives the rotation

    def loss(z):
        return ((np.sign(z) - z) ** 2).sum()

    assert loss(y) < loss(x)
    assert np.array_equal(binarize.itq_rotation(x, num_iter=0), np.eye(8))
    assert np.array_equal(r, binarize.itq_rotation(x, num_iter=30))  # deterministic
    with pytest.raises(ValueError):
        binarize.itq_rotation(x[0])
