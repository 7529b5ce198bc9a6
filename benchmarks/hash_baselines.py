"""Benchmark: the learning-to-hash baselines DCF, BCCF, PPH and sign-of-MF on ML-1M (chapter 12).

Protocol (DESIGN §3): filtered ML-1M, split seed 0, hyperparameters chosen on the validation
set by NDCG@100 over (at least) the paper's grids (§5.1), refitted on the whole training half,
ranked by Hamming distance (the inner product of ±1 codes, same tie rule), scored on test with
the training half excluded. Beside each row: the paper's own Table 2 figure for the method.

    python benchmarks/hash_baselines.py --bits 64 --data-dir /work/shared/datasets
    python benchmarks/hash_baselines.py --bits 128 192 --fixed-from-64 --data-dir ...
    python benchmarks/hash_baselines.py --bits 64 --methods bccf pph   # rerun some rows

Writes ``benchmarks/results/hash_baselines.json``. Time per method counts its own
real-valued stage (the weighted MF, fitted once on the training part and once on the
whole training half and shared by the candidates of its grid), the grid and the refit.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bincf_lite as bl  # noqa: E402
from bincf_lite import hash_baselines as hb  # noqa: E402
from bincf_lite.reproduce import PAPER_TABLES  # noqa: E402

#: The paper's Table 2 (ML-1M), Recall / MAP / NDCG @100 (kept once, in ``reproduce.PAPER_TABLES``).
PAPER_ML1M = {
    model: {name.split("@")[0]: value for name, value in row.items()}
    for model, row in PAPER_TABLES["ml-1m"].items()
}

MF_ITERS = 60  # L-BFGS iterations of the plain weighted MF (validation NDCG flat after ~60)
PENALTY_ITERS = 30  # further iterations with BCCF's / PPH's penalty, warm-started from it
DCF_SWEEPS = 5


def _metrics(model, split, ks=(10, 20, 50, 100)) -> dict:
    res = hb.evaluate_codes(*model.codes(), split.train_full, split.test, ks=list(ks))
    return {f"{m}@{k}": round(float(v), 4) for m, k, v in res[["metric", "k", "value"]].itertuples(index=False)}


METHODS = ("sign-mf", "bccf", "dcf", "pph")


def run(bits: int, split, target: hb.ImplicitTarget, progress: bool, methods=METHODS) -> dict:
    out = {}
    t0 = time.perf_counter()
    mf = {"train": hb.weighted_mf(split.train, bits, target, num_iters=MF_ITERS)}
    t_mf_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    mf["full"] = hb.weighted_mf(split.train_full, bits, target, num_iters=MF_ITERS)
    t_mf_full = time.perf_counter() - t0
    t_mf = t_mf_train + t_mf_full

    def init_for(train, table):
        return table["full" if train.nnz == split.train_full.nnz else "train"]

    # sign of MF: no hyperparameter of its own but the centring; its validation score for the record
    t0 = time.perf_counter()
    model, table = (None, None) if "sign-mf" not in methods else hb.tune_grid(
        lambda **p: hb.SignMF(code_bits=bits, target=target, **p), hb.HASH_BASELINES["sign-mf"][1],
        split, prepare=lambda tr: {"init": init_for(tr, mf)}, progress=progress,
    )
    if model is not None:
        out["sign-mf"] = _row(model, split, table, time.perf_counter() - t0 + t_mf)

    t0 = time.perf_counter()
    model, table = (None, None) if "bccf" not in methods else hb.tune_grid(
        lambda **p: hb.BCCF(code_bits=bits, target=target, num_iters=PENALTY_ITERS, **p),
        hb.HASH_BASELINES["bccf"][1], split,
        prepare=lambda tr: {"init": init_for(tr, mf)}, progress=progress,
    )
    if model is not None:
        out["bccf"] = _row(model, split, table, time.perf_counter() - t0 + t_mf)

    t0 = time.perf_counter()
    model, table = (None, None) if "dcf" not in methods else hb.tune_grid(
        lambda **p: hb.DCF(code_bits=bits, target=target, num_sweeps=DCF_SWEEPS, **p),
        hb.HASH_BASELINES["dcf"][1], split,
        prepare=lambda tr: {"init": init_for(tr, mf)}, progress=progress,
    )
    if model is not None:
        out["dcf"] = _row(model, split, table, time.perf_counter() - t0 + t_mf)
        out["dcf"]["objective"] = model.history_["objective"].round(1).tolist()
    out["_shared"] = {"mf_seconds_train": round(t_mf_train, 1), "mf_seconds_full": round(t_mf_full, 1)}
    if "pph" not in methods:
        return out

    # PPH spends 2 of the bits on magnitude: its MF has bits - 2 dimensions
    t0 = time.perf_counter()
    mf_pph = {
        "train": hb.weighted_mf(split.train, bits - 2, target, num_iters=MF_ITERS),
        "full": hb.weighted_mf(split.train_full, bits - 2, target, num_iters=MF_ITERS),
    }
    grid = hb.HASH_BASELINES["pph"][1]  # the paper's grid, extended to 512: its best sat at 16
    model, table = hb.tune_grid(
        lambda **p: hb.PPH(code_bits=bits, target=target, num_iters=PENALTY_ITERS, **p),
        grid, split, prepare=lambda tr: {"init": init_for(tr, mf_pph)}, progress=progress,
    )
    out["pph"] = _row(model, split, table, time.perf_counter() - t0)
    return out


def run_fixed(bits: int, split, target: hb.ImplicitTarget, chosen: dict) -> dict:
    """Longer codes without their own grids: each method refitted on the whole training half
    with the hyperparameters chosen on validation at 64 bits (a cheap indication, not a tuned
    result)."""
    out = {}
    t0 = time.perf_counter()
    mf = hb.weighted_mf(split.train_full, bits, target, num_iters=MF_ITERS)
    t_mf = time.perf_counter() - t0
    makers = {
        "sign-mf": lambda: hb.SignMF(code_bits=bits, target=target, center=chosen["sign-mf"]["center"]).fit(
            split.train_full, init=mf),
        "bccf": lambda: hb.BCCF(code_bits=bits, target=target, balance=chosen["bccf"]["balance"],
                                num_iters=PENALTY_ITERS).fit(split.train_full, init=mf),
        "dcf": lambda: hb.DCF(code_bits=bits, target=target, alpha=chosen["dcf"]["alpha"], beta=chosen["dcf"]["beta"],
                              num_sweeps=DCF_SWEEPS).fit(split.train_full, init=mf),
        "pph": lambda: hb.PPH(code_bits=bits, target=target, cfn=chosen["pph"]["cfn"], mf_iters=MF_ITERS,
                              num_iters=PENALTY_ITERS).fit(split.train_full),
    }
    for name, make in makers.items():
        t0 = time.perf_counter()
        model = make()
        seconds = time.perf_counter() - t0 + (0.0 if name == "pph" else t_mf)
        out[name] = _row(model, split, pd.DataFrame(), seconds)
        out[name]["params_from"] = "validation at 64 bits (no grid at this length)"
    out["_shared"] = {"mf_seconds_full": round(t_mf, 1)}
    return out


def _row(model, split, table, seconds) -> dict:
    b, d = model.codes()
    return {
        "params": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in model.params.items()},
        "test": _metrics(model, split),
        "validation": table.round(4).to_dict(orient="records"),
        "balance_users": round(hb.code_balance(b), 4),
        "balance_items": round(hb.code_balance(d), 4),
        "seconds": round(seconds, 1),
    }


def _version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[64])
    parser.add_argument("--data-dir", default=os.environ.get("BINCF_DATA_DIR"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "hash_baselines.json"))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="rerun only these; the others' rows in --out are kept")
    parser.add_argument("--fixed-from-64", action="store_true",
                        help="for --bits other than 64: no grids, reuse the 64-bit choices in --out")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    data = bl.load_dataset("ml-1m", data_dirs=[args.data_dir])
    split = bl.split_interactions(data, seed=0)
    target = hb.ImplicitTarget()
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    result.update({
        "dataset": "ml-1m", "split_seed": 0, "metric_for_choice": "ndcg@100 on validation",
        "target": {"neg_weight": target.neg_weight, "l2": target.l2},
        "mf_iters": MF_ITERS, "penalty_iters": PENALTY_ITERS, "dcf_sweeps": DCF_SWEEPS,
        "paper_table2": PAPER_ML1M,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {platform.python_version()}",
        "version": _version(),
    })
    result.setdefault("bits", {})
    for bits in args.bits:
        start = time.perf_counter()
        if args.fixed_from_64 and bits != 64:
            chosen = {m: result["bits"]["64"][m]["params"] for m in METHODS}
            new = run_fixed(bits, split, target, chosen)
        else:
            new = run(bits, split, target, args.progress, args.methods)
        new["_shared"]["wall_seconds"] = round(time.perf_counter() - start, 1)
        new["_shared"]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new["_shared"]["methods"] = list(args.methods)
        rows = result["bits"].setdefault(str(bits), {})
        shared = rows.get("_shared", {})
        rows.update(new)
        if set(args.methods) != set(METHODS) and shared:
            rows["_shared"] = {**shared, f"rerun {' '.join(args.methods)}": new["_shared"]}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"\n{bits} bits, ML-1M split 0, test @100 (paper's Table 2 in brackets):")
        print(f"{'method':8s} {'R@100':>16s} {'MAP@100':>16s} {'NDCG@100':>16s} {'x paper NDCG':>12s} {'seconds':>8s}")
        for name in [m for m in ("sign-mf", "bccf", "pph", "dcf") if m in rows]:
            t, p = rows[name]["test"], PAPER_ML1M.get(name)
            cells = [f"{t[m + '@100']:.4f}" + (f" ({p[m]:.4f})" if p else " " * 9) for m in ("recall", "map", "ndcg")]
            ratio = f"{t['ndcg@100'] / p['ndcg']:.1f}x" if p else "-"
            print(f"{name:8s} {cells[0]:>16s} {cells[1]:>16s} {cells[2]:>16s} {ratio:>12s} {rows[name]['seconds']:8.1f}")
        print(f"wall {rows['_shared']['wall_seconds']:.0f} s -> {out_path}")


if __name__ == "__main__":
    main()
