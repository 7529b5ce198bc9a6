"""The reproduction driver: resumable, one row per (model, seed), mean ± std tables."""

import pandas as pd

import bincf_lite as bl
from bincf_lite.cli import FITTERS
from bincf_lite.reproduce import reproduce


def test_resumes_and_summarises(tmp_path, toy):
    calls = []

    def counting(name, split, params, tune, progress):
        calls.append((name, split.seed))
        return FITTERS[name](name, split, params, tune, progress)

    fitters = {"pop": counting, "ease": counting}
    make_split = lambda seed: bl.split_interactions(toy, seed=seed)  # noqa: E731
    reproduce("toy", make_split, fitters, ["pop", "ease"], [0, 1], tmp_path, ks=[10])
    assert len(calls) == 4
    rows = reproduce("toy", make_split, fitters, ["pop", "ease"], [0, 1, 2], tmp_path, ks=[10])
    assert calls[4:] == [("pop", 2), ("ease", 2)]  # only the missing seed ran
    assert len(rows) == 6 and set(rows["seed"]) == {0, 1, 2}
    summary = pd.read_csv(tmp_path / "toy_summary.csv")
    assert list(summary["model"]) == ["pop", "ease"] and (summary["seeds"] == 3).all()
    ease = summary.set_index("model").loc["ease"]
    assert ease["ndcg@10_mean"] > summary.set_index("model").loc["pop"]["ndcg@10_mean"]
    text = (tmp_path / "toy.md").read_text()
    assert "| ease | 3 |" in text and "±" in text


def test_parallel_workers_write_the_same_rows(tmp_path, toy):
    make_split = lambda seed: bl.split_interactions(toy, seed=seed)  # noqa: E731
    models = ["pop", "itemknn", "ease"]
    serial = reproduce("toy", make_split, FITTERS, models, [0, 1], tmp_path / "serial", ks=[10])
    parallel = reproduce(
        "toy", make_split, FITTERS, models, [0, 1], tmp_path / "parallel", ks=[10], jobs=2,
        chains=[["itemknn", "ease"]],
    )
    key = ["model", "seed"]
    a = serial.sort_values(key).reset_index(drop=True)
    b = parallel.sort_values(key).reset_index(drop=True)
    assert len(b) == 6 and a[key].equals(b[key])
    pd.testing.assert_series_equal(a["ndcg@10"], b["ndcg@10"])


def test_chains_keep_order_and_collect_the_rest():
    from bincf_lite.reproduce import _chains

    models = ["pop", "gcn-cf", "ease", "bincf", "dgcn-bincf"]
    assert _chains(models, [("gcn-cf", "bincf", "dgcn-bincf", "absent")]) == [
        ["pop", "ease"], ["gcn-cf", "bincf", "dgcn-bincf"],
    ]
    assert _chains(models, None) == [models]
