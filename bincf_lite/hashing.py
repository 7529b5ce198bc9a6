"""Hamming retrieval: packed binary codes, popcount and an exact top-K engine (chapter 13).

A binary model gives every user a code :math:`b_u \\in \\{-1, 1\\}^d` and every item a code
:math:`b_i \\in \\{-1, 1\\}^d`; a user's preference for an item is their inner product, and the
inner product of two ±1 codes is an affine function of their Hamming distance:

.. math::

    H(b_u, b_i) = \\#\\{j : b_{uj} \\ne b_{ij}\\} = \\frac{d - b_u^\\top b_i}{2}.

So ranking by *descending* inner product is ranking by *ascending* Hamming distance. Stored as
bits (bit 1 means +1), the distance of two codes packed into 64-bit words
:math:`w_u, w_i \\in \\{0, \\dots, 2^{64}-1\\}^{W}`, :math:`W = \\lceil d / 64 \\rceil`, is

.. math::

    H(b_u, b_i) = \\sum_{w=1}^{W} \\operatorname{popcount}(w_{uw} \\oplus w_{iw}),

one XOR and one popcount per word: a 192-bit code costs three machine instructions of each kind
against the :math:`d` multiply-adds of a float inner product, and 24 bytes instead of 768.

This module provides

* :func:`pack_codes` / :func:`unpack_codes`: ±1 or boolean codes to and from ``uint64`` words
  (the in-memory format), and :func:`packbits_rows` / :func:`unpackbits_rows`: the same to and
  from ``uint8`` bytes in ``np.packbits`` big-endian order (the on-disk format of a run
  directory, ``user_codes.npy`` / ``item_codes.npy``); :func:`words_from_bytes` converts the
  second into the first without unpacking;
* :func:`hamming_distances`: the dense distance matrix of small inputs;
* :func:`hamming_topk`: the exact top-K engine, a fused popcount + selection kernel that never
  holds the users x items distance matrix, with training items excluded and ties broken by the
  book's fixed item permutation (:func:`bincf_lite.metrics.tie_priority`);
  :class:`HammingIndex` is the same in two steps (lay the items out once, query many times);
* :func:`hamming_topk_reference`: the plain brute-force reference it is tested against;
* :class:`FaissBinaryIndex`: the optional `faiss <https://github.com/facebookresearch/faiss>`_
  path (exact ``IndexBinaryFlat`` re-ranked under the same tie rule, approximate
  ``IndexBinaryIVF`` / ``IndexBinaryHNSW``) and :func:`recall_vs_exact` to measure what the
  approximate indexes miss;
* :func:`bytes_per_item`: what one item costs as float32, bytes or words.

Bit order. Code bit ``j`` (0-based) is stored in word ``j // 64`` at bit ``63 - j % 64`` (most
significant first), which is exactly ``np.packbits`` order read as big-endian 64-bit words, so a
run directory's bytes become words with one byte swap. Padding bits are zero in every code, so
they never add to a distance.

Ties. Hamming distances are integers in ``0..d``, so many items tie (DESIGN §3). Among equal
distances the item with the lower ``priority`` (its position in one fixed random permutation of
the items) comes first, never the lower item id: the same rule
:func:`bincf_lite.metrics.topk_from_scores` applies to float scores.

Fewer than K candidates. When a user has fewer than ``k`` items left after excluding their
training items, the missing tail of their row is filled with index ``-1`` and distance ``-1``
(as faiss does with labels); an excluded item is never returned.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .metrics import check_k, tie_priority, topk_from_scores

# numba's OpenMP threading layer shares libgomp with torch: once numba has started its OpenMP
# threads, torch's kernels in the same process ran 10-25x slower on a 2-core machine (their
# threads spin against each other; measured: 10 BPR-MF epochs on ML-100K 0.6 s with the
# workqueue layer, 15.5 s after one Hamming ranking with the omp layer). Every chapter and
# ``reproduce`` rank codes and then train again, so the package picks the built-in workqueue
# layer unless the user chose a layer (NUMBA_THREADING_LAYER or numba.config).
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

__all__ = [
    "pack_codes",
    "unpack_codes",
    "packbits_rows",
    "unpackbits_rows",
    "words_from_bytes",
    "hamming_distances",
    "HammingIndex",
    "hamming_topk",
    "hamming_topk_reference",
    "FaissBinaryIndex",
    "recall_vs_exact",
    "bytes_per_item",
]

# Users handled together by one thread: they share each chunk of item words while it is in cache.
_USER_BLOCK = 32
# Items per chunk (a multiple of 64): W x _CHUNK words (12 KiB at 192 bits) stay in cache while
# the block of users reads them.
_CHUNK = 512
# Distance of excluded items and of the padding after the last item: above every limit.
_FAR = np.uint16(0xFFFF)
# Longest code: distances, the padding marker and the histogram all fit in uint16.
_MAX_BITS = 65534
# Candidate buffer per user, in units of k: when full it is compacted back to k entries.
_CAND_FACTOR = 4
# Largest number of dense cells (users x items x words) :func:`hamming_distances` builds at once.
_DENSE_CELLS = 1 << 24


# --------------------------------------------------------------------------------------------
# codes <-> words <-> bytes
# --------------------------------------------------------------------------------------------


def _as_bits(codes) -> np.ndarray:
    """Boolean ``(rows, d)`` bits of ±1 / {0,1} / boolean codes; bit True means +1."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"codes must be a 2-D (rows x code_bits) array, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("codes must have at least one bit")
    if arr.dtype == np.bool_:
        return arr
    if arr.size and not np.isin(arr, (-1, 0, 1)).all():
        raise ValueError(
            "codes must be ±1 (or 0/1, or boolean); got other values: take np.sign() first, "
            "or pack an already packed uint8 array with words_from_bytes()"
        )
    if arr.size and (arr == -1).any() and (arr == 0).any():
        raise ValueError("codes mix -1 and 0: use ±1 codes or 0/1 bits, not both")
    return arr > 0


def packbits_rows(codes) -> np.ndarray:
    """Pack ±1 or boolean codes into bytes, one row per user/item (the on-disk format).

    ``np.packbits(codes > 0, axis=1)``: big-endian bit order (code bit ``j`` is bit ``7 - j % 8``
    of byte ``j // 8``), bit 1 means +1, the last byte zero-padded; shape
    ``(rows, ceil(d / 8))``, dtype ``uint8``. This is how a run directory stores
    ``user_codes.npy`` / ``item_codes.npy`` (DESIGN §7).
    """
    return np.packbits(_as_bits(codes), axis=1)


def unpackbits_rows(packed, code_bits: int) -> np.ndarray:
    """Inverse of :func:`packbits_rows`: ``uint8`` rows back to ±1 ``int8`` codes."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2:
        raise ValueError("packed codes must be a 2-D uint8 array (rows x bytes)")
    _check_width(packed.shape[1] * 8, code_bits, "bytes")
    bits = np.unpackbits(packed, axis=1, count=code_bits)
    return (2 * bits.astype(np.int8) - 1).astype(np.int8)


def words_from_bytes(packed, code_bits: int | None = None) -> np.ndarray:
    """``np.packbits`` rows (:func:`packbits_rows`) to ``uint64`` words (:func:`pack_codes`).

    Reads each group of 8 bytes as one big-endian 64-bit word, so no bit is unpacked; rows are
    zero-padded to a multiple of 8 bytes. With ``code_bits`` given, padding bits are checked to
    be zero.
    """
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2:
        raise ValueError("packed codes must be a 2-D uint8 array (rows x bytes)")
    rows, nbytes = packed.shape
    if code_bits is not None:
        _check_width(nbytes * 8, code_bits, "bytes")
        nbytes_needed = -(-code_bits // 8)
        if nbytes != nbytes_needed:
            raise ValueError(f"{code_bits}-bit codes take {nbytes_needed} bytes, got {nbytes}")
        if code_bits % 8 and (packed[:, -1] & np.uint8((1 << (8 - code_bits % 8)) - 1)).any():
            raise ValueError("padding bits after code_bits are not zero")
    num_words = -(-nbytes // 8)
    buf = np.zeros((rows, num_words * 8), dtype=np.uint8)
    buf[:, :nbytes] = packed
    return buf.view(">u8").astype(np.uint64)


def pack_codes(codes) -> np.ndarray:
    """Pack ±1 or boolean codes into ``uint64`` words, one row per user/item.

    Code bit ``j`` goes to word ``j // 64``, bit ``63 - j % 64`` (most significant first), bit 1
    means +1; the last word is zero-padded. Shape ``(rows, ceil(d / 64))``. Codes of any length
    work; ``d`` itself is not stored, so keep ``code_bits`` beside the words.
    """
    return words_from_bytes(packbits_rows(codes))


def unpack_codes(words, code_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``uint64`` words back to ±1 ``int8`` codes."""
    words = _check_words(words, "words")
    _check_width(words.shape[1] * 64, code_bits, "words")
    bits = np.unpackbits(_words_to_bytes(words), axis=1, count=code_bits)
    return (2 * bits.astype(np.int8) - 1).astype(np.int8)


def bytes_per_item(code_bits: int) -> dict:
    """Memory of one item's representation at width ``code_bits``, in bytes.

    ``float32`` embeddings take ``4 d`` bytes, bytes-packed codes ``ceil(d / 8)``, word-packed
    codes ``8 ceil(d / 64)``: at d = 64 or 192, exactly 32x below float32.
    """
    return {
        "float32": 4 * code_bits,
        "packed_uint8": -(-code_bits // 8),
        "packed_uint64": 8 * -(-code_bits // 64),
    }


def _check_width(capacity: int, code_bits, what: str) -> None:
    """``code_bits`` must need exactly the given number of bytes or words per row."""
    if code_bits is None or int(code_bits) != code_bits or code_bits <= 0:
        raise ValueError(f"code_bits must be a positive integer, got {code_bits!r}")
    unit = 64 if what == "words" else 8
    if not capacity - unit < code_bits <= capacity:
        raise ValueError(
            f"{code_bits}-bit codes take {-(-code_bits // unit)} {what} per row, "
            f"got {capacity // unit}"
        )


def _words_to_bytes(words: np.ndarray) -> np.ndarray:
    """``uint64`` words to their big-endian bytes: ``np.packbits`` order, 8 bytes per word."""
    return np.ascontiguousarray(words.astype(">u8")).view(np.uint8)


def _check_words(words, name: str) -> np.ndarray:
    words = np.asarray(words)
    if words.ndim != 2 or words.dtype != np.uint64:
        raise ValueError(
            f"{name} must be a 2-D uint64 array (rows x words) from pack_codes(); got "
            f"{words.dtype} with shape {words.shape}"
        )
    return np.ascontiguousarray(words)


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------


def hamming_distances(user_words, item_words) -> np.ndarray:
    """Dense ``(M, N)`` ``int32`` Hamming distances of packed codes, for small inputs.

    :math:`H_{ui} = \\sum_w \\operatorname{popcount}(w_{uw} \\oplus w_{iw})`; equals
    :math:`(d - b_u^\\top b_i) / 2` for the ±1 codes. Builds the whole matrix: use
    :func:`hamming_topk` to rank.
    """
    user_words = _check_words(user_words, "user_words")
    item_words = _check_words(item_words, "item_words")
    if user_words.shape[1] != item_words.shape[1]:
        raise ValueError(
            f"user codes have {user_words.shape[1]} words per row, items {item_words.shape[1]}"
        )
    num_users, num_items = user_words.shape[0], item_words.shape[0]
    out = np.empty((num_users, num_items), dtype=np.int32)
    block = max(1, _DENSE_CELLS // max(1, num_items * item_words.shape[1]))
    for start in range(0, num_users, block):
        x = user_words[start : start + block, None, :] ^ item_words[None, :, :]
        out[start : start + block] = np.bitwise_count(x).sum(axis=2, dtype=np.int32)
    return out


# --------------------------------------------------------------------------------------------
# the fused kernel
# --------------------------------------------------------------------------------------------


@intrinsic
def _popcount(typingctx, x):
    """LLVM ``ctpop`` on a ``uint64``: one ``popcnt`` (or a vector ``vpopcntq``) instruction."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _lowest_bit(typingctx, x):
    """Index of the lowest set bit of a non-zero ``uint64`` (LLVM ``cttz``: one ``tzcnt``)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.intp(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@intrinsic
def _below_mask(typingctx, buf, start, lim):
    """``uint64`` whose bit ``j`` is set when ``buf[start + j] < lim``, for ``j < 64``.

    One vector load and compare of 64 ``uint16`` distances, the comparison bits moved into an
    integer (on AVX-512 a ``vpcmpuw`` into a mask register). Walking the set bits then costs
    per candidate, not per item. ``buf[start : start + 64]`` must exist.
    """
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint16 and buf.ndim == 1):
        return None
    sig = types.uint64(buf, types.intp, types.uint16)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        vty = ir.VectorType(ir.IntType(16), 64)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vty.as_pointer())
        vec = builder.load(ptr, align=2)
        one = builder.insert_element(
            ir.Constant(vty, ir.Undefined), args[2], ir.Constant(ir.IntType(32), 0)
        )
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), 64), [0] * 64)
        splat = builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), zeros)
        return builder.bitcast(builder.icmp_unsigned("<", vec, splat), ir.IntType(64))

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _chunk_distances(user_words, u, items_t, c0, n, buf):
    """``buf[j] = H(user u, item column c0 + j)`` for ``j < n``: XOR + popcount, vectorised.

    Codes of up to four words get a loop with the words unrolled, so the distances of a whole
    vector of items are summed in registers; longer codes accumulate word by word.
    """
    num_words = user_words.shape[1]
    c1 = c0 + n
    if num_words == 1:
        u0 = user_words[u, 0]
        r0 = items_t[0, c0:c1]
        for j in range(n):
            buf[j] = _popcount(u0 ^ r0[j])
    elif num_words == 2:
        u0, u1 = user_words[u, 0], user_words[u, 1]
        r0, r1 = items_t[0, c0:c1], items_t[1, c0:c1]
        for j in range(n):
            buf[j] = _popcount(u0 ^ r0[j]) + _popcount(u1 ^ r1[j])
    elif num_words == 3:
        u0, u1, u2 = user_words[u, 0], user_words[u, 1], user_words[u, 2]
        r0, r1, r2 = items_t[0, c0:c1], items_t[1, c0:c1], items_t[2, c0:c1]
        for j in range(n):
            buf[j] = _popcount(u0 ^ r0[j]) + _popcount(u1 ^ r1[j]) + _popcount(u2 ^ r2[j])
    elif num_words == 4:
        u0, u1, u2, u3 = user_words[u, 0], user_words[u, 1], user_words[u, 2], user_words[u, 3]
        r0, r1 = items_t[0, c0:c1], items_t[1, c0:c1]
        r2, r3 = items_t[2, c0:c1], items_t[3, c0:c1]
        for j in range(n):
            buf[j] = (
                _popcount(u0 ^ r0[j]) + _popcount(u1 ^ r1[j])
                + _popcount(u2 ^ r2[j]) + _popcount(u3 ^ r3[j])
            )
    else:
        for j in range(n):
            buf[j] = 0
        for w in range(num_words):
            uw = user_words[u, w]
            row = items_t[w, c0:c1]
            for j in range(n):
                buf[j] += _popcount(uw ^ row[j])


@numba.njit(cache=True, nogil=True)
def _compact(t, k, hist, cand_col, cand_dist, ncand):
    """Keep every candidate below ``t`` and the first ``k - #below`` tied at ``t``.

    Candidates are in column (= tie) order and stay so. Returns the new count, ``k``, and sets
    ``hist[t]`` to the number kept at ``t``.
    """
    below = 0
    for x in range(t):
        below += hist[x]
    room = k - below  # candidates tied at t that still fit
    kept = 0
    for c in range(ncand):  # branch-free: always write, advance only when kept
        x = cand_dist[c]
        at_t = np.int64(x == t) & np.int64(room > 0)
        keep = np.int64(x < t) | at_t
        room -= at_t
        cand_col[kept] = cand_col[c]
        cand_dist[kept] = x
        kept += keep
    hist[t] = k - below
    return kept


@numba.njit(cache=True, nogil=True, inline="always")
def _count_below(buf, lim):
    """Number of distances in ``buf`` (length ``_CHUNK``) below ``lim``."""
    total = 0
    for s0 in range(0, _CHUNK, 64):
        total += _popcount(_below_mask(buf, s0, lim))
    return total


@numba.njit(parallel=True, cache=True)
def _topk_kernel(user_words, items_t, order, k, max_dist, excl_ptr, excl_cols, out_idx, out_dist):
    """Exact top-k of every user over ``items_t`` (words x items, columns in priority order).

    Column ``j`` holds item ``order[j]``; column order is tie order, so among equal distances
    the lower column wins. Each thread takes a block of users; for each chunk of items it
    computes the chunk's distances for every user of the block (vectorised XOR + popcount) and
    marks the user's excluded columns (and the padding after the last item) as out of reach.
    Then 64 distances at a time are compared with the user's limit into a bit mask, and only
    the set bits are visited, in column order: the cost is per candidate, not per item.
    ``excl_cols`` is sorted within each user's slice ``excl_ptr[u]:excl_ptr[u+1]``.

    Per user: ``t`` is the threshold (the k-th smallest distance among the candidates once there
    are k of them, ``max_dist`` before), ``cnt`` the number of candidates with distance ``<= t``,
    ``hist`` their distance histogram, ``lim`` the limit of later chunks: ``t`` (a later column
    tied at ``t`` loses the tie). Before k candidates exist, a chunk's own threshold is found by
    bisection on counts of distances below a value, so only what can stay is appended.
    """
    num_users = user_words.shape[0]
    num_items = items_t.shape[1]
    cap = _CAND_FACTOR * k + _CHUNK
    top_bin = max_dist + 1
    num_blocks = (num_users + _USER_BLOCK - 1) // _USER_BLOCK
    for b in numba.prange(num_blocks):
        u0 = b * _USER_BLOCK
        nb = min(num_users, u0 + _USER_BLOCK) - u0
        hist = np.zeros((nb, max_dist + 2), dtype=np.int64)
        cand_col = np.empty((nb, cap), dtype=np.int64)
        cand_dist = np.empty((nb, cap), dtype=np.uint16)
        ncand = np.zeros(nb, dtype=np.int64)
        t = np.full(nb, max_dist, dtype=np.int64)
        cnt = np.zeros(nb, dtype=np.int64)
        eptr = excl_ptr[u0 : u0 + nb].copy()
        cum = np.empty(max_dist + 2, dtype=np.int64)
        buf = np.empty(_CHUNK, dtype=np.uint16)
        for c0 in range(0, num_items, _CHUNK):
            c1 = min(num_items, c0 + _CHUNK)
            n = c1 - c0
            for ui in range(nb):
                u = u0 + ui
                _chunk_distances(user_words, u, items_t, c0, n, buf)
                for j in range(n, _CHUNK):
                    buf[j] = _FAR  # pad the last chunk: loops keep a fixed length
                ep, eend = eptr[ui], excl_ptr[u + 1]
                while ep < eend and excl_cols[ep] < c1:
                    buf[excl_cols[ep] - c0] = _FAR
                    ep += 1
                eptr[ui] = ep
                hh, cc, cd = hist[ui], cand_col[ui], cand_dist[ui]
                cnt_u, t_u, nc = cnt[ui], t[ui], ncand[ui]
                if cnt_u < k:
                    # fewer than k candidates so far: this chunk sets the threshold. Bisect for
                    # the smallest t with #(candidates <= t) + #(chunk items <= t) >= k.
                    acc = 0
                    for x in range(max_dist + 1):
                        acc += hh[x]
                        cum[x] = acc
                    if cnt_u + _count_below(buf, np.uint16(top_bin)) < k:
                        t_u = max_dist
                    else:
                        lo, hi = 0, max_dist
                        while lo < hi:
                            mid = (lo + hi) // 2
                            if cum[mid] + _count_below(buf, np.uint16(mid + 1)) >= k:
                                hi = mid
                            else:
                                lo = mid + 1
                        t_u = lo
                    cnt_u = cum[t_u]  # earlier candidates above the new t no longer count
                    add_lim = np.uint16(t_u + 1)
                else:
                    add_lim = np.uint16(t_u)
                nc0 = nc
                for s0 in range(0, _CHUNK, 64):
                    m = _below_mask(buf, s0, add_lim)
                    while m:
                        j = s0 + _lowest_bit(m)
                        m &= m - np.uint64(1)
                        x = buf[j]
                        cc[nc] = c0 + j
                        cd[nc] = x
                        hh[x] += 1
                        nc += 1
                if nc > nc0:
                    cnt_u += nc - nc0
                    # lower t while the candidates strictly below it are k or more
                    if cnt_u >= k:
                        while cnt_u - hh[t_u] >= k:
                            cnt_u -= hh[t_u]
                            t_u -= 1
                    if cnt_u >= k and nc > cap - _CHUNK:
                        nc = _compact(t_u, k, hh, cc, cd, nc)
                        cnt_u = k
                    cnt[ui], t[ui], ncand[ui] = cnt_u, t_u, nc
        # final selection and a stable counting sort by distance (column order breaks ties)
        counts = cum
        for ui in range(nb):
            u = u0 + ui
            nc = ncand[ui]
            cc, cd = cand_col[ui], cand_dist[ui]
            if cnt[ui] >= k:
                nc = _compact(t[ui], k, hist[ui], cc, cd, nc)
            top = t[ui]
            counts[: top + 2] = 0
            for c in range(nc):
                counts[cd[c] + 1] += 1
            for x in range(1, top + 2):
                counts[x] += counts[x - 1]
            for c in range(nc):
                x = cd[c]
                pos = counts[x]
                counts[x] += 1
                out_idx[u, pos] = order[cc[c]]
                out_dist[u, pos] = x
            for pos in range(nc, k):
                out_idx[u, pos] = -1
                out_dist[u, pos] = -1


@numba.njit(parallel=True, cache=True)
def _gather_transpose(item_words, order, out):
    """``out[w, j] = item_words[order[j], w]``: items in priority order, one row per word."""
    num_words = item_words.shape[1]
    num_items = order.shape[0]
    step = 4096
    for c in numba.prange((num_items + step - 1) // step):
        for w in range(num_words):
            for j in range(c * step, min(num_items, (c + 1) * step)):
                out[w, j] = item_words[order[j], w]


@numba.njit(parallel=True, cache=True)
def _map_exclusions(indptr, indices, col_of, out):
    """``out[indptr[u]:indptr[u+1]]`` = the sorted columns of user ``u``'s excluded items."""
    num_users = indptr.shape[0] - 1
    for u in numba.prange(num_users):
        a, b = indptr[u], indptr[u + 1]
        for p in range(a, b):
            out[p] = col_of[indices[p]]
        out[a:b] = np.sort(out[a:b])


def _prepare_priority(priority, num_items: int):
    if priority is None:
        priority = tie_priority(num_items)
    priority = np.asarray(priority)
    if priority.shape != (num_items,):
        raise ValueError(
            f"priority must have one entry per item ({num_items}), got shape {priority.shape}"
        )
    col_of = np.empty(num_items, dtype=np.int64)
    seen = np.zeros(num_items, dtype=bool)
    if np.issubdtype(priority.dtype, np.integer) and priority.min(initial=0) >= 0 and (
        priority.max(initial=-1) < num_items
    ):
        seen[priority] = True
    if seen.all():  # a permutation of 0..N-1 (tie_priority): invert it in O(N)
        order = np.empty(num_items, dtype=np.int64)
        order[priority] = np.arange(num_items, dtype=np.int64)
    else:
        order = np.argsort(priority, kind="stable")  # column j holds item order[j]
    col_of[order] = np.arange(num_items, dtype=np.int64)
    return order, col_of


def _prepare_exclude(exclude, num_users: int, num_items: int, col_of: np.ndarray):
    if exclude is None:
        return np.zeros(num_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    exclude = sp.csr_matrix(exclude)
    if exclude.shape != (num_users, num_items):
        raise ValueError(
            f"exclude must be a (users x items) = {(num_users, num_items)} sparse matrix, "
            f"got {exclude.shape}"
        )
    exclude.sum_duplicates()
    exclude.eliminate_zeros()
    indptr = exclude.indptr.astype(np.int64)
    cols = np.empty(exclude.nnz, dtype=np.int64)
    _map_exclusions(indptr, exclude.indices.astype(np.int64), col_of, cols)
    return indptr, cols


def _check_pair(user_words, item_words, code_bits):
    user_words = _check_words(user_words, "user_words")
    item_words = _check_words(item_words, "item_words")
    if user_words.shape[1] != item_words.shape[1]:
        raise ValueError(
            f"user codes have {user_words.shape[1]} words per row, items {item_words.shape[1]}: "
            "pack both with the same code_bits"
        )
    num_words = item_words.shape[1]
    if num_words == 0:
        raise ValueError("codes have no words")
    if code_bits is None:
        code_bits = 64 * num_words
    _check_width(64 * num_words, code_bits, "words")
    return user_words, item_words, int(code_bits)


class HammingIndex:
    """Item codes laid out for exact Hamming top-K queries; :func:`hamming_topk` in two steps.

    Building the index puts the item words in tie order (``priority`` ascending) and transposes
    them to ``(W, N)``, so the kernel reads one word of many consecutive items at a time (one
    vector instruction XORs and counts eight of them). Build once per catalogue, then call
    :meth:`search` for all users or for blocks of users.

    Parameters
    ----------
    item_words:
        ``(N, W)`` ``uint64`` codes from :func:`pack_codes` (or :func:`words_from_bytes`).
    priority:
        ``(N,)`` tie priority of the items, lower wins; default
        :func:`~bincf_lite.metrics.tie_priority` ``(N)``.
    code_bits:
        Code length :math:`d` (at most 65,534); defaults to ``64 W``. It sizes the distance
        histogram and nothing else: padding bits are zero, so distances never exceed :math:`d`.
    """

    def __init__(
        self, item_words, priority: np.ndarray | None = None, code_bits: int | None = None
    ):
        item_words = _check_words(item_words, "item_words")
        self.num_items, self.num_words = item_words.shape
        if self.num_words == 0:
            raise ValueError("codes have no words")
        self.code_bits = 64 * self.num_words if code_bits is None else int(code_bits)
        _check_width(64 * self.num_words, self.code_bits, "words")
        if self.code_bits > _MAX_BITS:
            raise ValueError(f"codes longer than {_MAX_BITS} bits are not supported")
        self.order, self.col_of = _prepare_priority(priority, self.num_items)
        self.items_t = np.empty((self.num_words, self.num_items), dtype=np.uint64)
        _gather_transpose(item_words, self.order, self.items_t)

    def search(self, user_words, k: int, exclude: sp.csr_matrix | None = None):
        """Top-``k`` items of every user: ``(indices int64 (M, k), distances int32 (M, k))``.

        ``exclude`` is an ``(M, N)`` sparse matrix of items never to return (the users'
        training items); see :func:`hamming_topk`.
        """
        user_words = _check_words(user_words, "user_words")
        if user_words.shape[1] != self.num_words:
            raise ValueError(
                f"user codes have {user_words.shape[1]} words per row, items {self.num_words}: "
                "pack both with the same code_bits"
            )
        num_users = user_words.shape[0]
        k = check_k(k, self.num_items)[0]
        excl_ptr, excl_cols = _prepare_exclude(exclude, num_users, self.num_items, self.col_of)
        indices = np.empty((num_users, k), dtype=np.int64)
        distances = np.empty((num_users, k), dtype=np.int32)
        if num_users:
            _topk_kernel(
                user_words, self.items_t, self.order, k, self.code_bits, excl_ptr, excl_cols,
                indices, distances,
            )
        return indices, distances


def hamming_topk(
    user_words,
    item_words,
    k: int,
    exclude: sp.csr_matrix | None = None,
    priority: np.ndarray | None = None,
    code_bits: int | None = None,
    backend: str = "numba",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` items of smallest Hamming distance for every user, best first.

    For user :math:`u` the result is the :math:`k` items :math:`i` not in ``exclude[u]`` of
    smallest :math:`H(b_u, b_i)` (largest :math:`b_u^\\top b_i`), ties broken by ``priority``
    (lower first; default :func:`~bincf_lite.metrics.tie_priority` of the catalogue).

    The numba kernel is fused: a thread takes a block of users and streams the items, in
    priority order, through the cache in chunks. For each user it keeps a histogram of the
    distances of its current candidates; because distances are integers in :math:`0..d`, the
    histogram gives the exact threshold :math:`t` (the k-th smallest distance so far) without
    sorting, and a chunk whose minimum distance is not below :math:`t` is dropped after one
    vectorised XOR + popcount + min pass. Items arrive in priority order, so an item tied with
    :math:`t` that arrives later always loses the tie. Work is :math:`MNW` word operations plus,
    on random codes, about :math:`M k \\ln(N/k)` candidate updates; memory is :math:`O(k + d)`
    per user, never the :math:`M \\times N` matrix.

    Parameters
    ----------
    user_words, item_words:
        ``(M, W)`` and ``(N, W)`` ``uint64`` codes from :func:`pack_codes` (or
        :func:`words_from_bytes`).
    k:
        Length of each list, ``1 <= k <= N`` (:func:`~bincf_lite.metrics.check_k`).
    exclude:
        ``(M, N)`` sparse matrix whose non-zeros are each user's training items; they are never
        returned. A user left with fewer than ``k`` items gets ``-1`` (index and distance) in the
        missing tail of their row.
    priority:
        ``(N,)`` tie priority of the items, lower wins.
    code_bits:
        Code length :math:`d`; defaults to ``64 W``.
    backend:
        ``"numba"`` (default, the fused kernel), ``"reference"`` (:func:`hamming_topk_reference`)
        or ``"faiss-flat"`` (:class:`FaissBinaryIndex` ``"flat"``, exact, same tie rule; needs
        faiss-cpu).

    Returns
    -------
    indices:
        ``(M, k)`` ``int64`` item indices, best first.
    distances:
        ``(M, k)`` ``int32`` Hamming distances, ascending along each row.

    To query the same catalogue many times, build a :class:`HammingIndex` once.
    """
    if backend == "reference":
        return hamming_topk_reference(user_words, item_words, k, exclude, priority, code_bits)
    if backend == "faiss-flat":
        index = FaissBinaryIndex(item_words, kind="flat", priority=priority, code_bits=code_bits)
        return index.search(user_words, k, exclude=exclude)
    if backend != "numba":
        raise ValueError(f"unknown backend {backend!r}: use 'numba', 'reference' or 'faiss-flat'")
    user_words, item_words, code_bits = _check_pair(user_words, item_words, code_bits)
    return HammingIndex(item_words, priority, code_bits).search(user_words, k, exclude)


def hamming_topk_reference(
    user_words,
    item_words,
    k: int,
    exclude: sp.csr_matrix | None = None,
    priority: np.ndarray | None = None,
    code_bits: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force :func:`hamming_topk`: the dense distance matrix, then the float reference.

    Scores :math:`-H_{ui}` go through :func:`~bincf_lite.metrics.topk_from_scores` (training
    items at :math:`-\\infty`, ties by ``priority``); excluded items that it ranks last because a
    user has fewer than ``k`` others become ``-1``. Memory :math:`O(MN)`: for tests and small data.
    """
    user_words, item_words, code_bits = _check_pair(user_words, item_words, code_bits)
    num_users, num_items = user_words.shape[0], item_words.shape[0]
    k = check_k(k, num_items)[0]
    dist = hamming_distances(user_words, item_words)
    if num_users == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.int32)
    idx = topk_from_scores(-dist.astype(np.float64), k, exclude=exclude, priority=priority)
    idx = idx.astype(np.int64)
    out_dist = np.take_along_axis(dist, idx, axis=1).astype(np.int32)
    if exclude is not None:
        ex = sp.csr_matrix(exclude)
        ex.eliminate_zeros()
        bad = np.asarray(ex[np.arange(num_users)[:, None], idx].todense()) != 0
        idx[bad] = -1
        out_dist[bad] = -1
    return idx, out_dist


# --------------------------------------------------------------------------------------------
# optional faiss path
# --------------------------------------------------------------------------------------------


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the faiss backend needs the optional package faiss-cpu: pip install faiss-cpu "
            "(the default numba backend of hamming_topk needs nothing more)"
        ) from err
    return faiss


class FaissBinaryIndex:
    """Items' packed codes in a faiss binary index, searched under the book's rules.

    ``kind``:

    * ``"flat"``: ``IndexBinaryFlat``, exhaustive. faiss breaks ties by its own order, so the
      results are re-ranked: faiss returns ``k + e`` neighbours (``e`` = the most training items
      of any user in the batch); the k-th kept distance :math:`t` is exact, and users whose
      fetched list ends at :math:`t` (ties may continue past it) get every item with distance
      :math:`\\le t` by a range search. Then (distance, priority) order. Exact: equals
      :func:`hamming_topk`.
    * ``"ivf"``: ``IndexBinaryIVF`` with ``nlist`` inverted lists (trained by k-means on the
      items), ``nprobe`` lists searched; approximate.
    * ``"hnsw"``: ``IndexBinaryHNSW`` with ``M`` links per node, ``ef_search`` breadth;
      approximate.

    Approximate kinds over-fetch ``k + e`` neighbours, drop excluded items and re-rank what they
    found by (distance, priority); what they did not find is simply missing: measure it with
    :func:`recall_vs_exact`. faiss needs ``code_bits`` to be a multiple of 8; codes are indexed
    at ``64 W`` bits (the zero padding adds nothing to distances).
    """

    def __init__(
        self,
        item_words,
        kind: str = "flat",
        priority: np.ndarray | None = None,
        code_bits: int | None = None,
        nlist: int | None = None,
        nprobe: int = 8,
        M: int = 16,
        ef_search: int = 64,
        seed: int = 0,
    ):
        faiss = _faiss()
        item_words = _check_words(item_words, "item_words")
        self.num_items, self.num_words = item_words.shape
        self.code_bits = int(code_bits) if code_bits is not None else 64 * self.num_words
        _check_width(64 * self.num_words, self.code_bits, "words")
        self.kind = kind
        self.priority = (
            tie_priority(self.num_items) if priority is None else np.asarray(priority)
        )
        if self.priority.shape != (self.num_items,):
            raise ValueError("priority must have one entry per item")
        dim = 64 * self.num_words
        xb = _words_to_bytes(item_words)
        if kind == "flat":
            index = faiss.IndexBinaryFlat(dim)
        elif kind == "ivf":
            nlist = nlist or max(1, int(round(np.sqrt(self.num_items))))
            self._quantizer = faiss.IndexBinaryFlat(dim)  # kept alive here, not owned by faiss
            index = faiss.IndexBinaryIVF(self._quantizer, dim, nlist)
            index.cp.seed = seed
            index.train(xb)
            index.nprobe = nprobe
        elif kind == "hnsw":
            index = faiss.IndexBinaryHNSW(dim, M)
            index.hnsw.efSearch = ef_search
        else:
            raise ValueError(f"unknown kind {kind!r}: use 'flat', 'ivf' or 'hnsw'")
        index.add(xb)
        self.index = index

    def search(self, user_words, k: int, exclude: sp.csr_matrix | None = None):
        """Top-``k`` of each user: ``(indices int64, distances int32)`` as :func:`hamming_topk`."""
        user_words = _check_words(user_words, "user_words")
        if user_words.shape[1] != self.num_words:
            raise ValueError(
                f"user codes have {user_words.shape[1]} words per row, items {self.num_words}"
            )
        num_users = user_words.shape[0]
        k = check_k(k, self.num_items)[0]
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape != (num_users, self.num_items):
                raise ValueError(
                    f"exclude must be a (users x items) = {(num_users, self.num_items)} matrix"
                )
            exclude.sum_duplicates()
            exclude.eliminate_zeros()
            extra = int(np.diff(exclude.indptr).max(initial=0))
        else:
            extra = 0
        fetch = min(self.num_items, k + extra)
        xq = _words_to_bytes(user_words)
        dist, lab = self.index.search(xq, fetch)
        out_idx = np.full((num_users, k), -1, dtype=np.int64)
        out_dist = np.full((num_users, k), -1, dtype=np.int32)
        exact = self.kind == "flat"
        for u in range(num_users):
            ids, ds = lab[u], dist[u]
            ok = ids >= 0
            if exclude is not None:
                row = exclude.indices[exclude.indptr[u] : exclude.indptr[u + 1]]
                ok &= ~np.isin(ids, row)
            ids, ds = ids[ok], ds[ok]
            if exact and len(ids) >= k and fetch < self.num_items and ds[k - 1] >= dist[u, -1]:
                # ties at the k-th distance may continue beyond what faiss returned
                t = int(ds[k - 1])
                _, rd, rl = self.index.range_search(xq[u : u + 1], t + 1)
                ids, ds = rl, rd
                if exclude is not None:
                    keep = ~np.isin(ids, row)
                    ids, ds = ids[keep], ds[keep]
            sel = np.lexsort((self.priority[ids], ds))[:k]
            out_idx[u, : len(sel)] = ids[sel]
            out_dist[u, : len(sel)] = ds[sel]
        return out_idx, out_dist


def recall_vs_exact(
    approx_indices, exact_indices, approx_distances=None, exact_distances=None
) -> float:
    """Share of the exact top-K that an approximate search found, averaged over users.

    Without distances: :math:`|A_u \\cap E_u| / |E_u|`, item by item (``-1`` entries count in
    neither set). Hamming distances tie a lot, and an approximate index that returns a
    *different* item at the k-th distance has not lost anything a user could see; with both
    distance arrays the count is tie-aware: with :math:`t_u` the largest exact distance,

    .. math::

        \\mathrm{recall}_u = \\frac{\\#\\{a \\in A_u : H_a < t_u\\}
            + \\min(\\#\\{a \\in A_u : H_a = t_u\\}, \\#\\{e \\in E_u : H_e = t_u\\})}{|E_u|}.
    """
    a = np.asarray(approx_indices)
    e = np.asarray(exact_indices)
    if a.shape[0] != e.shape[0]:
        raise ValueError("approximate and exact results must cover the same users")
    tie_aware = approx_distances is not None and exact_distances is not None
    if tie_aware:
        ad, ed = np.asarray(approx_distances), np.asarray(exact_distances)
        if ad.shape != a.shape or ed.shape != e.shape:
            raise ValueError("distances must have the shapes of their indices")
    total = 0.0
    users = 0
    for u in range(e.shape[0]):
        ok_e = e[u] >= 0
        if not ok_e.any():
            continue
        ok_a = a[u] >= 0
        if tie_aware:
            ev, av = ed[u][ok_e], ad[u][ok_a]
            t = ev.max()
            found = (av < t).sum() + min((av == t).sum(), (ev == t).sum())
        else:
            found = np.isin(e[u][ok_e], a[u][ok_a]).sum()
        total += found / ok_e.sum()
        users += 1
    return total / users if users else float("nan")
