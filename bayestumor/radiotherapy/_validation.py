"""Forecast validation at a held-out visit: errors, band coverage, a calibration table.

For each series, the forecast of its held-out (last) visit is a set of predictive draws (the
pooled posterior predictive, or bootstrap replicates times the bootstrap's noise). Scored:

- ``nrmse``: the normalised RMSE at the held-out visit, ``|ŷ − y| / y`` with ``ŷ`` the
  predictive median (with one held-out visit per series the RMSE is ``|ŷ − y|``, normalised by
  the observed value, as Laslo et al. (2025) normalise by the mean observation); pooled as the
  median over series (``median_nrmse``) and as ``RMSE / mean(y)`` over series (``nrmse``);
- ``r2`` across series, ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²``: ``None`` (JSON null, never NaN) with the
  reason in ``r2_undefined`` when fewer than two series or all held-out values are equal;
- ``covered_<p>``: whether the central ``p`` band of the draws contains the observation, per
  series; pooled as the coverage of each band with a Clopper–Pearson 95 % interval — the
  calibration table (a calibrated 95 % band covers 95 % of held-out visits, up to binomial
  scatter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bayestumor._custom_types import ArrayLike, Float
from bayestumor.errors import InputError


@dataclass(frozen=True)
class ForecastReport:
    """Scores of held-out forecasts of many series (see the module docstring).

    Attributes:
        method: what produced the draws, e.g. ``"pooled"`` or ``"bootstrap"``.
        levels: central band probabilities.
        per_series: one dict per series (``series, heldout_days, observed, median, nrmse,
            log_error, lower_<p>, upper_<p>, covered_<p>``; ``scored = False`` and no scores
            where the series had no usable draws).
        calibration: one dict per level: ``level, coverage, n, covered, ci_low, ci_high``.
        summary: pooled ``median_nrmse``, ``nrmse``, ``r2`` (or None with ``r2_undefined``),
            ``n_scored``, ``n_not_scored``, ``coverage_<p>``.
    """

    method: str
    levels: tuple[float, ...]
    per_series: tuple[dict[str, object], ...]
    calibration: tuple[dict[str, float], ...]
    summary: dict[str, object]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (no NaN: undefined numbers are None)."""
        return _clean(
            {
                "method": self.method,
                "levels": list(self.levels),
                "summary": self.summary,
                "calibration": list(self.calibration),
                "per_series": list(self.per_series),
            }
        )

    def calibration_lines(self) -> list[str]:
        """The calibration table as aligned text lines."""
        lines = [f"{'band':>6}  {'coverage':>8}  {'95% CI':>15}  {'n':>5}"]
        for row in self.calibration:
            lines.append(
                f"{row['level']:>6.0%}  {row['coverage']:>8.1%}  "
                f"[{row['ci_low']:.1%}, {row['ci_high']:.1%}]  {row['n']:>5d}"
            )
        return lines


def json_ready(value: object) -> object:
    """``value`` with NaN/inf floats as None and NumPy scalars as Python ones (for JSON)."""
    return _clean(value)


def _clean(value: object) -> object:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def clopper_pearson(covered: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of a coverage ``covered / n``."""
    if n == 0:
        return (float("nan"), float("nan"))
    alpha = 1 - confidence
    low = stats.beta.ppf(alpha / 2, covered, n - covered + 1) if covered > 0 else 0.0
    high = stats.beta.ppf(1 - alpha / 2, covered + 1, n - covered) if covered < n else 1.0
    return (float(low), float(high))


def forecast_report(
    names: Sequence[str],
    heldout_days: Float[ArrayLike, " series"],
    observed: Float[ArrayLike, " series"],
    draws: Float[ArrayLike, "series draw"],
    *,
    levels: Sequence[float] = (0.5, 0.8, 0.95),
    method: str = "",
) -> ForecastReport:
    """Score predictive draws of each series' held-out visit against the observed value.

    Args:
        names: series identifiers.
        heldout_days: ``(series,)`` held-out visit times, days since first scan.
        observed: ``(series,)`` observed burden at the held-out visit (user units).
        draws: ``(series, draw)`` predictive draws there; NaN draws (failed fits) are ignored,
            and a series without any finite draw is not scored.
        levels: central band probabilities of the calibration table.
        method: label stored in the report.
    """
    observed = np.asarray(observed, float)
    draws = np.asarray(draws, float)
    heldout_days = np.asarray(heldout_days, float)
    if draws.ndim != 2 or draws.shape[0] != observed.shape[0] != len(names):
        raise InputError("draws must be (series, draw) with one observed value per series")
    levels = tuple(sorted(float(v) for v in levels))
    per_series = []
    scored = np.array([np.isfinite(row).any() for row in draws])
    medians = np.full(observed.shape, np.nan)
    covered = {level: np.zeros(observed.shape, bool) for level in levels}
    for i, name in enumerate(names):
        row: dict[str, object] = {
            "series": str(name),
            "heldout_days": float(heldout_days[i]),
            "observed": float(observed[i]),
            "scored": bool(scored[i]),
        }
        if scored[i]:
            finite = draws[i][np.isfinite(draws[i])]
            medians[i] = float(np.median(finite))
            row["median"] = medians[i]
            row["nrmse"] = abs(medians[i] - observed[i]) / observed[i]
            row["log_error"] = float(np.log(medians[i] / observed[i]))
            for level in levels:
                low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
                covered[level][i] = low <= observed[i] <= high
                key = f"{level:g}"
                row[f"lower_{key}"], row[f"upper_{key}"] = float(low), float(high)
                row[f"covered_{key}"] = bool(covered[level][i])
        per_series.append(row)
    y, y_hat = observed[scored], medians[scored]
    n = int(scored.sum())
    calibration = []
    summary: dict[str, object] = {"n_scored": n, "n_not_scored": int((~scored).sum())}
    for level in levels:
        k = int(covered[level][scored].sum())
        low, high = clopper_pearson(k, n)
        calibration.append(
            {
                "level": level,
                "coverage": k / n if n else float("nan"),
                "covered": k,
                "n": n,
                "ci_low": low,
                "ci_high": high,
            }
        )
        summary[f"coverage_{level:g}"] = k / n if n else float("nan")
    summary["median_nrmse"] = float(np.median(np.abs(y_hat - y) / y)) if n else float("nan")
    summary["nrmse"] = float(np.sqrt(np.mean((y_hat - y) ** 2)) / np.mean(y)) if n else float("nan")
    total = float(np.sum((y - y.mean()) ** 2)) if n else 0.0
    if n >= 2 and total > 0:
        summary["r2"] = float(1 - np.sum((y - y_hat) ** 2) / total)
    else:
        summary["r2"] = None
        summary["r2_undefined"] = (
            "R² across series needs at least two scored series with different held-out values"
            f" ({n} scored)"
        )
    return ForecastReport(
        method=method,
        levels=levels,
        per_series=tuple(_clean(row) for row in per_series),
        calibration=tuple(calibration),
        summary=_clean(summary),
    )
