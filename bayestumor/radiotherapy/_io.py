"""Reading burden series from CSV and writing fit outputs (CSV/JSON), atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bayestumor.errors import InputError
from bayestumor.radiotherapy._bootstrap import BootstrapResult, metrics
from bayestumor.radiotherapy._data import Series
from bayestumor.radiotherapy._ode import PARAM_NAMES
from bayestumor.radiotherapy._pooled import PooledResult
from bayestumor.radiotherapy._select import Selection
from bayestumor.radiotherapy._validation import ForecastReport, json_ready
from bayestumor.utils import atomic_path

REQUIRED_COLUMNS = ("series", "time_days", "value")
RT_COLUMN = "t_rt_days"


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"series": str})
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"not a readable CSV file ({error})", path) from None


def read_series_csv(path: str | Path, rt_path: str | Path | None = None) -> list[Series]:
    """Read series from a long CSV with columns ``series, time_days, value``.

    The RT start (days, same time axis: days since the first scan) comes from a
    ``t_rt_days`` column (constant within each series) or from a sidecar CSV ``rt_path`` with
    columns ``series, t_rt_days``. Rows are taken in file order within each series; unsorted or
    duplicate times, non-positive values and a missing RT start raise `InputError`.
    """
    path = Path(path)
    table = _read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; need {list(REQUIRED_COLUMNS)}", path)
    if table.empty:
        raise InputError("no rows", path)
    for column in ("time_days", "value"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
        if table[column].isna().any():
            row = int(table[column].isna().to_numpy().argmax()) + 2
            raise InputError(
                f"column {column!r} has a missing or non-numeric entry (line {row})", path
            )
    rt_source = path
    if rt_path is not None:
        rt_source = Path(rt_path)
        sidecar = _read_csv(rt_source)
        if "series" not in sidecar.columns or RT_COLUMN not in sidecar.columns:
            raise InputError(f"RT sidecar needs columns 'series' and {RT_COLUMN!r}", rt_source)
        if sidecar["series"].duplicated().any():
            raise InputError("RT sidecar lists a series twice", rt_source)
        starts = dict(
            zip(sidecar["series"], pd.to_numeric(sidecar[RT_COLUMN], errors="coerce"), strict=True)
        )
    elif RT_COLUMN in table.columns:
        starts = {}
        for name, group in table.groupby("series", sort=False):
            values = pd.to_numeric(group[RT_COLUMN], errors="coerce").dropna().unique()
            if len(values) > 1:
                raise InputError(f"series {name!r}: {RT_COLUMN} differs between rows", path)
            starts[name] = values[0] if len(values) else np.nan
    else:
        raise InputError(
            f"missing RT start: add a {RT_COLUMN!r} column or pass an RT sidecar CSV", path
        )
    series = []
    for name, group in table.groupby("series", sort=False):
        if name not in starts:
            raise InputError(f"series {name!r}: missing RT start", rt_source)
        series.append(
            Series(
                name=str(name),
                time_days=group["time_days"].to_numpy(float),
                value=group["value"].to_numpy(float),
                t_rt_days=float(starts[name]),
                source=path if rt_path is None or np.isfinite(starts[name]) else rt_source,
            )
        )
    return series


def parameters_table(result: BootstrapResult) -> pd.DataFrame:
    """One row per series: point estimates, bootstrap median and 95 % range, convergence."""
    rows = []
    for i, name in enumerate(result.names):
        row: dict[str, object] = {
            "series": name,
            "t_rt_days": float(result.t_rt_days[i]),
            "converged": bool(result.point.converged[i]),
            "n_steps": int(result.point.n_steps[i]),
            "n_replicates": int(result.replicates.converged.shape[1]),
            "n_failed": int(result.n_failed[i]),
        }
        for name_ in PARAM_NAMES:
            draws = np.asarray(getattr(result.replicates.params, name_)[i], dtype=float)
            ok = np.asarray(result.replicates.converged[i])
            row[name_] = float(getattr(result.point.params, name_)[i])
            lo, med, hi = np.quantile(draws[ok], [0.025, 0.5, 0.975]) if ok.any() else (np.nan,) * 3
            row[f"{name_}_boot_median"], row[f"{name_}_boot_lower"], row[f"{name_}_boot_upper"] = (
                med,
                lo,
                hi,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def bands_table(result: BootstrapResult) -> pd.DataFrame:
    """Long table of the bands: ``series, time_days, kind (grid|forecast), lower, median, upper``."""
    frames = []
    for i, name in enumerate(result.names):
        for kind, days, quantiles in (
            ("grid", result.grid_days[i], result.grid_quantiles[i]),
            ("forecast", result.forecast_days[i], result.forecast_quantiles[i]),
        ):
            q = np.asarray(quantiles, dtype=float)
            frames.append(
                pd.DataFrame(
                    {
                        "series": name,
                        "time_days": np.asarray(days, dtype=float),
                        "kind": kind,
                        "lower": q[0],
                        "median": q[1],
                        "upper": q[2],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def pooled_parameters_table(result: PooledResult) -> pd.DataFrame:
    """One row per series: posterior median and central 95 % interval of every parameter and
    of the series' noise σ (natural units: user units, 1/day, days)."""
    rows = []
    for i, name in enumerate(result.names):
        row: dict[str, object] = {"series": name, "t_rt_days": float(result.t_rt_days[i])}
        draws = {n: np.asarray(getattr(result.params, n))[:, i] for n in PARAM_NAMES}
        draws["sigma"] = np.asarray(result.sigma)[:, i]
        for name_, values in draws.items():
            lo, med, hi = np.quantile(values, [0.025, 0.5, 0.975])
            row[name_], row[f"{name_}_lower"], row[f"{name_}_upper"] = med, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def pooled_bands_table(result: PooledResult) -> pd.DataFrame:
    """Long table of the pooled predictive bands: ``series, time_days, median`` and
    ``lower_<p>, upper_<p>`` for each band level ``p``."""
    frames = []
    n_levels = len(result.levels)
    for i, name in enumerate(result.names):
        q = np.asarray(result.grid_quantiles[i], dtype=float)
        columns: dict[str, object] = {
            "series": name,
            "time_days": np.asarray(result.grid_days[i], dtype=float),
            "median": q[n_levels],
        }
        for j, level in enumerate(reversed(result.levels)):
            columns[f"lower_{level:g}"], columns[f"upper_{level:g}"] = q[j], q[-1 - j]
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def write_outputs(
    result: BootstrapResult | None,
    out_dir: Path,
    settings: dict[str, object],
    *,
    selection: Selection | None = None,
    pooled: PooledResult | None = None,
    reports: dict[str, ForecastReport] | None = None,
) -> None:
    """Write the fit outputs into ``out_dir``, atomically; valid JSON (no NaN).

    Bootstrap: ``parameters.csv`` (with the chosen model per series when ``selection`` is
    given), ``bands.csv``; model selection: ``model_selection.csv`` (AICc and Akaike weights);
    pooled posterior: ``pooled_parameters.csv``, ``pooled_bands.csv``; held-out forecasts
    (``reports``, train setup): ``forecast.csv`` (one row per series and method);
    ``metrics.json`` summarises all of it (calibration tables included).
    """
    tables: list[tuple[str, pd.DataFrame]] = []
    summary: dict[str, object] = {"settings": settings}
    if result is not None:
        parameters = parameters_table(result)
        if selection is not None:
            parameters.insert(1, "model", [m or None for m in selection.model])
        tables += [("parameters.csv", parameters), ("bands.csv", bands_table(result))]
        summary |= {
            "n_series": len(result.names),
            "n_point_fits_not_converged": int(np.sum(~np.asarray(result.point.converged))),
            "n_replicates_failed": {
                n: int(f) for n, f in zip(result.names, np.asarray(result.n_failed), strict=True)
            },
            "metrics": metrics(result),
        }
    if selection is not None:
        table = pd.DataFrame(selection.table())
        tables.append(("model_selection.csv", table))
        summary["model_selection"] = {
            "counts": {
                m or "none (too few visits)": selection.model.count(m)
                for m in sorted(set(selection.model))
            },
            "n_chosen_by_aicc": int(np.sum(selection.by_aicc)),
        }
    if pooled is not None:
        tables += [
            ("pooled_parameters.csv", pooled_parameters_table(pooled)),
            ("pooled_bands.csv", pooled_bands_table(pooled)),
        ]
        summary["pooled"] = {
            "n_series": len(pooled.names),
            "levels": list(pooled.levels),
            "diagnostics": pooled.diagnostics,
            "population_median": {
                name: float(np.median(np.asarray(pooled.population_mean)[:, j]))
                for j, name in enumerate(pooled.pooled)
            },
        }
    if reports:
        rows = [
            {"method": method, **row}
            for method, report in reports.items()
            for row in report.per_series
        ]
        tables.append(("forecast.csv", pd.DataFrame(rows)))
        summary["forecast"] = {
            method: {"summary": report.summary, "calibration": list(report.calibration)}
            for method, report in reports.items()
        }
    for file_name, table in tables:
        with atomic_path(out_dir / file_name) as tmp:
            table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(json_ready(summary), indent=2, allow_nan=False))
