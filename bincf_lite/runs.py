"""Run directories: a trained model on disk (DESIGN §7).

A run directory holds everything needed to evaluate a model or recommend with it, without the
code that trained it:

=====================  ==================================================================
``config.json``        model name, hyperparameters, data source, ``code_bits`` for codes
``split.json``         how the training data was made (dataset, seed, fractions) or the
                       sha256 of the interactions file it was fitted on
``user_ids.tsv``       original user ids, one per row of the user tables
``item_ids.tsv``       original item ids, one per row of the item tables
``train.npz``          the training interactions (masked when ranking)
``user_emb.npy`` ...   float32 embeddings of float models (scores are inner products)
``user_codes.npy`` ..  bit-packed codes of binary models (``np.packbits``, big-endian,
                       bit 1 = +1, one row per user / item)
``model.npz``          the parameters of the sanity baselines (popularity, EASE weights,
                       ItemKNN similarities)
``metrics.json``       written by ``bincf-lite evaluate``
``history.csv``        the training history of trained models
=====================  ==================================================================

Every file is written to a temporary name and renamed, so a crash never leaves half a run.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .metrics import tie_priority, topk_from_scores

__all__ = ["Run", "save_run", "load_run", "atomic_write", "write_json"]

_BLOCK_CELLS = 1 << 23


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
            fh.write("\n")

    atomic_write(path, write)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _write_ids(path: Path, ids) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(f"{i}\n" for i in ids)

    atomic_write(path, write)


@dataclass
class Run:
    """A loaded run directory; see the module docstring for the files."""

    path: Path
    config: dict
    split: dict
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    arrays: dict = field(default_factory=dict)
    history: pd.DataFrame | None = None

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def is_binary(self) -> bool:
        return "user_codes" in self.arrays

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def score(self, users: np.ndarray) -> np.ndarray:
        """Float scores of ``users`` for every item (higher is better).

        Binary runs score ``-Hamming distance`` so that the ranking is the Hamming ranking.
        """
        users = np.asarray(users)
        a = self.arrays
        if "user_emb" in a:
            return np.asarray(a["user_emb"][users] @ a["item_emb"].T, dtype=np.float64)
        if self.is_binary:
            bits = self.config["code_bits"]
            u = np.unpackbits(a["user_codes"][users], axis=1, count=bits).astype(np.float32)
            i = np.unpackbits(a["item_codes"], axis=1, count=bits).astype(np.float32)
            u, i = 2 * u - 1, 2 * i - 1
            return np.asarray((u @ i.T - bits) / 2.0, dtype=np.float64)  # = -Hamming distance
        if "popularity" in a:
            return np.broadcast_to(a["popularity"], (len(users), self.num_items)).astype(np.float64)
        if "weights" in a:
            return np.asarray(self.train[users] @ a["weights"], dtype=np.float64)
        if "similarity" in a:
            return np.asarray((self.train[users] @ a["similarity"]).todense(), dtype=np.float64)
        raise ValueError(f"{self.path}: the run holds no scoring arrays")

    def topk(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Top-``k`` items of ``users`` under the book's tie rule, training items excluded.

        Binary runs rank with the popcount engine (:func:`bincf_lite.hashing.hamming_topk`).
        """
        users = np.asarray(users)
        exclude = self.train[users] if exclude is None else sp.csr_matrix(exclude)
        priority = tie_priority(self.num_items)
        if self.is_binary:
            from .hashing import hamming_topk, pack_codes

            bits = self.config["code_bits"]
            uw = pack_codes(np.unpackbits(self.arrays["user_codes"][users], axis=1, count=bits))
            iw = pack_codes(np.unpackbits(self.arrays["item_codes"], axis=1, count=bits))
            idx, _ = hamming_topk(uw, iw, k, exclude=exclude, priority=priority)
            return idx
        block = max(1, _BLOCK_CELLS // max(self.num_items, 1))
        out = [
            topk_from_scores(self.score(users[s : s + block]), k, exclude[s : s + block], priority)
            for s in range(0, len(users), block)
        ]
        return np.concatenate(out) if out else np.empty((0, k), dtype=np.int64)


def save_run(
    path: str | os.PathLike,
    config: dict,
    split: dict,
    user_ids,
    item_ids,
    train: sp.csr_matrix,
    arrays: dict | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """Write a run directory. ``arrays`` maps names to numpy arrays (``user_emb``,
    ``item_emb``, ``user_codes``, ``item_codes``) or, for baselines, to the model's parameters
    (stored together in ``model.npz``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays = dict(arrays or {})
    table_names = {"user_emb", "item_emb", "user_codes", "item_codes"}
    for name in table_names & arrays.keys():
        arr = arrays.pop(name)
        _write_with(path / f"{name}.npy", lambda fh, arr=arr: np.save(fh, arr))
    if "similarity" in arrays:
        sim = sp.csr_matrix(arrays.pop("similarity"))
        _write_with(path / "similarity.npz", lambda fh: sp.save_npz(fh, sim))
    if arrays:
        _write_with(path / "model.npz", lambda fh: np.savez(fh, **arrays))
    train = sp.csr_matrix(train)
    _write_with(path / "train.npz", lambda fh: sp.save_npz(fh, train))
    _write_ids(path / "user_ids.tsv", user_ids)
    _write_ids(path / "item_ids.tsv", item_ids)
    write_json(path / "split.json", split)
    if history is not None:
        atomic_write(path / "history.csv", lambda tmp: history.to_csv(tmp, index=False))
    write_json(path / "config.json", config)  # last: a run with config.json is complete
    return path


def _write_with(path: Path, dump) -> None:
    """Atomic write through an open binary file (numpy/scipy would append '.npz' to a name)."""

    def write(tmp):
        with open(tmp, "wb") as fh:
            dump(fh)

    atomic_write(path, write)


def load_run(path: str | os.PathLike) -> Run:
    """Load a run directory written by :func:`save_run` (or by ``bincf-lite fit``)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
    config = json.loads((path / "config.json").read_text())
    split = json.loads((path / "split.json").read_text()) if (path / "split.json").is_file() else {}
    user_ids = np.array((path / "user_ids.tsv").read_text(encoding="utf-8").splitlines())
    item_ids = np.array((path / "item_ids.tsv").read_text(encoding="utf-8").splitlines())
    train = sp.load_npz(path / "train.npz").tocsr()
    arrays = {}
    for name in ("user_emb", "item_emb", "user_codes", "item_codes"):
        if (path / f"{name}.npy").is_file():
            arrays[name] = np.load(path / f"{name}.npy", allow_pickle=False)
    if (path / "model.npz").is_file():
        with np.load(path / "model.npz", allow_pickle=False) as z:
            arrays.update({k: z[k] for k in z.files})
    if (path / "similarity.npz").is_file():
        arrays["similarity"] = sp.load_npz(path / "similarity.npz").tocsr()
    history = pd.read_csv(path / "history.csv") if (path / "history.csv").is_file() else None
    return Run(path, config, split, user_ids, item_ids, train, arrays, history)
