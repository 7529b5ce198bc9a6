"""The BPR loss of eq. (14) (chapters 04 and 06).

.. math::

    \\mathcal L_{\\text{GCN-CF}} = \\sum_{(i, j, j') \\in \\mathcal D}
        -\\ln \\sigma\\big(u_i^\\top (v_j - v_{j'})\\big) + \\lambda (\\|U\\|_F^2 + \\|V\\|_F^2)
    \\qquad (14)

Computed stably as ``-F.logsigmoid(pos - neg)`` (never ``log(sigmoid(.))``, which gives
``-inf`` once the margin is below about -88 in float32).

**Where the L2 term goes.** Eq. (14) penalises the whole tables once per pass over
:math:`\\mathcal D`. With minibatches we follow the usual stochastic reading (BPR-MF,
LightGCN): each batch penalises the rows it uses, :math:`u_i, v_j, v_{j'}` for each triple,
and both terms are averaged over the batch. Over an epoch this is eq. (14) with each row
weighted by how often it appears in a triple (active users and popular items are shrunk more);
it costs nothing for rows the batch does not touch. Which table the rows come from, the final
``U, V`` of eq. (12)–(13) or the free embeddings, is the model config's ``reg_on``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

__all__ = ["bpr_loss", "l2_penalty"]


def l2_penalty(rows: Iterable[torch.Tensor], batch_size: int) -> torch.Tensor:
    """:math:`\\frac{1}{B}\\sum_{r} \\|r\\|^2` over the given row tensors (the batch's rows of
    ``U`` and ``V``), ``B`` the number of triples."""
    rows = list(rows)
    if not rows:
        return torch.zeros(())
    return sum(r.pow(2).sum() for r in rows) / max(int(batch_size), 1)


def bpr_loss(
    pos_scores: torch.Tensor,
    neg_scores: torch.Tensor,
    l2: float = 0.0,
    rows: Iterable[torch.Tensor] = (),
) -> torch.Tensor:
    """Mean BPR loss of a batch plus λ times :func:`l2_penalty` of ``rows``, eq. (14).

    ``pos_scores[b] = u_i^T v_j`` and ``neg_scores[b] = u_i^T v_{j'}`` for triple ``b``.
    ``bpr_loss(s, s)`` is :math:`\\ln 2`: a model that cannot tell positives from negatives.
    """
    if pos_scores.shape != neg_scores.shape:
        raise ValueError(f"pos {tuple(pos_scores.shape)} and neg {tuple(neg_scores.shape)} differ")
    loss = -F.logsigmoid(pos_scores - neg_scores).mean()
    if l2:
        loss = loss + l2 * l2_penalty(rows, pos_scores.numel())
    return loss
