"""Tests of bincf_lite.distill: top-one ListNet, positives and negatives apart (eq. (15)-(16))."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bincf_lite import distill


def _reference_ce(student, teacher, temperature):
    """One user's eq. (15) term, written out with plain Python sums."""
    zt = [math.exp(t / temperature) for t in teacher]
    zs = [math.exp(s / temperature) for s in student]
    pt = [z / sum(zt) for z in zt]
    return -sum(p * math.log(z / sum(zs)) for p, z in zip(pt, zs))


def _ragged_batch(seed, users, max_len, min_len=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (users,), generator=g).tolist()
    width = max(max(lengths), 1)
    student = torch.randn(users, width, generator=g, dtype=torch.float64) * 3
    teacher = torch.randn(users, width, generator=g, dtype=torch.float64) * 3
    mask = torch.arange(width) < torch.tensor(lengths)[:, None]
    # padding holds garbage that must never matter
    student = torch.where(mask, student, 1e6)
    teacher = torch.where(mask, teacher, -1e6)
    return student, teacher, mask, lengths


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    users=st.integers(1, 6),
    temperature=st.sampled_from([0.25, 1.0, 3.0]),
)
def test_listnet_loss_equals_a_per_user_loop(seed, users, temperature):
    sp, tp, mp, lp = _ragged_batch(seed, users, 7)
    sn, tn, mn, ln = _ragged_batch(seed + 1, users, 5)
    got = distill.listnet_loss(sp, tp, sn, tn, mp, mn, temperature, reduction="none")
    expected = []
    for u in range(users):
        total = 0.0
        for s, t, n in ((sp, tp, lp[u]), (sn, tn, ln[u])):
            if n:  # an empty list contributes nothing
                total += _reference_ce(s[u, :n].tolist(), t[u, :n].tolist(), temperature)
        expected.append(total)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    mean = distill.listnet_loss(sp, tp, sn, tn, mp, mn, temperature)
    total = distill.listnet_loss(sp, tp, sn, tn, mp, mn, temperature, reduction="sum")
    assert mean.item() == pytest.approx(sum(expected) / users)
    assert total.item() == pytest.approx(sum(expected))


def test_student_equal_to_teacher_cross_entropy_vs_kl():
    """Decision: eq. (15)'s cross entropy by default; kl=True subtracts H(teacher)."""
    s, t, m, _ = _ragged_batch(3, 8, 6, min_len=1)
    same = torch.where(m, t, 0.0)
    kl = distill.listwise_cross_entropy(same, t, m, 2.0, kl=True)
    ce = distill.listwise_cross_entropy(same, t, m, 2.0)
    log_p = torch.log_softmax(torch.where(m, t / 2.0, -torch.inf), -1)
    entropy = -torch.where(m, log_p.exp() * log_p, 0.0).sum(-1)
    assert torch.equal(kl, torch.zeros_like(kl))
    assert torch.allclose(ce, entropy)
    # the softmax ignores a per-user shift of the student's scores
    shifted = distill.listwise_cross_entropy(same + 5.0, t, m, 2.0, kl=True)
    assert torch.allclose(shifted, torch.zeros_like(shifted), atol=1e-12)
    # any other student costs more (Gibbs' inequality)
    assert (distill.listwise_cross_entropy(s, t, m, 2.0) >= ce - 1e-12).all()
    assert (distill.listwise_cross_entropy(s, t, m, 2.0, kl=True) >= -1e-12).all()


def test_kl_and_cross_entropy_have_the_same_gradient_and_the_teacher_gets_none():
    s, t, m, _ = _ragged_batch(5, 4, 6)
    t.requires_grad_(True)
    grads = []
    for kl in (False, True):
        student = s.clone().requires_grad_(True)
        distill.listnet_loss(student, t, student, t, m, m, 1.5, kl=kl).backward()
        grads.append(student.grad)
    assert torch.allclose(*grads)
    assert t.grad is None  # the teacher is a constant of distillation
    assert torch.isfinite(grads[0]).all()
    assert (grads[0][~m] == 0).all()  # padding gets no gradient


def test_empty_lists_and_extreme_scores_are_finite():
    student = torch.tensor([[1e4, -1e4, 3e3], [0.0, 0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4, 0.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, True, True], [False, False, False]])
    loss = distill.listwise_cross_entropy(student, teacher, mask, 0.1)
    assert torch.isfinite(loss).all()
    assert loss[1].item() == 0.0
    loss.sum().backward()
    assert torch.isfinite(student.grad).all() and (student.grad[1] == 0).all()
    assert loss[0].item() == pytest.approx(2e4 / 0.1, rel=1e-6)  # -log P_s of the teacher's top
    with pytest.raises(ValueError):
        distill.listwise_cross_entropy(student, teacher, mask.long())
    with pytest.raises(ValueError):
        distill.listwise_cross_entropy(student[0], teacher[0])
    with pytest.raises(ValueError):
        distill.listwise_cross_entropy(student, teacher, mask, temperature=0.0)
    with pytest.raises(ValueError):
        distill.listnet_loss(student, teacher, student, teacher, reduction="max")


def _gradient_norm(student, teacher, temperature):
    student = student.clone().requires_grad_(True)
    distill.listnet_loss(student, teacher, student, teacher, temperature=temperature).backward()
    return student.grad.norm().item()


def test_t_squared_makes_gradients_comparable_across_temperatures():
    """Eq. 16: the gradients scale as 1/T^2 for large T, so alpha T^2 L_rank keeps its weight."""
    g = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=g, dtype=torch.float64)
    teacher = torch.randn(16, 10, generator=g, dtype=torch.float64)
    temperatures = [5.0, 10.0, 20.0, 40.0]
    raw = [_gradient_norm(student, teacher, T) for T in temperatures]
    scaled = [distill.distillation_weight(1.0, T) * r for T, r in zip(temperatures, raw)]
    assert raw[0] / raw[-1] > 50  # unscaled: ~64x smaller from T = 5 to T = 40
    assert max(scaled) / min(scaled) < 1.1  # scaled by T^2: within 10%
    # for T small against the score spread the gradient scales as 1/T only: T^2 shrinks the term
    small = [_gradient_norm(student, teacher, T) for T in (0.01, 0.02)]
    assert small[0] / small[1] == pytest.approx(2.0, rel=0.05)


def test_distillation_weight():
    assert distill.distillation_weight(0.5, 3.0) == pytest.approx(4.5)
    assert distill.distillation_weight(0.0, 3.0) == 0.0  # BinCF: alpha = 0
    with pytest.raises(ValueError):
        distill.distillation_weight(1.0, 0.0)


def test_pad_item_lists():
    index, mask = distill.pad_item_lists([[4, 2], [], [7, 8, 9]])
    assert index.tolist() == [[4, 2, 0], [0, 0, 0], [7, 8, 9]]
    assert mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    index, mask = distill.pad_item_lists([[1]], length=3)
    assert index.shape == (1, 3) and mask.sum().item() == 1
    assert distill.pad_item_lists([])[0].shape == (0, 0)
    assert distill.pad_item_lists([[], []])[0].shape == (2, 0)
    with pytest.raises(ValueError):
        distill.pad_item_lists([[1, 2, 3]], length=2)
