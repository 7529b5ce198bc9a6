"""Tests of bincf_lite.hashing: packed codes, Hamming distances and the exact top-K (chapter 13)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bincf_lite import hashing
from bincf_lite.metrics import tie_priority

SETTINGS = settings(max_examples=25, deadline=None)

# lengths around word and byte boundaries, a 3-word code (the paper's d = 3D = 192) and a
# 5-word code (the kernel's generic word loop)
LENGTHS = [1, 2, 7, 8, 9, 63, 64, 65, 127, 128, 192, 200, 320]


def _codes(rng: np.random.Generator, rows: int, d: int, p: float = 0.5) -> np.ndarray:
    return np.where(rng.random((rows, d)) < p, 1, -1).astype(np.int8)


def _exclusions(rng: np.random.Generator, rows: int, cols: int, density: float) -> sp.csr_matrix:
    mask = rng.random((rows, cols)) < density
    return sp.csr_matrix(mask.astype(np.float32))


# --------------------------------------------------------------------------- packing


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 5), d=st.sampled_from(LENGTHS))
def test_pack_unpack_round_trip(seed, rows, d):
    codes = _codes(np.random.default_rng(seed), rows, d)
    words = hashing.pack_codes(codes)
    assert words.dtype == np.uint64 and words.shape == (rows, -(-d // 64))
    assert np.array_equal(hashing.unpack_codes(words, d), codes)
    # booleans and 0/1 bits pack the same way (bit 1 means +1)
    assert np.array_equal(hashing.pack_codes(codes > 0), words)
    assert np.array_equal(hashing.pack_codes((codes > 0).astype(np.uint8)), words)
    # bytes (DESIGN §7) round-trip, and convert to the same words without unpacking
    packed = hashing.packbits_rows(codes)
    assert np.array_equal(packed, np.packbits(codes > 0, axis=1))
    assert np.array_equal(hashing.unpackbits_rows(packed, d), codes)
    assert np.array_equal(hashing.words_from_bytes(packed, d), words)


def test_bit_order_is_most_significant_first():
    codes = -np.ones((1, 65), dtype=np.int8)
    codes[0, 0] = 1  # bit 0 -> top bit of word 0
    codes[0, 64] = 1  # bit 64 -> top bit of word 1, the rest of word 1 is zero padding
    words = hashing.pack_codes(codes)
    assert words.tolist() == [[1 << 63, 1 << 63]]


def test_pack_rejects_bad_codes():
    with pytest.raises(ValueError, match="±1"):
        hashing.pack_codes(np.array([[0.5, -1.0]]))
    with pytest.raises(ValueError, match="mix"):
        hashing.pack_codes(np.array([[-1, 0, 1]]))
    with pytest.raises(ValueError, match="2-D uint64"):
        hashing.unpack_codes(np.zeros((2, 1), dtype=np.int64), 8)
    with pytest.raises(ValueError, match="words per row"):
        hashing.unpack_codes(np.zeros((2, 1), dtype=np.uint64), 65)
    with pytest.raises(ValueError, match="padding bits"):
        hashing.words_from_bytes(np.array([[0b0000_0001]], dtype=np.uint8), 7)


def test_bytes_per_item_is_32x_below_float32():
    for d in (64, 192):
        b = hashing.bytes_per_item(d)
        assert b["float32"] == 32 * b["packed_uint64"] == 32 * b["packed_uint8"]


# --------------------------------------------------------------------------- distances


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), d=st.sampled_from(LENGTHS))
def test_distance_is_half_of_d_minus_inner_product(seed, d):
    rng = np.random.default_rng(seed)
    u, i = _codes(rng, 4, d), _codes(rng, 9, d)
    dist = hashing.hamming_distances(hashing.pack_codes(u), hashing.pack_codes(i))
    inner = u.astype(np.int64) @ i.T.astype(np.int64)
    assert dist.dtype == np.int32
    assert np.array_equal(2 * dist, d - inner)  # H = (d - b_u . b_i) / 2
    assert np.array_equal(dist, (u[:, None, :] != i[None, :, :]).sum(-1))


# --------------------------------------------------------------------------- top-K


def _assert_same(a, b):
    assert a[0].dtype == np.int64 and a[1].dtype == np.int32
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.sampled_from(LENGTHS),
    num_users=st.integers(1, 40),
    num_items=st.integers(1, 1500),
    k_frac=st.floats(0.0, 1.0),
    density=st.sampled_from([0.0, 0.05, 0.5, 0.97]),
    p=st.sampled_from([0.5, 0.9]),
)
def test_topk_equals_reference(seed, d, num_users, num_items, k_frac, density, p):
    """The fused kernel equals the brute-force reference: same items, order and distances.

    Short codes make heavy ties, skewed bits (p=0.9) clustered codes, high exclusion densities
    users with fewer than k items left (their rows end in -1).
    """
    rng = np.random.default_rng(seed)
    uw = hashing.pack_codes(_codes(rng, num_users, d, p))
    iw = hashing.pack_codes(_codes(rng, num_items, d, p))
    k = 1 + int(k_frac * (num_items - 1))
    exclude = _exclusions(rng, num_users, num_items, density) if density else None
    got = hashing.hamming_topk(uw, iw, k, exclude=exclude, code_bits=d)
    _assert_same(got, hashing.hamming_topk_reference(uw, iw, k, exclude=exclude, code_bits=d))


def test_topk_across_many_chunks_with_exclusions():
    """A catalogue of many chunks, two lengths, exclusions: threshold updates and compaction."""
    rng = np.random.default_rng(0)
    for d in (16, 192):
        uw = hashing.pack_codes(_codes(rng, 70, d))
        iw = hashing.pack_codes(_codes(rng, 9000, d))
        exclude = _exclusions(rng, 70, 9000, 0.02)
        for k in (1, 100, 700):
            got = hashing.hamming_topk(uw, iw, k, exclude=exclude, code_bits=d)
            _assert_same(got, hashing.hamming_topk_reference(uw, iw, k, exclude=exclude))


def test_ties_follow_the_fixed_permutation_not_item_ids():
    # all items identical: every distance ties, so the order is the tie priority itself
    num_items = 50
    iw = hashing.pack_codes(np.ones((num_items, 8), dtype=np.int8))
    uw = hashing.pack_codes(np.ones((2, 8), dtype=np.int8))
    idx, dist = hashing.hamming_topk(uw, iw, num_items)
    expected = np.argsort(tie_priority(num_items))
    assert np.array_equal(idx, np.stack([expected, expected]))
    assert not np.array_equal(idx[0], np.arange(num_items))
    assert (dist == 0).all()
    # a given priority is honoured, including one that is not a permutation
    prio = np.arange(num_items)[::-1].astype(float) / 7.0
    idx, _ = hashing.hamming_topk(uw, iw, 5, priority=prio)
    assert idx[0].tolist() == [49, 48, 47, 46, 45]


def test_excluded_items_are_never_returned_and_short_rows_end_in_minus_one():
    rng = np.random.default_rng(3)
    uw = hashing.pack_codes(_codes(rng, 3, 8))
    iw = hashing.pack_codes(_codes(rng, 10, 8))
    exclude = sp.csr_matrix(np.array([[1] * 7 + [0] * 3, [0] * 10, [1] * 10]))
    idx, dist = hashing.hamming_topk(uw, iw, 5, exclude=exclude)
    assert set(idx[0, :3]) == {7, 8, 9} and (idx[0, 3:] == -1).all() and (dist[0, 3:] == -1).all()
    assert (idx[1] >= 0).all()
    assert (idx[2] == -1).all()
    for u in range(3):
        banned = set(exclude[u].indices)
        assert not banned & set(idx[u][idx[u] >= 0].tolist())


def test_distances_ascend_and_match_the_items():
    rng = np.random.default_rng(5)
    u, i = _codes(rng, 20, 64), _codes(rng, 3000, 64)
    uw, iw = hashing.pack_codes(u), hashing.pack_codes(i)
    idx, dist = hashing.hamming_topk(uw, iw, 50)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert np.array_equal(dist, np.take_along_axis(hashing.hamming_distances(uw, iw), idx, 1))


def test_index_is_reusable_for_blocks_of_users():
    rng = np.random.default_rng(7)
    uw = hashing.pack_codes(_codes(rng, 50, 96))
    iw = hashing.pack_codes(_codes(rng, 800, 96))
    index = hashing.HammingIndex(iw, code_bits=96)
    whole = index.search(uw, 30)
    parts = [index.search(uw[s : s + 16], 30) for s in range(0, 50, 16)]
    assert np.array_equal(whole[0], np.concatenate([p[0] for p in parts]))
    empty = index.search(uw[:0], 30)
    assert empty[0].shape == (0, 30)


def test_k_and_shape_validation():
    rng = np.random.default_rng(1)
    uw = hashing.pack_codes(_codes(rng, 3, 64))
    iw = hashing.pack_codes(_codes(rng, 10, 64))
    for bad_k in (0, -1, 11, 2.5):
        with pytest.raises(ValueError, match="K"):
            hashing.hamming_topk(uw, iw, bad_k)
    with pytest.raises(ValueError, match="words per row"):
        hashing.hamming_topk(hashing.pack_codes(_codes(rng, 3, 65)), iw, 2)
    with pytest.raises(ValueError, match="exclude"):
        hashing.hamming_topk(uw, iw, 2, exclude=sp.csr_matrix((3, 9)))
    with pytest.raises(ValueError, match="priority"):
        hashing.hamming_topk(uw, iw, 2, priority=np.arange(9))
    with pytest.raises(ValueError, match="uint64"):
        hashing.hamming_topk(uw.astype(np.int64), iw, 2)
    with pytest.raises(ValueError, match="backend"):
        hashing.hamming_topk(uw, iw, 2, backend="gpu")


# --------------------------------------------------------------------------- faiss (optional)


@pytest.fixture
def faiss_one_thread():
    """faiss on one OpenMP thread: on a busy 2-core machine its spinning threads turn a 0.1 s
    index build into seconds."""
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield faiss
    faiss.omp_set_num_threads(before)


def test_faiss_flat_is_exact_under_the_tie_rule(faiss_one_thread):
    rng = np.random.default_rng(11)
    for d in (8, 64, 192):  # 8 bits: nearly everything ties, so faiss's own order would differ
        uw = hashing.pack_codes(_codes(rng, 25, d))
        iw = hashing.pack_codes(_codes(rng, 600, d))
        exclude = _exclusions(rng, 25, 600, 0.1)
        for k in (1, 40):
            got = hashing.hamming_topk(uw, iw, k, exclude=exclude, backend="faiss-flat")
            _assert_same(got, hashing.hamming_topk(uw, iw, k, exclude=exclude))


def test_approximate_index_recall(faiss_one_thread):
    rng = np.random.default_rng(13)
    centres = rng.random((8, 64)) < 0.5
    items = centres[rng.integers(0, 8, 3000)] ^ (rng.random((3000, 64)) < 0.05)
    users = centres[rng.integers(0, 8, 30)] ^ (rng.random((30, 64)) < 0.05)
    uw, iw = hashing.pack_codes(users), hashing.pack_codes(items)
    exact = hashing.hamming_topk(uw, iw, 20)
    assert hashing.recall_vs_exact(exact[0], exact[0]) == 1.0
    for kind in ("ivf", "hnsw"):
        approx = hashing.FaissBinaryIndex(iw, kind=kind, nlist=16, nprobe=16).search(uw, 20)
        assert (np.diff(approx[1], axis=1) >= 0).all()
        recall = hashing.recall_vs_exact(approx[0], exact[0], approx[1], exact[1])
        assert 0.9 <= recall <= 1.0
        assert hashing.recall_vs_exact(approx[0], exact[0]) <= recall + 1e-12


def test_recall_vs_exact_by_hand():
    exact = np.array([[0, 1, 2], [3, 4, -1]])
    approx = np.array([[2, 9, 0], [4, -1, -1]])
    assert hashing.recall_vs_exact(approx, exact) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # tie-aware: item 9 sits at the exact list's last distance, as good as item 1 for the user
    ed = np.array([[0, 1, 1], [2, 3, -1]])
    ad = np.array([[1, 1, 0], [3, -1, -1]])
    assert hashing.recall_vs_exact(approx, exact, ad, ed) == pytest.approx((1.0 + 1 / 2) / 2)
