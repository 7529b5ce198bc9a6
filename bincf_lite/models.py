"""Float recommenders trained with BPR: SpectralCF, the cross op, GCN-CF, BPR-MF, LightGCN.

Chapters 04 (SpectralCF), 05 (the cross op) and 06 (GCN-CF, the teacher). Every model has a
frozen dataclass config (its hyperparameters *and* its training settings, so that one object
describes a run), is built from the ``M x N`` training matrix (the graph of Def. 1), and its
``forward()`` returns the full tables ``(U, V)`` of user and item vectors whose inner products
are the scores. ``ego()`` returns the free embedding tables :math:`U^{(0)}, V^{(0)}`.

Node features are stacked users first: :math:`X = [U; V] \\in \\mathbb R^{(M+N) \\times D}`.

The spectral convolution of SpectralCF as the paper follows it, eq. (6):

.. math::

    \\mathrm{sp}(X; L, \\Theta) = \\rho\\big((I_{M+N} + L)\\, X\\, \\Theta\\big).

The cross op, eq. (7), for one vector, and its vectorised form with per-node weights
:math:`W \\in \\mathbb R^{(M+N) \\times D}`, eq. (9)–(10):

.. math::

    x_{k+1} = x_k\\, w_k^\\top x_k + x_k, \\qquad
    X_{k+1} = \\mathrm{diag}\\big((X_k \\circ W)\\mathbf 1\\big) X_k + X_k .

GCN-CF, eq. (8)–(13): batch norm, a spectral layer, two cross ops, batch norm, a second spectral
layer, and the concatenation :math:`U_T = [U^{(0)}, U^{(1)}, U^{(4)}]` of width ``3 * embed_dim``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from .graph import LAPLACIANS, SparseOperator, normalized_adjacency, propagation_operator

__all__ = [
    "ACTIVATIONS",
    "BPRConfig",
    "BPRMFConfig",
    "LightGCNConfig",
    "SpectralCFConfig",
    "GCNCFConfig",
    "cross_op",
    "crossnet_op",
    "spectral_conv",
    "BPRMF",
    "LightGCN",
    "SpectralCF",
    "GCNCF",
    "MODELS",
    "build_model",
    "config_from_dict",
]

#: Activations ρ of eq. (6) by name; "identity" drops ρ.
ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "identity": lambda x: x,
}


# --------------------------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class BPRConfig:
    """Settings shared by every BPR-trained model (the training loop reads these).

    ``l2`` is λ of eq. (14). ``reg_on`` says which rows it penalises: ``"output"`` the rows of
    the final tables ``U, V`` used by the batch (eq. 14 as written), ``"ego"`` the rows of the
    free embeddings (LightGCN's choice). See :func:`bincf_lite.losses.l2_penalty`.
    ``eval_every`` and ``patience`` count epochs and evaluations: training stops after
    ``patience`` evaluations on validation without a better NDCG@100.
    """

    embed_dim: int = 64
    lr: float = 1e-3
    l2: float = 1e-4
    num_epochs: int = 60
    batch_size: int = 4096
    eval_every: int = 5
    patience: int = 2
    reg_on: str = "output"
    init_std: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.embed_dim <= 0 or self.num_epochs < 0 or self.batch_size <= 0:
            raise ValueError("embed_dim and batch_size must be positive, num_epochs >= 0")
        if self.lr <= 0 or self.l2 < 0:
            raise ValueError(f"lr must be > 0 and l2 >= 0, got lr={self.lr}, l2={self.l2}")
        if self.eval_every <= 0 or self.patience <= 0:
            raise ValueError("eval_every and patience must be positive")
        if self.reg_on not in ("output", "ego"):
            raise ValueError(f"reg_on must be 'output' or 'ego', got {self.reg_on!r}")

    def to_dict(self) -> dict:
        return {"model": MODEL_NAMES[type(self)], **asdict(self)}


@dataclass(frozen=True)
class BPRMFConfig(BPRConfig):
    """BPR matrix factorisation (Rendle et al., 2009): scores :math:`u^\\top v`."""

    lr: float = 5e-3
    l2: float = 1e-4
    batch_size: int = 8192


@dataclass(frozen=True)
class LightGCNConfig(BPRConfig):
    """LightGCN (He et al., 2020): :math:`E_{k+1} = D^{-1/2} A D^{-1/2} E_k`, mean of layers."""

    num_layers: int = 3
    lr: float = 5e-3
    l2: float = 1e-4
    batch_size: int = 8192
    reg_on: str = "ego"


@dataclass(frozen=True)
class SpectralCFConfig(BPRConfig):
    """SpectralCF as the paper follows it: ``num_layers`` layers of eq. (6), all concatenated."""

    num_layers: int = 3
    activation: str = "sigmoid"
    laplacian: str = "sym"
    lr: float = 5e-3
    l2: float = 1e-4
    batch_size: int = 16384

    def __post_init__(self):
        super().__post_init__()
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("laplacian", self.laplacian, LAPLACIANS)


@dataclass(frozen=True)
class GCNCFConfig(BPRConfig):
    """GCN-CF, eq. (8)–(13). The defaults are the paper as read, with ``lr`` and λ (``l2``)
    chosen on ML-1M validation (``benchmarks/teacher.py``: the paper's λ = 1e-3 gave test
    NDCG@100 0.445, λ = 1e-2 gives 0.485); the switches are ablations.

    ``activation`` is ρ (the paper follows SpectralCF's sigmoid); ``cross`` turns eq. (9)–(10)
    on or off; ``batchnorm`` the batch norms before eq. (8) and (11); ``laplacian`` picks
    Def. 2 (``"sym"``) or SpectralCF's code (``"rw"``); ``transform=False`` fixes
    :math:`\Theta^{(0)} = \Theta^{(1)} = I` (no feature transformation, as LightGCN argues);
    ``combine="mean"`` replaces the concatenation of eq. (12)–(13) by the mean
    :math:`(X^{(0)} + X^{(1)} + X^{(4)})/3` of width ``embed_dim`` (LightGCN's layer combination).
    """

    activation: str = "sigmoid"
    cross: bool = True
    batchnorm: bool = True
    laplacian: str = "sym"
    transform: bool = True
    combine: str = "concat"
    lr: float = 5e-3
    l2: float = 1e-2
    batch_size: int = 16384

    def __post_init__(self):
        super().__post_init__()
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("laplacian", self.laplacian, LAPLACIANS)
        _check_choice("combine", self.combine, ("concat", "mean"))


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {tuple(choices)}")


# --------------------------------------------------------------------------------------------
# Building blocks


def cross_op(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The cross op of eq. (7), row-wise: :math:`x_{k+1} = x_k (w^\\top x_k) + x_k`.

    ``x`` is ``(n, D)`` (or ``(D,)``); ``w`` is ``(D,)`` (one weight vector shared by all rows,
    eq. 7) or ``(n, D)`` (per-node weights, the vectorised eq. 9–10:
    :math:`\\mathrm{diag}((X \\circ W)\\mathbf 1) X + X`). Each row is scaled by
    :math:`1 + w_n^\\top x_n`; the result is a degree-2 polynomial of ``x``.
    """
    return x * (x * w).sum(dim=-1, keepdim=True) + x


def crossnet_op(x0: torch.Tensor, xk: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One layer of CrossNet (Wang et al., 2017): :math:`x_{k+1} = x_0 (w^\\top x_k) + x_k`.

    For comparison with :func:`cross_op` (chapter 05): ``k`` CrossNet layers reach degree
    ``k + 1`` in :math:`x_0`, ``k`` cross ops reach degree :math:`2^k`.
    """
    return x0 * (xk * w).sum(dim=-1, keepdim=True) + xk


def spectral_conv(op: SparseOperator, x: torch.Tensor, theta: torch.Tensor | None, activation: str):
    """:math:`\\mathrm{sp}(X; L, \\Theta) = \\rho((I + L) X \\Theta)`, eq. (6).

    ``op`` is :math:`I + L` (:func:`bincf_lite.graph.propagation_operator`); the product is
    computed as :math:`(I + L)(X\\Theta)`, the cheaper order. ``theta=None`` means
    :math:`\\Theta = I`.
    """
    return ACTIVATIONS[activation](op @ (x if theta is None else x @ theta))


class _BPRModel(nn.Module):
    """Shared parts: free embedding tables of users and items, and the split of node tables."""

    def __init__(self, train: sp.spmatrix, config: BPRConfig):
        super().__init__()
        self.config = config
        self.num_users, self.num_items = train.shape
        self.generator = torch.Generator().manual_seed(config.seed)
        n, d = self.num_users + self.num_items, config.embed_dim
        self.embedding = nn.Parameter(torch.empty(n, d))
        nn.init.normal_(self.embedding, std=config.init_std, generator=self.generator)

    def ego(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The free embeddings :math:`U^{(0)}, V^{(0)}`."""
        return self._split(self.embedding)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[: self.num_users], x[self.num_users :]

    @property
    def out_dim(self) -> int:
        return self.config.embed_dim

    def _glorot(self, *shape) -> nn.Parameter:
        p = nn.Parameter(torch.empty(*shape))
        nn.init.xavier_uniform_(p, generator=self.generator)
        return p


# --------------------------------------------------------------------------------------------
# Models


class BPRMF(_BPRModel):
    """Matrix factorisation trained with BPR: ``forward()`` returns the embedding tables."""

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ego()


class LightGCN(_BPRModel):
    """LightGCN: :math:`E_{k+1} = \\hat A E_k`, :math:`\\hat A = D^{-1/2} A D^{-1/2}`, output
    :math:`\\frac{1}{K+1}\\sum_{k=0}^{K} E_k`. No weights, no activation, no self-loop."""

    def __init__(self, train: sp.spmatrix, config: LightGCNConfig):
        super().__init__(train, config)
        self.op = SparseOperator(normalized_adjacency(train))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding
        total = x
        for _ in range(self.config.num_layers):
            x = self.op @ x
            total = total + x
        return self._split(total / (self.config.num_layers + 1))


class SpectralCF(_BPRModel):
    """SpectralCF as the paper follows it: ``X_{k+1} = sp(X_k; L, Θ_k)``, eq. (6), for
    ``k < num_layers``, and the concatenation :math:`[X_0, X_1, \\dots, X_K]` (width
    ``(K + 1) * embed_dim``)."""

    def __init__(self, train: sp.spmatrix, config: SpectralCFConfig):
        super().__init__(train, config)
        self.op = propagation_operator(train, config.laplacian)
        d = config.embed_dim
        self.thetas = nn.ParameterList([self._glorot(d, d) for _ in range(config.num_layers)])

    @property
    def out_dim(self) -> int:
        return (self.config.num_layers + 1) * self.config.embed_dim

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding
        layers = [x]
        for theta in self.thetas:
            x = spectral_conv(self.op, x, theta, self.config.activation)
            layers.append(x)
        return self._split(torch.cat(layers, dim=1))


class GCNCF(_BPRModel):
    """GCN-CF, the BPR teacher of §4.1.

    .. math::

        X^{(1)} &= \\mathrm{sp}(\\mathrm{BN}(X^{(0)}); L, \\Theta^{(0)})            && (8)\\\\
        X^{(2)} &= \\mathrm{diag}((X^{(1)} \\circ W_1)\\mathbf 1) X^{(1)} + X^{(1)} && (9)\\\\
        X^{(3)} &= \\mathrm{diag}((X^{(2)} \\circ W_2)\\mathbf 1) X^{(2)} + X^{(2)} && (10)\\\\
        X^{(4)} &= \\mathrm{sp}(\\mathrm{BN}(X^{(3)}); L, \\Theta^{(1)})            && (11)\\\\
        U_T &= [U^{(0)}, U^{(1)}, U^{(4)}], \\quad V_T = [V^{(0)}, V^{(1)}, V^{(4)}] && (12\\text{–}13)

    Choices where the paper is silent (chapter 06 names each): batch norm normalises each of the
    ``D`` columns over all ``M + N`` nodes, and since every forward pass sees the whole graph it
    always uses these batch statistics (no running averages: training and evaluation compute
    the same function); :math:`X^{(0)}` enters the concatenation *before* batch norm (it is the
    free embedding table); :math:`W_1, W_2` start at 0 (each cross op starts as the identity);
    :math:`\\Theta` is Glorot-initialised.
    """

    def __init__(self, train: sp.spmatrix, config: GCNCFConfig):
        super().__init__(train, config)
        self.op = propagation_operator(train, config.laplacian)
        n, d = self.num_users + self.num_items, config.embed_dim
        if config.transform:
            self.theta0 = self._glorot(d, d)
            self.theta1 = self._glorot(d, d)
        else:
            self.theta0 = self.theta1 = None
        if config.cross:
            self.w1 = nn.Parameter(torch.zeros(n, d))
            self.w2 = nn.Parameter(torch.zeros(n, d))
        if config.batchnorm:
            self.bn0 = nn.BatchNorm1d(d, track_running_stats=False)
            self.bn1 = nn.BatchNorm1d(d, track_running_stats=False)

    @property
    def out_dim(self) -> int:
        return (3 if self.config.combine == "concat" else 1) * self.config.embed_dim

    def layers(self) -> list[torch.Tensor]:
        """All node tables :math:`X^{(0)}, \\dots, X^{(4)}` (for inspection in chapter 06)."""
        cfg = self.config
        x0 = self.embedding
        h = self.bn0(x0) if cfg.batchnorm else x0
        x1 = spectral_conv(self.op, h, self.theta0, cfg.activation)  # eq. (8)
        x2 = cross_op(x1, self.w1) if cfg.cross else x1  # eq. (9)
        x3 = cross_op(x2, self.w2) if cfg.cross else x2  # eq. (10)
        h = self.bn1(x3) if cfg.batchnorm else x3
        x4 = spectral_conv(self.op, h, self.theta1, cfg.activation)  # eq. (11)
        return [x0, x1, x2, x3, x4]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        x0, x1, _, _, x4 = self.layers()
        if self.config.combine == "mean":
            return self._split((x0 + x1 + x4) / 3)
        return self._split(torch.cat([x0, x1, x4], dim=1))  # eq. (12)-(13)


# --------------------------------------------------------------------------------------------
# Registry

#: Model name (as the CLI spells it) -> (model class, config class).
MODELS: dict[str, tuple[type[_BPRModel], type[BPRConfig]]] = {
    "bpr-mf": (BPRMF, BPRMFConfig),
    "lightgcn": (LightGCN, LightGCNConfig),
    "spectralcf": (SpectralCF, SpectralCFConfig),
    "gcn-cf": (GCNCF, GCNCFConfig),
}
MODEL_NAMES = {cfg: name for name, (_, cfg) in MODELS.items()}


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, train: sp.spmatrix, config: BPRConfig | None = None) -> _BPRModel:
    """A fresh model ``name`` on the graph of ``train`` (default config when ``None``)."""
    model_cls, config_cls = _lookup(name)
    config = config_cls() if config is None else config
    if not isinstance(config, config_cls):
        raise TypeError(f"model {name!r} needs a {config_cls.__name__}, got {type(config).__name__}")
    return model_cls(sp.csr_matrix(train), config)


def config_from_dict(values: dict) -> BPRConfig:
    """Rebuild a config from :meth:`BPRConfig.to_dict` output (``model`` names the class);
    unknown keys raise a clear error."""
    values = dict(values)
    name = values.pop("model")
    _, config_cls = _lookup(name)
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
    return config_cls(**values)
