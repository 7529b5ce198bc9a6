"""Learning-to-hash baselines (DCF, BCCF, PPH, sign of MF) on small planted data."""

import numpy as np
import pytest
import scipy.sparse as sp

import bincf_lite as bl
from bincf_lite import hash_baselines as hb

BITS = 16


@pytest.fixture(scope="module")
def split():
    data = bl.synthetic_interactions(num_users=240, num_items=150, num_clusters=4, seed=3)
    return bl.split_interactions(data, seed=0)


@pytest.fixture(scope="module")
def mf(split):
    return hb.weighted_mf(split.train_full, BITS, num_iters=40)


def _ndcg(model, split):
    res = hb.evaluate_codes(*model.codes(), split.train_full, split.test, [20])
    return float(res[res.metric == "ndcg"]["value"].iloc[0])


class _Random(hb._Codes):
    def __init__(self, split, seed):
        rng = np.random.default_rng(seed)
        self.user_codes_ = np.where(rng.random((split.num_users, BITS)) < 0.5, 1, -1).astype(np.int8)
        self.item_codes_ = np.where(rng.random((split.num_items, BITS)) < 0.5, 1, -1).astype(np.int8)


@pytest.fixture(scope="module")
def fitted(split, mf):
    train = split.train_full
    return {
        "sign-mf": hb.SignMF(code_bits=BITS).fit(train, init=mf),
        "bccf": hb.BCCF(code_bits=BITS, balance=0.05, mf_iters=30).fit(train),
        "pph": hb.PPH(code_bits=BITS, cfn=1.0, mf_iters=30).fit(train),
        "dcf": hb.DCF(code_bits=BITS, alpha=1e-2, beta=1e-2, num_sweeps=4).fit(train, init=mf),
    }


@pytest.mark.parametrize("name", ["sign-mf", "bccf", "pph", "dcf"])
def test_codes_are_pm1_int8(fitted, split, name):
    b, d = fitted[name].codes()
    assert b.dtype == np.int8 and d.dtype == np.int8
    assert b.shape == (split.num_users, BITS) and d.shape == (split.num_items, BITS)
    assert set(np.unique(b)) <= {-1, 1} and set(np.unique(d)) <= {-1, 1}


@pytest.mark.parametrize("name", ["sign-mf", "bccf", "pph", "dcf"])
def test_beats_random_codes(fitted, split, name):
    random = max(_ndcg(_Random(split, s), split) for s in range(3))
    assert _ndcg(fitted[name], split) > random + 0.1


def test_score_is_hamming_ranking(fitted):
    b, d = fitted["dcf"].codes()
    users = np.arange(5)
    hamming = (b[users, None, :] != d[None, :, :]).sum(-1)
    assert np.array_equal(fitted["dcf"].score(users), BITS - 2 * hamming)


def test_dcf_objective_never_increases(split, mf):
    model = hb.DCF(code_bits=BITS, alpha=0.1, beta=0.1, num_sweeps=5).fit(split.train_full, init=mf)
    obj = model.history_["objective"].to_numpy()
    assert len(obj) >= 2
    assert np.all(np.diff(obj) <= 1e-6 * np.abs(obj[:-1]))


def test_dcf_objective_matches_dense(split, mf):
    model = hb.DCF(code_bits=BITS, alpha=0.3, beta=0.2, num_sweeps=2).fit(split.train_full, init=mf)
    b, d = model.codes()
    y = split.train_full.toarray()
    w = np.where(y > 0, 1.0, model.target.neg_weight)
    dense = (w * (BITS * y - b.astype(float) @ d.T.astype(float)) ** 2).sum()
    dense -= 2 * 0.3 * (b * model._x).sum() + 2 * 0.2 * (d * model._y).sum()
    assert np.isclose(model.objective(), dense, rtol=1e-9)


def test_dcf_balance_term_balances(split, mf):
    loose = hb.DCF(code_bits=BITS, alpha=0.0, beta=0.0, num_sweeps=4).fit(split.train_full, init=mf)
    tight = hb.DCF(code_bits=BITS, alpha=1e4, beta=1e4, num_sweeps=4).fit(split.train_full, init=mf)
    for side in (0, 1):
        assert hb.code_balance(tight.codes()[side]) < hb.code_balance(loose.codes()[side])
    assert hb.code_balance(tight.codes()[1]) < 0.15


def test_bccf_balance_term_balances(split):
    loose = hb.BCCF(code_bits=BITS, balance=0.0, mf_iters=30).fit(split.train_full)
    tight = hb.BCCF(code_bits=BITS, balance=10.0, mf_iters=30).fit(split.train_full)
    assert abs(tight.user_emb_.mean(0)).sum() < abs(loose.user_emb_.mean(0)).sum()
    assert hb.code_balance(tight.codes()[1]) < hb.code_balance(loose.codes()[1])


def test_pph_cfn_equalises_norms(split):
    loose = hb.PPH(code_bits=BITS, cfn=0.0, mf_iters=30).fit(split.train_full)
    tight = hb.PPH(code_bits=BITS, cfn=16.0, mf_iters=30).fit(split.train_full)
    spread = lambda m: np.linalg.norm(m.item_emb_, axis=1).std() / np.linalg.norm(m.item_emb_, axis=1).mean()
    assert spread(tight) < spread(loose)


def test_itq_rotation_is_orthogonal_and_lowers_quantisation_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    rot = hb.itq_rotation(x, num_iters=30)
    assert np.allclose(rot.T @ rot, np.eye(8), atol=1e-10)
    loss = lambda r: ((np.where(x @ r >= 0, 1.0, -1.0) - x @ r) ** 2).sum()
    assert loss(rot) <= loss(hb.itq_rotation(x, num_iters=0)) + 1e-9


def test_orthogonal_balanced_constraints_even_when_rank_deficient():
    rng = np.random.default_rng(1)
    b = np.where(rng.random((50, 6)) < 0.5, 1.0, -1.0)
    b[:, 5] = b[:, 4]  # a repeated bit: rank deficient
    x = hb.orthogonal_balanced(b)
    assert np.allclose(x.sum(0), 0, atol=1e-8)
    assert np.allclose(x.T @ x, 50 * np.eye(6), atol=1e-8)
    # it maximises tr(B^T X): no random feasible X does better
    for seed in range(5):
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((6, 6)))
        assert (b * x).sum() >= (b * (x @ q)).sum() - 1e-8


def test_sign_codes_of_centering():
    u = np.array([[1.0, -2.0], [3.0, 0.5]])
    v = np.array([[2.0, 1.0], [4.0, -1.0], [0.0, 3.0]])
    bu, bv = hb.sign_codes_of(u, v, center=False)
    assert bu.tolist() == [[1, -1], [1, 1]] and bv.tolist() == [[1, 1], [1, -1], [1, 1]]
    _, cv = hb.sign_codes_of(u, v, center=True)  # item mean (2, 1): 0 -> +1
    assert cv.tolist() == [[1, 1], [1, -1], [-1, 1]]
    with pytest.raises(ValueError):
        hb.sign_codes_of(u, v[:, :1])


def test_tune_grid_chooses_on_validation_and_refits(split, mf):
    model, table = hb.tune_grid(
        lambda **p: hb.DCF(code_bits=BITS, num_sweeps=2, **p),
        {"alpha": (1e-3, 1.0), "beta": (1e-3,)},
        split,
        metric=("ndcg", 20),
        prepare=lambda train: {"init": mf},
    )
    assert list(table.columns) == ["alpha", "beta", "ndcg@20"] and len(table) == 2
    best = table.iloc[int(table["ndcg@20"].argmax())]
    assert model.alpha == best["alpha"]
    assert model._train.nnz == split.train_full.nnz


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="fit"):
        hb.DCF().codes()


def test_dcf_compiled_and_numpy_sweeps_agree(split, mf, monkeypatch):
    fast = hb.DCF(code_bits=BITS, alpha=0.1, beta=0.1, num_sweeps=2).fit(split.train_full, init=mf)
    monkeypatch.setattr(hb, "_bit_sweep_kernel", lambda: None)
    slow = hb.DCF(code_bits=BITS, alpha=0.1, beta=0.1, num_sweeps=2).fit(split.train_full, init=mf)
    assert np.array_equal(fast.codes()[0], slow.codes()[0])
    assert np.array_equal(fast.codes()[1], slow.codes()[1])
    assert np.allclose(fast.history_["objective"], slow.history_["objective"])


def test_fit_hash_baseline_tunes_free_parameters_only(split):
    model, table = hb.fit_hash_baseline(
        "bccf", split, {"code_bits": 8, "mf_iters": 20, "num_iters": 5, "itq_iters": 5}, tune=True
    )
    assert list(table.columns) == ["balance", "ndcg@100"] and len(table) == 5
    assert model.params["code_bits"] == 8
    fixed, none = hb.fit_hash_baseline("bccf", split, {"code_bits": 8, "balance": 0.03, "mf_iters": 20})
    assert none is None and fixed.balance == 0.03
    with pytest.raises(ValueError, match="unknown"):
        hb.fit_hash_baseline("lsh", split)


def test_cli_fit_writes_packed_codes(tmp_path, split):
    from bincf_lite.cli import main
    from bincf_lite.runs import load_run

    path = tmp_path / "train.tsv"
    rows, cols = split.train_full.nonzero()
    path.write_text("".join(f"u{u}\ti{i}\n" for u, i in zip(rows, cols)))
    out = tmp_path / "run"
    argv = ["fit", "--model", "dcf", "--interactions", str(path), "--out", str(out), "--quiet"]
    assert main([*argv, "--param", "code_bits=16", "--param", "mf_iters=20"]) == 0
    run = load_run(out)
    assert run.config["code_bits"] == 16 and run.is_binary
    assert run.arrays["user_codes"].shape == (split.num_users, 2)
    assert run.arrays["item_codes"].dtype == np.uint8


def test_evaluate_codes_equals_float_evaluation_of_inner_products(fitted, split):
    model = fitted["pph"]
    ks = [5, 20]
    fast = hb.evaluate_codes(*model.codes(), split.train_full, split.test, ks)
    slow = bl.evaluate_scores(model.score, split.train_full, split.test, ks)
    assert np.allclose(fast["value"], slow["value"])
