"""Learning-to-hash recommenders that DGCN-BinCF is compared with (chapter 12; paper Tables 2-4).

Four ways to get binary codes :math:`b_u, d_i \\in \\{-1, 1\\}^r` for users and items, ranked by
Hamming distance :math:`\\tfrac12 (r - b_u^\\top d_i)`:

* :class:`SignMF`, the simplest two-stage method: weighted MF, then :func:`sign_codes_of`;
* :class:`BCCF` (Zhou & Zha, KDD'12): MF with a code-balance regulariser, then an orthogonal
  rotation learned by ITQ (:func:`itq_rotation`) before the sign;
* :class:`PPH` (Zhang et al., SIGIR'14): MF under a constant-feature-norm (CFN) penalty, then
  phase (sign) bits plus two magnitude bits;
* :class:`DCF` (Zhang et al., SIGIR'16): the codes themselves are optimised by discrete
  coordinate descent, bit by bit, with balance and decorrelation relaxed through continuous
  :math:`X, Y` (weights :math:`\\alpha, \\beta`).

**Implicit feedback.** All three papers fit explicit ratings. Here every method fits the same
target, the weighted-zeros least squares of implicit MF (Hu, Koren & Volinsky 2008; the adaptation
Lian et al., KDD'17, use for discrete CF):

.. math::

    \\mathcal{L}_{\\text{fit}} = \\sum_{u, i} w_{ui} (s_{ui} - \\hat s_{ui})^2, \\qquad
    s_{ui} = c\\, y_{ui}, \\quad
    w_{ui} = \\begin{cases} 1 & y_{ui} = 1 \\\\ w_0 & y_{ui} = 0 \\end{cases}

with :math:`y_{ui} = 1` for an observed interaction, every unobserved pair a zero of small
weight :math:`w_0` (``ImplicitTarget.neg_weight``). The scale is :math:`c = 1` for the
real-valued stage of the two-stage methods and :math:`c = r` for DCF, whose predictions
:math:`b_u^\\top d_i` live in :math:`[-r, r]` (DCF rescales ratings to that range). Because
:math:`w_{ui}` is constant on the zeros, every sum over all :math:`MN` pairs splits into a sum over
the observed pairs plus Gram-matrix terms (:math:`w_0\\, \\mathrm{tr}(U^\\top U\\, V^\\top V)`), so
nothing of size users x items is ever formed.

Every class has ``fit(train)`` (a users x items CSR matrix), ``codes()`` (user and item ``int8``
±1 arrays) and ``score(users)`` (:math:`b_u^\\top d_i`, which ranks exactly like the Hamming
distance). :func:`tune_grid` chooses hyperparameters on the validation set like
:func:`bincf_lite.baselines.tune_on_validation`, over a grid of several parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import Split
from .metrics import evaluate_topk, tie_priority

__all__ = [
    "ImplicitTarget",
    "weighted_mf",
    "sign_codes_of",
    "code_balance",
    "itq_rotation",
    "orthogonal_balanced",
    "SignMF",
    "BCCF",
    "PPH",
    "DCF",
    "HASH_BASELINES",
    "tune_grid",
    "fit_hash_baseline",
    "evaluate_codes",
]


@dataclass(frozen=True)
class ImplicitTarget:
    """The one adaptation to implicit feedback shared by every method of this module.

    Observed pairs have target 1 and weight 1; every unobserved pair has target 0 and weight
    ``neg_weight`` (:math:`w_0`). ``l2`` is the ridge weight of the real-valued MF stage.
    """

    neg_weight: float = 0.05
    l2: float = 1.0


def _csr(train) -> sp.csr_matrix:
    train = sp.csr_matrix(train, dtype=np.float32)
    train.sum_duplicates()
    train.sort_indices()
    train.data[:] = 1.0
    return train


def _coo(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    return rows, train.indices.astype(np.int64)


# --------------------------------------------------------------------------------------------
# The real-valued stage: weighted MF with an optional extra penalty


def _observed_products(train: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """:math:`u_u^\\top v_i` for every stored pair of ``train``, in CSR order (an SDDMM).

    A numba kernel when numba is installed (the ``fast`` extra), else blocked numpy.
    """
    try:
        from numba import njit  # noqa: F401
    except ImportError:  # pragma: no cover - numba is optional
        rows, cols = _coo(train)
        out = np.empty(train.nnz)
        step = 1 << 16
        for s in range(0, train.nnz, step):
            out[s : s + step] = np.einsum("ij,ij->i", users[rows[s : s + step]], items[cols[s : s + step]])
        return out
    out = np.empty(train.nnz)
    _sddmm_kernel()(train.indptr, train.indices, users, items, out)
    return out


_KERNEL = []


def _sddmm_kernel():
    if not _KERNEL:
        from numba import njit

        @njit(cache=True, nogil=True)
        def sddmm(indptr, indices, users, items, out):  # pragma: no cover - compiled
            for u in range(users.shape[0]):
                for p in range(indptr[u], indptr[u + 1]):
                    i = indices[p]
                    s = 0.0
                    for k in range(users.shape[1]):
                        s += users[u, k] * items[i, k]
                    out[p] = s

        _KERNEL.append(sddmm)
    return _KERNEL[0]


#: A penalty maps (U, V) to (value, dValue/dU, dValue/dV).
Penalty = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]


def weighted_mf(
    train: sp.csr_matrix,
    embed_dim: int,
    target: ImplicitTarget = ImplicitTarget(),
    penalty: Penalty | None = None,
    num_iters: int = 150,
    seed: int = 0,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Real-valued user and item factors :math:`U, V` of the weighted-zeros MF (chapter 12).

    .. math::

        \\min_{U, V}\\; \\sum_{(u,i) \\in \\mathcal{O}} \\bigl[(1 - p_{ui})^2 - w_0 p_{ui}^2\\bigr]
        + w_0\\, \\mathrm{tr}(U^\\top U\\, V^\\top V)
        + \\lambda_2 (\\lVert U \\rVert_F^2 + \\lVert V \\rVert_F^2) + \\Omega(U, V),

    with :math:`p_{ui} = u_u^\\top v_i`, :math:`\\mathcal{O}` the observed pairs: this is
    :math:`\\sum_{u,i} w_{ui}(y_{ui} - p_{ui})^2` of :class:`ImplicitTarget` up to a constant,
    and its gradient is :math:`C V + 2 w_0 U V^\\top V + 2\\lambda_2 U` (and symmetrically for
    :math:`V`) with :math:`C` sparse on :math:`\\mathcal{O}`,
    :math:`c_{ui} = -2(1 - p_{ui}) - 2 w_0 p_{ui}`: :math:`O(|\\mathcal{O}| r + (M + N) r^2)`
    per evaluation, never a users x items matrix. ``penalty`` is the method's :math:`\\Omega`
    (BCCF's balance term, PPH's CFN term), returning its value and gradients. Minimised by
    L-BFGS (``num_iters`` iterations) from a seeded small random start or from ``init``;
    deterministic.
    """
    from scipy.optimize import minimize

    train = _csr(train).astype(np.float64)
    num_users, num_items = train.shape
    r = int(embed_dim)
    w0, l2 = float(target.neg_weight), float(target.l2)
    if init is None:
        rng = np.random.default_rng(seed)
        scale = 0.1 / np.sqrt(r)
        theta0 = rng.standard_normal((num_users + num_items) * r) * scale
    else:
        theta0 = np.concatenate([np.ravel(init[0]), np.ravel(init[1])]).astype(np.float64)
    coef = train.copy()
    coef_t = None

    def fun(theta):
        nonlocal coef_t
        u = theta[: num_users * r].reshape(num_users, r)
        v = theta[num_users * r :].reshape(num_items, r)
        p = _observed_products(train, u, v)
        gu_, gv_ = u.T @ u, v.T @ v
        value = float(np.sum((1.0 - p) ** 2 - w0 * p**2)) + w0 * float(np.sum(gu_ * gv_))
        value += l2 * (float(np.sum(u * u)) + float(np.sum(v * v)))
        coef.data = -2.0 * (1.0 - p) - 2.0 * w0 * p
        grad_u = coef @ v + 2.0 * w0 * (u @ gv_) + 2.0 * l2 * u
        grad_v = coef.T @ u + 2.0 * w0 * (v @ gu_) + 2.0 * l2 * v
        if penalty is not None:
            pv, pu, pi = penalty(u, v)
            value += pv
            grad_u += pu
            grad_v += pi
        return value, np.concatenate([grad_u.ravel(), grad_v.ravel()])

    res = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": int(num_iters), "maxcor": 7, "gtol": 1e-8, "ftol": 1e-12})
    theta = res.x
    return (
        theta[: num_users * r].reshape(num_users, r).astype(np.float32),
        theta[num_users * r :].reshape(num_items, r).astype(np.float32),
    )


# --------------------------------------------------------------------------------------------
# From real vectors to codes


def _sign(x: np.ndarray) -> np.ndarray:
    """:math:`\\mathrm{sign}` with ``0 -> +1`` (the rule of :func:`bincf_lite.binarize.sign_codes`)."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise ValueError("cannot take the sign of NaN")
    return np.where(x >= 0, 1, -1).astype(np.int8)


def sign_codes_of(
    user_emb: np.ndarray, item_emb: np.ndarray, center: bool | str = True
) -> tuple[np.ndarray, np.ndarray]:
    """The simplest two-stage binarisation: :math:`b_u = \\mathrm{sgn}(u_u - c_U)`,
    :math:`d_i = \\mathrm{sgn}(v_i - c_V)` (chapter 12; ``0 -> +1``).

    Centring. ``center=True`` (or ``"items"``) subtracts the item mean :math:`\\bar v` from the
    items only: each user's real-valued ranking is unchanged (:math:`u^\\top(v_i - \\bar v)`
    differs from :math:`u^\\top v_i` by a constant per user), and every item bit becomes roughly
    balanced. ``"both"`` also subtracts the user mean, which changes the real ranking by
    :math:`-\\bar u^\\top v_i` (it removes the average user's taste, i.e. most of the popularity
    signal). ``False`` takes the signs as they are. Returns ``int8`` ±1 arrays.
    """
    u = np.asarray(user_emb, dtype=np.float64)
    v = np.asarray(item_emb, dtype=np.float64)
    if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[1]:
        raise ValueError(f"embeddings must be (users, d) and (items, d), got {u.shape} and {v.shape}")
    modes = {True: "items", False: "none", "items": "items", "both": "both", "none": "none"}
    if center not in modes:
        raise ValueError(f"center must be True, False, 'items', 'both' or 'none', got {center!r}")
    mode = modes[center]
    if mode in ("items", "both"):
        v = v - v.mean(axis=0)
    if mode == "both":
        u = u - u.mean(axis=0)
    return _sign(u), _sign(v)


def code_balance(codes: np.ndarray) -> float:
    """Mean imbalance of the bits: :math:`\\frac1r \\sum_k |\\frac1n \\sum_i b_{ik}|`.

    0 when every bit splits the rows half and half (DCF's :math:`B^\\top 1 = 0`), 1 when every
    bit is constant.
    """
    codes = np.asarray(codes, dtype=np.float64)
    return float(np.abs(codes.mean(axis=0)).mean())


def itq_rotation(x: np.ndarray, num_iters: int = 50, seed: int = 0) -> np.ndarray:
    """Orthogonal :math:`R` of iterative quantisation (Gong & Lazebnik, CVPR'11), used by BCCF.

    .. math::

        \\min_{B \\in \\{\\pm1\\}^{n \\times r},\\; R^\\top R = I} \\lVert B - X R \\rVert_F^2:
        \\quad B \\leftarrow \\mathrm{sgn}(X R), \\quad
        R \\leftarrow S \\hat S^\\top \\text{ with } X^\\top B = S \\Omega \\hat S^\\top.

    Starts from a seeded random rotation; each step does not increase the quantisation loss.
    """
    x = np.asarray(x, dtype=np.float64)
    r = x.shape[1]
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.standard_normal((r, r)))
    for _ in range(num_iters):
        b = np.where(x @ rot >= 0, 1.0, -1.0)
        s, _, sh = np.linalg.svd(x.T @ b)
        rot = s @ sh
    return rot


def orthogonal_balanced(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """DCF's :math:`X`-step: :math:`\\max_X \\mathrm{tr}(B^\\top X)` s.t. :math:`1^\\top X = 0`,
    :math:`X^\\top X = n I_r` (Zhang et al. 2016, the closed form by SVD).

    With :math:`\\bar B = B - 1 \\bar b^\\top = P \\Sigma Q^\\top` (thin SVD),
    :math:`X = \\sqrt{n}\\, [P\\; \\hat P][Q\\; \\hat Q]^\\top`, where :math:`\\hat P` completes the
    left singular vectors of the zero singular values by Gram-Schmidt against :math:`[P, 1]`
    and :math:`\\hat Q` completes :math:`Q`. Rows are the ``n`` users (or items).
    """
    b = np.asarray(codes, dtype=np.float64)
    n, r = b.shape
    centred = b - b.mean(axis=0)
    # thin SVD through the small r x r eigenproblem: centred^T centred = Q diag(s^2) Q^T
    s2, q = np.linalg.eigh(centred.T @ centred)
    s2, q = s2[::-1], q[:, ::-1]
    keep = s2 > 1e-9 * max(s2.max(initial=0.0), 1.0)
    p = centred @ (q[:, keep] / np.sqrt(s2[keep]))
    if not keep.all():
        rng = np.random.default_rng(seed)
        basis = np.column_stack([np.ones(n) / np.sqrt(n), p])
        extra = rng.standard_normal((n, int((~keep).sum())))
        for _ in range(2):  # Gram-Schmidt twice for accuracy
            extra -= basis @ (basis.T @ extra)
        extra, _ = np.linalg.qr(extra)
        p = np.column_stack([p, extra])
    qt = np.vstack([q[:, keep].T, q[:, ~keep].T])
    return np.sqrt(n) * (p @ qt)


# --------------------------------------------------------------------------------------------
# The methods


class _Codes:
    """Shared: ``codes()`` and the inner-product score that ranks like the Hamming distance."""

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "user_codes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")
        return self.user_codes_, self.item_codes_

    def score(self, users: np.ndarray) -> np.ndarray:
        """:math:`b_u^\\top d_i = r - 2\\,\\mathrm{Hamming}(b_u, d_i)` for every item."""
        b, d = self.codes()
        return b[np.asarray(users)].astype(np.float32) @ d.T.astype(np.float32)

    @property
    def params(self) -> dict:
        return {k: getattr(self, k) for k in self._param_names}


@dataclass
class SignMF(_Codes):
    """Two-stage baseline: weighted MF (:func:`weighted_mf`), then :func:`sign_codes_of`."""

    code_bits: int = 64
    center: bool | str = "items"
    target: ImplicitTarget = field(default_factory=ImplicitTarget)
    mf_iters: int = 60
    seed: int = 0
    _param_names = ("code_bits", "center")

    def fit(self, train: sp.csr_matrix, init: tuple | None = None) -> SignMF:
        """Fit on ``train``; ``init`` = ready (U, V) of :func:`weighted_mf` skips the MF."""
        self.user_emb_, self.item_emb_ = init or weighted_mf(
            train, self.code_bits, self.target, num_iters=self.mf_iters, seed=self.seed
        )
        self.user_codes_, self.item_codes_ = sign_codes_of(self.user_emb_, self.item_emb_, self.center)
        return self


@dataclass
class BCCF(_Codes):
    """Binary codes for CF (Zhou & Zha, KDD'12): balanced MF, then ITQ rotation and sign.

    .. math::

        \\min_{U,V} \\mathcal{L}_{\\text{fit}}(U V^\\top)
            + \\lambda_2(\\lVert U\\rVert_F^2 + \\lVert V\\rVert_F^2)
            + \\lambda \\bigl(\\lVert U^\\top 1 \\rVert^2 / M + \\lVert V^\\top 1 \\rVert^2 / N\\bigr),

    the last term the code-balance regulariser (each latent dimension should split users, and
    items, evenly around zero, so that its sign bit is balanced); then one rotation :math:`R` is
    learned by :func:`itq_rotation` on the stacked :math:`[U; V - 1\\bar v^\\top]` (a common
    rotation keeps every inner product, :math:`u^\\top R R^\\top v = u^\\top v`, and removing
    the item mean changes each user's scores by a constant, as in :func:`sign_codes_of`), and
    :math:`b_u = \\mathrm{sgn}(R^\\top u_u)`, :math:`d_i = \\mathrm{sgn}(R^\\top (v_i - \\bar v))`.
    """

    code_bits: int = 64
    balance: float = 0.09  # the paper's lambda; chosen on ML-1M validation (chapter 12)
    target: ImplicitTarget = field(default_factory=ImplicitTarget)
    itq_iters: int = 50
    mf_iters: int = 60
    num_iters: int = 30
    seed: int = 0
    _param_names = ("code_bits", "balance")

    def fit(self, train: sp.csr_matrix, init: tuple | None = None) -> BCCF:
        """Plain weighted MF (``mf_iters``; or ``init``), then ``num_iters`` more L-BFGS
        iterations with the balance term, then ITQ."""
        train = _csr(train)
        m, n = train.shape
        if init is None:
            init = weighted_mf(train, self.code_bits, self.target, num_iters=self.mf_iters, seed=self.seed)
        lam = float(self.balance)

        def penalty(u, v):
            su, sv = u.sum(0), v.sum(0)
            value = lam * (float(su @ su) / m + float(sv @ sv) / n)
            return value, np.broadcast_to(2 * lam / m * su, u.shape), np.broadcast_to(2 * lam / n * sv, v.shape)

        self.user_emb_, self.item_emb_ = weighted_mf(
            train, self.code_bits, self.target, penalty if lam > 0 else None,
            num_iters=self.num_iters, seed=self.seed, init=init,
        )
        items = self.item_emb_ - self.item_emb_.mean(axis=0)  # keeps every user's ranking
        self.rotation_ = itq_rotation(np.vstack([self.user_emb_, items]), self.itq_iters, self.seed)
        self.user_codes_ = _sign(self.user_emb_ @ self.rotation_)
        self.item_codes_ = _sign(items @ self.rotation_)
        return self


@dataclass
class PPH(_Codes):
    """Preference preserving hashing (Zhang et al., SIGIR'14): CFN-constrained MF, then phase
    and magnitude bits.

    Stage 1, MF under the constant-feature-norm constraint (every user and item vector of the
    same norm, so the inner product is a cosine and is preserved by the Hamming distance of the
    signs), relaxed as a penalty of weight :math:`\\lambda`:

    .. math::

        \\min_{U,V} \\mathcal{L}_{\\text{fit}}(U V^\\top)
            + \\lambda_2(\\lVert U\\rVert_F^2 + \\lVert V\\rVert_F^2)
            + \\lambda \\Bigl(\\sum_u (\\lVert u_u\\rVert^2 - \\epsilon)^2
            + \\sum_i (\\lVert v_i\\rVert^2 - \\epsilon)^2\\Bigr),

    with :math:`\\epsilon` the mean squared norm of the unconstrained solution.

    Stage 2, quantisation with ``magnitude_bits`` extra bits (of the ``code_bits`` budget, so
    the factors have :math:`r - 2` dimensions): the phase bits are :math:`\\mathrm{sgn}(x)`;
    what the CFN penalty leaves of the item norms is quantised to a thermometer code
    (:math:`\\lVert v_i\\rVert` above the 1/3 and 2/3 quantiles -> +1). The user's magnitude
    bits are all +1, so for a fixed user each extra bit an item sets brings it one Hamming
    unit closer: :math:`b_u^\\top d_i` approximates
    :math:`\\lVert u\\rVert\\lVert v_i\\rVert\\cos` up to a per-user scale, as the
    inner product of the factors does. (The user's own norm changes no ranking.)
    """

    code_bits: int = 64
    cfn: float = 64.0  # the paper's lambda; chosen on ML-1M validation (chapter 12)
    magnitude_bits: int = 2
    target: ImplicitTarget = field(default_factory=ImplicitTarget)
    mf_iters: int = 60
    num_iters: int = 30
    seed: int = 0
    _param_names = ("code_bits", "cfn")

    def fit(self, train: sp.csr_matrix, init: tuple | None = None) -> PPH:
        """Plain weighted MF of ``code_bits - magnitude_bits`` dimensions (``mf_iters``; or
        ``init``), then ``num_iters`` more L-BFGS iterations with the CFN penalty, then codes."""
        train = _csr(train)
        dim = self.code_bits - self.magnitude_bits
        if dim < 1:
            raise ValueError(f"code_bits={self.code_bits} leaves no phase bits")
        if init is None:
            init = weighted_mf(train, dim, self.target, num_iters=self.mf_iters, seed=self.seed)
        u0, v0 = init
        eps = float(np.mean(np.concatenate([(u0**2).sum(1), (v0**2).sum(1)])))
        lam = float(self.cfn)

        def penalty(u, v):
            du = (u * u).sum(1) - eps
            dv = (v * v).sum(1) - eps
            value = lam * (float(du @ du) + float(dv @ dv))
            return value, 4 * lam * du[:, None] * u, 4 * lam * dv[:, None] * v

        self.user_emb_, self.item_emb_ = weighted_mf(
            train, dim, self.target, penalty if lam > 0 else None,
            num_iters=self.num_iters, seed=self.seed, init=(u0, v0),
        )
        norms = np.linalg.norm(self.item_emb_, axis=1)
        levels = np.quantile(norms, np.arange(1, self.magnitude_bits + 1) / (self.magnitude_bits + 1))
        magnitude = np.where(norms[:, None] > levels[None, :], 1, -1).astype(np.int8)
        self.user_codes_ = np.hstack(
            [_sign(self.user_emb_), np.ones((train.shape[0], self.magnitude_bits), np.int8)]
        )
        self.item_codes_ = np.hstack([_sign(self.item_emb_), magnitude])
        return self


@dataclass
class DCF(_Codes):
    """Discrete collaborative filtering (Zhang et al., SIGIR'16), on the implicit target.

    .. math::

        \\min_{B, D, X, Y}\\; \\sum_{u,i} w_{ui} (r\\, y_{ui} - b_u^\\top d_i)^2
            - 2\\alpha\\, \\mathrm{tr}(B^\\top X) - 2\\beta\\, \\mathrm{tr}(D^\\top Y)

    over :math:`B \\in \\{\\pm1\\}^{M \\times r}`, :math:`D \\in \\{\\pm1\\}^{N \\times r}`,
    :math:`1^\\top X = 0, X^\\top X = M I` and :math:`1^\\top Y = 0, Y^\\top Y = N I`: the
    balance and decorrelation constraints of the codes are moved to continuous :math:`X, Y`,
    and :math:`\\alpha\\lVert B - X\\rVert^2` expands to the trace term since the norms are
    constant. Alternating, each step exact, so the objective never increases
    (:meth:`objective`):

    * **B-step**, bit by bit, for all users at once (users are independent given :math:`D`):
      :math:`b_{uk} \\leftarrow \\mathrm{sgn}\\bigl(K(\\hat b_{uk}, b_{uk})\\bigr)`,
      :math:`\\hat b_{uk} = \\sum_i w_{ui} (r y_{ui} - b_u^\\top d_i + b_{uk} d_{ik}) d_{ik}
      + \\alpha x_{uk}`, where :math:`K(a, b) = a` unless :math:`a = 0` (then the bit stays);
    * **D-step**, the same with users and items swapped and :math:`\\beta, Y`;
    * **X- and Y-steps**, :func:`orthogonal_balanced`.

    The sum over all items is split into the observed items plus Gram terms
    (:math:`\\sum_i w_0 (b_u^\\top d_i) d_{ik} = w_0 (B D^\\top D)_{uk}`), so one bit costs
    :math:`O(|\\mathcal{O}| + M r)`. Initialised, like the paper, from a relaxed real-valued
    solution: the weighted MF of :func:`weighted_mf`, binarised by :func:`sign_codes_of`.
    """

    code_bits: int = 64
    alpha: float = 1.0  # chosen on ML-1M validation (split 0, 64 bits, chapter 12)
    beta: float = 1e-4
    target: ImplicitTarget = field(default_factory=ImplicitTarget)
    num_sweeps: int = 5
    mf_iters: int = 60
    seed: int = 0
    _param_names = ("code_bits", "alpha", "beta")

    def fit(self, train: sp.csr_matrix, init: tuple | None = None) -> DCF:
        """Initialise from weighted MF (``mf_iters``; or ``init`` = its (U, V)), then at most
        ``num_sweeps`` sweeps (B-step, D-step, X- and Y-steps); stops early when no bit flips."""
        train = _csr(train)
        if init is None:
            init = weighted_mf(train, self.code_bits, self.target, num_iters=self.mf_iters, seed=self.seed)
        b, d = sign_codes_of(*init, center="both")
        self._train = train
        by_item = sp.csr_matrix(
            (np.arange(train.nnz, dtype=np.float64), train.indices, train.indptr), shape=train.shape
        ).T.tocsr()  # the same pairs item by item; data = position in the user-major order
        self._by_item = (by_item.indptr, by_item.indices, by_item.data.astype(np.int64))
        self._b = b.astype(np.float64)
        self._d = d.astype(np.float64)
        self._x = orthogonal_balanced(self._b, self.seed)
        self._y = orthogonal_balanced(self._d, self.seed)
        self._pred = _observed_products(train, self._b, self._d)
        history = [self.objective()]
        for _ in range(self.num_sweeps):
            flips = self._half_sweep(users=True) + self._half_sweep(users=False)
            self._x = orthogonal_balanced(self._b, self.seed)
            self._y = orthogonal_balanced(self._d, self.seed)
            history.append(self.objective())
            if flips == 0:
                break
        self.history_ = pd.DataFrame({"sweep": np.arange(len(history)), "objective": history})
        self.user_codes_ = self._b.astype(np.int8)
        self.item_codes_ = self._d.astype(np.int8)
        return self

    def _half_sweep(self, users: bool) -> int:
        """One pass over the bits of all users (or all items); returns the number of flips."""
        r = self.code_bits
        w0 = float(self.target.neg_weight)
        s1 = float(r)  # target of an observed pair, scaled to the code range; zeros target 0
        if users:
            own, other, aux, weight = self._b, self._d, self._x, float(self.alpha)
            indptr, cols, pos = self._train.indptr, self._train.indices, None
        else:
            own, other, aux, weight = self._d, self._b, self._y, float(self.beta)
            indptr, cols, pos = self._by_item
        count = np.diff(indptr).astype(np.float64)
        total_weight = w0 * other.shape[0] + (1.0 - w0) * count  # sum_i w_ui
        gram = other.T @ other
        kernel = _bit_sweep_kernel()
        if kernel is not None:
            if pos is None:
                pos = np.arange(len(cols), dtype=np.int64)
            return int(kernel(indptr, cols.astype(np.int64), pos, own, other, aux, gram,
                              total_weight, self._pred, s1, w0, weight))
        rows = np.repeat(np.arange(own.shape[0]), np.diff(indptr))
        pos = slice(None) if pos is None else pos
        other_t = np.ascontiguousarray(other.T)
        flips = 0
        for k in range(r):
            dk_obs = other_t[k][cols]
            pred = self._pred[pos]
            obs = np.bincount(rows, weights=(s1 - (1.0 - w0) * pred) * dk_obs, minlength=own.shape[0])
            g = obs - w0 * (own @ gram[:, k]) + total_weight * own[:, k] + weight * aux[:, k]
            new = np.where(g > 0, 1.0, np.where(g < 0, -1.0, own[:, k]))
            delta = new - own[:, k]
            changed = delta != 0
            if changed.any():
                flips += int(changed.sum())
                self._pred[pos] = pred + delta[rows] * dk_obs
                own[:, k] = new
        return flips

    def objective(self) -> float:
        """:math:`\\sum w (r y - b^\\top d)^2 - 2\\alpha\\,\\mathrm{tr}(B^\\top X)
        - 2\\beta\\,\\mathrm{tr}(D^\\top Y)` at the current iterate (exact, no M x N matrix)."""
        w0 = float(self.target.neg_weight)
        s1 = float(self.code_bits)
        p = self._pred
        sum_p2_all = float(np.sum((self._b.T @ self._b) * (self._d.T @ self._d)))
        fit = w0 * sum_p2_all + float(np.sum((s1 - p) ** 2 - w0 * p**2))
        return (
            fit
            - 2 * float(self.alpha) * float(np.sum(self._b * self._x))
            - 2 * float(self.beta) * float(np.sum(self._d * self._y))
        )


_SWEEP = []


def _bit_sweep_kernel():
    """The compiled B-step of :class:`DCF` (numba), or ``None`` without numba."""
    if not _SWEEP:
        try:
            from numba import njit
        except ImportError:  # pragma: no cover - numba is optional
            _SWEEP.append(None)
            return None

        @njit(cache=True, nogil=True)
        def sweep(indptr, cols, pos, own, other, aux, gram, total_weight, pred, s1, w0, weight):  # pragma: no cover
            n, r = own.shape
            flips = 0
            for k in range(r):
                for u in range(n):
                    acc = 0.0
                    for p in range(indptr[u], indptr[u + 1]):
                        acc += (s1 - (1.0 - w0) * pred[pos[p]]) * other[cols[p], k]
                    bg = 0.0
                    for l in range(r):
                        bg += own[u, l] * gram[l, k]
                    g = acc - w0 * bg + total_weight[u] * own[u, k] + weight * aux[u, k]
                    old = own[u, k]
                    new = old
                    if g > 0:
                        new = 1.0
                    elif g < 0:
                        new = -1.0
                    if new != old:
                        flips += 1
                        delta = new - old
                        own[u, k] = new
                        for p in range(indptr[u], indptr[u + 1]):
                            pred[pos[p]] += delta * other[cols[p], k]
            return flips

        _SWEEP.append(sweep)
    return _SWEEP[0]


# --------------------------------------------------------------------------------------------
# Validation grids


def evaluate_codes(
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    exclude: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: Sequence[int] = (10, 20, 50, 100),
) -> pd.DataFrame:
    """Metrics of ±1 codes ranked by Hamming distance with the popcount engine.

    :func:`bincf_lite.hashing.hamming_topk` (exact, the tie rule of
    :func:`bincf_lite.metrics.tie_priority`, ``exclude`` never recommended), then
    :func:`bincf_lite.metrics.evaluate_topk`: the same numbers as
    :func:`bincf_lite.metrics.evaluate_scores` on :math:`b_u^\\top d_i`, without scoring every
    item in floating point.
    """
    from .hashing import hamming_topk, pack_codes

    user_codes, item_codes = np.asarray(user_codes), np.asarray(item_codes)
    test = sp.csr_matrix(test)
    ks = sorted({int(k) for k in ks})
    top, _ = hamming_topk(
        pack_codes(user_codes), pack_codes(item_codes), ks[-1], exclude=sp.csr_matrix(exclude),
        priority=tie_priority(item_codes.shape[0]), code_bits=item_codes.shape[1],
    )
    return evaluate_topk(top, test, ks)

#: Validation grids: the paper's (§5.1), under the name each class gives the parameter; PPH's is
#: extended beyond the paper's 16 because on ML-1M its best value sat at that edge (chapter 12).
HASH_BASELINES: dict[str, tuple[type, dict[str, tuple]]] = {
    "sign-mf": (SignMF, {"center": ("items", "both", "none")}),
    "bccf": (BCCF, {"balance": (0.01, 0.03, 0.05, 0.07, 0.09)}),
    "pph": (PPH, {"cfn": (0.01, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)}),
    "dcf": (
        DCF,
        {"alpha": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1), "beta": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1)},
    ),
}


def tune_grid(
    make_model: Callable[..., object],
    grid: Mapping[str, Sequence] | Sequence[Mapping],
    split: Split,
    metric: tuple[str, int] = ("ndcg", 100),
    prepare: Callable[[sp.csr_matrix], Mapping] | None = None,
    refit: bool = True,
    progress: bool = False,
) -> tuple[object, pd.DataFrame]:
    """Choose a combination of several hyperparameters on the validation set, then refit.

    The multi-parameter form of :func:`bincf_lite.baselines.tune_on_validation`: ``grid`` is a
    mapping ``{name: values}`` (its Cartesian product is searched) or an explicit list of
    parameter dicts. Each candidate is ``make_model(**params).fit(split.train, **fit_kwargs)``
    and its codes are ranked on ``split.valid`` by :func:`evaluate_codes` (training items
    masked); the best is refitted on
    ``split.train_full`` (when ``refit``). ``prepare(train)`` computes ``fit_kwargs`` shared by
    every candidate once per training matrix (e.g. the weighted MF that initialises DCF).
    The test set is never touched. Returns the chosen model and one row per candidate.
    """
    from tqdm.auto import tqdm

    if isinstance(grid, Mapping):
        names = list(grid)
        candidates = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    else:
        candidates = [dict(c) for c in grid]
    if not candidates:
        candidates = [{}]
    name, k = metric
    column = f"{name}@{k}"
    shared = dict(prepare(split.train)) if prepare else {}
    rows = []
    for params in tqdm(candidates, desc="validation grid", disable=not progress):
        model = make_model(**params).fit(split.train, **shared)
        res = evaluate_codes(*model.codes(), split.train, split.valid, ks=[k])
        value = float(res[(res["metric"] == name) & (res["k"] == k)]["value"].iloc[0])
        rows.append({**params, column: value})
    table = pd.DataFrame(rows)
    best = candidates[int(table[column].to_numpy().argmax())]
    if not refit:
        return make_model(**best), table
    shared = dict(prepare(split.train_full)) if prepare else {}
    model = make_model(**best).fit(split.train_full, **shared)
    return model, table


def fit_hash_baseline(
    name: str, split: Split, params: Mapping | None = None, tune: bool = False, progress: bool = False
) -> tuple[object, pd.DataFrame | None]:
    """Fit the hashing baseline ``name`` (``sign-mf``, ``bccf``, ``pph``, ``dcf``) for a split.

    With ``tune``, the parameters of its grid (:data:`HASH_BASELINES`) that ``params`` does not
    fix are chosen by :func:`tune_grid` (the weighted MF that starts every candidate is fitted
    once per training matrix); otherwise the class defaults (chosen on ML-1M validation, chapter
    12) and ``params`` are fitted on ``split.train_full``. Returns the model and the validation
    table (``None`` without tuning). Used by ``bincf-lite fit --model dcf|bccf|pph|sign-mf``.
    """
    if name not in HASH_BASELINES:
        raise ValueError(f"unknown hashing baseline {name!r}; known: {', '.join(HASH_BASELINES)}")
    cls, grid = HASH_BASELINES[name]
    params = dict(params or {})
    free = {k: v for k, v in grid.items() if k not in params}
    if not (tune and free):
        return cls(**params).fit(split.train_full), None
    probe = cls(**params)
    dim = probe.code_bits - getattr(probe, "magnitude_bits", 0)

    def prepare(train):
        return {"init": weighted_mf(train, dim, probe.target, num_iters=probe.mf_iters, seed=probe.seed)}

    return tune_grid(lambda **p: cls(**{**params, **p}), free, split, prepare=prepare, progress=progress)
