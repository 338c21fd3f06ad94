"""The cohort table (one row per patient) and its forest plot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bayestumor.utils import atomic_path

FOREST_PARAMETERS = (
    (("D_w", "D_w (mm²/day)"), ("rho", "ρ (1/day)")),
    (("mu_D", "μ_D = √(D_w·T) (mm)"), ("mu_rho", "μ_ρ = √(ρ·T)")),
)
"""Panels of the forest plot, (name, axis label): the physical parameters, else the scale-free."""

_BASE_COLUMNS = ("patient", "status", "error", "seed", "key")


def cohort_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per patient record: patient, status, the flattened summary, error, seed, key.

    Nested summary keys are joined with dots (``{"parameters": {"D_w": {"mean": m}}}`` →
    column ``parameters.D_w.mean``), lists with "; ". Rows keep the order of `records`;
    columns the order in which keys first appear.
    """
    rows = []
    for record in records:
        row = {"patient": record["patient"], "status": record["status"]}
        summary = _flatten(record.get("summary") or {})
        row.update((k, v) for k, v in summary.items() if k not in _BASE_COLUMNS)
        row.update(error=record.get("error"), seed=record["seed"], key=record["key"])
        rows.append(row)
    # Nullable dtypes: a column keeps its type (and round-trips through Parquet) when error
    # rows leave it empty.
    table = pd.DataFrame(rows).convert_dtypes()
    tail = ["error", "seed", "key"]
    return table[[c for c in table.columns if c not in tail] + tail]


def parameter_column(table: pd.DataFrame, name: str, statistic: str) -> str | None:
    """The column of `statistic` (``mean``, ``q05``...) of parameter `name`, nested or not."""
    wanted = f"{name}.{statistic}"
    return next((c for c in table.columns if c == wanted or c.endswith(f".{wanted}")), None)


def write_table(
    records: Iterable[Mapping[str, Any]], csv_path: Path, parquet_path: Path
) -> pd.DataFrame:
    """Write the cohort table atomically as CSV and Parquet; returns it."""
    table = cohort_table(records)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(parquet_path) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def plot_cohort_forest(
    table: pd.DataFrame,
    parameters: Sequence[tuple[str, str]] | None = None,
    interval: tuple[str, str] = ("q05", "q95"),
) -> Figure:
    """Forest plot: per patient, the posterior mean and interval of each parameter.

    Args:
        table: the cohort table; uses the rows with status ``done`` and, per parameter, the
            columns of its mean and `interval` quantiles (`parameter_column`).
        parameters: (name, axis label) per panel; default D_w and ρ, else μ_D and μ_ρ (the
            scale-free parametrisation). Log-scaled axes: rates span orders of magnitude.
        interval: the quantiles drawn as the horizontal bar (default 5 %–95 %).

    Raises:
        ValueError: the table has no columns for these parameters.
    """
    statistics = (*interval, "mean")
    if parameters is None:
        parameters = next(
            (
                panels
                for panels in FOREST_PARAMETERS
                if all(parameter_column(table, name, "mean") for name, _ in panels)
            ),
            FOREST_PARAMETERS[0],
        )
    columns = {
        name: [parameter_column(table, name, statistic) for statistic in statistics]
        for name, _ in parameters
    }
    missing = [name for name, found in columns.items() if None in found]
    if missing:
        raise ValueError(f"the table has no {'/'.join(statistics)} columns for {missing}")
    done = table[table["status"] == "done"]
    figure = Figure(
        figsize=(4.0 * len(parameters), 1.0 + 0.3 * max(len(done), 1)), layout="constrained"
    )
    axes = figure.subplots(1, len(parameters), sharey=True, squeeze=False)[0]
    rows = np.arange(len(done))[::-1]
    for ax, (name, label) in zip(axes, parameters, strict=True):
        low, high, mean = (done[c].to_numpy(float, na_value=np.nan) for c in columns[name])
        ax.hlines(rows, low, high, color="tab:blue", linewidth=2)
        ax.plot(mean, rows, "o", color="black", markersize=4)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(rows, done["patient"].tolist())
    figure.suptitle(f"Posterior mean and {interval[0]}–{interval[1]} interval per patient")
    return figure


def write_forest_plot(table: pd.DataFrame, path: Path) -> Path | None:
    """Save `plot_cohort_forest(table)` atomically as PNG; returns None if there is nothing to plot.

    Nothing to plot: no patient is done, or the summaries have no D_w/ρ (nor μ_D/μ_ρ) statistics.
    """
    if not (table["status"] == "done").any():
        return None
    try:
        figure = plot_cohort_forest(table)
    except ValueError:
        return None
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return path


def _flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → flat dict with dotted keys; lists joined into strings."""
    flat = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            flat[f"{prefix}{key}"] = "; ".join(map(str, value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
