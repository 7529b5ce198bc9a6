"""From real embeddings to binary codes: the Lemma 1 penalty and stochastic binarisation.

The binary program of the paper (eq. (2)) asks for codes :math:`x \\in \\{-1, 1\\}^d`. DGCN-BinCF
relaxes it to :math:`x = \\tanh(p) \\in (-1, 1)^d` and pushes the relaxed codes towards the
vertices of the cube in two ways, both implemented here:

* :func:`binary_penalty`, the penalty :math:`g(x) = \\lVert |x| - 1 \\rVert_2^2` of Lemma 1
  (eq. (3) and eq. (18)), introduced in chapter 08;
* :func:`stochastic_sign`, the Bernoulli codes :math:`\\tilde x = x + \\varepsilon` of eq. (17) with
  temperature :math:`\\tau` and a straight-through gradient, and :func:`expected_noise`, the closed
  form of :math:`\\mathbb{E}\\lVert \\varepsilon \\rVert^2` that eq. (17)-(18) add with weight
  :math:`\\nu`, introduced in chapter 09.

At inference the codes are deterministic: :func:`sign_codes` (``0 -> +1``). Their on-disk format
(``np.packbits`` rows, bit 1 = +1, DESIGN §7) is written by
:func:`bincf_lite.hashing.packbits_rows`; this module does not import ``hashing`` because the
package's dependencies point from ``binarize`` to ``hashing``, never back (DESIGN §2).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "binary_penalty",
    "stochastic_sign",
    "sign_probability",
    "expected_code",
    "expected_noise",
    "sign_codes",
    "itq_rotation",
]

_REDUCTIONS = ("sum", "mean", "none")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ValueError(f"the temperature tau must be positive, got {tau!r}")


def binary_penalty(x: torch.Tensor, p: float = 2, reduction: str = "sum") -> torch.Tensor:
    """The Lemma 1 penalty :math:`g(x) = \\lVert |x| - 1 \\rVert_2^2` (eq. (3), (18); chapter 08).

    .. math::

        g(x) = \\sum_j \\bigl| |x_j| - 1 \\bigr|^{p}, \\qquad p = 2 \\text{ in the paper.}

    :math:`g` is continuous, zero exactly on the vertices :math:`\\{-1, 1\\}^d` and positive
    everywhere else in the cube (conditions (a) and (b) of Lemma 1). In eq. (18) it is applied to
    every row :math:`\\tanh(p_i)` and summed, which is the elementwise sum over the whole matrix:
    ``reduction="sum"`` (the default) gives exactly :math:`\\sum_i g(\\tanh(p_i))`.

    Condition (c). Near a vertex :math:`y`, inside the cube, :math:`\\bigl||x_j| - 1\\bigr| =
    |x_j - y_j|`, so the paper's squared penalty equals :math:`\\lVert x - y \\rVert_2^2`, which
    is *not* bounded below by :math:`\\epsilon \\lVert x - y \\rVert` as :math:`x \\to y`:
    condition (c) fails for ``p=2`` and the penalty is not *exact* (for a finite :math:`\\beta`
    the minimiser of :math:`f + \\beta g` may stay strictly inside the cube). ``p=1``
    (:math:`g(x) = \\sum_j (1 - |x_j|)` on the cube) satisfies (c) with :math:`\\epsilon = 1`
    for the 1-norm and is exact for :math:`\\beta` above a finite threshold. Chapter 08 shows
    both; the models use the paper's ``p=2`` unless told otherwise.

    Parameters
    ----------
    x:
        Relaxed codes, any shape, usually :math:`\\tanh(P)` of shape ``(rows, code_bits)``.
    p:
        Exponent of :math:`\\bigl||x_j| - 1\\bigr|`; ``2`` is the paper's, ``1`` the exact penalty.
    reduction:
        ``"sum"`` (eq. (18)), ``"mean"`` (over all entries) or ``"none"`` (elementwise values;
        sum the last axis for one :math:`g` per row).
    """
    if not p > 0:
        raise ValueError(f"the exponent p must be positive, got {p!r}")
    dev = (x.abs() - 1).abs()
    values = dev.square() if p == 2 else dev.pow(p)
    return _reduce(values, reduction)


def sign_probability(x: torch.Tensor, tau: float) -> torch.Tensor:
    """:math:`\\Pr(\\tilde x = +1) = \\sigma(x / \\tau)` (eq. (17); chapter 09)."""
    _check_tau(tau)
    return torch.sigmoid(x / tau)


def stochastic_sign(
    x: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Stochastic codes :math:`\\tilde x = x + \\varepsilon \\in \\{-1, 1\\}` (eq. (17)).

    Introduced in chapter 09. Each entry independently, with :math:`\\sigma` the logistic
    sigmoid and :math:`\\tau > 0` the temperature:

    .. math::

        \\varepsilon = \\begin{cases} 1 - x & \\text{with probability } \\sigma(x / \\tau), \\\\
                                      -1 - x & \\text{otherwise,} \\end{cases}
        \\qquad \\tilde x = x + \\varepsilon \\in \\{-1, 1\\}.

    Which rule. The paper's text gives this sigmoid rule, while eq. (17) writes
    :math:`\\varepsilon \\sim \\mathrm{Bernoulli}(\\tanh(P))`, which is not a probability for
    negative entries (DESIGN §4). We follow the text: it is the only place where the
    temperature :math:`\\tau` of Algorithm 1 appears. The rule is biased towards the nearer
    vertex, :math:`\\mathbb{E}[\\tilde x] = \\tanh(x / 2\\tau)` (:func:`expected_code`), not
    :math:`x`. (The other repair of eq. (17), :math:`\\Pr(+1) = (1 + x)/2`, is unbiased with
    :math:`\\mathbb{E}[\\varepsilon^2] = 1 - x^2`; chapter 09 compares the two in an exercise.)

    Gradient. The noise :math:`\\varepsilon` is treated as a constant, exactly as the
    additive form :math:`x + \\varepsilon` of eq. (17) suggests: :math:`\\partial \\tilde x /
    \\partial x = 1` (the straight-through estimator, computed as
    ``x_tilde + (x - x.detach())`` so that the values are exactly ±1). No gradient flows into
    the probabilities.

    Parameters
    ----------
    x:
        Relaxed codes, usually :math:`\\tanh(P)` with entries in :math:`(-1, 1)`.
    tau:
        Temperature :math:`\\tau > 0`; small :math:`\\tau` approaches :math:`\\mathrm{sign}(x)`,
        large :math:`\\tau` fair coin flips.
    generator:
        The ``torch.Generator`` that draws the uniforms (on ``x``'s device); ``None`` uses
        torch's global generator.
    """
    probability = sign_probability(x.detach(), tau)
    uniform = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    codes = torch.where(uniform < probability, 1.0, -1.0).to(x.dtype)
    # `codes + (x - x.detach())` is exactly ±1 in value (x - x is 0 exactly, unlike
    # `x + (codes - x).detach()`, which rounds) and has gradient 1 with respect to x.
    return codes + (x - x.detach())


def expected_code(x: torch.Tensor, tau: float) -> torch.Tensor:
    """The mean code :math:`\\mathbb{E}[\\tilde x] = \\tanh(x / 2\\tau)` (eq. (17); chapter 09)."""
    _check_tau(tau)
    return torch.tanh(x / (2 * tau))


def expected_noise(x: torch.Tensor, tau: float, reduction: str = "sum") -> torch.Tensor:
    """Closed form of :math:`\\mathbb{E}\\lVert \\varepsilon \\rVert^2` (eq. (17)-(18); chapter 09).

    With :math:`s = \\sigma(x / \\tau)`, each entry's noise is :math:`1 - x` with probability
    :math:`s` and :math:`-1 - x` otherwise (:func:`stochastic_sign`), so

    .. math::

        \\mathbb{E}[\\varepsilon^2] = s (1 - x)^2 + (1 - s)(1 + x)^2
            = 1 + x^2 - 2x(2s - 1) = 1 + x^2 - 2x \\tanh\\!\\left(\\frac{x}{2\\tau}\\right),

    using :math:`2\\sigma(z) - 1 = \\tanh(z/2)`. It is 1 at :math:`x = 0`, tends to 0 at the
    vertices as :math:`\\tau \\to 0`, and is differentiable in :math:`x`, which is what lets
    eq. (18) penalise it with weight :math:`\\nu` by plain gradient descent.

    ``reduction="sum"`` gives :math:`\\mathbb{E}\\lVert \\varepsilon \\rVert_F^2` over the whole
    matrix (eq. (17)); ``"mean"`` the mean over entries; ``"none"`` the elementwise values.
    """
    _check_tau(tau)
    values = 1 + x.square() - 2 * x * torch.tanh(x / (2 * tau))
    return _reduce(values, reduction)


def sign_codes(x):
    """Deterministic ±1 codes for inference: :math:`\\mathrm{sign}(x)`, ``0 -> +1`` (chapter 08).

    Evaluation always ranks with these binary codes, never with the relaxed floats. A torch
    tensor gives a detached ``torch.int8`` tensor on the same device, anything else a numpy
    ``int8`` array. Pack them for disk with :func:`bincf_lite.hashing.packbits_rows`
    (bit 1 = +1) and for the popcount engine with :func:`bincf_lite.hashing.pack_codes`.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.is_floating_point() and bool(torch.isnan(x).any()):
            raise ValueError("cannot take the sign of NaN")
        return torch.where(x >= 0, 1, -1).to(torch.int8)
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError("cannot take the sign of NaN")
    return np.where(arr >= 0, 1, -1).astype(np.int8)


def itq_rotation(x, num_iter: int = 50) -> np.ndarray:
    """Orthogonal rotation :math:`R` that lowers the quantisation loss of ``sign(x @ R)`` (ITQ).

    Iterative quantisation (Gong & Lazebnik, 2011) alternates, for a centred table
    :math:`X \\in \\mathbb R^{n \\times d}`,

    .. math::

        B = \\mathrm{sign}(X R), \\qquad
        R = \\arg\\min_{R^\\top R = I} \\lVert B - X R \\rVert_F^2 = W \\tilde W^\\top
        \\quad\\text{where}\\quad X^\\top B = W \\Sigma \\tilde W^\\top

    (the orthogonal Procrustes problem). Each step lowers :math:`\\lVert B - XR \\rVert_F^2`; it
    starts from :math:`R = I`, so the result is never worse than the plain sign of ``x`` in that
    loss, and it is deterministic. A rotation keeps every inner product: with ``x`` the stacked
    user and item tables, :math:`(u R)^\\top (v R) = u^\\top v`, so the float scores are
    untouched and only the point where the signs are taken moves (chapter 11).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("x must be a 2-D table")
    if num_iter < 0:
        raise ValueError("num_iter must be >= 0")
    rotation = np.eye(x.shape[1])
    for _ in range(int(num_iter)):
        codes = np.where(x @ rotation >= 0, 1.0, -1.0)
        w, _, wt = np.linalg.svd(x.T @ codes)
        rotation = w @ wt
    return rotation
