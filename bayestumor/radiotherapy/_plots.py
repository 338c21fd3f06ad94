"""Plots of burden series with their bootstrap, single-series Bayesian and pooled bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bayestumor.radiotherapy._bayes import BayesResult
from bayestumor.radiotherapy._bootstrap import BootstrapResult
from bayestumor.radiotherapy._pooled import PooledResult


def plot_bootstrap(
    result: BootstrapResult, index: int = 0, ax: Axes | None = None, *, units: str = "burden"
) -> Axes:
    """Data, bootstrap median and band, RT start and forecasts of series ``index``.

    Args:
        result: output of `bootstrap`.
        index: which series.
        ax: axes to draw on (a new figure if None).
        units: y-axis label, e.g. ``"area (mm²)"`` or ``"volume (ml)"``.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    mask = np.asarray(result.mask[index])
    time = np.asarray(result.time_days[index])[mask]
    value = np.asarray(result.value[index])[mask]
    grid = np.asarray(result.grid_days[index])
    lower, median, upper = np.asarray(result.grid_quantiles[index])
    band = f"bootstrap band ({result.replicates.converged.shape[1] - int(result.n_failed[index])} fits)"
    ax.fill_between(grid, lower, upper, color="C0", alpha=0.25, label=band)
    ax.plot(grid, median, color="C0", label="bootstrap median")
    if result.setup == "train":
        ax.plot(time[:-1], value[:-1], "ko", label="fitted visits")
        ax.plot(time[-1:], value[-1:], "rs", label="held-out visit")
    else:
        ax.plot(time, value, "ko", label="visits")
    forecast_days = np.asarray(result.forecast_days[index])
    f_lower, f_median, f_upper = np.asarray(result.forecast_quantiles[index])
    ax.errorbar(
        forecast_days,
        f_median,
        yerr=[f_median - f_lower, f_upper - f_median],
        fmt="D",
        color="C2",
        capsize=3,
        label="forecast",
    )
    ax.axvline(float(result.t_rt_days[index]), color="grey", linestyle="--", label="RT start")
    ax.set(xlabel="days since first scan", ylabel=units, title=str(result.names[index]))
    ax.legend(fontsize="small")
    return ax


def plot_bayes(result: BayesResult, ax: Axes, *, color: str = "C1") -> Axes:
    """Add the posterior median, 95 % credible band and predictive band of a `BayesResult`."""
    grid = np.asarray(result.grid_days)
    lower, median, upper = np.asarray(result.curve_quantiles)
    p_lower, _, p_upper = np.asarray(result.predictive_quantiles)
    ax.fill_between(grid, p_lower, p_upper, color=color, alpha=0.12, label="posterior predictive")
    ax.fill_between(grid, lower, upper, color=color, alpha=0.3, label="posterior band of A(t)")
    ax.plot(grid, median, color=color, label="posterior median")
    return ax


def plot_pooled(
    result: PooledResult,
    index: int = 0,
    ax: Axes | None = None,
    *,
    units: str = "burden",
    color: str = "C1",
) -> Axes:
    """Data, pooled posterior-predictive median and bands (every level), RT start.

    In the ``"train"`` setup the held-out last visit is drawn as a red square, so a reader sees
    at once whether the bands contain it.

    Args:
        result: output of `pooled_bands`.
        index: which series.
        ax: axes to draw on (a new figure if None).
        units: y-axis label, e.g. ``"area (mm²)"``.
        color: colour of the bands.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    mask = np.asarray(result.mask[index])
    time = np.asarray(result.time_days[index])[mask]
    value = np.asarray(result.value[index])[mask]
    grid = np.asarray(result.grid_days[index])
    quantiles = np.asarray(result.grid_quantiles[index])
    n_levels = len(result.levels)
    for j, level in enumerate(reversed(result.levels)):
        ax.fill_between(
            grid,
            quantiles[j],
            quantiles[-1 - j],
            color=color,
            alpha=0.12 + 0.1 * j,
            label=f"{level:.0%} predictive band",
        )
    ax.plot(grid, quantiles[n_levels], color=color, label="posterior predictive median")
    if result.setup == "train":
        ax.plot(time[:-1], value[:-1], "ko", label="fitted visits")
        ax.plot(time[-1:], value[-1:], "rs", label="held-out visit")
    else:
        ax.plot(time, value, "ko", label="visits")
    ax.axvline(float(result.t_rt_days[index]), color="grey", linestyle="--", label="RT start")
    ax.set(xlabel="days since first scan", ylabel=units, title=str(result.names[index]))
    ax.legend(fontsize="small")
    return ax
