"""One training loop for every BPR model (chapters 04 and 06).

Algorithm 1, line 3 of the paper: each epoch draws a fresh uniform negative :math:`j'` for every
training pair :math:`(i, j)`, shuffles the triples, and takes Adam steps on minibatches of
eq. (14). Graph models recompute their full tables ``(U, V)`` once per batch (the whole graph
is one convolution); the sparse products use :class:`bincf_lite.graph.SparseOperator`.

Every ``eval_every`` epochs the model is scored on the validation set with
:func:`bincf_lite.metrics.evaluate_scores` (training items masked, the book's tie rule); training
stops after ``patience`` evaluations without a better NDCG@100 and the best weights are restored.
A non-finite loss, or an epoch loss far above the first one, raises :class:`TrainingDiverged`
naming the epoch and a remedy.

**Final numbers** (what :func:`fit_float_model` does and the benchmark reports): the number of
epochs and the hyperparameters are chosen on validation with the model trained on
``split.train``; with ``refit=True`` a fresh model is then trained on ``split.train_full``
(train + validation, the whole training half) for exactly the chosen number of epochs, and that
model is the one tested (with ``exclude=split.train_full``). With ``refit=False`` the early-stopped
model itself is returned.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data import Split, sample_negatives
from .losses import bpr_loss, l2_penalty
from .metrics import evaluate_scores
from .models import MODELS, BPRConfig, build_model

__all__ = [
    "TrainingDiverged",
    "DivergenceGuard",
    "EarlyStopping",
    "FitResult",
    "train_bpr",
    "fit_float_model",
    "embeddings",
    "score_function",
    "evaluate_model",
    "save_checkpoint",
    "load_checkpoint",
    "training_triples",
]

#: Metric and cut-off that early stopping watches.
STOP_METRIC = ("ndcg", 100)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or grew far above its first value."""


class DivergenceGuard:
    """Raises :class:`TrainingDiverged` when a batch loss is not finite or an epoch's mean loss
    exceeds ``max_loss_ratio`` times the first epoch's. Shared by :func:`train_bpr` and the
    student's training loop; ``hint`` ends the message (what to change)."""

    def __init__(self, model: torch.nn.Module, max_loss_ratio: float, hint: str):
        self.name, self.max_loss_ratio, self.hint = type(model).__name__, max_loss_ratio, hint
        self.first: float | None = None

    def batch(self, loss: torch.Tensor, where: str) -> None:
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"{self.name}: the loss became {loss.item()} at {where}; {self.hint}")

    def epoch(self, value: float, epoch: int) -> None:
        if self.first is None:
            self.first = value
        elif value > self.max_loss_ratio * max(self.first, 1e-12):
            raise TrainingDiverged(
                f"{self.name}: the epoch loss grew from {self.first:.4f} to {value:.4f} at epoch"
                f" {epoch}; {self.hint}"
            )


class EarlyStopping:
    """Keeps the weights of the best validation score; stops after ``patience`` evaluations
    without improvement. Shared by :func:`train_bpr` and the student's training loop."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_score, self.best_epoch, self.best_state, self.bad = -math.inf, 0, None, 0

    def update(self, model: torch.nn.Module, epoch: int, score: float) -> bool:
        """Record a validation ``score``; True when it improves on the best so far."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience

    def restore(self, model: torch.nn.Module, last_epoch: int) -> int:
        """Load the best weights into ``model``; the epoch they come from (``last_epoch``
        when nothing was evaluated)."""
        if self.best_state is None:
            return last_epoch
        model.load_state_dict(self.best_state)
        return self.best_epoch


@dataclass
class FitResult:
    """What :func:`fit_float_model` returns.

    ``user_emb`` / ``item_emb`` are float32 numpy tables whose inner products are the scores;
    ``history`` has one row per epoch (``phase`` is ``"select"`` on ``split.train`` with
    validation, ``"refit"`` on ``split.train_full``); ``best_epoch`` is the epoch chosen on
    validation; ``valid`` the validation metrics of the chosen epoch.
    """

    name: str
    model: torch.nn.Module
    config: BPRConfig
    user_emb: np.ndarray
    item_emb: np.ndarray
    history: pd.DataFrame
    best_epoch: int
    valid: pd.DataFrame | None
    refit: bool


# --------------------------------------------------------------------------------------------
# Scores and evaluation


@torch.no_grad()
def embeddings(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The model's full tables ``(U, V)`` as float32 numpy arrays (evaluation mode)."""
    was_training = model.training
    model.eval()
    try:
        u, v = model()
    finally:
        model.train(was_training)
    return u.detach().cpu().numpy().astype(np.float32), v.detach().cpu().numpy().astype(np.float32)


def score_function(user_emb: np.ndarray, item_emb: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``score_fn(users) = U[users] @ V.T`` for :func:`bincf_lite.metrics.evaluate_scores`."""
    item_t = np.ascontiguousarray(item_emb.T)
    return lambda users: user_emb[users] @ item_t


def evaluate_model(model_or_tables, exclude: sp.spmatrix, test: sp.spmatrix, ks=(10, 20, 50, 100)):
    """Metrics of a model (or of a ``(U, V)`` pair of tables) on ``test``; see
    :func:`bincf_lite.metrics.evaluate_scores`."""
    if isinstance(model_or_tables, torch.nn.Module):
        u, v = embeddings(model_or_tables)
    else:
        u, v = model_or_tables
    return evaluate_scores(score_function(u, v), exclude, test, ks)


def _metric(df: pd.DataFrame, metric: str, k: int) -> float:
    row = df[(df["metric"] == metric) & (df["k"] == k)]
    return float(row["value"].iloc[0])


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, epoch: int, extra: dict | None = None):
    """Write the model's weights and config atomically (temporary file, then ``os.replace``):
    an interrupted write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": model.config.to_dict(),
        "epoch": int(epoch),
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module | None = None) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code runs);
    when ``model`` is given, load its weights into it. Returns the payload dict."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if model is not None:
        model.load_state_dict(payload["state_dict"])
    return payload


# --------------------------------------------------------------------------------------------
# The loop


def training_triples(train: sp.spmatrix, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One epoch of shuffled triples ``(u, i, j)``: every training pair once, a fresh uniform
    negative ``j`` per pair (Algorithm 1, line 3)."""
    coo = sp.coo_matrix(train)
    order = rng.permutation(coo.nnz)
    users = coo.row[order].astype(np.int64)
    pos = coo.col[order].astype(np.int64)
    neg = sample_negatives(train, users, rng)
    return users, pos, neg


def train_bpr(
    model: torch.nn.Module,
    train: sp.spmatrix,
    valid: sp.spmatrix | None = None,
    num_epochs: int | None = None,
    progress: bool = False,
    checkpoint_path: str | os.PathLike | None = None,
    max_loss_ratio: float = 10.0,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Train ``model`` with BPR on ``train``; early stopping on ``valid`` when given.

    Hyperparameters come from ``model.config``; ``num_epochs`` overrides its ``num_epochs``
    (used to refit for the chosen number of epochs). With ``valid`` the model is evaluated every
    ``eval_every`` epochs (and at the last one), the best weights by validation NDCG@100 are
    restored at the end and, when ``checkpoint_path`` is given, written there each time they
    improve. Returns ``(history, best_epoch)``; without ``valid`` ``best_epoch`` is the last.

    Raises :class:`TrainingDiverged` when a batch loss is not finite or an epoch's mean loss
    exceeds ``max_loss_ratio`` times the first epoch's.
    """
    from tqdm.auto import tqdm

    cfg = model.config
    num_epochs = cfg.num_epochs if num_epochs is None else int(num_epochs)
    train = sp.csr_matrix(train)
    train.sort_indices()
    rng = np.random.default_rng(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rows = []
    early = EarlyStopping(cfg.patience)
    guard = DivergenceGuard(model, max_loss_ratio, f"lower the learning rate (lr={cfg.lr}) or raise l2 (l2={cfg.l2})")
    model.train()
    bar = tqdm(range(1, num_epochs + 1), desc=type(model).__name__, disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        users, pos, neg = training_triples(train, rng)
        users, pos, neg = (torch.from_numpy(a) for a in (users, pos, neg))
        total, total_bpr, total_reg = 0.0, 0.0, 0.0
        for b0 in range(0, len(users), cfg.batch_size):
            u, i, j = (a[b0 : b0 + cfg.batch_size] for a in (users, pos, neg))
            user_tab, item_tab = model()
            uu, vi, vj = user_tab[u], item_tab[i], item_tab[j]
            pos_s, neg_s = (uu * vi).sum(1), (uu * vj).sum(1)
            if cfg.reg_on == "ego":
                eu, ev = model.ego()
                reg_rows = (eu[u], ev[i], ev[j])
            else:
                reg_rows = (uu, vi, vj)
            bpr = bpr_loss(pos_s, neg_s)
            reg = l2_penalty(reg_rows, len(u))
            loss = bpr + cfg.l2 * reg
            guard.batch(loss, f"epoch {epoch}, batch {b0 // cfg.batch_size + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = len(u)
            total += loss.item() * n
            total_bpr += bpr.item() * n
            total_reg += reg.item() * n
        seconds = time.perf_counter() - start
        row = {
            "epoch": epoch,
            "loss": total / len(users),
            "bpr": total_bpr / len(users),
            "l2_term": cfg.l2 * total_reg / len(users),
            "seconds": seconds,
        }
        guard.epoch(row["loss"], epoch)
        if valid is not None and (epoch % cfg.eval_every == 0 or epoch == num_epochs):
            df = evaluate_model(model, train, valid, ks=(20, 100))
            for metric in ("recall", "map", "ndcg"):
                row[f"valid_{metric}@100"] = _metric(df, metric, 100)
            score = _metric(df, *STOP_METRIC)
            if early.update(model, epoch, score) and checkpoint_path is not None:
                save_checkpoint(checkpoint_path, model, epoch, {"valid_ndcg@100": score})
            bar.set_postfix(loss=f"{row['loss']:.4f}", ndcg=f"{score:.4f}")
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if early.stop:
            break
    best_epoch = early.restore(model, len(rows))
    model.eval()
    return pd.DataFrame(rows), best_epoch


def fit_float_model(
    name: str,
    split: Split,
    config: BPRConfig | None = None,
    refit: bool = False,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    **overrides,
) -> FitResult:
    """Fit a float model by name (``"spectralcf"``, ``"gcn-cf"``, ``"bpr-mf"``, ``"lightgcn"``).

    Trains on ``split.train`` with early stopping on ``split.valid``; with ``refit=True``
    retrains a fresh model on ``split.train_full`` for the chosen number of epochs (see the
    module docstring). ``overrides`` replace config fields (``lr=1e-3``). Test with
    ``evaluate_model((res.user_emb, res.item_emb), split.train_full, split.test)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    config = MODELS[name][1]() if config is None else config
    if overrides:
        config = replace(config, **overrides)
    ckpt = Path(checkpoint_dir) / "best.pt" if checkpoint_dir is not None else None
    model = build_model(name, split.train, config)
    history, best_epoch = train_bpr(model, split.train, split.valid, progress=progress, checkpoint_path=ckpt)
    history.insert(0, "phase", "select")
    valid = evaluate_model(model, split.train, split.valid)
    if refit:
        model = build_model(name, split.train_full, config)
        refit_hist, _ = train_bpr(model, split.train_full, None, num_epochs=best_epoch, progress=progress)
        refit_hist.insert(0, "phase", "refit")
        history = pd.concat([history, refit_hist], ignore_index=True)
        if ckpt is not None:
            save_checkpoint(ckpt.with_name("refit.pt"), model, best_epoch)
    user_emb, item_emb = embeddings(model)
    return FitResult(name, model, config, user_emb, item_emb, history, best_epoch, valid, refit)
