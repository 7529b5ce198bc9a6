"""Sanity baselines that sit beside every table of the book (chapter 02).

Three non-learned or closed-form recommenders that any hashing method must be compared with:

* :class:`Pop` scores an item by its number of training interactions;
* :class:`ItemKNN` scores item :math:`j` for user :math:`u` by
  :math:`\\sum_{i \\in R_u \\cap N_k(j)} \\cos(i, j)`, with :math:`N_k(j)` the ``num_neighbors``
  items most similar to :math:`j`;
* :class:`EASE` (Steck, 2019) learns an item-item matrix in closed form,
  :math:`P = (X^\\top X + \\lambda I)^{-1}`, :math:`B = I - P\\,\\mathrm{diag}(1/\\mathrm{diag}\\,P)`,
  and scores :math:`x_u B`.

Each model has ``fit(train)`` and ``score(users)``; :func:`tune_on_validation` chooses a
hyperparameter on the validation set and refits on the whole training half.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import Split
from .metrics import evaluate_scores

__all__ = ["Pop", "ItemKNN", "EASE", "BASELINES", "tune_on_validation", "fit_baseline"]


@dataclass
class Pop:
    """Most popular items first: :math:`s(u, j) = |\\{v : (v, j) \\in R\\}|`."""

    def fit(self, train: sp.csr_matrix) -> Pop:
        train = sp.csr_matrix(train)
        self.popularity_ = np.asarray(train.sum(axis=0), dtype=np.float64).ravel()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), len(self.popularity_))).copy()


@dataclass
class ItemKNN:
    """Item-based neighbourhood model with cosine similarity and ``num_neighbors`` neighbours."""

    num_neighbors: int = 200

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        train = sp.csr_matrix(train, dtype=np.float32)
        num_items = train.shape[1]
        norms = np.sqrt(np.asarray(train.multiply(train).sum(axis=0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        x = train @ sp.diags(inv.astype(np.float32))
        k = min(self.num_neighbors, num_items - 1)
        rows, cols, vals = [], [], []
        block = max(1, (1 << 24) // max(num_items, 1))
        for start in range(0, num_items, block):
            stop = min(start + block, num_items)
            sim = np.asarray((x[:, start:stop].T @ x).todense())  # (block, N): sim of j with all
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k > 0 else np.empty((stop - start, 0), int)
            rows.append(np.repeat(np.arange(start, stop), top.shape[1]))
            cols.append(top.ravel())
            vals.append(np.take_along_axis(sim, top, axis=1).ravel())
        # sim_[j, i] = cos(i, j) for the neighbours i of j; scores are R_u @ sim_.T
        neigh = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(num_items, num_items),
        )
        self.similarity_ = neigh.T.tocsr()
        self.train_ = train
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.train_[users] @ self.similarity_).todense(), dtype=np.float64)


@dataclass
class EASE:
    """Embarrassingly shallow autoencoder with L2 weight ``l2`` (Steck, WWW 2019)."""

    l2: float = 1000.0

    def fit(self, train: sp.csr_matrix) -> EASE:
        train = sp.csr_matrix(train, dtype=np.float64)
        gram = np.asarray((train.T @ train).todense())
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)
        self.train_ = train.astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.train_[users] @ self.weights_, dtype=np.float64)


#: Each baseline, its hyperparameter, the validation grid, and the default chosen on ML-1M
#: validation (split seed 0, NDCG@100; see chapter 02 and ``bincf-lite fit``).
BASELINES: dict[str, tuple[type, str | None, tuple]] = {
    "pop": (Pop, None, ()),
    "itemknn": (ItemKNN, "num_neighbors", (50, 100, 200, 400, 800)),
    "ease": (EASE, "l2", (100.0, 300.0, 1000.0, 3000.0, 10000.0)),
}


def tune_on_validation(
    make_model: Callable[..., object],
    param: str | None,
    grid: Sequence,
    split: Split,
    metric: tuple[str, int] = ("ndcg", 100),
    progress: bool = False,
) -> tuple[object, pd.DataFrame]:
    """Choose ``param`` from ``grid`` by ``metric`` on the validation set, then refit.

    Each candidate is fitted on ``split.train`` and scored on ``split.valid`` (training items
    masked); the best one is refitted on ``split.train_full`` (train + validation). The test set
    is never touched. Returns the refitted model and one row per candidate.
    """
    from tqdm.auto import tqdm

    name, k = metric
    rows = []
    candidates = list(grid) if param else [None]
    for value in tqdm(candidates, desc="validation grid", disable=not progress):
        model = make_model(**({param: value} if param else {}))
        model.fit(split.train)
        res = evaluate_scores(model.score, split.train, split.valid, ks=[k])
        rows.append({"param": param, "value": value, metric_name(metric): _pick(res, name, k)})
    table = pd.DataFrame(rows)
    best = candidates[int(table[metric_name(metric)].to_numpy().argmax())]
    model = make_model(**({param: best} if param else {}))
    model.fit(split.train_full)
    return model, table


def metric_name(metric: tuple[str, int]) -> str:
    return f"{metric[0]}@{metric[1]}"


def _pick(result: pd.DataFrame, name: str, k: int) -> float:
    row = result[(result["metric"] == name) & (result["k"] == k)]
    return float(row["value"].iloc[0])


def fit_baseline(name: str, train: sp.csr_matrix, **params) -> object:
    """Fit the baseline called ``name`` (``pop``, ``itemknn``, ``ease``) with ``params``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    cls = BASELINES[name][0]
    return cls(**params).fit(train)
