"""Tests of bincf_lite.losses: eq. (14)."""

import math

import pytest
import torch

from bincf_lite.losses import bpr_loss, l2_penalty


def test_bpr_of_equal_scores_is_log2():
    s = torch.tensor([0.3, -2.0, 5.0])
    assert bpr_loss(s, s).item() == pytest.approx(math.log(2))


def test_bpr_is_stable_for_large_margins():
    pos = torch.tensor([1000.0, -1000.0])
    neg = torch.tensor([-1000.0, 1000.0])
    loss = bpr_loss(pos, neg)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(1000.0)  # (0 + 2000) / 2
    pos.requires_grad_(True)
    bpr_loss(pos, neg).backward()
    assert torch.isfinite(pos.grad).all()


def test_l2_term_by_hand():
    pos, neg = torch.zeros(2), torch.zeros(2)
    u = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # squared norm 6
    v = torch.tensor([[3.0, 0.0], [0.0, 0.0]])  # squared norm 9
    assert l2_penalty([u, v], 2).item() == pytest.approx(7.5)
    assert bpr_loss(pos, neg, l2=0.1, rows=[u, v]).item() == pytest.approx(math.log(2) + 0.75)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        bpr_loss(torch.zeros(3), torch.zeros(2))
