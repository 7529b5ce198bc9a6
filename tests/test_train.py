"""Tests of bincf_lite.train: the BPR loop, early stopping, divergence, checkpoints."""

import numpy as np
import pytest
import torch

import bincf_lite as bl
from bincf_lite import train as tr
from bincf_lite.models import BPRMFConfig, GCNCFConfig, build_model


@pytest.fixture(scope="module")
def split():
    data = bl.synthetic_interactions(num_users=200, num_items=120, num_clusters=4, seed=1)
    return bl.split_interactions(data, seed=0)


def _ndcg(df):
    return float(df.query("metric == 'ndcg' and k == 100")["value"].iloc[0])


def test_training_triples_cover_every_pair_with_true_negatives(split):
    rng = np.random.default_rng(0)
    u, i, j = tr.training_triples(split.train, rng)
    assert len(u) == split.train.nnz
    dense = split.train.toarray()
    assert dense[u, i].all() and not dense[u, j].any()
    assert sorted(zip(u, i)) == sorted(zip(*split.train.nonzero()))


@pytest.mark.parametrize("name", ["bpr-mf", "gcn-cf"])
def test_training_beats_pop_on_validation(split, name):
    pop = bl.Pop().fit(split.train)
    pop_ndcg = _ndcg(bl.evaluate_scores(pop.score, split.train, split.valid))
    cfg = {"bpr-mf": BPRMFConfig(embed_dim=16, lr=1e-2), "gcn-cf": GCNCFConfig(embed_dim=16, lr=1e-2)}[name]
    res = tr.fit_float_model(name, split, cfg, num_epochs=30, batch_size=512, eval_every=5, patience=2)
    assert _ndcg(res.valid) > pop_ndcg + 0.05
    assert res.user_emb.dtype == np.float32 and res.user_emb.shape[0] == split.num_users
    assert res.item_emb.shape == (split.num_items, res.model.out_dim)
    hist = res.history
    assert {"epoch", "loss", "bpr", "l2_term", "seconds", "valid_ndcg@100"} <= set(hist.columns)
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    # the best weights are restored: the returned model scores the best validation NDCG seen
    assert _ndcg(res.valid) == pytest.approx(hist["valid_ndcg@100"].max())
    assert res.best_epoch == int(hist.loc[hist["valid_ndcg@100"].idxmax(), "epoch"])


def test_nan_loss_raises_with_epoch_and_hint(split):
    model = build_model("bpr-mf", split.train, BPRMFConfig(embed_dim=4, num_epochs=2))
    with torch.no_grad():
        model.embedding[0, 0] = float("nan")
    with pytest.raises(tr.TrainingDiverged, match=r"epoch 1.*learning rate"):
        tr.train_bpr(model, split.train)


def test_growing_loss_raises(split):
    model = build_model("bpr-mf", split.train, BPRMFConfig(embed_dim=4, num_epochs=3, lr=5.0))
    with pytest.raises(tr.TrainingDiverged, match="learning rate"):
        tr.train_bpr(model, split.train, max_loss_ratio=1.0 + 1e-9)


def test_checkpoint_round_trip_weights_only(split, tmp_path):
    res = tr.fit_float_model(
        "gcn-cf", split, GCNCFConfig(embed_dim=8), num_epochs=4, eval_every=2, batch_size=1024,
        checkpoint_dir=tmp_path, refit=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "refit.pt"]  # no temp files
    payload = tr.load_checkpoint(tmp_path / "refit.pt")
    assert payload["config"]["model"] == "gcn-cf" and payload["epoch"] == res.best_epoch
    fresh = build_model("gcn-cf", split.train_full, GCNCFConfig(embed_dim=8))
    tr.load_checkpoint(tmp_path / "refit.pt", fresh)
    u, v = tr.embeddings(fresh)
    np.testing.assert_allclose(u, res.user_emb, rtol=1e-5, atol=1e-6)
    assert set(res.history["phase"]) == {"select", "refit"}
    assert (res.history["phase"] == "refit").sum() == res.best_epoch


def test_unknown_model(split):
    with pytest.raises(ValueError, match="unknown model"):
        tr.fit_float_model("ngcf", split)
