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
