"""Reproducing the paper's tables: every model on several splits, mean ± std (chapter 14).

:func:`reproduce` fits each model on each split seed, ranks every user's unseen items under the
book's protocol, and appends one row per (model, seed) to ``results/<dataset>_runs.csv`` as soon
as it is done, so an interrupted run continues where it stopped. :func:`summarise` turns the
rows into the mean ± std tables written as CSV and Markdown.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Split
from .metrics import METRICS, evaluate_topk
from .runs import Run, atomic_write

__all__ = [
    "reproduce", "summarise", "markdown_table", "code_version",
    "PAPER_TABLES", "PAPER_GAINS", "MODEL_LABELS", "BINARY_MODELS",
    "reproduce_command", "read_runs", "mean_std_strings", "paired_gain",
]

KEY = ["dataset", "model", "seed"]

#: The paper's Tables 2-4 (§5.2): Recall / MAP / NDCG @100 of the four binary methods on
#: MovieLens-1M, MovieLens-10M and Yelp, keyed by the book's model names. The one copy of these
#: numbers in the package (chapters 12 and 14).
PAPER_TABLES: dict[str, dict[str, dict[str, float]]] = {
    "ml-1m": {
        "dcf": {"recall@100": 0.0416, "map@100": 0.0101, "ndcg@100": 0.0558},
        "bccf": {"recall@100": 0.1234, "map@100": 0.0720, "ndcg@100": 0.1724},
        "pph": {"recall@100": 0.0277, "map@100": 0.0027, "ndcg@100": 0.0249},
        "dgcn-bincf": {"recall@100": 0.3059, "map@100": 0.1187, "ndcg@100": 0.3061},
    },
    "ml-10m": {
        "dcf": {"recall@100": 0.0791, "map@100": 0.0180, "ndcg@100": 0.0809},
        "bccf": {"recall@100": 0.0789, "map@100": 0.0267, "ndcg@100": 0.0869},
        "pph": {"recall@100": 0.0978, "map@100": 0.0123, "ndcg@100": 0.0695},
        "dgcn-bincf": {"recall@100": 0.2405, "map@100": 0.0537, "ndcg@100": 0.1895},
    },
    "yelp": {
        "dcf": {"recall@100": 0.0661, "map@100": 0.0053, "ndcg@100": 0.0382},
        "bccf": {"recall@100": 0.0966, "map@100": 0.0122, "ndcg@100": 0.0658},
        "pph": {"recall@100": 0.0627, "map@100": 0.0051, "ndcg@100": 0.0361},
        "dgcn-bincf": {"recall@100": 0.1738, "map@100": 0.0192, "ndcg@100": 0.1008},
    },
}

#: The relative gains the paper reports only in words, as ``(model, reference, gain)``: Fig. 1,
#: GCN-CF over SpectralCF "over 20% for every metric" (§5.3); Fig. 2, DGCN-BinCF over BinCF
#: "by 10%" on every metric (§5.4). Both figures are on MovieLens-1M; their bars carry no numbers.
PAPER_GAINS: dict[str, tuple[str, str, float]] = {
    "fig1": ("gcn-cf", "spectralcf", 0.20),
    "fig2": ("dgcn-bincf", "bincf", 0.10),
}

#: How the book's tables name each model of ``bincf-lite reproduce``.
MODEL_LABELS: dict[str, str] = {
    "pop": "Pop", "itemknn": "ItemKNN", "ease": "EASE", "bpr-mf": "BPR-MF", "lightgcn": "LightGCN",
    "spectralcf": "SpectralCF", "gcn-cf": "GCN-CF", "sign-teacher": "sign of GCN-CF",
    "itq-teacher": "sign of ITQ-rotated GCN-CF",
    "sign-mf": "Sign-MF", "dcf": "DCF", "bccf": "BCCF", "pph": "PPH", "bincf": "BinCF",
    "dgcn-bincf": "DGCN-BinCF",
}

#: Models whose users and items are binary codes ranked by Hamming distance; the rest rank by
#: float scores.
BINARY_MODELS: tuple[str, ...] = ("sign-teacher", "itq-teacher", "sign-mf", "dcf", "bccf", "pph", "bincf", "dgcn-bincf")


def code_version(root: str | os.PathLike | None = None) -> str:
    """``git describe`` of the source tree when available, else the package version."""
    from . import __version__

    root = Path(root) if root else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
            text=True, timeout=10, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} {platform.python_version()}"


def reproduce(
    dataset: str,
    make_split: Callable[[int], Split],
    fitters: dict,
    models: Sequence[str],
    seeds: Iterable[int],
    out_dir: str | os.PathLike,
    ks: Sequence[int] = (10, 20, 50, 100),
    tune: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    chains: Sequence[Sequence[str]] | None = None,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Fit and evaluate ``models`` on the splits ``make_split(seed)``; resumable.

    ``fitters[name](name, split, params, tune, progress)`` returns an object with ``arrays``
    and ``params`` (``bincf_lite.cli.FitResult``). Rows already in the runs file are skipped.
    Returns all rows of the runs file for ``dataset``; the tables list every model in the file,
    in ``order`` (default ``models``), so a run of a few models keeps the full tables.

    The work of a seed is cut into ``chains``: groups of models that must run in order in one
    process (a teacher before its students); models in no chain form one more chain. With
    ``jobs > 1`` the (seed, chain) tasks run in that many forked worker processes with one
    torch thread each, which on a small machine beats one process with several threads (the
    sparse products and element-wise kernels of these models scale poorly across threads);
    only this process writes the runs file, one row as soon as it arrives.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_file = out_dir / f"{dataset}_runs.csv"
    done = pd.read_csv(runs_file) if runs_file.is_file() else pd.DataFrame(columns=KEY)
    finished = {tuple(r) for r in done[KEY].astype(str).itertuples(index=False)}
    log = log or (lambda _msg: None)
    tasks = []
    for seed in seeds:
        for chain in _chains(models, chains):
            todo = [m for m in chain if (dataset, m, str(seed)) not in finished]
            if todo:
                tasks.append((seed, todo))
    job = _Job(dataset, make_split, fitters, tuple(ks), tune, progress, code_version(), _machine())

    def record(row: dict) -> None:
        nonlocal done
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        atomic_write(runs_file, lambda tmp: done.to_csv(tmp, index=False))
        k = max(ks)
        log(f"{dataset} seed {row['seed']} {row['model']}: ndcg@{k} {row[f'ndcg@{k}']:.4f}, fit {row['fit_seconds']:.1f} s")

    if jobs <= 1 or len(tasks) <= 1:
        for seed, chain in tasks:
            job.run(seed, chain, record)
    else:
        _run_parallel(job, tasks, jobs, record)
    summary = summarise(done[done["dataset"] == dataset], order or models)
    atomic_write(out_dir / f"{dataset}_summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    text = markdown_table(summary, dataset, max(ks))
    atomic_write(out_dir / f"{dataset}.md", lambda tmp: Path(tmp).write_text(text))
    return done


def _chains(models: Sequence[str], chains: Sequence[Sequence[str]] | None) -> list[list[str]]:
    """``models`` cut into the given chains (each in ``models``' order), the rest as one chain."""
    out, used = [], set()
    for chain in chains or ():
        members = [m for m in models if m in chain]
        if members:
            out.append(members)
            used.update(members)
    rest = [m for m in models if m not in used]
    return ([rest] if rest else []) + out


class _Job:
    """What a worker needs to fit the models of one (seed, chain) task."""

    def __init__(self, dataset, make_split, fitters, ks, tune, progress, version, machine):
        self.dataset, self.make_split, self.fitters = dataset, make_split, fitters
        self.ks, self.tune, self.progress = ks, tune, progress
        self.version, self.machine = version, machine

    def run(self, seed: int, chain: Sequence[str], emit: Callable[[dict], None]) -> None:
        split = self.make_split(seed)
        users = np.arange(split.num_users)
        k = max(self.ks)
        for model in chain:
            start = time.perf_counter()
            result = self.fitters[model](model, split, {}, self.tune, self.progress)
            fit_s = time.perf_counter() - start
            config = {"model": model, **({"code_bits": result.params["code_bits"]} if "code_bits" in result.params else {})}
            run = Run(None, config, {}, split.user_ids, split.item_ids, split.train_full, result.arrays)
            start = time.perf_counter()
            res = evaluate_topk(run.topk(users, k), split.test, self.ks)
            eval_s = time.perf_counter() - start
            row = {"dataset": self.dataset, "model": model, "seed": seed}
            row.update({f"{r.metric}@{r.k}": r.value for r in res.itertuples()})
            row.update(
                {
                    "params": repr(result.params),
                    "fit_seconds": round(fit_s, 2),
                    "rank_seconds": round(eval_s, 2),
                    "version": self.version,
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": self.machine,
                }
            )
            emit(row)


_WORKER: dict = {}


def _worker_init(job: _Job, queue) -> None:
    import torch

    torch.set_num_threads(1)
    # numba's own threads start at the first Hamming ranking (bincf_lite.hashing): calling
    # numba.set_num_threads here would start them now, before any torch work
    _WORKER.update(job=job, queue=queue)


def _worker_task(seed: int, chain: Sequence[str]) -> None:
    _WORKER["job"].run(seed, chain, _WORKER["queue"].put)


def _run_parallel(job: _Job, tasks: list, jobs: int, record: Callable[[dict], None]) -> None:
    """Run the tasks in ``jobs`` forked processes; rows come back through a queue."""
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("fork")  # the workers inherit the loaded data and the fitters
    rows = ctx.Manager().Queue()

    def drain() -> None:
        while True:
            try:
                record(rows.get_nowait())
            except queue_mod.Empty:
                return

    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(job, rows)) as pool:
        pending = {pool.submit(_worker_task, seed, chain) for seed, chain in tasks}
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            drain()  # a task's rows are in the queue before its future completes
            for fut in finished:
                if fut.exception() is not None:
                    for other in pending:
                        other.cancel()  # tasks not started yet; running ones finish and are kept
                    fut.result()  # re-raise the worker's error here


def summarise(rows: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, std and count over seeds of every metric column, one row per model."""
    metric_cols = [c for c in rows.columns if c.split("@")[0] in METRICS]
    agg = rows.groupby("model")[metric_cols].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg["seeds"] = rows.groupby("model")["seed"].nunique()
    agg["fit_seconds"] = rows.groupby("model")["fit_seconds"].median()
    agg = agg.reset_index()
    if order:
        rank = {m: i for i, m in enumerate(order)}
        agg = agg.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, len(rank))))
    return agg.reset_index(drop=True)


def markdown_table(summary: pd.DataFrame, dataset: str, k: int = 100) -> str:
    """Recall / MAP / NDCG @k as mean ± std, one row per model."""
    lines = [
        f"### {dataset}: Recall, MAP and NDCG @{k} (mean ± std over seeds)",
        "",
        f"| model | seeds | Recall@{k} | MAP@{k} | NDCG@{k} | fit s (median) |",
        "|---|---|---|---|---|---|",
    ]
    for d in summary.to_dict("records"):
        cells = []
        for m in ("recall", "map", "ndcg"):
            mean, std = d[f"{m}@{k}_mean"], d[f"{m}@{k}_std"]
            cells.append(f"{mean:.4f} ± {0.0 if np.isnan(std) else std:.4f}")
        lines.append(f"| {d['model']} | {d['seeds']} | {' | '.join(cells)} | {d['fit_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def reproduce_command(dataset: str, seeds: Sequence[int] = (0, 1, 2, 3, 4), out: str = "results") -> str:
    """The ``bincf-lite reproduce`` command line that writes ``<out>/<dataset>_runs.csv``."""
    return f"bincf-lite reproduce --dataset {dataset} --seeds {' '.join(map(str, seeds))} --out {out}"


def read_runs(out_dir: str | os.PathLike, dataset: str) -> pd.DataFrame:
    """The rows of ``<out_dir>/<dataset>_runs.csv`` written by :func:`reproduce` (chapter 14).

    A missing file is a :class:`FileNotFoundError` that names the command that makes it; a file
    without the key and metric columns is a :class:`ValueError`.
    """
    path = Path(out_dir) / f"{dataset}_runs.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no results file {path}: it is written by `{reproduce_command(dataset, out=str(out_dir))}`"
            " (hours on two cores; the run resumes where it stopped)"
        )
    rows = pd.read_csv(path)
    missing = [c for c in KEY + ["fit_seconds"] if c not in rows.columns]
    if missing or not any(c.split("@")[0] in METRICS for c in rows.columns):
        raise ValueError(f"{path} is not a runs file of `bincf-lite reproduce`: missing {missing or 'metric columns'}")
    rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"{path} has no rows for dataset {dataset!r}")
    return rows.drop_duplicates(KEY, keep="last").reset_index(drop=True)


def mean_std_strings(summary: pd.DataFrame, columns: Sequence[str], digits: int = 4) -> pd.DataFrame:
    """``"mean ± std"`` strings of :func:`summarise`'s output, one row per model.

    ``columns`` are metric columns such as ``"ndcg@100"`` (read from ``ndcg@100_mean`` and
    ``ndcg@100_std``). The std of a single seed is undefined and shown as ``–``.
    """
    out = {}
    for col in columns:
        mean, std = summary[f"{col}_mean"], summary[f"{col}_std"]
        out[col] = [
            f"{m:.{digits}f} ± " + ("–" if not np.isfinite(s) else f"{s:.{digits}f}") for m, s in zip(mean, std)
        ]
    return pd.DataFrame(out, index=pd.Index(summary["model"], name="model"))


def paired_gain(rows: pd.DataFrame, model: str, reference: str, columns: Sequence[str]) -> pd.DataFrame:
    """Relative gain ``model / reference - 1`` per metric, paired by split seed (Fig. 1, Fig. 2).

    Both models ran on the same split of each seed, so the gain is taken seed by seed over the
    seeds both have and then averaged; ``std`` is over seeds (NaN for one seed). Returns one row
    per metric with ``mean``, ``std``, ``min`` and ``seeds``.
    """
    a = rows[rows["model"] == model].set_index("seed")
    b = rows[rows["model"] == reference].set_index("seed")
    seeds = a.index.intersection(b.index)
    if len(seeds) == 0:
        raise ValueError(f"no seed has both {model!r} and {reference!r}")
    gains = a.loc[seeds, list(columns)] / b.loc[seeds, list(columns)] - 1.0
    return pd.DataFrame(
        {"mean": gains.mean(), "std": gains.std(), "min": gains.min(), "seeds": len(seeds)}
    ).rename_axis("metric")
