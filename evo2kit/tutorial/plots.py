"""Small seaborn/matplotlib helpers shared by the notebooks (each returns the Axes it drew on)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import roc_auc_score, roc_curve


def delta_by_class(table: pd.DataFrame, x: str = "class", y: str = "delta", hue: str | None = None, ax=None):
    """Box plot with every variant drawn as a point on top: one box per class (and hue)."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    sns.boxplot(data=table, x=x, y=y, hue=hue, showfliers=False, fill=False, ax=ax)
    sns.stripplot(data=table, x=x, y=y, hue=hue, dodge=hue is not None, size=2, alpha=0.35,
                  legend=False, ax=ax)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("delta log-likelihood (variant - reference)")
    return ax


def roc_curves(curves: dict[str, tuple], ax=None):
    """One ROC curve per entry ``label -> (labels (N,) bool, scores (N,))``, AUROC in the legend."""
    ax = ax or plt.subplots(figsize=(4.5, 4.5))[1]
    for label, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", aspect="equal")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def track(values: np.ndarray, start: int = 0, smooth: int = 1, spans: dict[str, tuple[int, int]] | None = None,
          ylabel: str = "", ax=None):
    """A per-position track (L,) starting at coordinate ``start``, smoothed by a running mean
    of ``smooth`` positions; ``spans`` shades named intervals (same coordinates)."""
    ax = ax or plt.subplots(figsize=(10, 3))[1]
    v = np.asarray(values, float)
    if smooth > 1:
        v = np.convolve(v, np.ones(smooth) / smooth, mode="same")
    ax.plot(start + np.arange(len(v)), v, lw=0.7)
    for name, (a, b) in (spans or {}).items():
        ax.axvspan(a, b, color="orange", alpha=0.2, label=name)
    if spans:
        ax.legend(fontsize=8)
    ax.set(xlabel="position", ylabel=ylabel)
    return ax


def exon_track(pos: np.ndarray, prob: np.ndarray, exons: tuple[np.ndarray, np.ndarray], smooth: int = 1,
               title: str = "", ax=None):
    """A classifier's P(exonic) at positions ``pos`` (N,) as a thin line, its running mean over ``smooth``
    positions as a thick one, and the annotated exons (``exons``: starts, ends, same coordinates) as boxes
    under it and bands behind it."""
    ax = ax or plt.subplots(figsize=(14, 3.5))[1]
    ax.plot(pos, prob, lw=0.6, color="C0", alpha=0.45 if smooth > 1 else 1.0, label="P(exonic)")
    if smooth > 1:
        mean = pd.Series(prob).rolling(smooth, center=True, min_periods=1).mean()
        ax.plot(pos, mean, lw=1.8, color="C0", label=f"running mean of {smooth} positions")
    for k, (a, b) in enumerate(zip(*exons)):
        ax.axvspan(a, b, color="orange", alpha=0.25, lw=0, label="annotated exon" if k == 0 else None)
        ax.add_patch(plt.Rectangle((a, -0.12), max(b - a, (pos[-1] - pos[0]) / 400), 0.08, color="black", lw=0))
    ax.axhline(0.5, color="grey", lw=0.6, ls="--")
    ax.set(xlim=(pos[0], pos[-1]), ylim=(-0.15, 1.02), ylabel="P(exonic)", title=title)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def auroc_bars(table: pd.DataFrame, x: str = "group", hue: str = "features", ax=None):
    """Grouped bars of ``table["auroc"]`` (one group per value of ``x``, one bar per ``hue``, in order of
    appearance) with their intervals ``ci_low`` .. ``ci_high`` as error bars, and chance at 0.5."""
    ax = ax or plt.subplots(figsize=(12, 4))[1]
    groups, hues = list(pd.unique(table[x])), list(pd.unique(table[hue]))
    width = 0.8 / len(hues)
    for k, h in enumerate(hues):
        rows = table[table[hue] == h].set_index(x).loc[groups]
        where = np.arange(len(groups)) + (k - (len(hues) - 1) / 2) * width
        ax.bar(where, rows["auroc"], width, label=h, color=f"C{k}",
               yerr=[rows["auroc"] - rows["ci_low"], rows["ci_high"] - rows["auroc"]], capsize=2,
               error_kw={"lw": 0.8})
    ax.set_xticks(range(len(groups)), groups)
    ax.axhline(0.5, color="black", lw=0.6)
    ax.set(ylim=(0, 1.02), ylabel="AUROC (95% CI)")
    ax.legend(fontsize=8)
    return ax


def layer_sweep(table: pd.DataFrame, layers: list[str], baselines: list[str], titles: dict[str, str],
                chosen: str | None = None, axes=None):
    """Test AUROC per layer (``table`` rows with features ``blocks.{i}``: auroc, ci_low, ci_high per test
    set) as a line with its interval shaded, one panel per test set of ``titles`` ({test: title}), each
    baseline of ``baselines`` as a dashed line and the ``chosen`` layer as a dotted one."""
    axes = axes if axes is not None else plt.subplots(1, len(titles), figsize=(5 * len(titles), 4), sharey=True)[1]
    sweep = table[table["features"].isin(layers)]
    block = sweep["features"].str.split(".").str[1].astype(int)
    for ax, (test, title) in zip(np.atleast_1d(axes), titles.items()):
        one, x = sweep[sweep["test"] == test], block[sweep["test"] == test]
        ax.fill_between(x, one["ci_low"], one["ci_high"], alpha=0.2, color="C0")
        ax.plot(x, one["auroc"], "o-", ms=4, color="C0", label="embeddings (logistic probe)")
        for k, name in enumerate(baselines):
            ax.axhline(table[(table["features"] == name) & (table["test"] == test)]["auroc"].item(),
                       color=["C3", "C1", "C2", "C4"][k % 4], ls="--", label=name)
        if chosen is not None:
            ax.axvline(int(chosen.split(".")[1]), color="grey", lw=0.8, ls=":", label=f"chosen on validation: {chosen}")
        ax.axhline(0.5, color="black", lw=0.6)
        ax.set(title=title, xlabel="block", ylabel="test AUROC (95% CI shaded)")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="lower right")
    return axes


def base_heatmap(grid: pd.DataFrame, ax, label: str, cmap: str = "RdBu", center: float = 0.0):
    """A positions x A/C/G/T table (``evo2kit.analysis.ism.ism_matrix``) as a heatmap, one row per
    base, one column per position, NaN (the reference base, an SNV not measured) in grey."""
    values = grid.T.to_numpy(float)
    lim = np.nanmax(np.abs(values - center)) if np.isfinite(values).any() else 1.0
    cmap = plt.get_cmap(cmap).copy()
    cmap.set_bad("0.85")
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=cmap, vmin=center - lim, vmax=center + lim,
                      interpolation="nearest", extent=(grid.index[0] - 0.5, grid.index[-1] + 0.5, 3.5, -0.5))
    ax.set_yticks(range(4), list(grid.columns))
    plt.colorbar(image, ax=ax, label=label, fraction=0.03, pad=0.01)
    plain_positions(ax)
    return ax


def plain_positions(ax):
    """Genomic positions written out in full on the x axis (41,276,100, not 100 + 4.1276e7)."""
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    return ax


def exon_marks(ax, exons: pd.DataFrame, layout: pd.DataFrame | None = None):
    """Shade the exons (rows with 1-based inclusive ``start``, ``end``) within the axes' x range,
    draw a dashed line at each splice site (an exon edge inside it) and, with ``layout`` (pos,
    codon_position), a tick at the first base of every codon along the bottom."""
    lo, hi = ax.get_xlim()
    for e in exons.itertuples():
        if e.end >= lo and e.start <= hi:
            ax.axvspan(e.start - 0.5, e.end + 0.5, color="gold", alpha=0.25, lw=0)
            for edge in (e.start - 0.5, e.end + 0.5):
                if lo < edge < hi:
                    ax.axvline(edge, color="k", ls="--", lw=0.8)
    if layout is not None:
        first = layout.loc[layout["codon_position"] == 1, "pos"].to_numpy()
        ax.plot(first, np.zeros(len(first)), "|", color="purple", ms=6, transform=ax.get_xaxis_transform(),
                clip_on=False)
    ax.set_xlim(lo, hi)
    plain_positions(ax)
    return ax


def logo(probs: pd.DataFrame, ax):
    """A sequence logo of per-position base probabilities (positions x A/C/G/T, rows summing to
    1; the index is the position): each column as tall as its information (2 bits minus the
    entropy: 0 for a uniform guess, 2 for a certain base), each letter its share of it (logomaker)."""
    import logomaker  # noqa: PLC0415 (only the notebooks that draw logos need it)

    bits = logomaker.transform_matrix(probs.reset_index(drop=True).astype(np.float64), from_type="probability",
                                      to_type="information")  # float64: logomaker writes float64 into it
    logomaker.Logo(bits.set_axis(probs.index.to_numpy()), ax=ax, color_scheme="classic", show_spines=False)
    ax.set(xlim=(probs.index[0] - 0.5, probs.index[-1] + 0.5), ylabel="bits")
    plain_positions(ax)
    return ax


def feature_tracks(tracks: dict[str, np.ndarray], spans: dict[str, list[tuple[int, int]]], start: int = 0,
                   title: str = "", colors: dict[str, str] | None = None):
    """One panel per track (name -> (L,) values along a stretch starting at coordinate ``start``),
    sharing the x axis, every panel shaded with ``spans`` (label -> [(start, end)], 0-based, end
    excluded, same coordinates), the annotation drawn again as bars in a last panel. Returns the figure."""
    colors = colors or {}
    names = list(tracks)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 0.9 * len(names) + 1.2), sharex=True,
                             gridspec_kw={"height_ratios": [1] * len(names) + [0.6]})
    x = start + np.arange(len(next(iter(tracks.values()))))
    palette = dict(zip(spans, sns.color_palette("Set2", len(spans))))
    palette.update(colors)
    for ax, name in zip(axes, names):
        ax.plot(x, tracks[name], lw=0.6, color="C0")
        for label, intervals in spans.items():
            for a, b in intervals:
                ax.axvspan(a, b, color=palette[label], alpha=0.25, lw=0)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for row, (label, intervals) in enumerate(spans.items()):
        for a, b in intervals:
            axes[-1].add_patch(plt.Rectangle((a, row + 0.15), b - a, 0.7, color=palette[label], lw=0))
    axes[-1].set(ylim=(0, max(1, len(spans))), yticks=np.arange(len(spans)) + 0.5, xlim=(x[0], x[-1]))
    axes[-1].set_yticklabels(list(spans), fontsize=8)
    axes[-1].set_xlabel("position")
    plain_positions(axes[-1])
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout(h_pad=0.2)
    return fig
