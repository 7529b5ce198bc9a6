"""Tests of bincf_lite.student: BinCF / DGCN-BinCF trained by eq. (18) (chapter 11)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import bincf_lite as bl
from bincf_lite import student


@pytest.fixture(scope="module")
def split():
    data = bl.synthetic_interactions(num_users=200, num_items=150, interactions_per_user=25, seed=1)
    return bl.split_interactions(data, seed=0)


@pytest.fixture(scope="module")
def teacher(split):
    """A cheap float teacher: the rank-16 SVD of the training matrix."""
    u, s, vt = np.linalg.svd(split.train.toarray(), full_matrices=False)
    root = np.sqrt(s[:16])
    return (u[:, :16] * root).astype(np.float32), (vt[:16].T * root).astype(np.float32)


def test_config_validation():
    with pytest.raises(ValueError):
        student.StudentConfig(codes_in_loss="soft")
    with pytest.raises(ValueError):
        student.StudentConfig(init="zeros")
    with pytest.raises(ValueError):
        student.StudentConfig(temperature=0)
    with pytest.raises(ValueError):
        student.StudentConfig(alpha=-1)
    cfg = student.StudentConfig(code_bits=64)
    assert cfg.gamma == pytest.approx(1 / 8)
    assert cfg.to_dict()["model"] == "dgcn-bincf"
    assert student.StudentConfig(alpha=0).to_dict()["model"] == "bincf"


def test_teacher_init(teacher):
    u, v = teacher
    p, q = student.teacher_init(u, v, 16, centre="per-side")
    assert p.shape == u.shape and q.shape == v.shape and p.dtype == np.float32
    assert np.allclose(p.mean(0), 0, atol=1e-5) and np.allclose(q.mean(0), 0, atol=1e-5)
    assert np.allclose(np.vstack([p, q]).std(0), 1, atol=1e-4)
    # full width: the start is the centred teacher up to a positive scale per column
    assert np.array_equal(np.sign(p), np.sign(u - u.mean(0)))
    p, q = student.teacher_init(u, v, 16)  # pooled: one mean per column over both sides
    assert np.allclose(np.vstack([p, q]).mean(0), 0, atol=1e-5)
    assert np.array_equal(np.sign(q), np.sign(v - np.vstack([u, v]).mean(0)))
    p, q = student.teacher_init(u, v, 16, centre="none")
    assert np.array_equal(np.sign(q), np.sign(v))
    with pytest.raises(ValueError, match="centre"):
        student.teacher_init(u, v, 16, centre="median")
    p8, q8 = student.teacher_init(u, v, 8)
    assert p8.shape == (len(u), 8) and q8.shape == (len(v), 8)
    mean = np.vstack([u, v]).mean(0)
    assert np.array_equal(np.sign(q8), np.sign((v - mean)[:, :8]))  # the leading columns
    p8, q8 = student.teacher_init(u, v, 8, reduce="pca")
    assert np.allclose(np.vstack([p8, q8]).std(0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="exceeds the teacher's width"):
        student.teacher_init(u, v, 32)


def test_teacher_init_itq_rotation_keeps_the_start_s_inner_products(teacher):
    u, v = teacher
    p, q = student.teacher_init(u, v, 16)
    pr, qr = student.teacher_init(u, v, 16, rotation="itq")
    assert np.allclose(pr @ qr.T, p @ q.T, atol=1e-3)
    x, xr = np.vstack([p, q]), np.vstack([pr, qr])
    assert ((np.sign(xr) - xr) ** 2).sum() < ((np.sign(x) - x) ** 2).sum()
    with pytest.raises(ValueError, match="rotation"):
        student.teacher_init(u, v, 16, rotation="pca")
    with pytest.raises(ValueError, match="init_rotation"):
        student.StudentConfig(init_rotation="random")


def test_teacher_top_items_by_hand():
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    items = np.array([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]]))
    top = student.teacher_top_items(users, items, exclude, 2, block_size=1)
    assert top.tolist() == [[1, 2], [3, 2]]  # user 0's best item 0 is a training item
    with pytest.raises(ValueError):
        student.teacher_top_items(users, items, exclude, 5)


def test_model_codes_and_diagnostics(split, teacher):
    cfg = student.StudentConfig(code_bits=16)
    p, q = student.teacher_init(*teacher, 16)
    model = student.BinCF(split.num_users, split.num_items, cfg, p, q)
    xu, xv = model()
    assert xu.shape == (split.num_users, 16) and (xu.abs() < 1).all()
    user_codes, item_codes = student.student_codes(model)
    assert user_codes.dtype == np.int8 and set(np.unique(user_codes)) <= {-1, 1}
    assert np.array_equal(user_codes, np.where(p >= 0, 1, -1))
    diag = student.code_diagnostics(model)
    assert 0 <= diag["saturated"] <= 1 and 0 <= diag["bit_balance"] <= 1
    assert 0 <= diag["bit_correlation"] <= 1
    with pytest.raises(ValueError):
        student.BinCF(split.num_users, split.num_items, cfg)  # init="teacher" needs tables


def test_sample_positive_lists():
    train = sp.csr_matrix(
        np.array([[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]], dtype=float)
    )
    rng = np.random.default_rng(0)
    items, mask = student.sample_positive_lists(train, np.array([0, 1, 2, 0]), 3, rng)
    assert items.shape == (4, 3) and mask.sum(1).tolist() == [3, 0, 1, 3]
    for row, user in enumerate([0, 1, 2, 0]):
        chosen = items[row][mask[row]]
        assert len(set(chosen)) == len(chosen)
        assert set(chosen) <= set(train[user].indices)
    seen = set()
    for _ in range(50):  # every positive of user 0 gets drawn
        items, mask = student.sample_positive_lists(train, np.array([0]), 2, rng)
        seen |= set(items[0][mask[0]].tolist())
    assert seen == {0, 1, 3, 4, 5}


def _fit(split, teacher, **kw):
    base = dict(code_bits=16, num_epochs=8, eval_every=2, patience=10, batch_size=512,
                list_users=64, list_pos=8, list_neg=8, lr=1e-2)
    base.update(kw)
    return student.fit_student(split, teacher, **base)


def test_bincf_from_random_start_learns(split):
    res = _fit(split, None, alpha=0.0, init="random", num_epochs=6, eval_every=3, lr=5e-2)
    h = res.history
    assert h["epoch"].iloc[0] == 0 and (h["rank"].iloc[1:] == 0).all()
    start = h["valid_ndcg@100"].iloc[0]
    assert h["valid_ndcg@100"].max() > start + 0.05, h["valid_ndcg@100"].tolist()
    assert res.user_codes.shape == (split.num_users, 16)
    # the reported validation numbers are those of the restored binary codes
    assert res.valid.query("metric == 'ndcg' and k == 100")["value"].item() == pytest.approx(
        h["valid_ndcg@100"].max()
    )


@pytest.mark.parametrize("codes_in_loss", ["stochastic", "relaxed", "sign"])
def test_dgcn_bincf_trains_with_every_code_choice(split, teacher, codes_in_loss):
    res = _fit(
        split, teacher, alpha=1.0, nu=0.1, beta=0.1, codes_in_loss=codes_in_loss, num_epochs=2
    )
    h = res.history
    assert np.isfinite(h[["loss", "bpr", "rank", "noise", "penalty"]].iloc[1:].to_numpy()).all()
    assert (h["rank"].iloc[1:] > 0).all()
    assert {"saturated", "bit_balance", "bit_correlation"} <= set(h.columns)
    assert h["valid_ndcg@100"].max() > 0.2  # well above chance on the planted clusters


def test_teacher_top_lists_and_anchor_train(split, teacher):
    res = _fit(split, teacher, alpha=1.0, list_top=10, anchor=1.0, init_rotation="itq",
               num_epochs=2)
    h = res.history
    assert np.isfinite(h[["loss", "bpr", "rank"]].iloc[1:].to_numpy()).all()
    assert (h["rank"].iloc[1:] > 0).all()
    assert h["valid_ndcg@100"].max() > 0.2
    # a huge anchor keeps the codes at the start's signs
    pinned = _fit(split, teacher, alpha=1.0, anchor=1e6, num_epochs=2, lr=1e-3)
    p, q = student.teacher_init(*teacher, 16)
    assert np.array_equal(pinned.item_codes, np.where(q >= 0, 1, -1))
    with pytest.raises(ValueError):
        student.StudentConfig(anchor=-1)


def test_training_is_deterministic_and_needs_a_teacher_for_alpha(split, teacher):
    a = _fit(split, teacher, alpha=1.0, codes_in_loss="stochastic", num_epochs=1)
    b = _fit(split, teacher, alpha=1.0, codes_in_loss="stochastic", num_epochs=1)
    assert np.array_equal(a.history["loss"].iloc[1:], b.history["loss"].iloc[1:])
    assert np.array_equal(a.item_codes, b.item_codes)
    cfg = student.StudentConfig(code_bits=16, alpha=1.0, init="random")
    model = student.BinCF(split.num_users, split.num_items, cfg)
    with pytest.raises(ValueError, match="teacher"):
        student.train_student(model, split.train, split.valid)
    with pytest.raises(ValueError, match="teacher"):
        _fit(split, None, alpha=0.0)  # init="teacher" without tables


def test_sign_teacher_codes_and_packing(teacher):
    u, v = teacher
    users, items = student.sign_teacher_codes(u, v, 16)
    assert users.dtype == np.int8 and set(np.unique(items)) <= {-1, 1}
    mean = np.vstack([u, v]).mean(0)
    assert np.array_equal(users, np.where(u - mean >= 0, 1, -1))  # pooled centring, full width
    words = student.packed(users)
    assert words.dtype == np.uint8 and words.shape == (len(u), 2)
    back = np.unpackbits(words, axis=1, count=16).astype(np.int8) * 2 - 1
    assert np.array_equal(back, users)  # DESIGN §7: big-endian, bit 1 = +1


def test_fit_codes_names_and_errors(split, teacher):
    users, items, params, hist = student.fit_codes("sign-teacher", split, teacher, {"code_bits": 8})
    assert users.shape == (split.num_users, 8) and params == {"code_bits": 8, "rotation": "none"} and hist is None
    rot_u, rot_i, params, _ = student.fit_codes("itq-teacher", split, teacher, {"code_bits": 8})
    assert params["rotation"] == "itq" and rot_u.shape == users.shape and set(np.unique(rot_i)) <= {-1, 1}
    start_u, start_i = student.teacher_init(*teacher, 8, rotation="itq")
    assert np.array_equal(rot_u, student.sign_codes(start_u))  # the rotated start, untrained
    with pytest.raises(ValueError, match="takes only code_bits"):
        student.fit_codes("itq-teacher", split, teacher, {"alpha": 1.0})
    small = dict(code_bits=16, num_epochs=2, eval_every=1, batch_size=512, list_users=32)
    users, items, params, hist = student.fit_codes("bincf", split, teacher, small)
    assert params["alpha"] == 0 and params["code_bits"] == 16 and (hist["rank"].iloc[1:] == 0).all()
    with pytest.raises(ValueError, match="unknown student parameter"):
        student.fit_codes("dgcn-bincf", split, teacher, {"bits": 16})
    with pytest.raises(ValueError, match="alpha > 0"):
        student.fit_codes("dgcn-bincf", split, teacher, {**small, "alpha": 0})
    with pytest.raises(ValueError, match="unknown student"):
        student.fit_codes("dgcn", split, teacher, small)


def test_hamming_histograms_by_hand():
    user_codes = np.array([[1, 1, 1, 1], [-1, -1, 1, 1]], dtype=np.int8)
    item_codes = np.array([[1, 1, 1, 1], [-1, -1, -1, -1], [1, 1, -1, -1]], dtype=np.int8)
    positives = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], dtype=float))
    exclude = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 0]], dtype=float))
    pos, neg = student.hamming_histograms(user_codes, item_codes, positives, exclude, seed=3)
    assert sorted(pos.tolist()) == [0, 4]  # user 0 vs item 0: 0; user 1 vs item 2: 4
    # user 0's only negative is item 1 (distance 4); user 1's are items 0, 1 (distance 2)
    assert sorted(neg.tolist()) == [2, 4]


def test_rank_agreement_identity_and_reversal():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 30))
    exclude = sp.csr_matrix((20, 30))
    same = student.rank_agreement(lambda u: scores[u], lambda u: scores[u], exclude, k=5)
    assert same["spearman"] == pytest.approx(1) and same["topk_overlap"] == pytest.approx(1)
    flip = student.rank_agreement(lambda u: scores[u], lambda u: -scores[u], exclude, k=5)
    assert flip["spearman"] == pytest.approx(-1) and flip["topk_overlap"] == 0


def test_cli_fits_students_from_a_teacher_run(tmp_path, split, teacher, capsys):
    import pandas as pd

    from bincf_lite.cli import main

    frames = split.frames()
    train = tmp_path / "train.tsv"
    pd.concat([frames["train"], frames["valid"]]).to_csv(train, sep="\t", header=False, index=False)
    test = tmp_path / "test.tsv"
    frames["test"].to_csv(test, sep="\t", header=False, index=False)
    # the CLI's own split of that file: write a teacher run for it (rank-16 SVD)
    assert main(["fit", "--model", "pop", "--interactions", str(train), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    pop = bl.runs.load_run(tmp_path / "p")
    u, s, vt = np.linalg.svd(pop.train.toarray(), full_matrices=False)
    t = tmp_path / "teacher"
    t.mkdir()
    np.save(t / "user_emb.npy", (u[:, :16] * s[:16]).astype(np.float32))
    np.save(t / "item_emb.npy", vt[:16].T.astype(np.float32))
    for name in ("user_ids.tsv", "item_ids.tsv"):
        (t / name).write_text((tmp_path / "p" / name).read_text())
    for model in ("sign-teacher", "dgcn-bincf"):
        out = tmp_path / model
        args = ["fit", "--model", model, "--interactions", str(train), "--teacher", str(t),
                "--param", "code_bits=16", "--out", str(out), "--quiet"]
        if model == "dgcn-bincf":
            args += ["--param", "num_epochs=2", "--param", "batch_size=512", "--param", "list_users=32"]
        assert main(args) == 0
        run = bl.runs.load_run(out)
        assert run.is_binary and run.config["code_bits"] == 16
        assert run.arrays["user_codes"].shape == (split.num_users, 2)
        assert main(["evaluate", str(out), "--test", str(test), "--k", "10"]) == 0
    capsys.readouterr()
    assert main(["fit", "--model", "pop", "--interactions", str(train), "--teacher", str(t), "--out", str(tmp_path / "x")]) != 0
    assert "--teacher applies" in capsys.readouterr().err
    (t / "item_ids.tsv").write_text("nope\n")
    assert main(["fit", "--model", "sign-teacher", "--interactions", str(train), "--teacher", str(t), "--out", str(tmp_path / "y")]) != 0
    assert "differs from this split's ids" in capsys.readouterr().err


def test_cli_fitters_share_one_teacher_per_split(toy):
    from bincf_lite import cli

    s = bl.split_interactions(toy, seed=0)
    small = {"teacher_epochs": 2, "code_bits": 16}
    res = cli.FITTERS["sign-teacher"]("sign-teacher", s, small, False, False)
    assert res.arrays["user_codes"].shape == (s.num_users, 2) and res.params["code_bits"] == 16
    (key, first), = cli._TEACHERS.items()
    assert first[0].shape[1] == 3 * 64  # GCN-CF's concatenated width
    params = {**small, "num_epochs": 1, "batch_size": 512, "list_users": 16}
    res = cli.FITTERS["dgcn-bincf"]("dgcn-bincf", s, params, False, False)
    assert list(cli._TEACHERS) == [key] and cli._TEACHERS[key] is first  # trained once, reused
    assert res.params["alpha"] > 0 and "inside" in res.params["teacher"]
