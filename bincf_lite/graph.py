"""The user–item bipartite graph and its Laplacian (chapter 03).

Definition 1 of the paper: users and items are the two vertex sets of a bipartite graph whose
edges are the training interactions. With the ``M x N`` interaction matrix :math:`R`, its
``(M+N) x (M+N)`` adjacency matrix is

.. math::

    A = \\begin{bmatrix} 0 & R \\\\ R^\\top & 0 \\end{bmatrix}, \\qquad D = \\mathrm{diag}(A\\,\\mathbf 1).

Definition 2 calls :math:`L = D^{-1/2} A D^{-1/2}` the "Laplacian"; it is really the symmetric
*normalised adjacency* (its eigenvalues lie in :math:`[-1, 1]`; the normalised Laplacian is
:math:`I - L`). SpectralCF's code uses the random-walk Laplacian :math:`L = I - D^{-1} A`
instead (DESIGN §4). Both are available, the paper's being the default:

=============  ====================================  =========================================
``kind``       :math:`L`                             propagation operator :math:`I + L` of eq. (6)
=============  ====================================  =========================================
``"sym"``      :math:`D^{-1/2} A D^{-1/2}`           :math:`I + D^{-1/2} A D^{-1/2}` (symmetric)
``"rw"``       :math:`I - D^{-1} A`                  :math:`2I - D^{-1} A` (not symmetric)
=============  ====================================  =========================================

Nodes without an edge have degree 0; their rows and columns of :math:`D^{-1/2}` and
:math:`D^{-1}` are 0, never ``inf`` or NaN. Everything here stays sparse: nothing of size
``(M+N) x (M+N)`` is made dense except by :func:`spectrum` on small graphs, which refuses large
ones.

:class:`SparseOperator` wraps a sparse matrix for use inside a model. Its product with a dense
tensor is a custom autograd function whose backward multiplies by the (pre-computed) transpose:
:math:`\\partial \\ell / \\partial X = S^\\top\\, \\partial \\ell / \\partial Y` for
:math:`Y = S X`. For the symmetric operator the transpose is the matrix itself and is not stored
twice. Torch's own backward through a sparse product was measured at ~5x slower per epoch
(DESIGN §9).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "LAPLACIANS",
    "bipartite_adjacency",
    "degrees",
    "inverse_degree_power",
    "normalized_adjacency",
    "laplacian",
    "laplacian_from_adjacency",
    "propagation_matrix",
    "SparseOperator",
    "sparse_matmul",
    "propagation_operator",
    "spectrum",
    "to_torch_sparse",
]

#: The two readings of "Laplacian" (DESIGN §4): the paper's Def. 2 and SpectralCF's code.
LAPLACIANS = ("sym", "rw")

#: Largest graph (nodes) whose spectrum :func:`spectrum` computes densely.
MAX_DENSE_NODES = 4096


def bipartite_adjacency(train: sp.spmatrix) -> sp.csr_matrix:
    """Adjacency matrix :math:`A = [[0, R], [R^\\top, 0]]` of the user–item graph (Def. 1).

    ``train`` is the ``M x N`` interaction matrix (any non-zero is an edge; values are set to
    1). Users are nodes ``0..M-1``, items nodes ``M..M+N-1``. Returns a float64 CSR matrix.
    """
    r = sp.csr_matrix(train, dtype=np.float64, copy=True)
    r.data[:] = 1.0
    r.eliminate_zeros()
    a = sp.bmat([[None, r], [r.T, None]], format="csr")
    num_users, num_items = r.shape
    if a.shape != (num_users + num_items, num_users + num_items):  # bmat drops empty blocks
        a = sp.csr_matrix(a, shape=(num_users + num_items,) * 2)
    a.sort_indices()
    return a


def degrees(adjacency: sp.spmatrix) -> np.ndarray:
    """Degree vector :math:`D_{nn} = \\sum_j A_{nj}` (a vector, never a dense diagonal matrix)."""
    return np.asarray(sp.csr_matrix(adjacency).sum(axis=1), dtype=np.float64).ravel()


def inverse_degree_power(deg: np.ndarray, power: float) -> np.ndarray:
    """:math:`d^{-p}` elementwise with :math:`0^{-p} := 0` (zero-degree nodes give 0, not inf)."""
    deg = np.asarray(deg, dtype=np.float64)
    out = np.zeros_like(deg)
    np.power(deg, -power, out=out, where=deg > 0)
    return out


def normalized_adjacency(train: sp.spmatrix) -> sp.csr_matrix:
    """The paper's "Laplacian" :math:`L = D^{-1/2} A D^{-1/2}` (Def. 2) of the graph of ``train``.

    Entry ``(u, M+i)`` is :math:`1/\\sqrt{d_u d_i}` for every training pair ``(u, i)``.
    """
    return laplacian(train, "sym")


def laplacian(train: sp.spmatrix, kind: str = "sym") -> sp.csr_matrix:
    """:math:`L` of the graph of the ``M x N`` interaction matrix ``train``.

    ``kind="sym"``: :math:`D^{-1/2} A D^{-1/2}` (Def. 2, the paper's default);
    ``kind="rw"``: :math:`I - D^{-1} A` (SpectralCF's code). See
    :func:`laplacian_from_adjacency` for an arbitrary graph.
    """
    return laplacian_from_adjacency(bipartite_adjacency(train), kind)


def laplacian_from_adjacency(adjacency: sp.spmatrix, kind: str = "sym") -> sp.csr_matrix:
    """:math:`L` (``"sym"`` or ``"rw"``) of any graph given by its square adjacency matrix."""
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"an adjacency matrix is square, got shape {a.shape}")
    deg = degrees(a)
    if kind == "sym":
        d = sp.diags(inverse_degree_power(deg, 0.5))
        out = d @ a @ d
    elif kind == "rw":
        out = sp.identity(a.shape[0], format="csr") - sp.diags(inverse_degree_power(deg, 1.0)) @ a
    else:
        raise ValueError(f"unknown Laplacian kind {kind!r}; choose one of {LAPLACIANS}")
    out = sp.csr_matrix(out)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def propagation_matrix(train: sp.spmatrix, kind: str = "sym") -> sp.csr_matrix:
    """The filter :math:`I + L` of eq. (6) as a scipy CSR matrix (``kind`` as in :func:`laplacian`)."""
    lap = laplacian(train, kind)
    out = sp.csr_matrix(sp.identity(lap.shape[0], format="csr") + lap)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def to_torch_sparse(matrix: sp.spmatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor (same values, no densification)."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data).to(dtype),
            size=m.shape,
            check_invariants=False,
        )


class _SparseMatmul(torch.autograd.Function):
    """:math:`Y = S X` with :math:`\\partial\\ell/\\partial X = S^\\top \\partial\\ell/\\partial Y`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: SparseOperator) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return op.matrix @ x

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_x = ctx.op.transpose @ grad_out.contiguous() if ctx.needs_input_grad[0] else None
        return grad_x, None


class SparseOperator:
    """A fixed sparse ``(n, n)`` matrix :math:`S` that multiplies dense ``(n, D)`` tensors.

    ``op @ x`` (or :meth:`matmul`) is differentiable in ``x``; the backward multiplies by
    :math:`S^\\top`, stored once when :math:`S` is not symmetric and shared when it is (the
    ``"sym"`` propagation operator). The matrix itself is a constant (no gradient).
    """

    def __init__(self, matrix: sp.spmatrix, dtype: torch.dtype = torch.float32):
        m = sp.csr_matrix(matrix)
        if m.shape[0] != m.shape[1]:
            raise ValueError(f"a square operator is expected, got shape {m.shape}")
        self.shape = m.shape
        self.symmetric = bool(abs(m - m.T).max() <= 1e-12) if m.nnz else True
        self.matrix = to_torch_sparse(m, dtype)
        self.transpose = self.matrix if self.symmetric else to_torch_sparse(m.T.tocsr(), dtype)
        self.scipy = m

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.shape[1]:
            raise ValueError(f"operator of shape {self.shape} cannot multiply {tuple(x.shape)}")
        return _SparseMatmul.apply(x, self)

    __matmul__ = matmul

    def to(self, device=None, dtype=None) -> SparseOperator:
        """A copy on another device / dtype."""
        new = object.__new__(SparseOperator)
        new.shape, new.symmetric, new.scipy = self.shape, self.symmetric, self.scipy
        new.matrix = self.matrix.to(device=device, dtype=dtype)
        new.transpose = new.matrix if self.symmetric else self.transpose.to(device=device, dtype=dtype)
        return new

    def __repr__(self) -> str:
        return f"SparseOperator(shape={self.shape}, nnz={self.scipy.nnz}, symmetric={self.symmetric})"


def sparse_matmul(op: SparseOperator, x: torch.Tensor) -> torch.Tensor:
    """Functional form of ``op @ x``."""
    return op.matmul(x)


def propagation_operator(train: sp.spmatrix, kind: str = "sym") -> SparseOperator:
    """:math:`I + L` of eq. (6) as a :class:`SparseOperator` for the models (chapter 03)."""
    return SparseOperator(propagation_matrix(train, kind))


def spectrum(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a small symmetric sparse matrix.

    For teaching on toy graphs (chapter 03); refuses graphs of more than
    ``MAX_DENSE_NODES`` nodes rather than building an ``n x n`` dense array of the real data.
    Non-symmetric input (the ``"rw"`` Laplacian) gets real parts of :func:`numpy.linalg.eigvals`
    and no eigenvectors; its eigenvalues equal those of the symmetric form since
    :math:`D^{-1}A` is similar to :math:`D^{-1/2} A D^{-1/2}` on the nodes with an edge.
    """
    m = sp.csr_matrix(matrix, dtype=np.float64)
    n = m.shape[0]
    if n > MAX_DENSE_NODES:
        raise ValueError(
            f"spectrum() is for small graphs ({n} > {MAX_DENSE_NODES} nodes); use"
            " scipy.sparse.linalg.eigsh for a few eigenvalues of a large one"
        )
    dense = m.toarray()
    if np.allclose(dense, dense.T):
        vals, vecs = np.linalg.eigh(dense)
        return vals, vecs
    vals = np.sort(np.linalg.eigvals(dense).real)
    return vals, np.empty((n, 0))
