"""Distilling the teacher's ranking into the student: ListNet (eq. (15)-(16); chapter 10).

For each user :math:`i` the teacher (GCN-CF, embeddings :math:`u_i, v_j`) and the student
(binary model, relaxed codes :math:`p_i, q_j`) score a list of items. Top-one ListNet turns each
list into a distribution with a softmax at temperature :math:`T` and penalises the cross entropy
of the student's distribution against the teacher's. DGCN-BinCF keeps the user's **positives**
and a sampled set of its **negatives** in two separate lists: in one softmax over both, a BPR
teacher puts nearly all the mass on the positives, and the order among the negatives would carry
almost no weight (the paper, §4.2; chapter 10 measures it).

:func:`listnet_loss` is eq. (15) for a batch of users with padded lists;
:func:`distillation_weight` is the :math:`\\alpha T^2` of eq. (16); :func:`pad_item_lists` builds
the padded lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "listwise_cross_entropy",
    "listnet_loss",
    "distillation_weight",
    "pad_item_lists",
]


def distillation_weight(alpha: float, temperature: float) -> float:
    """The weight :math:`\\alpha T^2` of :math:`L_{rank}` in eq. (16) (chapter 10).

    .. math::

        L_{DGCN\\text{-}BinCF} = L_{Bin\\text{-}CF} + \\alpha T^2 L_{rank}.

    The gradients of a softmax cross entropy at temperature :math:`T` scale as :math:`1/T^2`
    when :math:`T` is large compared with the spread of the scores (Hinton et al., 2015), so
    multiplying by :math:`T^2` keeps the balance with :math:`L_{Bin\\text{-}CF}` roughly fixed
    when :math:`T` changes. For :math:`T` small compared with the spread they scale as
    :math:`1/T` only, and :math:`T^2` *shrinks* the term (chapter 10 plots both regimes).
    """
    if not temperature > 0:
        raise ValueError(f"the temperature T must be positive, got {temperature!r}")
    return float(alpha) * float(temperature) ** 2


def _masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log-softmax over the ``True`` entries of each row; masked entries come out ``-inf``.

    Rows without any ``True`` entry are computed on zeros (finite, never NaN); callers zero
    their contributions.
    """
    empty = ~mask.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
    return F.log_softmax(scores, dim=-1)


def listwise_cross_entropy(
    student: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    kl: bool = False,
) -> torch.Tensor:
    """Top-one ListNet cross entropy of each row: one term of eq. (15) per user (chapter 10).

    With :math:`P^t_j = \\mathrm{softmax}_j(t / T)` and :math:`P^s_j = \\mathrm{softmax}_j(s / T)`
    over the unmasked entries of a row,

    .. math::

        \\mathrm{CE}(t, s) = -\\sum_j P^t_j \\log P^s_j, \\qquad
        \\mathrm{KL}(t \\,\\|\\, s) = \\mathrm{CE}(t, s) - H(P^t).

    Parameters
    ----------
    student, teacher:
        Scores of shape ``(batch, list_len)``: row ``b`` holds one user's scores of the items
        of its list (padded to a common length). The teacher is a constant: its scores are
        detached.
    mask:
        Boolean ``(batch, list_len)``, ``True`` for real entries, ``False`` for padding;
        ``None`` means every entry is real. A row without real entries contributes 0.
    temperature:
        :math:`T > 0`.
    kl:
        ``False`` (default) returns the cross entropy, as eq. (15) writes it; ``True`` subtracts the
        teacher's entropy, giving the KL divergence, which is 0 when the two distributions
        agree. The two have the same gradient with respect to the student.

    Returns
    -------
    A ``(batch,)`` tensor, one value per row. Computed with ``log_softmax`` (no overflow for any
    score magnitude) and without a Python loop over users.
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(
            "student and teacher scores must be 2-D (users x list) of the same shape, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"the temperature T must be positive, got {temperature!r}")
    if mask is None:
        mask = torch.ones_like(student, dtype=torch.bool)
    elif mask.shape != student.shape or mask.dtype != torch.bool:
        raise ValueError("mask must be a boolean tensor of the scores' shape")
    log_p_teacher = _masked_log_softmax(teacher.detach() / temperature, mask)
    log_p_student = _masked_log_softmax(student / temperature, mask)
    p_teacher = torch.where(mask, log_p_teacher.exp(), 0.0)
    # `where` (not multiplication) keeps the -inf of padded entries out of both value and gradient.
    log_ratio = log_p_student - log_p_teacher if kl else log_p_student
    # `+ 0.0` turns the -0.0 of an empty row or of identical distributions into 0.0.
    return -(p_teacher * torch.where(mask, log_ratio, 0.0)).sum(dim=-1) + 0.0


def listnet_loss(
    student_pos: torch.Tensor,
    teacher_pos: torch.Tensor,
    student_neg: torch.Tensor,
    teacher_neg: torch.Tensor,
    pos_mask: torch.Tensor | None = None,
    neg_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    kl: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """:math:`L_{rank}` of eq. (15): ListNet over positives and, apart, over negatives (chapter 10).

    .. math::

        L_{rank} = \\sum_{i} \\Bigl[
            -\\sum_{j \\in I^+_i} P^{t,+}_{ij} \\log P^{s,+}_{ij}
            -\\sum_{j' \\in N_i} P^{t,-}_{ij'} \\log P^{s,-}_{ij'} \\Bigr],
        \\qquad
        P^{t,+}_{ij} = \\frac{\\exp(u_i^\\top v_j / T)}
                            {\\sum_{k \\in I^+_i} \\exp(u_i^\\top v_k / T)},

    and likewise :math:`P^{s,\\pm}` with the student's :math:`p_i^\\top q_j`, where :math:`N_i`
    is the sampled set of the user's negatives (eq. (15) writes :math:`D^-`). Each softmax runs
    over one user's one list, never over positives and negatives together.

    Parameters
    ----------
    student_pos, teacher_pos:
        ``(batch, n_pos)`` scores of each user's positives (padded), student and teacher.
    student_neg, teacher_neg:
        ``(batch, n_neg)`` scores of each user's sampled negatives (padded).
    pos_mask, neg_mask:
        Boolean masks of real entries (``None``: all real), e.g. from :func:`pad_item_lists`.
    temperature:
        :math:`T`. Multiply the result by :func:`distillation_weight` to get the eq. (16) term.
    kl:
        Subtract the teachers' entropies (KL instead of cross entropy; same gradient, minimum 0).
    reduction:
        ``"mean"`` (default) over the users of the batch, ``"sum"`` (eq. (15)'s sum over users),
        or ``"none"`` (one value per user). The mean only rescales :math:`\\alpha` by the batch
        size and keeps it independent of how many users a batch holds.
    """
    per_user = listwise_cross_entropy(
        student_pos, teacher_pos, pos_mask, temperature, kl
    ) + listwise_cross_entropy(student_neg, teacher_neg, neg_mask, temperature, kl)
    if reduction == "mean":
        return per_user.mean()
    if reduction == "sum":
        return per_user.sum()
    if reduction == "none":
        return per_user
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def pad_item_lists(
    lists: Sequence[Sequence[int]], length: int | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged per-user item lists to a padded ``(index, mask)`` pair (chapter 10).

    Row ``b`` of ``index`` holds ``lists[b]`` followed by zeros (a valid item index, so the
    padded entries can be gathered and scored; the mask hides them). ``length`` defaults to the
    longest list; longer lists are an error (subsample them first).
    """
    sizes = [len(items) for items in lists]
    width = max(sizes, default=0) if length is None else int(length)
    if sizes and max(sizes) > width:
        raise ValueError(f"a list has {max(sizes)} items, more than length={width}")
    lengths = torch.as_tensor(sizes, dtype=torch.long)
    mask = torch.arange(width) < lengths[:, None]
    index = torch.zeros((len(lists), width), dtype=torch.long)
    if sizes and max(sizes) > 0:
        flat = [torch.as_tensor(items, dtype=torch.long).reshape(-1) for items in lists]
        index[mask] = torch.cat(flat)
    return index.to(device), mask.to(device)
