"""All-users top-K retrieval: the fused popcount kernel beside faiss, numpy and float32 top-K.

Issue 6, DESIGN §8. For each shape (users x items) and code width, every method returns the
top-``k`` items of every user, and the script prints the median seconds of each method and the
ratios that the issue's targets are stated in:

==================  ==========================================================================
``numba``           :class:`bincf_lite.hashing.HammingIndex` ``.search``: the fused XOR +
                    popcount + exact top-K kernel, tie rule of DESIGN §3 (index built once,
                    its build time is reported apart, like faiss's ``add``)
``popcount_only``   the same kernel's distance loop with no selection (each user's minimum
                    distance only): the roofline the selection is measured against
``faiss_flat``      ``faiss.IndexBinaryFlat.search`` (exhaustive; faiss's own tie order)
``torch_f32``       float32 embeddings of the same width: ``torch.topk(U @ V.T)`` in blocks
``numpy_f32``       the same with numpy BLAS ``sgemm`` + ``argpartition`` + a sort of the k
``numpy_bitcount``  ``np.bitwise_count(u ^ V).sum()`` + ``argpartition``: popcount without
                    fusion, the M x N distance matrix built block by block
==================  ==========================================================================

Methods run round-robin inside one process (repeat 1 of every method, then repeat 2, ...) with a
short pause between calls and fixed thread counts for numba, torch, faiss and BLAS: on a 2-core
machine their thread pools otherwise fight and distort each other (DESIGN §8). Each call's wall
and process CPU seconds are recorded; the table shows wall medians, the JSON holds both. The
numba results are checked against :func:`bincf_lite.hashing.hamming_topk_reference` on a sample
of users, and faiss's distances against the kernel's.

Also measured: the XOR + popcount throughput of the distance loop on an L1-resident catalogue
(words per second), which turns into an arithmetic lower bound for each shape, and the bytes per
item of each representation.

Run from the repository root::

    python benchmarks/retrieval.py                      # full run (minutes) -> benchmarks/results/retrieval.json
    python benchmarks/retrieval.py --quick              # smoke run (seconds), prints only
    python benchmarks/retrieval.py --codes runs/RUN     # learned codes of a run directory (DESIGN §7)

Quote ratios, not seconds: absolute times on a shared 2-core machine drift 2-3x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _threads_from_argv(default: int = 2) -> int:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return default


# BLAS and OpenMP read their settings when they load: fix them before numpy/torch/faiss. Idle
# OpenMP threads sleep instead of spinning (PASSIVE): on a shared 2-core machine spinning threads
# made faiss 10-20x slower (ML-1M, 192 bits: 5-9 s instead of 0.4 s), a measure of the neighbours'
# load rather than of faiss. Override with OMP_WAIT_POLICY=ACTIVE in the environment.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_threads_from_argv())
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bincf_lite import hashing  # noqa: E402
from bincf_lite.hashing import _CHUNK, _USER_BLOCK, _chunk_distances  # noqa: E402

try:  # optional
    import faiss  # noqa: E402
except ImportError:  # pragma: no cover
    faiss = None

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "retrieval.json"

#: (name, users, items); the 1M-item shape's user count comes from --users-1m
SHAPES = [("ML-1M", 6_040, 3_706), ("ML-10M", 69_878, 10_681), ("1M items", None, 1_000_000)]
QUICK_SHAPES = [("ML-1M", 6_040, 3_706), ("ML-10M/8", 8_735, 10_681), ("100k items", 300, 100_000)]
METHODS = ["numba", "popcount_only", "faiss_flat", "torch_f32", "numpy_f32", "numpy_bitcount"]
FLOAT_METHODS = ("torch_f32", "numpy_f32")
# Largest temporary per block of users: the uint64 XOR of np.bitwise_count (bytes) ...
_BLOCK_BYTES = 1 << 27
# ... and the float32 score block of the float methods: 128 users at 1M items, so each pass over
# the item matrix serves enough users for the matrix product to be compute-bound.
_FLOAT_BLOCK_BYTES = 1 << 29


# ------------------------------------------------------------------------------------ methods


@numba.njit(parallel=True, cache=True)
def _popcount_only(user_words, items_t, out_min):
    """The kernel's distance loop (same blocks, chunks and vector code), no selection."""
    num_users = user_words.shape[0]
    num_items = items_t.shape[1]
    num_blocks = (num_users + _USER_BLOCK - 1) // _USER_BLOCK
    for b in numba.prange(num_blocks):
        u0 = b * _USER_BLOCK
        u1 = min(num_users, u0 + _USER_BLOCK)
        buf = np.empty(_CHUNK, dtype=np.uint16)
        for c0 in range(0, num_items, _CHUNK):
            n = min(num_items, c0 + _CHUNK) - c0
            for u in range(u0, u1):
                _chunk_distances(user_words, u, items_t, c0, n, buf)
                mn = buf[0]
                for j in range(1, n):
                    mn = min(mn, buf[j])
                if mn < out_min[u]:
                    out_min[u] = mn


def _numpy_bitcount(user_words, item_words, k):
    num_items, num_words = item_words.shape
    block = max(1, _BLOCK_BYTES // (8 * num_items * num_words))
    out = np.empty((user_words.shape[0], k), dtype=np.int64)
    for s in range(0, user_words.shape[0], block):
        dist = np.bitwise_count(user_words[s : s + block, None, :] ^ item_words[None, :, :])
        dist = dist.sum(axis=2, dtype=np.uint16)
        part = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(dist, part, 1), axis=1, kind="stable")
        out[s : s + block] = np.take_along_axis(part, order, 1)
    return out


def _numpy_f32(user_f, item_f, k):
    block = max(1, _FLOAT_BLOCK_BYTES // (4 * item_f.shape[0]))
    out = np.empty((user_f.shape[0], k), dtype=np.int64)
    item_t = np.ascontiguousarray(item_f.T)
    for s in range(0, user_f.shape[0], block):
        scores = user_f[s : s + block] @ item_t
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        out[s : s + block] = np.take_along_axis(part, order, 1)
    return out


def _torch_f32(user_t, item_t, k):
    block = max(1, _FLOAT_BLOCK_BYTES // (4 * item_t.shape[0]))
    out = []
    with torch.inference_mode():
        for s in range(0, user_t.shape[0], block):
            out.append(torch.topk(user_t[s : s + block] @ item_t.T, k, dim=1).indices)
    return torch.cat(out)


# ------------------------------------------------------------------------------------ timing


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def _peak_word_rate(num_words: int, threads: int, repeats: int) -> float:
    """XOR + popcount words per second of the distance loop when the items sit in L1."""
    rng = np.random.default_rng(1)
    users = rng.integers(0, 2**63, size=(40_000, num_words), dtype=np.int64).view(np.uint64)
    items = rng.integers(0, 2**63, size=(num_words, _CHUNK), dtype=np.int64).view(np.uint64)
    out = np.full(len(users), 65535, dtype=np.uint16)
    _popcount_only(users[:64], items, out)
    best = min(_timed(lambda: _popcount_only(users, items, out))[1] for _ in range(repeats))
    return users.shape[0] * _CHUNK * num_words / best


def _make_case(name, num_users, num_items, bits, seed, codes=None):
    """Packed codes, their float32 ±1 / Gaussian counterparts and the byte sizes of each."""
    rng = np.random.default_rng(seed)
    if codes is None:
        user_bits = rng.random((num_users, bits)) < 0.5
        item_bits = rng.random((num_items, bits)) < 0.5
        user_f = rng.standard_normal((num_users, bits), dtype=np.float32)
        item_f = rng.standard_normal((num_items, bits), dtype=np.float32)
    else:  # learned codes: the float methods rank the same ±1 codes as float32
        user_bits, item_bits = codes
        user_f = np.where(user_bits, 1.0, -1.0).astype(np.float32)
        item_f = np.where(item_bits, 1.0, -1.0).astype(np.float32)
    return {
        "name": name,
        "num_users": int(user_bits.shape[0]),
        "num_items": int(item_bits.shape[0]),
        "code_bits": int(bits),
        "user_words": hashing.pack_codes(user_bits),
        "item_words": hashing.pack_codes(item_bits),
        "user_f": user_f,
        "item_f": item_f,
    }


def run_case(case, methods, k, repeats, pause, long_s, verify_users):
    uw, iw = case["user_words"], case["item_words"]
    bits = case["code_bits"]
    prepared, build_s = {}, {}
    if "numba" in methods or "popcount_only" in methods:
        (index, build_s["numba"], _) = _timed(lambda: hashing.HammingIndex(iw, code_bits=bits))
        prepared["index"] = index
    if "faiss_flat" in methods:
        def build():
            fi = faiss.IndexBinaryFlat(64 * iw.shape[1])
            fi.add(hashing._words_to_bytes(iw))
            return fi

        prepared["faiss"], build_s["faiss_flat"], _ = _timed(build)
        prepared["faiss_q"] = hashing._words_to_bytes(uw)
    if "torch_f32" in methods:
        prepared["user_t"] = torch.from_numpy(case["user_f"])
        prepared["item_t"] = torch.from_numpy(case["item_f"])
    out_min = np.empty(uw.shape[0], dtype=np.uint16)

    def call(method):
        if method == "numba":
            return prepared["index"].search(uw, k)
        if method == "popcount_only":
            out_min.fill(65535)
            return _popcount_only(uw, prepared["index"].items_t, out_min)
        if method == "faiss_flat":
            return prepared["faiss"].search(prepared["faiss_q"], k)
        if method == "torch_f32":
            return _torch_f32(prepared["user_t"], prepared["item_t"], k)
        if method == "numpy_f32":
            return _numpy_f32(case["user_f"], case["item_f"], k)
        if method == "numpy_bitcount":
            return _numpy_bitcount(uw, iw, k)
        raise ValueError(method)

    # warm up (compilation, first-touch) on a few users, not timed
    prepared["index"].search(uw[:64], k)
    _popcount_only(uw[:64], prepared["index"].items_t, out_min)

    walls = {m: [] for m in methods}
    cpus = {m: [] for m in methods}
    results = {}
    for r in range(repeats):
        for m in methods:
            if r > 0 and walls[m] and walls[m][0] > long_s:
                continue  # one run of a method slower than --long seconds is enough
            res, wall, cpu = _timed(lambda: call(m))
            walls[m].append(wall)
            cpus[m].append(cpu)
            if r == 0:
                results[m] = res
            time.sleep(pause)

    checks = {}
    if "numba" in results:
        idx, dist = results["numba"]
        n = min(verify_users, uw.shape[0])
        ref = hashing.hamming_topk_reference(uw[:n], iw, k, code_bits=bits)
        checks["numba_equals_reference_users"] = n
        checks["numba_equals_reference"] = bool(
            np.array_equal(ref[0], idx[:n]) and np.array_equal(ref[1], dist[:n])
        )
        if "faiss_flat" in results:
            fd = np.sort(results["faiss_flat"][0], axis=1)
            checks["faiss_distances_equal_numba"] = bool(np.array_equal(fd, dist))
        if "popcount_only" in results:
            checks["popcount_min_equals_numba_first"] = bool(np.array_equal(out_min, dist[:, 0]))
    return {
        "walls": walls,
        "cpus": cpus,
        "build_s": build_s,
        "checks": checks,
    }


def _median(xs):
    return float(statistics.median(xs)) if xs else None


def summarise(case, timing, k, peak_rate, threads):
    med = {m: _median(v) for m, v in timing["walls"].items()}
    cpu = {m: _median(v) for m, v in timing["cpus"].items()}
    ours = med.get("numba")
    floats = [med[m] for m in FLOAT_METHODS if med.get(m)]
    best_float = min(floats) if floats else None
    num_words = case["item_words"].shape[1]
    total_words = case["num_users"] * case["num_items"] * num_words
    bound = total_words / peak_rate if peak_rate else None
    ratios = {}
    if ours:
        if best_float:
            ratios["best_float_over_numba"] = best_float / ours
        for m in METHODS:
            if m != "numba" and med.get(m):
                ratios[f"{m}_over_numba"] = med[m] / ours
        if med.get("popcount_only"):
            ratios["numba_over_popcount_only"] = ours / med["popcount_only"]
            if bound:
                ratios["popcount_only_over_arithmetic_bound"] = med["popcount_only"] / bound
    bpi = hashing.bytes_per_item(case["code_bits"])
    return {
        "shape": case["name"],
        "num_users": case["num_users"],
        "num_items": case["num_items"],
        "code_bits": case["code_bits"],
        "k": k,
        "threads": threads,
        "median_wall_s": med,
        "median_cpu_s": cpu,
        "wall_s": timing["walls"],
        "cpu_s": timing["cpus"],
        "index_build_s": timing["build_s"],
        "arithmetic_bound_s": bound,
        "ratios": ratios,
        "checks": timing["checks"],
        "bytes_per_item": {
            "float32": bpi["float32"],
            "packed_uint64_words": bpi["packed_uint64"],
            "packbits_uint8_and_faiss": bpi["packed_uint8"],
        },
        "catalogue_mib": {
            "float32": case["num_items"] * bpi["float32"] / 2**20,
            "packed_uint64_words": case["num_items"] * bpi["packed_uint64"] / 2**20,
        },
    }


def print_table(rows, methods, file=sys.stdout):
    short = {
        "numba": "numba",
        "popcount_only": "popcnt",
        "faiss_flat": "faiss",
        "torch_f32": "torch32",
        "numpy_f32": "numpy32",
        "numpy_bitcount": "bitcount",
    }
    head = f"{'shape':<10} {'users':>7} {'items':>9} {'bits':>4} | " + " ".join(
        f"{short[m]:>8}" for m in methods
    )
    head += " | float/ours faiss/ours ours/popc popc/bound"
    print("median wall seconds, all-users top-k; ratios from the same run", file=file)
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        med = r["median_wall_s"]
        cells = " ".join(f"{med[m]:8.4f}" if med.get(m) else f"{'-':>8}" for m in methods)
        q = r["ratios"]

        def fmt(key):
            return f"{q[key]:.2f}x" if key in q else "-"

        print(
            f"{r['shape']:<10} {r['num_users']:>7} {r['num_items']:>9} {r['code_bits']:>4} | {cells} | "
            f"{fmt('best_float_over_numba'):>10} {fmt('faiss_flat_over_numba'):>10} "
            f"{fmt('numba_over_popcount_only'):>9} {fmt('popcount_only_over_arithmetic_bound'):>10}",
            file=file,
        )
    for bits in sorted({r["code_bits"] for r in rows}):
        bpi = hashing.bytes_per_item(bits)
        print(
            f"bytes per item at {bits} bits: float32 {bpi['float32']}, uint64 words "
            f"{bpi['packed_uint64']}, packbits/faiss {bpi['packed_uint8']} "
            f"({bpi['float32'] / bpi['packed_uint64']:.0f}x below float32)",
            file=file,
        )


def _load_codes(run_dir: Path):
    config = json.loads((run_dir / "config.json").read_text())
    bits = int(config["code_bits"])
    user = np.unpackbits(np.load(run_dir / "user_codes.npy"), axis=1, count=bits).astype(bool)
    item = np.unpackbits(np.load(run_dir / "item_codes.npy"), axis=1, count=bits).astype(bool)
    return bits, user, item


def _machine():
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "faiss": getattr(faiss, "__version__", None) if faiss else None,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads of numba, torch, faiss, BLAS")
    p.add_argument("--bits", type=int, nargs="+", default=[64, 192])
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--users-1m", type=int, default=2000, help="query users of the 1M-item shape")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.5, help="seconds of rest between two calls")
    p.add_argument("--long", type=float, default=30.0,
                   help="a method whose first run takes longer runs only once per case")
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--shapes", nargs="+", default=None, help="subset of shape names")
    p.add_argument("--verify-users", type=int, default=16)
    p.add_argument("--codes", type=Path, default=None,
                   help="run directory with user_codes.npy/item_codes.npy (packbits) and config.json")
    p.add_argument("--quick", action="store_true", help="small shapes, one repeat: a smoke run")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON output (default {RESULTS.relative_to(ROOT)}; --quick writes none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    threads = args.threads
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    methods = list(args.methods)
    if faiss is None:
        methods = [m for m in methods if m != "faiss_flat"]
        print("faiss not installed: faiss_flat skipped (pip install faiss-cpu)", file=sys.stderr)
    else:
        faiss.omp_set_num_threads(threads)
    if "numba" not in methods:
        methods.insert(0, "numba")

    if args.quick:
        repeats, pause, shapes = 1, 0.1, QUICK_SHAPES
    else:
        repeats, pause = args.repeats, args.pause
        shapes = [(n, m if m is not None else args.users_1m, i) for n, m, i in SHAPES]
    if args.shapes:
        shapes = [s for s in shapes if s[0] in args.shapes]

    cases = []
    if args.codes is not None:
        bits, user, item = _load_codes(args.codes)
        cases.append(lambda: _make_case(f"codes:{args.codes.name}", 0, 0, bits, args.seed, (user, item)))
    else:
        for name, num_users, num_items in shapes:
            for bits in args.bits:
                cases.append(
                    lambda name=name, m=num_users, n=num_items, b=bits: _make_case(name, m, n, b, args.seed)
                )

    load_before = os.getloadavg()
    peak = {}
    rows = []
    started = time.time()
    for make in cases:
        case = make()
        num_words = case["item_words"].shape[1]
        if num_words not in peak:
            peak[num_words] = _peak_word_rate(num_words, threads, 7)
        k = min(args.k, case["num_items"])
        timing = run_case(case, methods, k, repeats, pause, args.long, args.verify_users)
        row = summarise(case, timing, k, peak[num_words], threads)
        rows.append(row)
        print_table([row], methods)
        print(flush=True)
        del case

    print("=" * 40)
    print_table(rows, methods)
    for words, rate in sorted(peak.items()):
        print(f"XOR+popcount throughput, L1-resident, {words} word(s): {rate / 1e9:.1f} Gword/s")
    failed = [r["shape"] for r in rows if not all(r["checks"].values())]
    if failed:
        print(f"CHECK FAILED: {failed}", file=sys.stderr)

    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        doc = {
            "benchmark": "all-users top-k retrieval (issue 6, DESIGN §8)",
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds_total": round(time.time() - started, 1),
            "machine": _machine(),
            "load_average_before_after": [list(load_before), list(os.getloadavg())],
            "threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "repeats": repeats,
            "pause_s": pause,
            "methods": methods,
            "xor_popcount_words_per_s_l1": {str(w): r for w, r in sorted(peak.items())},
            "notes": [
                "ratios are of median wall seconds measured round-robin in this one process",
                "numba: HammingIndex.search, exact under the tie rule; index_build_s apart",
                "faiss_flat: IndexBinaryFlat.search, exact distances, faiss's own tie order",
                "float methods rank float32 embeddings of the same width (random Gaussian; "
                "with --codes the ±1 codes themselves)",
                "arithmetic_bound_s: users x items x words / the L1-resident XOR+popcount rate",
            ],
            "results": rows,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
