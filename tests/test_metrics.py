"""Metrics checked by hand and against a plain per-user reference (property tests)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import bincf_lite as bl
from bincf_lite.metrics import check_k, evaluate_scores, evaluate_topk, tie_priority, topk_from_scores


def reference(scores, train, test, ks, priority):
    """One user at a time, with Python lists: the definitions of DESIGN §3 read literally."""
    out = {}
    num_users, num_items = scores.shape
    evaluated = 0
    for u in range(num_users):
        rel = set(test[u].indices.tolist())
        if not rel:
            continue
        evaluated += 1
        seen = set(train[u].indices.tolist())
        ranked = sorted(
            range(num_items),
            key=lambda i: (i in seen, -scores[u, i], priority[i]),
        )
        for k in ks:
            top = ranked[:k]
            hits = [1 if i in rel else 0 for i in top]
            n = len(rel)
            ap = sum(sum(hits[: j + 1]) / (j + 1) * hits[j] for j in range(k)) / min(k, n)
            dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(k, n)))
            for name, v in (
                ("recall", sum(hits) / n),
                ("precision", sum(hits) / k),
                ("map", ap),
                ("ndcg", dcg / idcg),
            ):
                out.setdefault((name, k), []).append(v)
    return {key: np.mean(v) for key, v in out.items()}, evaluated


@st.composite
def problems(draw):
    num_users = draw(st.integers(1, 8))
    num_items = draw(st.integers(2, 25))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([2, 4, 1000]))  # few levels: many ties
    scores = rng.integers(0, levels, size=(num_users, num_items)).astype(float)
    # leave at least K free items for every user
    k_max = draw(st.integers(1, max(1, num_items // 2)))
    train = (rng.random((num_users, num_items)) < 0.3).astype(float)
    for u in range(num_users):
        while train[u].sum() > num_items - k_max:
            train[u, np.flatnonzero(train[u])[0]] = 0
    test = ((rng.random((num_users, num_items)) < 0.4) & (train == 0)).astype(float)
    ks = sorted(set(draw(st.lists(st.integers(1, k_max), min_size=1, max_size=3))))
    return scores, sp.csr_matrix(train), sp.csr_matrix(test), ks


@settings(max_examples=60, deadline=None)
@given(problems())
def test_matches_per_user_reference(problem):
    scores, train, test, ks = problem
    priority = tie_priority(scores.shape[1])
    ref, evaluated = reference(scores, train, test, ks, priority)
    got = evaluate_scores(lambda u: scores[u], train, test, ks, priority, block_size=3)
    assert got.attrs["num_users"] == evaluated
    assert got.attrs["num_skipped"] == scores.shape[0] - evaluated
    if evaluated == 0:
        assert got["value"].isna().all()
        return
    for row in got.itertuples():
        assert 0.0 <= row.value <= 1.0 + 1e-12
        assert row.value == pytest.approx(ref[(row.metric, row.k)], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_topk_excludes_training_and_respects_ties(problem):
    scores, train, _, ks = problem
    priority = tie_priority(scores.shape[1])
    k = ks[-1]
    top = topk_from_scores(scores, k, train, priority)
    for u in range(scores.shape[0]):
        assert not set(top[u]) & set(train[u].indices)
        key = [(-scores[u, i], priority[i]) for i in top[u]]
        assert key == sorted(key)
        assert len(set(top[u])) == k


def test_hand_example():
    """One user, test items {a, c}; ranking a, b, c."""
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    test = sp.csr_matrix(np.array([[1, 0, 1, 0]]))
    res = evaluate_scores(lambda u: scores[u], sp.csr_matrix((1, 4)), test, [1, 3])
    v = {(r.metric, r.k): r.value for r in res.itertuples()}
    assert v[("recall", 1)] == 0.5 and v[("recall", 3)] == 1.0
    assert v[("precision", 3)] == pytest.approx(2 / 3)
    assert v[("map", 3)] == pytest.approx((1 + 2 / 3) / 2)
    assert v[("ndcg", 3)] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert v[("ndcg", 1)] == 1.0


def test_perfect_ranking_has_ndcg_one():
    rng = np.random.default_rng(0)
    test = sp.csr_matrix((rng.random((20, 50)) < 0.2).astype(float))
    res = evaluate_scores(lambda u: test[u].toarray(), sp.csr_matrix((20, 50)), test, [5, 50])
    ndcg = res[res.metric == "ndcg"]["value"]
    assert np.allclose(ndcg, 1.0)


def test_ties_follow_the_permutation_not_the_id():
    scores = np.zeros((1, 6))
    priority = tie_priority(6)
    top = topk_from_scores(scores, 6, None, priority)[0]
    assert list(top) == list(np.argsort(priority))
    assert list(top) != list(range(6))  # the fixed permutation is not the identity


def test_users_without_test_items_are_skipped():
    test = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]]))
    res = evaluate_scores(lambda u: np.ones((len(u), 3)), sp.csr_matrix((2, 3)), test, [1])
    assert res.attrs == {"num_users": 1, "num_skipped": 1}


def test_evaluate_topk_equals_evaluate_scores(toy):
    s = bl.split_interactions(toy, seed=0)
    pop = bl.Pop().fit(s.train_full)
    a = evaluate_scores(pop.score, s.train_full, s.test, [5, 10])
    top = topk_from_scores(pop.score(np.arange(s.num_users)), 10, s.train_full, tie_priority(s.num_items))
    b = evaluate_topk(top, s.test, [5, 10])
    assert np.allclose(a["value"], b["value"])


@pytest.mark.parametrize("k", [0, -3, 2.5, 11])
def test_bad_k(k):
    with pytest.raises(ValueError, match="K"):
        check_k([k], 10)


def test_nan_scores_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        topk_from_scores(np.array([[np.nan, 1.0]]), 1)


def test_padding_minus_one_is_never_a_hit():
    """hamming_topk pads short lists with -1; item N-1 of the row must not count as a hit."""
    from bincf_lite.metrics import ranking_hits

    test = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 1]]))
    hits = ranking_hits(np.array([[2, -1], [0, -1]]), test)
    assert hits.tolist() == [[True, False], [False, False]]
