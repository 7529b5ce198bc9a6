"""bincf_lite: binarized collaborative filtering with distilling GCNs, rebuilt for a book.

Each module is one concept and is introduced by one chapter (dependency direction:
data → graph → models → losses/binarize/distill → train/student → metrics/hashing → cli):

==================  ===========================================================  =========
module              concept                                                      chapter
==================  ===========================================================  =========
``data``            loading, the iterative k-core filter, splits, negatives       01
``metrics``         Recall / Precision / MAP / NDCG @K under the tie rule         02
``baselines``       Pop, ItemKNN, EASE (sanity rows of every table)               02
``plotting``        figures with one fixed style; baselines always shown          01, 02
``graph``           bipartite adjacency, Laplacians, I + L as a sparse operator   03
``models``          SpectralCF, the cross op, GCN-CF, BPR-MF, LightGCN            04–06
``losses``          the BPR loss of eq. (14)                                      04, 06
``train``           one BPR training loop with early stopping on validation       06
``binarize``        Lemma 1's penalty, stochastic sign, sign codes                07–09
``distill``         the ListNet distillation loss of eq. (15)–(16)                10
``student``         BinCF / DGCN-BinCF, eq. (18)                                  11
``hash_baselines``  DCF, BCCF, PPH and sign-of-MF two-stage codes                 12
``hashing``         packed codes, fused popcount top-K                            13
``runs``            run directories on disk                                       --
``reproduce``       every model over split seeds, mean ± std tables               14
``cli``             the ``bincf-lite`` command                                    --
==================  ===========================================================  =========
"""

from . import (
    baselines,
    binarize,
    data,
    distill,
    graph,
    hash_baselines,
    hashing,
    losses,
    metrics,
    models,
    plotting,
    reproduce,
    runs,
    student,
    train,
)
from .baselines import EASE, ItemKNN, Pop
from .binarize import binary_penalty, expected_noise, sign_codes, stochastic_sign
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
from .distill import distillation_weight, listnet_loss
from .graph import laplacian, normalized_adjacency, propagation_operator
from .hashing import hamming_topk, pack_codes, unpack_codes
from .losses import bpr_loss
from .metrics import evaluate_scores, evaluate_topk, tie_priority, topk_from_scores
from .models import BPRMF, GCNCF, LightGCN, SpectralCF, cross_op
from .student import BinCF, StudentConfig, fit_student
from .train import fit_float_model, train_bpr
from .utils import set_seed

__version__ = "0.1.0"

__all__ = [
    # modules
    "baselines", "binarize", "data", "distill", "graph", "hash_baselines", "hashing", "losses",
    "metrics", "models", "plotting", "reproduce", "runs", "student", "train",
    # data and evaluation
    "DataError", "Interactions", "Split", "kcore_filter", "load_dataset", "sample_negatives",
    "split_interactions", "synthetic_interactions", "evaluate_scores", "evaluate_topk",
    "tie_priority", "topk_from_scores", "Pop", "ItemKNN", "EASE",
    # the teacher
    "laplacian", "normalized_adjacency", "propagation_operator", "cross_op", "BPRMF",
    "LightGCN", "SpectralCF", "GCNCF", "bpr_loss", "train_bpr", "fit_float_model",
    # binary codes
    "binary_penalty", "stochastic_sign", "expected_noise", "sign_codes", "listnet_loss",
    "distillation_weight", "StudentConfig", "BinCF", "fit_student",
    # retrieval
    "pack_codes", "unpack_codes", "hamming_topk",
    "set_seed",
]
