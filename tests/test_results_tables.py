"""Chapter 14's tables: reading a runs file, mean ± std strings, paired gains, the paper's tables,
and the results plots with error bars."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bincf_lite import plotting  # noqa: E402
from bincf_lite import reproduce as rp  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def runs(seeds=(0, 1)):
    rows = []
    for seed in seeds:
        for model, ndcg, recall in (("pop", 0.30, 0.28), ("spectralcf", 0.40, 0.40), ("gcn-cf", 0.48, 0.42)):
            rows.append({"dataset": "toy", "model": model, "seed": seed, "ndcg@100": ndcg + 0.01 * seed,
                         "recall@100": recall + 0.01 * seed, "fit_seconds": 1.0 + seed})
    return pd.DataFrame(rows)


def test_read_runs_names_the_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="bincf-lite reproduce --dataset toy --seeds 0 1 2 3 4"):
        rp.read_runs(tmp_path, "toy")


def test_read_runs_rejects_other_csv_and_keeps_last_duplicate(tmp_path):
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "toy_runs.csv", index=False)
    with pytest.raises(ValueError, match="not a runs file"):
        rp.read_runs(tmp_path, "toy")
    rows = pd.concat([runs(), runs().assign(**{"ndcg@100": 0.9}).iloc[:1]], ignore_index=True)
    rows.to_csv(tmp_path / "toy_runs.csv", index=False)
    read = rp.read_runs(tmp_path, "toy")
    assert len(read) == 6
    assert read.query("model == 'pop' and seed == 0")["ndcg@100"].item() == 0.9
    rows.assign(dataset="other").to_csv(tmp_path / "toy_runs.csv", index=False)
    with pytest.raises(ValueError, match="no rows for dataset"):
        rp.read_runs(tmp_path, "toy")


def test_mean_std_strings_dash_for_one_seed():
    two = rp.mean_std_strings(rp.summarise(runs((0, 1))), ["ndcg@100"])
    assert two.loc["gcn-cf", "ndcg@100"] == f"0.4850 ± {np.std([0.48, 0.49], ddof=1):.4f}"
    one = rp.mean_std_strings(rp.summarise(runs((0,))), ["ndcg@100", "recall@100"], digits=3)
    assert one.loc["pop", "ndcg@100"] == "0.300 ± –" and one.loc["pop", "recall@100"] == "0.280 ± –"


def test_paired_gain_is_per_seed():
    rows = runs((0, 1, 2))
    gain = rp.paired_gain(rows, "gcn-cf", "spectralcf", ["ndcg@100"])
    per_seed = [(0.48 + 0.01 * s) / (0.40 + 0.01 * s) - 1 for s in (0, 1, 2)]
    assert gain.loc["ndcg@100", "mean"] == pytest.approx(np.mean(per_seed))
    assert gain.loc["ndcg@100", "std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert gain.loc["ndcg@100", "seeds"] == 3
    only_one = rows[~((rows["model"] == "gcn-cf") & (rows["seed"] > 0))]
    assert np.isnan(rp.paired_gain(only_one, "gcn-cf", "spectralcf", ["ndcg@100"]).loc["ndcg@100", "std"])
    with pytest.raises(ValueError, match="no seed has both"):
        rp.paired_gain(rows, "gcn-cf", "bincf", ["ndcg@100"])


def test_paper_tables_as_printed():
    assert set(rp.PAPER_TABLES) == {"ml-1m", "ml-10m", "yelp"}
    for table in rp.PAPER_TABLES.values():
        assert set(table) == {"dcf", "bccf", "pph", "dgcn-bincf"}
        # the paper's claim: DGCN-BinCF first on every metric of every table
        for metric in ("recall@100", "map@100", "ndcg@100"):
            assert max(table, key=lambda m: table[m][metric]) == "dgcn-bincf"
    assert rp.PAPER_TABLES["ml-1m"]["dgcn-bincf"] == {"recall@100": 0.3059, "map@100": 0.1187, "ndcg@100": 0.3061}
    assert set(rp.BINARY_MODELS) <= set(rp.MODEL_LABELS)
    for model, reference, _gain in rp.PAPER_GAINS.values():
        assert {model, reference} <= set(rp.MODEL_LABELS)


def test_metric_bars_draws_error_bars():
    table = pd.DataFrame({"ndcg@100": [0.3, 0.48, 0.52, 0.4]}, index=["Pop", "ItemKNN", "EASE", "GCN-CF"])
    errors = pd.DataFrame({"ndcg@100": [0.01, np.nan, 0.02]}, index=["Pop", "ItemKNN", "GCN-CF"])
    ax = plotting.metric_bars(table, errors=errors, annotate=False)
    assert len(ax.containers) == 4 + 2  # four bar groups, two error bars (ItemKNN NaN, EASE absent)
    plain = plotting.metric_bars(table, annotate=False)
    assert len(plain.containers) == 4


def test_model_bars_groups_paper_and_reference():
    values = pd.Series({"Pop": 0.3, "ItemKNN": 0.48, "EASE": 0.52, "GCN-CF": 0.48, "DGCN-BinCF": 0.41})
    groups = {"baselines": ["Pop", "ItemKNN", "EASE"], "float": ["GCN-CF"], "binary": ["DGCN-BinCF"]}
    ax = plotting.model_bars(values, pd.Series({"GCN-CF": 0.01}), groups=groups, paper={"DGCN-BinCF": 0.3061})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Pop", "ItemKNN", "EASE", "GCN-CF", "DGCN-BinCF"]
    assert {t.get_text() for t in ax.texts} == {"baselines", "float", "binary"}
    assert [line.get_label() for line in ax.get_legend().get_lines()] == ["paper", "Pop"]
    with pytest.raises(ValueError, match="EASE"):
        plotting.model_bars(values.drop("EASE"))
    with pytest.raises(ValueError, match="more than one group"):
        plotting.model_bars(values, groups={"a": ["Pop", "ItemKNN", "EASE"], "b": ["Pop"]})
    with pytest.raises(ValueError, match="no value"):
        plotting.model_bars(values, groups={"a": ["Pop", "ItemKNN", "EASE", "LightGCN"]})
