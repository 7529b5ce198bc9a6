"""bincf_lite: binarized collaborative filtering with distilling GCNs, rebuilt for a book.

Each module is one concept and is introduced by one chapter:

=============  =====================================================  =======
module         concept                                                chapter
=============  =====================================================  =======
``data``       loading, the iterative k-core filter, splits, negatives  01
``metrics``    Recall / Precision / MAP / NDCG @K under the tie rule    02
``baselines``  Pop, ItemKNN, EASE (sanity rows of every table)          02
``plotting``   figures with one fixed style; baselines always shown     01, 02
``hashing``    packed codes, popcount top-K                             13
``cli``        the ``bincf-lite`` command                               --
=============  =====================================================  =======
"""

from . import baselines, data, metrics, plotting, runs
from .baselines import EASE, ItemKNN, Pop
from .data import (
    DataError,
    Interactions,
    Split,
    kcore_filter,
    load_dataset,
    sample_negatives,
    split_interactions,
    synthetic_interactions,
)
from .metrics import evaluate_scores, evaluate_topk, tie_priority, topk_from_scores
from .utils import set_seed

__version__ = "0.1.0"

__all__ = [
    "data",
    "metrics",
    "baselines",
    "runs",
    "plotting",
    "DataError",
    "Interactions",
    "Split",
    "kcore_filter",
    "load_dataset",
    "sample_negatives",
    "split_interactions",
    "synthetic_interactions",
    "evaluate_scores",
    "evaluate_topk",
    "tie_priority",
    "topk_from_scores",
    "Pop",
    "ItemKNN",
    "EASE",
    "set_seed",
]
