"""Benchmark: wall time of ``bincf-lite reproduce`` and the time of each model (issue #5).

Runs the reproduction of ``--dataset`` for ``--seeds`` (default: seed 0 only) into a fresh
directory with ``--jobs`` worker processes, measures the wall time, prints the fit and ranking
seconds of every model from the runs file and projects the whole 5-seed run: the work of one
seed is cut into the same chains as ``reproduce`` (the teacher chain and the rest), and the
projection is the longest worker when the 5 × 2 chain tasks are dealt to ``--jobs`` workers in
the order ``reproduce`` submits them. A projection, not a measurement: quote it as such.

    BINCF_DATA_DIR=../shared/datasets python benchmarks/reproduction_time.py          # ~7 min
    python benchmarks/reproduction_time.py --runs results/ml-1m_runs.csv               # no run

Writes ``benchmarks/results/reproduction_time.json``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "reproduction_time.json"


def project(per_model: pd.Series, chain: tuple[str, ...], seeds: int, jobs: int) -> float:
    """Longest worker when each seed's two chains are dealt, in submission order, to free workers."""
    teacher = float(per_model[[m for m in per_model.index if m in chain]].sum())
    rest = float(per_model[[m for m in per_model.index if m not in chain]].sum())
    workers = [0.0] * jobs
    for _ in range(seeds):
        for task in (rest, teacher):  # reproduce submits the rest chain first
            heapq.heapreplace(workers, workers[0] + task)
    return max(workers)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", help="summarise this runs file instead of running the reproduction")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)

    from bincf_lite.cli import TEACHER_CHAIN

    wall = None
    if args.runs:
        runs = pd.read_csv(args.runs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "bincf_lite", "reproduce", "--dataset", args.dataset,
                   "--seeds", *map(str, args.seeds), "--jobs", str(args.jobs), "--quiet", "--out", tmp]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, env=os.environ.copy())
            wall = time.perf_counter() - start
            runs = pd.read_csv(Path(tmp) / f"{args.dataset}_runs.csv")
    runs["seconds"] = runs["fit_seconds"] + runs["rank_seconds"]
    per_model = runs.groupby("model")["seconds"].median()
    table = runs.groupby("model").agg(fit_s=("fit_seconds", "median"), rank_s=("rank_seconds", "median"),
                                      seeds=("seed", "nunique"))
    table = table.loc[per_model.sort_values(ascending=False).index]
    projected = project(per_model, TEACHER_CHAIN, 5, args.jobs)
    print(table.round(1).to_string())
    if wall is not None:
        print(f"\nmeasured wall time: {wall:.0f} s for seed(s) {args.seeds} with --jobs {args.jobs}")
    print(f"projected 5-seed wall time with --jobs {args.jobs}: {projected / 60:.1f} min "
          f"(median per-model seconds; target 60 min on 2 cores)")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    record = {
        "dataset": args.dataset,
        "seeds_run": sorted(int(s) for s in runs["seed"].unique()),
        "jobs": args.jobs,
        "measured_wall_seconds": None if wall is None else round(wall, 1),
        "projected_5_seed_wall_minutes": round(projected / 60, 1),
        "per_model": {m: {k: round(float(v), 2) for k, v in r.items()} for m, r in table.iterrows()},
        "source": args.runs or "run here",
        "load_average_after": load,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
