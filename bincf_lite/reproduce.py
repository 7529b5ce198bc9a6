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

__all__ = ["reproduce", "summarise", "markdown_table", "code_version"]

KEY = ["dataset", "model", "seed"]


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
) -> pd.DataFrame:
    """Fit and evaluate ``models`` on the splits ``make_split(seed)``; resumable.

    ``fitters[name](name, split, params, tune, progress)`` returns an object with ``arrays``
    and ``params`` (``bincf_lite.cli.FitResult``). Rows already in the runs file are skipped.
    Returns all rows of the runs file for ``dataset``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_file = out_dir / f"{dataset}_runs.csv"
    done = pd.read_csv(runs_file) if runs_file.is_file() else pd.DataFrame(columns=KEY)
    finished = {tuple(r) for r in done[KEY].astype(str).itertuples(index=False)}
    version, machine = code_version(), _machine()
    log = log or (lambda _msg: None)
    for seed in seeds:
        todo = [m for m in models if (dataset, m, str(seed)) not in finished]
        if not todo:
            continue
        split = make_split(seed)
        users = np.arange(split.num_users)
        for model in todo:
            start = time.perf_counter()
            result = fitters[model](model, split, {}, tune, progress)
            fit_s = time.perf_counter() - start
            config = {"model": model, **({"code_bits": result.params["code_bits"]} if "code_bits" in result.params else {})}
            run = Run(None, config, {}, split.user_ids, split.item_ids, split.train_full, result.arrays)
            start = time.perf_counter()
            res = evaluate_topk(run.topk(users, max(ks)), split.test, ks)
            eval_s = time.perf_counter() - start
            row = {"dataset": dataset, "model": model, "seed": seed}
            row.update({f"{r.metric}@{r.k}": r.value for r in res.itertuples()})
            row.update(
                {
                    "params": repr(result.params),
                    "fit_seconds": round(fit_s, 2),
                    "rank_seconds": round(eval_s, 2),
                    "version": version,
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": machine,
                }
            )
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            atomic_write(runs_file, lambda tmp: done.to_csv(tmp, index=False))
            log(f"{dataset} seed {seed} {model}: ndcg@{max(ks)} {row[f'ndcg@{max(ks)}']:.4f}, fit {fit_s:.1f} s")
    summary = summarise(done[done["dataset"] == dataset], models)
    atomic_write(out_dir / f"{dataset}_summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    text = markdown_table(summary, dataset, max(ks))
    atomic_write(out_dir / f"{dataset}.md", lambda tmp: Path(tmp).write_text(text))
    return done


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
