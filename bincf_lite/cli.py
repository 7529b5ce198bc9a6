"""The ``bincf-lite`` command (also ``python -m bincf_lite``).

::

    bincf-lite data stats ml-1m
    bincf-lite split ml-1m --seed 0 --out splits/ml-1m-0
    bincf-lite fit --model ease --dataset ml-1m --split-seed 0 --out runs/ease
    bincf-lite fit --model ease --interactions splits/ml-1m-0/train.tsv --out runs/ease-file
    bincf-lite evaluate runs/ease --k 10 20 50 100
    bincf-lite evaluate runs/ease-file --test splits/ml-1m-0/test.tsv
    bincf-lite recommend runs/ease --user 42 --k 10

Data are looked up in ``--data-dir``, then ``$BINCF_DATA_DIR``, then the cache, then downloaded.
This is the only module that reads the environment or argv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import __version__
from .baselines import BASELINES, tune_on_validation
from .data import (
    DATASETS,
    DataError,
    Interactions,
    Split,
    kcore_filter,
    load_dataset,
    load_item_titles,
    load_ratings,
    split_interactions,
)
from .metrics import METRICS, check_k, evaluate_topk
from .runs import write_json, load_run, save_run

__all__ = ["main", "FITTERS", "FitResult"]


@dataclass
class FitResult:
    """What a model's fitter returns to ``bincf-lite fit``."""

    arrays: dict
    params: dict
    history: pd.DataFrame | None = None
    validation: pd.DataFrame | None = None


def _fit_baseline(model: str, split: Split, params: dict, tune: bool, progress: bool) -> FitResult:
    cls, param, grid = BASELINES[model]
    validation = None
    if tune and param:
        fitted, validation = tune_on_validation(cls, param, grid, split, progress=progress)
    else:
        fitted = cls(**params).fit(split.train_full)
    chosen = {param: getattr(fitted, param)} if param else {}
    if model == "pop":
        arrays = {"popularity": fitted.popularity_}
    elif model == "ease":
        arrays = {"weights": fitted.weights_}
    else:
        arrays = {"similarity": fitted.similarity_}
    return FitResult(arrays, chosen, validation=validation)


#: ``bincf-lite fit --model NAME`` calls ``FITTERS[NAME](name, split, params, tune, progress)``.
FITTERS: dict[str, Callable[..., FitResult]] = {name: _fit_baseline for name in BASELINES}


def _fit_hash_baseline(model: str, split: Split, params: dict, tune: bool, progress: bool) -> FitResult:
    from .hash_baselines import fit_hash_baseline

    fitted, validation = fit_hash_baseline(model, split, params, tune, progress)
    users, items = fitted.codes()
    arrays = {"user_codes": np.packbits(users > 0, axis=1), "item_codes": np.packbits(items > 0, axis=1)}
    return FitResult(arrays, fitted.params, validation=validation)


FITTERS.update({name: _fit_hash_baseline for name in ("sign-mf", "bccf", "pph", "dcf")})


def _fit_float(model: str, split: Split, params: dict, tune: bool, progress: bool) -> FitResult:
    """``spectralcf``, ``gcn-cf``, ``bpr-mf``, ``lightgcn`` (chapters 04–06): BPR training with
    early stopping on validation; the early-stopped model is kept (no refit on train + valid),
    as in ``benchmarks/teacher.py``, so a default ``fit`` reproduces the benchmark's table."""
    from .train import fit_float_model

    if tune:
        raise ValueError(
            f"--tune is not offered for {model}: its validation grid is benchmarks/teacher.py;"
            " give chosen values with --param NAME=VALUE"
        )
    params = dict(params)
    refit = bool(params.pop("refit", False))
    res = fit_float_model(model, split, refit=refit, progress=progress, **params)
    if model == "gcn-cf" and not params and not refit:
        _remember_teacher(split, None, (res.user_emb, res.item_emb))  # the students' default teacher
    chosen = {**res.config.to_dict(), "best_epoch": int(res.best_epoch), "refit": refit}
    arrays = {"user_emb": res.user_emb.astype(np.float32), "item_emb": res.item_emb.astype(np.float32)}
    return FitResult(arrays, chosen, res.history)


FITTERS.update({name: _fit_float for name in ("bpr-mf", "lightgcn", "spectralcf", "gcn-cf")})


#: Teachers trained inside ``fit``/``reproduce`` when no ``--teacher`` is given, one per split
#: (keyed by the split's seed and training matrix), so that the ``gcn-cf`` row and the three
#: students of a ``reproduce`` seed share one teacher. ``reproduce`` also keeps them on disk in
#: ``TEACHER_DIR`` so that an interrupted run does not train a split's teacher twice.
_TEACHERS: dict = {}
TEACHER_DIR: Path | None = None


def _teacher_key(split: Split, teacher_epochs) -> tuple:
    digest = hashlib.sha1(split.train.indices.tobytes() + split.train.indptr.tobytes()).hexdigest()[:16]
    return (split.seed, split.train.shape, split.train.nnz, digest, teacher_epochs)


def _teacher_file(key: tuple) -> Path | None:
    if TEACHER_DIR is None:
        return None
    seed, _shape, _nnz, digest, epochs = key
    return Path(TEACHER_DIR) / f"gcn-cf-seed{seed}-{digest}{'' if epochs is None else f'-e{epochs}'}.npz"


def _remember_teacher(split: Split, teacher_epochs, tables: tuple[np.ndarray, np.ndarray], save: bool = True) -> None:
    from .runs import atomic_write

    key = _teacher_key(split, teacher_epochs)
    _TEACHERS.clear()  # one split's teacher at a time: the tables are large
    _TEACHERS[key] = tables
    path = _teacher_file(key)
    if save and path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, user_emb=tables[0], item_emb=tables[1])

        atomic_write(path, write)


def _default_teacher(split: Split, teacher_epochs, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The book's GCN-CF for ``split``: from memory, from ``TEACHER_DIR``, or trained now."""
    from .student import fit_default_teacher

    key = _teacher_key(split, teacher_epochs)
    if key not in _TEACHERS:
        path = _teacher_file(key)
        saved = path is not None and path.is_file()
        if saved:
            with np.load(path) as z:
                tables = (z["user_emb"], z["item_emb"])
        else:
            extra = {} if teacher_epochs is None else {"num_epochs": int(teacher_epochs)}
            tables = fit_default_teacher(split, progress=progress, **extra)
        _remember_teacher(split, teacher_epochs, tables, save=not saved)
    return _TEACHERS[key]


def _load_teacher(path: str, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """The float tables of a teacher run (``user_emb.npy``/``item_emb.npy``), checked against
    the split's ids so that row i of both is the same user/item."""
    run = Path(path)
    for name in ("user_emb.npy", "item_emb.npy", "user_ids.tsv", "item_ids.tsv"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"--teacher {path}: no {name} (a float model's run directory is needed)")
    for name, ids in (("user_ids.tsv", split.user_ids), ("item_ids.tsv", split.item_ids)):
        theirs = (run / name).read_text(encoding="utf-8").splitlines()
        if theirs != [str(i) for i in ids]:
            raise ValueError(f"--teacher {path}: {name} differs from this split's ids (another dataset or filter?)")
    return np.load(run / "user_emb.npy"), np.load(run / "item_emb.npy")


def _fit_student(model: str, split: Split, params: dict, tune: bool, progress: bool) -> FitResult:
    """``dgcn-bincf``, ``bincf``, ``sign-teacher`` and ``itq-teacher`` (chapters 07, 11): codes from a teacher,
    read from ``params["teacher"]`` (``--teacher RUN``) or trained inside (the book's GCN-CF)."""
    from .student import fit_codes, packed

    params = dict(params)
    path = params.pop("teacher", None)
    teacher_epochs = params.pop("teacher_epochs", None)
    teacher = _load_teacher(path, split) if path is not None else _default_teacher(split, teacher_epochs, progress)
    users, items, chosen, history = fit_codes(model, split, teacher, params, progress)
    chosen["teacher"] = str(path) if path is not None else "trained inside (student.DEFAULT_TEACHER)"
    return FitResult({"user_codes": packed(users), "item_codes": packed(items)}, chosen, history)


FITTERS.update({name: _fit_student for name in ("sign-teacher", "itq-teacher", "bincf", "dgcn-bincf")})


def _data_dirs(args) -> list:
    return [getattr(args, "data_dir", None), os.environ.get("BINCF_DATA_DIR")]


def _parse_params(pairs: list[str] | None) -> dict:
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _default_params(model: str) -> dict:
    cls, param, _ = BASELINES.get(model, (None, None, ()))
    return {param: getattr(cls(), param)} if param else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_split(args) -> tuple[Split, dict]:
    """The split a ``fit`` trains on, and its description for ``split.json``."""
    if args.interactions:
        frame = load_ratings(args.interactions)
        rounds = []
        if args.min_count:
            frame, rounds = kcore_filter(frame, args.min_count, args.min_count)
        data = Interactions.from_frame(frame, tuple(rounds))
        carved = split_interactions(data, test_frac=args.valid_frac, valid_frac=0.0, seed=args.split_seed)
        empty = sp.csr_matrix(carved.train.shape, dtype=np.float32)
        split = Split(carved.train, carved.test, empty, data.user_ids, data.item_ids, args.split_seed)
        info = {
            "interactions": str(Path(args.interactions).resolve()),
            "sha256": _sha256(Path(args.interactions)),
            "min_count": args.min_count,
            "valid_frac": args.valid_frac,
            "seed": args.split_seed,
        }
        return split, info
    min_count = 20 if args.min_count is None else args.min_count
    data = load_dataset(args.dataset, min_count, _data_dirs(args), progress=True)
    split = split_interactions(data, args.test_frac, args.valid_frac, seed=args.split_seed)
    info = {
        "dataset": args.dataset,
        "min_count": min_count,
        "test_frac": args.test_frac,
        "valid_frac": args.valid_frac,
        "seed": args.split_seed,
    }
    return split, info


def cmd_data_stats(args) -> int:
    frame = load_ratings(args.dataset, _data_dirs(args), progress=True)
    rounds = []
    if args.min_count:
        frame, rounds = kcore_filter(frame, args.min_count, args.min_count)
    stats = Interactions.from_frame(frame).stats()
    print(f"dataset       {args.dataset}")
    print(f"filter        {args.min_count}-core, repeated until stable" if args.min_count else "filter        none")
    print(f"users         {stats['users']:,}")
    print(f"items         {stats['items']:,}")
    print(f"interactions  {stats['interactions']:,}")
    print(f"density       {stats['density']:.4%}")
    if rounds:
        print("\nfilter rounds (round 0 = raw data):")
        print(pd.DataFrame(rounds).to_string(index=False))
    return 0


def cmd_split(args) -> int:
    data = load_dataset(args.dataset, args.min_count, _data_dirs(args), progress=True)
    split = split_interactions(data, args.test_frac, args.valid_frac, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for part, frame in split.frames().items():
        frame.to_csv(out / f"{part}.tsv", sep="\t", header=False, index=False)
        print(f"{part:5s} {len(frame):>9,} interactions -> {out / f'{part}.tsv'}")
    write_json(
        out / "split.json",
        {
            "dataset": args.dataset,
            "min_count": args.min_count,
            "test_frac": args.test_frac,
            "valid_frac": args.valid_frac,
            "seed": args.seed,
        },
    )
    return 0


def cmd_fit(args) -> int:
    if bool(args.dataset) == bool(args.interactions):
        raise ValueError("give exactly one of --dataset NAME or --interactions FILE")
    params = {**_default_params(args.model), **_parse_params(args.param)}
    if getattr(args, "teacher", None):
        if FITTERS[args.model] is not _fit_student:
            raise ValueError(f"--teacher applies to sign-teacher, itq-teacher, bincf and dgcn-bincf, not {args.model}")
        params["teacher"] = args.teacher
    split, info = _load_split(args)
    start = time.perf_counter()
    result = FITTERS[args.model](args.model, split, params, args.tune, not args.quiet)
    seconds = time.perf_counter() - start
    config = {
        "model": args.model,
        "params": result.params,
        "fit_seconds": round(seconds, 3),
        "version": __version__,
        "num_users": split.num_users,
        "num_items": split.num_items,
    }
    if "user_codes" in result.arrays:
        config["code_bits"] = int(result.params.get("code_bits"))
    save_run(
        args.out, config, info, split.user_ids, split.item_ids, split.train_full,
        result.arrays, result.history,
    )
    if result.validation is not None:
        result.validation.to_csv(Path(args.out) / "validation.csv", index=False)
        print(result.validation.to_string(index=False))
    print(f"fitted {args.model} {result.params} in {seconds:.1f} s -> {args.out}")
    return 0


def _test_matrix(run, path: Path) -> tuple[sp.csr_matrix, dict]:
    frame = load_ratings(str(path))
    users = pd.Index(run.user_ids).get_indexer(frame["user"].astype(str))
    items = pd.Index(run.item_ids).get_indexer(frame["item"].astype(str))
    known = (users >= 0) & (items >= 0)
    skipped = {
        "unknown_user_rows": int((users < 0).sum()),
        "unknown_item_rows": int(((users >= 0) & (items < 0)).sum()),
        "unknown_users": int(frame["user"][users < 0].nunique()),
    }
    shape = (len(run.user_ids), len(run.item_ids))
    test = sp.csr_matrix(
        (np.ones(known.sum(), np.float32), (users[known], items[known])), shape=shape
    )
    test.sum_duplicates()
    test.data[:] = 1.0
    test = test - test.multiply(run.train)  # a training item cannot be a test hit
    test.eliminate_zeros()
    return test.tocsr(), skipped


def cmd_evaluate(args) -> int:
    run = load_run(args.run)
    skipped = {}
    if args.test:
        test, skipped = _test_matrix(run, Path(args.test))
        source = str(Path(args.test).resolve())
    elif "dataset" in run.split:
        s = run.split
        data = load_dataset(s["dataset"], s["min_count"], _data_dirs(args), progress=True)
        split = split_interactions(data, s["test_frac"], s["valid_frac"], seed=s["seed"])
        if split.train_full.nnz != run.train.nnz or list(split.item_ids) != list(run.item_ids):
            raise DataError(f"{args.run}: the recomputed split does not match the run's training data")
        test = split.test
        source = f"{s['dataset']} split seed {s['seed']} (test part)"
    else:
        raise ValueError(f"{args.run} was fitted on a file: give its test file with --test FILE")
    ks = check_k(args.k, len(run.item_ids))
    users = np.arange(len(run.user_ids))
    start = time.perf_counter()
    topk = run.topk(users, ks[-1])
    result = evaluate_topk(topk, test, ks)
    seconds = time.perf_counter() - start
    table = result.pivot(index="metric", columns="k", values="value").reindex(list(METRICS))
    print(f"{run.model} on {source}")
    print(f"users evaluated {result.attrs['num_users']:,}, without test items {result.attrs['num_skipped']:,}")
    if skipped:
        print(
            f"skipped from the test file: {skipped['unknown_user_rows']:,} rows of"
            f" {skipped['unknown_users']:,} users unseen in training,"
            f" {skipped['unknown_item_rows']:,} rows of items unseen in training"
        )
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    metrics = {
        "model": run.model,
        "test": source,
        "k": ks,
        "metrics": {m: {str(k): float(table.loc[m, k]) for k in ks} for m in METRICS},
        "num_users": result.attrs["num_users"],
        "num_skipped": result.attrs["num_skipped"],
        "skipped_from_test_file": skipped,
        "ranking_seconds": round(seconds, 3),
    }
    write_json(Path(args.run) / "metrics.json", metrics)
    return 0


def cmd_recommend(args) -> int:
    run = load_run(args.run)
    where = np.flatnonzero(run.user_ids == str(args.user))
    if len(where) == 0:
        raise ValueError(f"user {args.user!r} is not in {args.run} (it has {len(run.user_ids):,} users)")
    k = check_k(args.k, len(run.item_ids))[0]
    top = run.topk(where, k)[0]
    titles = {}
    dataset = run.split.get("dataset")
    if dataset in DATASETS:
        try:
            titles = load_item_titles(dataset, _data_dirs(args), download=False)
        except DataError:
            titles = {}
    for rank, item in enumerate(top, start=1):
        iid = run.item_ids[item]
        print(f"{rank:>3}  {iid}" + (f"  {titles[iid]}" if iid in titles else ""))
    return 0


#: The order of the book's tables; models not registered (yet) are left out.
BOOK_ORDER = (
    "pop", "itemknn", "ease", "bpr-mf", "lightgcn", "spectralcf", "gcn-cf", "sign-teacher", "itq-teacher",
    "dcf", "bccf", "pph", "bincf", "dgcn-bincf",
)


#: Models that need the split's GCN-CF teacher: one chain, run in this order in one process.
TEACHER_CHAIN = ("gcn-cf", "sign-teacher", "itq-teacher", "bincf", "dgcn-bincf")


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    everything = [m for m in BOOK_ORDER if m in FITTERS] + sorted(set(FITTERS) - set(BOOK_ORDER))
    models = args.models or everything
    unknown = [m for m in models if m not in FITTERS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(FITTERS))}")
    cache = {}

    def make_split(seed: int) -> Split:
        if "data" not in cache:
            cache["data"] = load_dataset(args.dataset, args.min_count, _data_dirs(args), progress=True)
        return split_interactions(cache["data"], 0.5, 0.1, seed=seed)

    name = Path(args.dataset).stem if args.dataset not in DATASETS else args.dataset
    global TEACHER_DIR
    TEACHER_DIR = Path(args.out) / "teachers" / name  # git-ignored; lets a resumed run skip teachers
    start = time.perf_counter()
    try:
        if args.jobs > 1:
            make_split(args.seeds[0])  # load the data once, before the workers fork
        rows = reproduce(
            name, make_split, FITTERS, models, args.seeds, args.out, args.k, args.tune,
            progress=not args.quiet and args.jobs == 1, log=print, jobs=args.jobs,
            chains=[TEACHER_CHAIN], order=everything,
        )
    finally:
        TEACHER_DIR = None
    print(f"done in {time.perf_counter() - start:.0f} s; tables in {args.out}/{name}.md")
    print((Path(args.out) / f"{name}.md").read_text())
    return 0 if len(rows) else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bincf-lite", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"bincf-lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p):
        p.add_argument("--data-dir", help="directory holding the dataset (else $BINCF_DATA_DIR, the cache, a download)")

    data = sub.add_parser("data", help="dataset statistics")
    dsub = data.add_subparsers(dest="data_command", required=True)
    stats = dsub.add_parser("stats", help="users, items and interactions after the k-core filter")
    stats.add_argument("dataset", help=f"one of {', '.join(DATASETS)}, or a file")
    stats.add_argument("--min-count", type=int, default=20, help="k of the iterative k-core filter (0: none)")
    data_dir(stats)
    stats.set_defaults(func=cmd_data_stats)

    sp_ = sub.add_parser("split", help="write train/valid/test files of a per-user split")
    sp_.add_argument("dataset")
    sp_.add_argument("--seed", type=int, default=0)
    sp_.add_argument("--out", required=True)
    sp_.add_argument("--min-count", type=int, default=20)
    sp_.add_argument("--test-frac", type=float, default=0.5)
    sp_.add_argument("--valid-frac", type=float, default=0.1)
    data_dir(sp_)
    sp_.set_defaults(func=cmd_split)

    fit = sub.add_parser("fit", help="fit a model and write a run directory")
    fit.add_argument("--model", required=True, choices=sorted(FITTERS))
    fit.add_argument("--dataset", help="dataset name: split it with --split-seed")
    fit.add_argument("--interactions", help="a training file (user<TAB>item[<TAB>rating]), taken as given")
    fit.add_argument("--split-seed", type=int, default=0)
    fit.add_argument("--min-count", type=int, default=None, help="k-core filter (default 20 for --dataset, none for --interactions)")
    fit.add_argument("--test-frac", type=float, default=0.5)
    fit.add_argument("--valid-frac", type=float, default=0.1)
    fit.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a hyperparameter")
    fit.add_argument("--tune", action="store_true", help="choose the hyperparameter on validation")
    fit.add_argument("--teacher", metavar="RUN", help="bincf/dgcn-bincf/sign-teacher/itq-teacher: a float run whose tables teach (default: train the book's GCN-CF inside)")
    fit.add_argument("--out", required=True)
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    data_dir(fit)
    fit.set_defaults(func=cmd_fit)

    ev = sub.add_parser("evaluate", help="evaluate a run; writes metrics.json into it")
    ev.add_argument("run")
    ev.add_argument("--test", help="test file with original ids (default: the run's split)")
    ev.add_argument("--k", type=int, nargs="+", default=[10, 20, 50, 100])
    data_dir(ev)
    ev.set_defaults(func=cmd_evaluate)

    rec = sub.add_parser("recommend", help="top-K items for one user")
    rec.add_argument("run")
    rec.add_argument("--user", required=True, help="original user id")
    rec.add_argument("--k", type=int, default=10)
    data_dir(rec)
    rec.set_defaults(func=cmd_recommend)

    rep = sub.add_parser("reproduce", help="every model on several splits: the tables of chapter 14")
    rep.add_argument("--dataset", required=True)
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    rep.add_argument("--models", nargs="+", help="default: every registered model, in the book's order")
    rep.add_argument("--k", type=int, nargs="+", default=[10, 20, 50, 100])
    rep.add_argument("--min-count", type=int, default=20)
    rep.add_argument("--tune", action="store_true", help="choose hyperparameters on each split's validation set")
    rep.add_argument("--out", default="results")
    rep.add_argument("--quiet", action="store_true")
    rep.add_argument(
        "--jobs", type=_positive_int, default=1,
        help="worker processes, one torch thread each (2 on a 2-core machine: faster than one process with 2 threads)",
    )
    data_dir(rep)
    rep.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"bincf-lite: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
