"""The bincf-lite command end to end on small files, and its errors."""

import json

import numpy as np
import pytest

import bincf_lite as bl
from bincf_lite.cli import main


@pytest.fixture
def toy_files(tmp_path, toy):
    s = bl.split_interactions(toy, seed=0)
    frames = s.frames()
    train = tmp_path / "train.tsv"
    test = tmp_path / "test.tsv"
    import pandas as pd

    pd.concat([frames["train"], frames["valid"]]).to_csv(train, sep="\t", header=False, index=False)
    extra = pd.DataFrame({"user": ["ghost", "u0"], "item": ["i0", "never-seen"]})
    pd.concat([frames["test"], extra]).to_csv(test, sep="\t", header=False, index=False)
    return train, test, s


@pytest.mark.parametrize("model", ["pop", "itemknn", "ease"])
def test_fit_on_file_then_evaluate(tmp_path, toy_files, model, capsys):
    train, test, s = toy_files
    run = tmp_path / f"run-{model}"
    assert main(["fit", "--model", model, "--interactions", str(train), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run), "--test", str(test), "--k", "5", "10"]) == 0
    out = capsys.readouterr().out
    assert "1 users unseen in training" in out and "1 rows of items unseen" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_users"] == s.num_users and metrics["k"] == [5, 10]
    assert 0 < metrics["metrics"]["ndcg"]["10"] <= 1
    for name in ("config.json", "split.json", "user_ids.tsv", "item_ids.tsv", "train.npz"):
        assert (run / name).is_file()
    # the run reproduces the library's own evaluation exactly
    loaded = bl.runs.load_run(run)
    model_obj = {"pop": bl.Pop(), "itemknn": bl.ItemKNN(), "ease": bl.EASE()}[model]
    model_obj.fit(loaded.train)
    test_m, _ = bl.cli._test_matrix(loaded, test)
    ref = bl.evaluate_scores(model_obj.score, loaded.train, test_m, [10])
    assert metrics["metrics"]["ndcg"]["10"] == pytest.approx(ref["value"].iloc[-1], abs=1e-9)


def test_dataset_fit_and_evaluate_from_split(tmp_path, data_dir, capsys):
    run = tmp_path / "pop"
    args = ["--data-dir", data_dir]
    assert main(["fit", "--model", "pop", "--dataset", "ml-100k", "--split-seed", "0", "--out", str(run), "--quiet", *args]) == 0
    assert main(["evaluate", str(run), "--k", "100", *args]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_users"] == 917
    assert main(["recommend", str(run), "--user", "1", "--k", "3", *args]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-3].split()[0] == "1" and "(" in out[-1]  # ranks with movie titles


def test_stats_and_split(tmp_path, data_dir, capsys):
    assert main(["data", "stats", "ml-100k", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "917" in out and "937" in out and "94,443" in out
    assert main(["split", "ml-100k", "--seed", "3", "--out", str(tmp_path / "s"), "--data-dir", data_dir]) == 0
    lines = sum(len((tmp_path / "s" / f"{p}.tsv").read_text().splitlines()) for p in ("train", "valid", "test"))
    assert lines == 94443


def test_errors_are_one_clear_line(tmp_path, toy_files, capsys):
    train, test, _ = toy_files
    assert main(["data", "stats", "ml-7m"]) == 2
    assert "unknown dataset 'ml-7m'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--model", "nope", "--interactions", str(train), "--out", str(tmp_path / "r")])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    run = tmp_path / "r"
    main(["fit", "--model", "pop", "--interactions", str(train), "--out", str(run), "--quiet"])
    assert main(["evaluate", str(run), "--test", str(test), "--k", "0"]) == 2
    assert "K must be a positive integer" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--test", str(test), "--k", "100000"]) == 2
    assert "larger than the catalogue" in capsys.readouterr().err
    assert main(["evaluate", str(run)]) == 2
    assert "give its test file" in capsys.readouterr().err
    assert main(["fit", "--model", "pop", "--interactions", str(tmp_path / "none.tsv"), "--out", str(run)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_run_binary_codes_rank_by_hamming(tmp_path):
    """A run holding packed codes ranks by Hamming distance (through the popcount engine)."""
    rng = np.random.default_rng(0)
    import scipy.sparse as sp

    u = rng.random((6, 20)) < 0.5
    i = rng.random((9, 20)) < 0.5
    bl.runs.save_run(
        tmp_path / "bin", {"model": "codes", "code_bits": 20}, {}, [f"u{k}" for k in range(6)],
        [f"i{k}" for k in range(9)], sp.csr_matrix((6, 9)),
        {"user_codes": np.packbits(u, axis=1), "item_codes": np.packbits(i, axis=1)},
    )
    run = bl.runs.load_run(tmp_path / "bin")
    top = run.topk(np.arange(6), 4)
    dist = (u[:, None, :] != i[None, :, :]).sum(-1)
    ref = bl.topk_from_scores(-dist.astype(float), 4, None, bl.tie_priority(9))
    assert np.array_equal(top, ref)


def test_fit_float_model_writes_embeddings(tmp_path, toy_files):
    train, test, _ = toy_files
    run = tmp_path / "lightgcn"
    args = ["fit", "--model", "lightgcn", "--interactions", str(train), "--out", str(run), "--quiet",
            "--param", "num_epochs=2"]
    assert main(args) == 0
    loaded = bl.runs.load_run(run)
    assert loaded.arrays["user_emb"].dtype == np.float32
    assert loaded.config["params"]["num_epochs"] == 2
    assert main(["evaluate", str(run), "--test", str(test), "--k", "10"]) == 0
    assert main([*args[:-2], "--tune"]) == 2  # the teacher's grid lives in its benchmark
