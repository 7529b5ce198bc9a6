"""Sanity baselines: closed forms by hand, and the planted structure recovered."""

import numpy as np
import pytest
import scipy.sparse as sp

import bincf_lite as bl
from bincf_lite.baselines import BASELINES, tune_on_validation


def _ndcg(model, split):
    res = bl.evaluate_scores(model.score, split.train_full, split.test, [10])
    return float(res[res.metric == "ndcg"]["value"].iloc[0])


def test_pop_counts():
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1]]))
    assert bl.Pop().fit(x).score(np.array([0]))[0].tolist() == [1, 3, 1]


def test_itemknn_cosine_by_hand():
    x = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=float)
    model = bl.ItemKNN(num_neighbors=2).fit(sp.csr_matrix(x))
    norms = np.linalg.norm(x, axis=0)
    cos = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cos, 0)
    assert np.allclose(model.score(np.arange(3)), x @ cos)


def test_ease_closed_form():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 8)) < 0.4).astype(float)
    model = bl.EASE(l2=5.0).fit(sp.csr_matrix(x))
    b = model.weights_
    assert np.allclose(np.diag(b), 0)
    # stationarity of ||X - XB||^2 + l2 ||B||^2 off the diagonal
    grad = -x.T @ (x - x @ b) + 5.0 * b
    off = ~np.eye(8, dtype=bool)
    assert np.abs(grad[off]).max() < 1e-3


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_structure_beats_popularity(toy, name):
    s = bl.split_interactions(toy, seed=0)
    cls, param, grid = BASELINES[name]
    model, table = tune_on_validation(cls, param, grid[:3], s)
    assert len(table) == 3
    assert _ndcg(model, s) > _ndcg(bl.Pop().fit(s.train_full), s) + 0.05


def test_tuning_never_reads_test(toy):
    s = bl.split_interactions(toy, seed=0)
    blind = bl.Split(s.train, s.valid, sp.csr_matrix(s.test.shape), s.user_ids, s.item_ids)
    m1, t1 = tune_on_validation(bl.EASE, "l2", (1.0, 100.0), s)
    m2, t2 = tune_on_validation(bl.EASE, "l2", (1.0, 100.0), blind)
    assert t1.equals(t2) and m1.l2 == m2.l2
