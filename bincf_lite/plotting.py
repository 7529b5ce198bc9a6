"""Figures of the book with one fixed size and style (chapters 01 and 02, then every chapter).

Every figure of the book comes from here, so that all chapters look alike and a results plot can
never leave out the sanity baselines (STYLE: "plots of results always show the sanity
baselines"):

* :func:`setup` applies the book's matplotlib style (:data:`STYLE`); like :func:`bincf_lite.set_seed`
  it is the one explicit call that changes global state, made once in a chapter's imports cell;
* :func:`figure` makes a figure of the book's size (:data:`FIGSIZE` per panel row);
* :func:`degree_histogram` draws the degree distribution of users or items on log axes
  (chapter 01);
* :func:`metric_bars` draws grouped bars of several models on several metrics, and refuses a
  table without the sanity rows Pop, ItemKNN and EASE (chapter 02);
* :func:`metric_vs_k` draws a metric against the cut-off K for several models (chapter 02);
* :func:`model_bars` draws one metric for many models as horizontal bars with error bars, in
  labelled groups (e.g. float scores vs binary codes), with the paper's figures marked and a
  reference line at Pop (chapter 14).

Colours. Sanity baselines are drawn in greys (:data:`BASELINE_COLORS`), the paper's reported
numbers hatched, and the book's own models in the Okabe-Ito colour-blind-safe palette
(:data:`PALETTE`), always in the order of the table, so a model keeps its colour across a chapter.

The module never shows or saves a figure: the notebook ends its plot cell with ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = [
    "FIGSIZE",
    "STYLE",
    "PALETTE",
    "SANITY_BASELINES",
    "BASELINE_COLORS",
    "setup",
    "figure",
    "model_kind",
    "model_colors",
    "degree_histogram",
    "metric_bars",
    "metric_vs_k",
    "model_bars",
]

#: Size in inches of one row of panels; :func:`figure` keeps the width and stacks rows.
FIGSIZE = (7.0, 3.4)

#: Okabe-Ito colours (colour-blind safe), used for the book's own models in table order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")

#: The sanity rows every results table and plot carries (DESIGN §3).
SANITY_BASELINES = ("Pop", "ItemKNN", "EASE")

#: Greys for the sanity baselines: the darker, the stronger the baseline usually is.
BASELINE_COLORS = {"Pop": "#c8c8c8", "ItemKNN": "#969696", "EASE": "#5a5a5a"}

#: The book's matplotlib settings, applied by :func:`setup`.
STYLE = {
    "figure.figsize": FIGSIZE,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.8,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}


def setup() -> None:
    """Apply :data:`STYLE` to matplotlib (once, in a chapter's imports cell)."""
    mpl.rcParams.update(STYLE)


def figure(ncols: int = 1, nrows: int = 1, height: float | None = None, **kwargs):
    """A figure of the book's width with ``nrows x ncols`` panels; returns ``(fig, axes)``.

    Each row of panels is ``FIGSIZE[1]`` inches high unless ``height`` (inches per row) says
    otherwise. ``axes`` is a single Axes for one panel, else an array, as
    :func:`matplotlib.pyplot.subplots` returns it; other keyword arguments go to it.
    """
    if ncols < 1 or nrows < 1:
        raise ValueError(f"a figure needs at least one panel, got {nrows} x {ncols}")
    row_height = FIGSIZE[1] if height is None else height
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(FIGSIZE[0], row_height * nrows), **kwargs)


# --------------------------------------------------------------------------------------------
# Which row is what


def model_kind(name: str, baselines: Sequence[str] = SANITY_BASELINES, paper: Iterable[str] = ()) -> str:
    """``"paper"``, ``"baseline"`` or ``"model"`` for a row called ``name``.

    A row is a sanity baseline when its name is a baseline's name or starts with it followed
    by a space or a bracket (``"EASE (λ=1000)"``, ``"ItemKNN(200)"``); it is a paper row when it
    is listed in ``paper``.
    """
    if name in set(paper):
        return "paper"
    return "baseline" if _baseline_of(name, baselines) is not None else "model"


def _baseline_of(name: str, baselines: Sequence[str]) -> str | None:
    for base in baselines:
        if name == base or (name.startswith(base) and name[len(base)] in " ([{,:"):
            return base
    return None


def model_colors(
    names: Sequence[str], baselines: Sequence[str] = SANITY_BASELINES, paper: Iterable[str] = ()
) -> dict[str, str]:
    """Colour of each row: greys for baselines, the palette in order for the rest.

    A paper row takes the colour of the book's model of the same name when there is one
    (``"DGCN-BinCF (paper)"`` and ``"DGCN-BinCF"``), so the two read as a pair.
    """
    paper = set(paper)
    colors: dict[str, str] = {}
    k = 0
    for name in names:
        base = _baseline_of(name, baselines)
        if base is not None and name not in paper:
            colors[name] = BASELINE_COLORS.get(base, "#777777")
        elif name not in paper:
            colors[name] = PALETTE[k % len(PALETTE)]
            k += 1
    for name in names:
        if name in paper:
            twin = _strip_paper(name)
            if twin in colors:
                colors[name] = colors[twin]
            else:
                colors[name] = PALETTE[k % len(PALETTE)]
                k += 1
    return {name: colors[name] for name in names}


def _strip_paper(name: str) -> str:
    for suffix in (" (paper)", " [paper]", " paper"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_baselines(names: Sequence[str], baselines: Sequence[str]) -> None:
    present = {_baseline_of(n, baselines) for n in names}
    missing = [b for b in baselines if b not in present]
    if missing:
        raise ValueError(
            f"the table has no row for the sanity baseline(s) {', '.join(missing)}: every results"
            " plot shows Pop, ItemKNN and EASE beside the models (STYLE); add their rows, or pass"
            " baselines=() for a plot that is not a results plot"
        )


# --------------------------------------------------------------------------------------------
# Plots


def degree_histogram(
    degrees,
    ax=None,
    label: str | None = None,
    threshold: float | None = None,
    bins: int = 40,
    color: str | None = None,
):
    """Histogram of node degrees on log-log axes, with log-spaced bins.

    ``degrees`` is one array (e.g. ``np.diff(R.indptr)`` for users) or a mapping
    ``{label: array}`` drawn as overlaid step histograms. Bars count the nodes in each bin, and
    bins widen with the degree, so the height is "nodes per bin", not per unit of degree. For
    integer degrees the bin edges sit halfway between integers. ``threshold`` draws a dashed
    vertical line, e.g. at the k-core filter's minimum of 20. Zero degrees cannot sit on a log axis: they
    are counted in the legend label instead. Returns the Axes.
    """
    if ax is None:
        _, ax = figure()
    series = dict(degrees) if isinstance(degrees, Mapping) else {label or "degree": degrees}
    arrays = {k: np.asarray(v).ravel() for k, v in series.items()}
    positive = [a[a > 0] for a in arrays.values() if (a > 0).any()]
    if not positive:
        raise ValueError("no positive degree to draw")
    lo = min(a.min() for a in positive)
    hi = max(a.max() for a in positive)
    edges = np.unique(np.geomspace(lo, hi + 1, bins + 1))
    if all(np.allclose(a, np.round(a)) for a in positive):
        # integer degrees: edges halfway between integers, so that no bin is empty by construction
        edges = np.unique(np.round(edges)) - 0.5
    for k, (name, a) in enumerate(arrays.items()):
        zeros = int((a <= 0).sum())
        text = name if not zeros else f"{name} ({zeros} with degree 0 not shown)"
        c = color if (color and len(arrays) == 1) else None
        ax.hist(a[a > 0], bins=edges, histtype="stepfilled" if len(arrays) == 1 else "step",
                alpha=0.85 if len(arrays) == 1 else 1.0, color=c, label=text, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("degree (interactions)")
    ax.set_ylabel("nodes per bin")
    if threshold is not None:
        ax.axvline(threshold, color="#333333", linestyle="--", linewidth=1.0,
                   label=f"threshold {threshold:g}")
    if len(arrays) > 1 or label or threshold is not None:
        ax.legend(loc="best")
    return ax


def metric_bars(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    ax=None,
    baselines: Sequence[str] = SANITY_BASELINES,
    paper: Iterable[str] = (),
    annotate: bool = True,
    errors: pd.DataFrame | None = None,
):
    """Grouped bars: one group per metric (columns), one bar per model (rows of ``table``).

    ``table`` has one row per model (index = model name) and one column per metric, e.g.
    ``recall@100``. Rows of the sanity baselines are required (a :class:`ValueError` names the
    missing ones) and drawn in greys; rows named in ``paper`` (numbers reported by the paper,
    not measured here) are hatched. ``annotate`` writes each value above its bar. ``errors``,
    a table of the same rows and columns (e.g. the std over split seeds; NaN or a missing row:
    none), draws error bars. Returns the Axes.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError("metric_bars needs a non-empty DataFrame: rows = models, columns = metrics")
    metrics = list(table.columns if metrics is None else metrics)
    unknown = [m for m in metrics if m not in table.columns]
    if unknown:
        raise ValueError(f"no column {', '.join(map(repr, unknown))} in the table")
    names = [str(n) for n in table.index]
    _check_baselines(names, baselines)
    paper = set(paper)
    colors = model_colors(names, baselines, paper)
    if ax is None:
        _, ax = figure()
    values = table[metrics].to_numpy(dtype=float)
    if errors is not None:
        errors = errors.reindex(index=table.index, columns=metrics).to_numpy(dtype=float)
    n_models = len(names)
    width = 0.8 / n_models
    x = np.arange(len(metrics))
    for j, name in enumerate(names):
        pos = x - 0.4 + width * (j + 0.5)
        is_paper = name in paper
        bars = ax.bar(
            pos, values[j], width * 0.92, label=name,
            color="white" if is_paper else colors[name],
            edgecolor=colors[name], hatch="///" if is_paper else None,
            linewidth=1.2 if is_paper else 0,
        )
        if errors is not None and np.isfinite(errors[j]).any():
            ax.errorbar(pos, values[j], yerr=np.nan_to_num(errors[j]), fmt="none", ecolor="#222222",
                        elinewidth=1.0, capsize=2)
        if annotate:
            labels = ["" if np.isnan(v) else f"{v:.3f}" for v in values[j]]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=1, rotation=90 if n_models > 5 else 0)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("value")
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    ax.set_ylim(0, top * 1.3)  # headroom for the value labels and the legend
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=min(n_models, 4), loc="upper left")
    return ax


def metric_vs_k(
    table: pd.DataFrame,
    metric: str,
    ax=None,
    baselines: Sequence[str] = SANITY_BASELINES,
    paper: Mapping[str, Mapping[int, float]] | None = None,
):
    """A metric against the cut-off K, one line per model.

    ``table`` is tidy, with columns ``model, metric, k, value`` (the output of
    :func:`bincf_lite.evaluate_scores` with a ``model`` column added). The sanity baselines must
    be among the models and are drawn in greys, dashed. ``paper`` maps a row name to
    ``{K: value}`` points reported by the paper, drawn as open markers. Returns the Axes.
    """
    need = {"model", "metric", "k", "value"}
    if not need <= set(table.columns):
        raise ValueError(f"metric_vs_k needs columns {sorted(need)}, got {list(table.columns)}")
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no rows for metric {metric!r}; metrics present: {sorted(set(table['metric']))}")
    names = list(dict.fromkeys(str(m) for m in rows["model"]))
    _check_baselines(names, baselines)
    paper = dict(paper or {})
    colors = model_colors(names + [n for n in paper if n not in names], baselines, paper)
    if ax is None:
        _, ax = figure()
    for name in names:
        r = rows[rows["model"].astype(str) == name].sort_values("k")
        is_base = _baseline_of(name, baselines) is not None
        ax.plot(r["k"], r["value"], marker="o", color=colors[name], label=name,
                linestyle="--" if is_base else "-")
    for name, points in paper.items():
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker="s", linestyle="none", markersize=7,
                markerfacecolor="white", markeredgecolor=colors[name], markeredgewidth=1.5,
                label=name)
    ax.set_xscale("log")
    ks = sorted(set(int(k) for k in rows["k"]))
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("cut-off K")
    ax.set_ylabel(f"{metric}@K")
    ax.legend()
    return ax


def model_bars(
    values: pd.Series,
    errors: pd.Series | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    paper: Mapping[str, float] | None = None,
    reference: str | None = "Pop",
    ax=None,
    baselines: Sequence[str] = SANITY_BASELINES,
    xlabel: str | None = None,
    paper_label: str = "paper",
):
    """One metric for many models: horizontal bars, top to bottom, in labelled groups.

    ``values`` maps a model's row name to its value (e.g. the mean over split seeds) and
    ``errors`` to an error-bar half-width (e.g. the std; NaN: none). ``groups`` maps a group
    title to the names in it, drawn in that order with a gap and the title between groups
    (default: one untitled group in the order of ``values``). The sanity baselines must be among
    the rows and are drawn in greys. ``paper`` maps a row name to the value the paper reports
    for that model, drawn as an open diamond on its bar; ``reference`` draws a dashed vertical
    line at that row's value across all groups. Returns the Axes.
    """
    values = pd.Series(values, dtype=float)
    groups = {"": list(values.index)} if groups is None else {g: list(n) for g, n in groups.items()}
    names = [n for members in groups.values() for n in members]
    unknown = [n for n in names if n not in values.index]
    if unknown:
        raise ValueError(f"no value for {', '.join(map(repr, unknown))}")
    if len(set(names)) != len(names):
        raise ValueError("a model is listed in more than one group")
    _check_baselines(names, baselines)
    colors = model_colors(names, baselines)
    errors = pd.Series(dtype=float) if errors is None else pd.Series(errors, dtype=float)
    if ax is None:
        _, ax = figure(height=0.25 * (len(names) + 2 * len(groups)) + 0.8)
    y, ticks, labels, heads = 0.0, [], [], []
    for title, members in groups.items():
        if title:
            heads.append((y, title))
            y += 1.0
        for name in members:
            err = errors.get(name, np.nan)
            ax.barh(y, values[name], 0.75, color=colors[name],
                    xerr=err if np.isfinite(err) else None, error_kw={"elinewidth": 1.0, "capsize": 2})
            ticks.append(y)
            labels.append(name)
            y += 1.0
        y += 0.4
    for yh, title in heads:
        ax.text(0, yh + 0.2, title, fontweight="bold", fontsize=9, va="center", ha="left",
                transform=ax.get_yaxis_transform())
    marked = False
    for name, value in (paper or {}).items():
        if name in labels:
            ax.plot(value, ticks[labels.index(name)], marker="D", markersize=6, markerfacecolor="white",
                    markeredgecolor="#222222", markeredgewidth=1.3, linestyle="none",
                    label=None if marked else paper_label)
            marked = True
    if reference is not None:
        if reference not in values.index:
            raise ValueError(f"no row {reference!r} for the reference line")
        ax.axvline(values[reference], color="#555555", linestyle="--", linewidth=1.0, label=reference)
    ax.set_yticks(ticks, labels)
    ax.set_ylim(y - 0.4, -1.0)
    ax.grid(axis="y", visible=False)
    legend = marked or reference is not None
    # room right of the longest bar for the legend, so it never sits on a bar
    ax.set_xlim(0, max([np.nanmax(values.to_numpy()), *(paper or {}).values()]) * (1.45 if legend else 1.12))
    if xlabel:
        ax.set_xlabel(xlabel)
    if legend:
        ax.legend(loc="lower right")
    return ax
