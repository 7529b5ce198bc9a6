"""Ranking metrics under the book's evaluation protocol (chapter 02).

Every number in the book goes through this module. The protocol (DESIGN §3):

* for each user, score every item, set the user's training items to ``-inf`` and take the top K;
* ties are broken by **one fixed random permutation of the items** (:func:`tie_priority`), never
  by item id, and the same rule applies to float scores and to integer Hamming distances;
* relevance is binary: an item is relevant when it is one of the user's test items;
* users without test items are skipped and counted.

With :math:`\\mathrm{rel}_k \\in \\{0,1\\}` the relevance of the item at rank :math:`k` and
:math:`n_u` the number of test items of user :math:`u`:

.. math::

    \\mathrm{Recall@K} = \\frac{\\sum_{k\\le K} \\mathrm{rel}_k}{n_u}, \\qquad
    \\mathrm{Precision@K} = \\frac{\\sum_{k\\le K} \\mathrm{rel}_k}{K},

    \\mathrm{AP@K} = \\frac{1}{\\min(K, n_u)} \\sum_{k\\le K} \\mathrm{P@k}\\,\\mathrm{rel}_k, \\qquad
    \\mathrm{NDCG@K} = \\frac{\\sum_{k\\le K} \\mathrm{rel}_k / \\log_2(k+1)}
                            {\\sum_{k\\le \\min(K, n_u)} 1 / \\log_2(k+1)}.

MAP@K is the mean of AP@K over the evaluated users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "TIE_SEED",
    "METRICS",
    "tie_priority",
    "topk_from_scores",
    "ranking_hits",
    "metrics_from_hits",
    "evaluate_topk",
    "evaluate_scores",
    "check_k",
]

#: Seed of the fixed item permutation that breaks ties (DESIGN §3). Documented, never changed.
TIE_SEED = 2019

#: Metric names in the order the book's tables use.
METRICS = ("recall", "precision", "map", "ndcg")

# Largest number of dense cells (users x items) a block of the evaluation may hold.
_BLOCK_CELLS = 1 << 23


def tie_priority(num_items: int, seed: int = TIE_SEED) -> np.ndarray:
    """Priority of each item when scores tie: lower wins.

    ``priority[i]`` is the position of item ``i`` in one fixed random permutation of the items,
    drawn with ``np.random.default_rng(seed).permutation(num_items)``. Ranking by
    (score descending, priority ascending) is the book's tie rule for every model.
    """
    perm = np.random.default_rng(seed).permutation(num_items)
    priority = np.empty(num_items, dtype=np.int64)
    priority[perm] = np.arange(num_items, dtype=np.int64)
    return priority


def check_k(ks: int | Sequence[int], num_items: int) -> list[int]:
    """Validate cut-offs: each K must satisfy ``1 <= K <= num_items``. Returns a sorted list."""
    ks = [ks] if np.isscalar(ks) else list(ks)
    if not ks:
        raise ValueError("at least one cut-off K is needed, e.g. k=[10, 20, 50, 100]")
    for k in ks:
        if int(k) != k or k <= 0:
            raise ValueError(f"K must be a positive integer, got {k!r}")
        if k > num_items:
            raise ValueError(f"K={k} is larger than the catalogue ({num_items} items)")
    return sorted({int(k) for k in ks})


def topk_from_scores(
    scores: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    priority: np.ndarray | None = None,
) -> np.ndarray:
    """Top-``k`` item indices of each row of ``scores``, best first, under the tie rule.

    Parameters
    ----------
    scores:
        ``(B, N)`` float scores of ``B`` users for all ``N`` items.
    exclude:
        ``(B, N)`` sparse matrix whose non-zeros are items that must not be recommended
        (the users' training items); they are ranked last, as if scored ``-inf``.
    priority:
        Tie priority of the items (:func:`tie_priority`); lower wins among equal scores.

    The selection is exact: all items strictly better than the K-th score are kept, and items
    tied with it are taken in priority order. Cost is a few linear passes over the block.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (users x items) array, got shape {scores.shape}")
    num_rows, num_items = scores.shape
    check_k(k, num_items)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: the model diverged or was not trained")
    if priority is None:
        priority = tie_priority(num_items)
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    order = np.argsort(priority, kind="stable")  # column j of `s` is item order[j]
    s = -scores[:, order]  # smaller is better now; ties resolved by column position
    kth = np.partition(s, k - 1, axis=1)[:, k - 1 : k]
    better = s < kth
    tied = s == kth
    need = k - better.sum(axis=1, keepdims=True)
    chosen = better | (tied & (np.cumsum(tied, axis=1) <= need))
    cols = np.nonzero(chosen)[1].reshape(num_rows, k)
    vals = np.take_along_axis(s, cols, axis=1)
    # columns are in priority order, so a stable sort on the score keeps the tie rule
    cols = np.take_along_axis(cols, np.argsort(vals, axis=1, kind="stable"), axis=1)
    return order[cols]


def ranking_hits(topk: np.ndarray, test_rows: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(B, K)`` matrix: is the item at each rank one of the user's test items?

    An index of ``-1`` (a list shorter than K, as :func:`bincf_lite.hashing.hamming_topk`
    returns when exclusions leave fewer than K items) is never a hit."""
    test_rows = sp.csr_matrix(test_rows)
    num_rows, k = topk.shape
    if test_rows.shape[0] != num_rows:
        raise ValueError("topk and test rows must describe the same users")
    indptr, indices = test_rows.indptr, test_rows.indices
    row_of = np.repeat(np.arange(num_rows), np.diff(indptr))
    # key = row * N + item, sorted because CSR indices are sorted within each row
    n = max(test_rows.shape[1], int(topk.max(initial=0)) + 1)
    keys = row_of.astype(np.int64) * n + indices
    keys.sort()
    query = np.arange(num_rows, dtype=np.int64)[:, None] * n + topk.astype(np.int64)
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    if not len(keys):
        return np.zeros_like(query, dtype=bool)
    return (keys[pos] == query) & (topk >= 0)  # -1 pads a list shorter than K


def metrics_from_hits(hits: np.ndarray, num_test: np.ndarray, ks: Sequence[int]) -> dict:
    """Per-user metric values from a hits matrix; returns ``{(metric, K): array}``.

    ``hits`` is ``(B, Kmax)`` boolean, ``num_test`` the number of test items of each user
    (all positive).
    """
    hits = hits.astype(np.float64)
    kmax = hits.shape[1]
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    cum = np.cumsum(hits, axis=1)
    prec_at = cum / ranks  # P@k at every rank k
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(hits * discount, axis=1)
    idcg_table = np.cumsum(discount)
    ap_terms = np.cumsum(prec_at * hits, axis=1)
    out = {}
    for k in ks:
        if k > kmax:
            raise ValueError(f"K={k} is larger than the ranked lists ({kmax})")
        h = cum[:, k - 1]
        denom = np.minimum(k, num_test)
        out[("recall", k)] = h / num_test
        out[("precision", k)] = h / k
        out[("map", k)] = ap_terms[:, k - 1] / denom
        out[("ndcg", k)] = dcg[:, k - 1] / idcg_table[denom - 1]
    return out


def _summarise(per_user: dict, num_evaluated: int, num_skipped: int) -> pd.DataFrame:
    rows = [
        {"metric": m, "k": k, "value": float(np.mean(v)) if len(v) else float("nan")}
        for (m, k), v in per_user.items()
    ]
    df = pd.DataFrame(rows)
    df["metric"] = pd.Categorical(df["metric"], categories=list(METRICS), ordered=True)
    df = df.sort_values(["metric", "k"], ignore_index=True)
    df["metric"] = df["metric"].astype(str)
    df.attrs["num_users"] = int(num_evaluated)
    df.attrs["num_skipped"] = int(num_skipped)
    return df


def evaluate_topk(topk: np.ndarray, test: sp.csr_matrix, ks: Sequence[int] = (10, 20, 50, 100)):
    """Metrics of given ranked lists (one row per user, all users of ``test`` in order).

    Used for models that rank by themselves (Hamming retrieval). Returns a tidy DataFrame with
    columns ``metric, k, value``; ``df.attrs`` holds ``num_users`` (evaluated) and
    ``num_skipped`` (users without test items).
    """
    test = sp.csr_matrix(test)
    ks = check_k(ks, test.shape[1])
    if topk.shape[0] != test.shape[0]:
        raise ValueError(f"{topk.shape[0]} ranked lists for {test.shape[0]} users")
    num_test = np.diff(test.indptr)
    keep = num_test > 0
    hits = ranking_hits(topk[keep], test[keep])
    per_user = metrics_from_hits(hits, num_test[keep], ks)
    return _summarise(per_user, keep.sum(), (~keep).sum())


def evaluate_scores(
    score_fn: Callable[[np.ndarray], np.ndarray],
    exclude: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: Sequence[int] = (10, 20, 50, 100),
    priority: np.ndarray | None = None,
    block_size: int | None = None,
) -> pd.DataFrame:
    """Evaluate a scoring model on ``test``, blocked over users.

    ``score_fn(users)`` returns the ``(len(users), N)`` scores of those users for every item.
    ``exclude`` holds each user's training items (masked to ``-inf`` before the top K).
    Users without test items are skipped and counted in ``df.attrs["num_skipped"]``.
    """
    test = sp.csr_matrix(test)
    exclude = sp.csr_matrix(exclude)
    num_users, num_items = test.shape
    if exclude.shape != test.shape:
        raise ValueError(f"exclude {exclude.shape} and test {test.shape} differ in shape")
    ks = check_k(ks, num_items)
    if priority is None:
        priority = tie_priority(num_items)
    num_test = np.diff(test.indptr)
    users = np.flatnonzero(num_test > 0)
    block = block_size or max(1, _BLOCK_CELLS // max(num_items, 1))
    parts: dict = {}
    for start in range(0, len(users), block):
        batch = users[start : start + block]
        scores = np.asarray(score_fn(batch))
        if scores.shape != (len(batch), num_items):
            raise ValueError(
                f"score_fn returned shape {scores.shape}, expected {(len(batch), num_items)}"
            )
        topk = topk_from_scores(scores, ks[-1], exclude[batch], priority)
        hits = ranking_hits(topk, test[batch])
        for key, v in metrics_from_hits(hits, num_test[batch], ks).items():
            parts.setdefault(key, []).append(v)
    per_user = {key: np.concatenate(v) for key, v in parts.items()}
    if not per_user:
        per_user = {(m, k): np.array([]) for m in METRICS for k in ks}
    return _summarise(per_user, len(users), num_users - len(users))
