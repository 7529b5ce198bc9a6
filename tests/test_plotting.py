"""Tests of bincf_lite.plotting: fixed size, baseline rows required, colours stable."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bincf_lite import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def results_table():
    return pd.DataFrame(
        {"recall@100": [0.28, 0.45, 0.47, 0.31], "ndcg@100": [0.31, 0.48, 0.52, 0.31]},
        index=["Pop", "ItemKNN (200)", "EASE (λ=1000)", "DGCN-BinCF (paper)"],
    )


def test_figure_has_the_book_size():
    fig, ax = plotting.figure()
    assert tuple(fig.get_size_inches()) == pytest.approx(plotting.FIGSIZE)
    fig, axes = plotting.figure(ncols=2, nrows=2)
    assert axes.shape == (2, 2)
    assert tuple(fig.get_size_inches()) == pytest.approx((plotting.FIGSIZE[0], 2 * plotting.FIGSIZE[1]))
    with pytest.raises(ValueError):
        plotting.figure(ncols=0)


def test_setup_applies_style():
    with matplotlib.rc_context():
        plotting.setup()
        assert tuple(matplotlib.rcParams["figure.figsize"]) == pytest.approx(plotting.FIGSIZE)
        assert matplotlib.rcParams["axes.spines.top"] is False


@pytest.mark.parametrize(
    "name, kind",
    [
        ("Pop", "baseline"),
        ("ItemKNN(200)", "baseline"),
        ("EASE (λ=1000)", "baseline"),
        ("EASEY", "model"),
        ("Popular-GCN", "model"),
        ("DGCN-BinCF", "model"),
        ("DGCN-BinCF (paper)", "paper"),
    ],
)
def test_model_kind(name, kind):
    assert plotting.model_kind(name, paper=["DGCN-BinCF (paper)"]) == kind


def test_colors_baselines_grey_and_paper_twin():
    names = ["Pop", "GCN-CF", "DGCN-BinCF", "DGCN-BinCF (paper)", "EASE"]
    colors = plotting.model_colors(names, paper=["DGCN-BinCF (paper)"])
    assert colors["Pop"] == plotting.BASELINE_COLORS["Pop"]
    assert colors["EASE"] == plotting.BASELINE_COLORS["EASE"]
    assert colors["GCN-CF"] == plotting.PALETTE[0]
    assert colors["DGCN-BinCF"] == plotting.PALETTE[1]
    assert colors["DGCN-BinCF (paper)"] == colors["DGCN-BinCF"]
    # a paper row without a twin gets the next palette colour
    colors = plotting.model_colors(["Pop", "X (paper)"], paper=["X (paper)"])
    assert colors["X (paper)"] == plotting.PALETTE[0]


def test_metric_bars_draws_every_bar_and_hatches_paper_rows():
    table = results_table()
    ax = plotting.metric_bars(table, paper=["DGCN-BinCF (paper)"])
    bars = ax.patches
    assert len(bars) == table.size
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == sorted(round(v, 6) for v in table.to_numpy().ravel())
    hatched = [b for b in bars if b.get_hatch()]
    assert len(hatched) == 2  # one paper row x two metrics
    assert [t.get_text() for t in ax.get_xticklabels()] == ["recall@100", "ndcg@100"]


def test_metric_bars_requires_the_sanity_baselines():
    table = results_table().drop(index="ItemKNN (200)")
    with pytest.raises(ValueError, match="ItemKNN"):
        plotting.metric_bars(table)
    plotting.metric_bars(table, baselines=())  # explicitly not a results plot
    with pytest.raises(ValueError, match="no column"):
        plotting.metric_bars(results_table(), metrics=["map@100"])


def test_metric_vs_k():
    rows = []
    for model, base in [("Pop", 0.1), ("ItemKNN", 0.2), ("EASE", 0.3)]:
        for k in (10, 20, 50, 100):
            rows.append({"model": model, "metric": "ndcg", "k": k, "value": base + k / 1000})
    table = pd.DataFrame(rows)
    ax = plotting.metric_vs_k(table, "ndcg", paper={"DGCN-BinCF (paper)": {100: 0.3061}})
    assert len(ax.lines) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20", "50", "100"]
    with pytest.raises(ValueError, match="Pop"):
        plotting.metric_vs_k(table[table.model != "Pop"], "ndcg")
    with pytest.raises(ValueError, match="no rows"):
        plotting.metric_vs_k(table, "recall")


def test_degree_histogram_log_axes_and_zero_degrees():
    deg = np.array([0, 1, 2, 3, 20, 20, 300])
    ax = plotting.degree_histogram(deg, label="users", threshold=20)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("1 with degree 0" in t for t in legend)
    assert any("threshold 20" in t for t in legend)
    ax = plotting.degree_histogram({"users": deg, "items": deg + 1})
    assert len(ax.get_legend().get_texts()) == 2
    with pytest.raises(ValueError):
        plotting.degree_histogram(np.zeros(3))
