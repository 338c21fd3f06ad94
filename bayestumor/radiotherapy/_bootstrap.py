"""Bootstrap uncertainty bands for the RT burden model: all replicates in one jitted vmap.

Noise law: each replicate multiplies every observed value by an independent lognormal factor,
``y*_i = y_i · exp(σ ε_i)`` with ``ε_i ~ N(0, 1)`` and ``σ = noise`` (default 0.1, i.e. about
10 % multiplicative noise; median-preserving and always positive). Every replicate is refitted
with the same multi-start least squares as the original data (`FitConfig`). Replicates whose fit
did not converge are counted (``n_failed``), reported, and left out of the band quantiles.
Following Laslo et al. (arXiv:2509.09610, 2025), setup ``"all"`` fits every visit and
``"train"`` holds out the last visit to score the forecast there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Key, UInt32
from tqdm.auto import tqdm

from bayestumor._custom_types import Array, Bool, Float, Int, PRNGKeyArray
from bayestumor.errors import InputError
from bayestumor.radiotherapy._data import Series, SeriesBatch
from bayestumor.radiotherapy._fit import (
    FitConfig,
    FitResult,
    _fit_one,
    check_enough_points,
    predict_log,
)


@dataclass(frozen=True)
class BootstrapConfig:
    """Options of the bootstrap bands (hashable).

    Attributes:
        n_replicates: number of noisy replicates of each series.
        noise: σ of the multiplicative lognormal noise (0.1 ≈ 10 %).
        band: lower and upper quantiles of the band (default the central 95 %).
        setup: ``"all"`` fits every visit; ``"train"`` holds out each series' last visit.
        n_grid: points of the per-series time grid, from 0 to the last visit + ``horizon_days``.
        horizon_days: how far past the last visit the grid extends, days.
        forecast_after_days: forecast times, in days after each series' last visit.
    """

    n_replicates: int = 100
    noise: float = 0.1
    band: tuple[float, float] = (0.025, 0.975)
    setup: str = "all"
    n_grid: int = 121
    horizon_days: float = 90.0
    forecast_after_days: tuple[float, ...] = (30.0, 90.0)

    def __post_init__(self) -> None:
        if self.setup not in ("all", "train"):
            raise InputError(f"setup must be 'all' or 'train', not {self.setup!r}")
        if self.n_replicates < 2:
            raise InputError("n_replicates must be ≥ 2")
        if not self.noise > 0:
            raise InputError("noise must be > 0")
        low, high = self.band
        if not 0 < low < 0.5 < high < 1:
            raise InputError(
                f"band quantiles must satisfy 0 < low < 0.5 < high < 1, got {self.band}"
            )
        object.__setattr__(self, "band", (float(low), float(high)))
        object.__setattr__(self, "forecast_after_days", tuple(map(float, self.forecast_after_days)))


class BootstrapResult(eqx.Module):
    """Bootstrap fits and bands; arrays have a leading ``series`` axis.

    Quantile arrays hold ``(lower, median, upper)`` on their second axis; burdens in user units.

    Attributes:
        names: series identifiers.
        setup: ``"all"`` or ``"train"``.
        time_days, value, mask, t_rt_days: the padded input series (see `SeriesBatch`).
        point: fit to the (training) data themselves.
        fitted_values: ``(series, n)`` point-fit burden at each visit (padding repeats).
        replicates: ``(series, replicate)`` fits of the noisy replicates.
        n_failed: ``(series,)`` replicates whose fit did not converge (excluded from bands).
        grid_days: ``(series, n_grid)`` time grid, days since the first scan.
        grid_quantiles: ``(series, 3, n_grid)`` band on the grid.
        forecast_days: ``(series, n_forecast)`` forecast times.
        forecast_quantiles: ``(series, 3, n_forecast)``.
        heldout_days, heldout_value: ``(series,)`` last visit (held out in ``"train"``).
        heldout_quantiles: ``(series, 3)`` band of the curve at the last visit.
        heldout_draws: ``(series, replicate)`` predictive draws at the last visit: replicate
            curves times ``exp(noise · ε)`` (NaN for failed replicates); `forecast_report`
            scores them against the held-out value.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    setup: str = eqx.field(static=True)
    time_days: Float[Array, "series n"]
    value: Float[Array, "series n"]
    mask: Bool[Array, "series n"]
    t_rt_days: Float[Array, " series"]
    point: FitResult
    fitted_values: Float[Array, "series n"]
    replicates: FitResult
    n_failed: Int[Array, " series"]
    grid_days: Float[Array, "series grid"]
    grid_quantiles: Float[Array, "series 3 grid"]
    forecast_days: Float[Array, "series forecast"]
    forecast_quantiles: Float[Array, "series 3 forecast"]
    heldout_days: Float[Array, " series"]
    heldout_value: Float[Array, " series"]
    heldout_quantiles: Float[Array, "series 3"]
    heldout_draws: Float[Array, "series replicate"]


def _bootstrap_one(
    key: PRNGKeyArray,
    value: Float[Array, " n"],
    time_days: Float[Array, " n"],
    mask: Bool[Array, " n"],
    t_rt_days: Float[Array, ""],
    noise: Float[Array, ""],
    band: Float[Array, " 2"],
    hold_out_last: Bool[Array, ""],
    fit_config: FitConfig,
    config: BootstrapConfig,
) -> dict[str, Array]:
    """Point fit, replicate fits and bands for one padded series; pure, vmappable.

    ``noise``, ``band`` and ``hold_out_last`` are traced so that changing them does not
    recompile; ``config`` supplies the static shapes (replicates, grid, forecasts).
    """
    last = jnp.sum(mask) - 1
    weight = mask.astype(value.dtype)
    weight = weight.at[last].set(jnp.where(hold_out_last, 0.0, weight[last]))
    fit = partial(
        _fit_one, time_days=time_days, weight=weight, t_rt_days=t_rt_days, config=fit_config
    )
    point = fit(value)
    epsilon = jax.random.normal(key, (config.n_replicates, value.shape[0]), value.dtype)
    replicates = jax.vmap(fit)(value * jnp.exp(noise * epsilon))

    t_last = time_days[last]
    grid = jnp.linspace(0.0, t_last + config.horizon_days, config.n_grid, dtype=value.dtype)
    forecast = t_last + jnp.asarray(config.forecast_after_days, value.dtype)
    times = jnp.concatenate([grid, forecast, t_last[None]])
    curves = jnp.exp(
        jax.vmap(lambda theta: predict_log(theta, times, t_rt_days, fit_config.forward))(
            replicates.theta
        )
    )
    curves = jnp.where(replicates.converged[:, None], curves, jnp.nan)
    # Predictive draws at the last visit: each replicate's curve times the bootstrap's own
    # noise law, so that they can be compared with a measured (noisy) held-out value.
    predictive_noise = jax.random.normal(
        jax.random.fold_in(key, 1), (config.n_replicates,), value.dtype
    )
    heldout_draws = curves[:, -1] * jnp.exp(noise * predictive_noise)
    levels = jnp.stack([band[0], 0.5, band[1]]).astype(value.dtype)
    quantiles = jnp.nanquantile(curves, levels, axis=0)
    n_grid = config.n_grid
    return {
        "time_days": time_days,
        "value": value,
        "mask": mask,
        "t_rt_days": t_rt_days,
        "point": point,
        "fitted_values": jnp.exp(
            predict_log(point.theta, time_days, t_rt_days, fit_config.forward)
        ),
        "replicates": replicates,
        "n_failed": jnp.sum(~replicates.converged),
        "grid_days": grid,
        "grid_quantiles": quantiles[:, :n_grid],
        "forecast_days": forecast,
        "forecast_quantiles": quantiles[:, n_grid:-1],
        "heldout_days": t_last,
        "heldout_value": value[last],
        "heldout_quantiles": quantiles[:, -1],
        "heldout_draws": heldout_draws,
    }


@partial(jax.jit, static_argnames=("fit_config", "config"))
def _bootstrap_arrays(
    keys: Key[Array, " series"] | UInt32[Array, "series _"],  # one (typed or raw) key per series
    value: Array,
    time_days: Array,
    mask: Array,
    t_rt_days: Array,
    noise: Array,
    band: Array,
    hold_out_last: Array,
    fit_config: FitConfig,
    config: BootstrapConfig,
) -> dict[str, Array]:
    dtype = jnp.result_type(float)
    one = partial(_bootstrap_one, fit_config=fit_config, config=config)
    return jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None, None, None))(
        keys,
        value.astype(dtype),
        time_days.astype(dtype),
        mask,
        t_rt_days.astype(dtype),
        noise.astype(dtype),
        band.astype(dtype),
        hold_out_last,
    )


def _shape_config(config: BootstrapConfig) -> BootstrapConfig:
    """The static part of a config (noise, band and setup reset: they are traced)."""
    return BootstrapConfig(
        n_replicates=config.n_replicates,
        n_grid=config.n_grid,
        horizon_days=config.horizon_days,
        forecast_after_days=config.forecast_after_days,
    )


def bootstrap(
    series: Series | Sequence[Series] | SeriesBatch,
    key: PRNGKeyArray,
    config: BootstrapConfig | None = None,
    fit_config: FitConfig | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
) -> BootstrapResult:
    """Bootstrap bands for one or many series: every replicate of a chunk fitted in one call.

    Args:
        series: one series, a list, or a padded `SeriesBatch` (days since first scan; burden in
            mm² or ml).
        key: JAX PRNG key; series ``i`` uses ``jax.random.fold_in(key, i)``.
        config: replicates, noise, band, setup, grid and forecasts (`BootstrapConfig`).
        fit_config: fitted/fixed parameters and solver options (`FitConfig`).
        chunk_size: series per jitted call (bounds memory and shows progress); default all.
        progress: show a tqdm bar over chunks.

    Returns:
        A `BootstrapResult` with a leading series axis (length 1 for a single series).
    """
    config = BootstrapConfig() if config is None else config
    fit_config = FitConfig() if fit_config is None else fit_config
    if isinstance(series, Series):
        series = [series]
    batch = series if isinstance(series, SeriesBatch) else SeriesBatch.from_series(series)
    held_out = 1 if config.setup == "train" else 0
    for name, n in zip(batch.names, batch.n_points, strict=True):
        check_enough_points(int(n), fit_config, name, held_out)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(len(batch)))
    return bootstrap_batch(
        batch, keys, config, fit_config, chunk_size=chunk_size, progress=progress
    )


def bootstrap_batch(
    batch: SeriesBatch,
    keys: Key[Array, " series"] | UInt32[Array, "series _"],
    config: BootstrapConfig,
    fit_config: FitConfig,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
) -> BootstrapResult:
    """`bootstrap` of a padded batch with one PRNG key per series (no validation of counts)."""
    n_series = len(batch)
    chunk = n_series if chunk_size is None else max(1, min(chunk_size, n_series))
    parts = []
    for start in tqdm(range(0, n_series, chunk), disable=not progress, unit="chunk"):
        # Pad the final chunk to the common size so that the jitted call compiles once.
        index = np.minimum(np.arange(start, start + chunk), n_series - 1)
        out = _bootstrap_arrays(
            keys[index],
            batch.value[index],
            batch.time_days[index],
            batch.mask[index],
            batch.t_rt_days[index],
            jnp.asarray(config.noise),
            jnp.asarray(config.band),
            jnp.asarray(config.setup == "train"),
            fit_config,
            _shape_config(config),
        )
        keep = min(chunk, n_series - start)
        parts.append(jax.tree.map(lambda leaf, keep=keep: leaf[:keep], out))
    merged = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *parts)
    return BootstrapResult(names=batch.names, setup=config.setup, **merged)


def metrics(result: BootstrapResult) -> dict[str, object]:
    """Goodness of fit (``"all"``) or of the held-out forecast (``"train"``).

    For ``"train"``: across series, R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² and normalised RMSE
    = RMSE / mean(y) at the held-out last visit, with ŷ the bootstrap median; per series the
    relative error and whether the band covers the observation (Laslo et al., 2025). For
    ``"all"``: the same two numbers per series over its visits, with ŷ the point fit. An R²
    that is undefined (one series, or equal values) is None, never NaN, with the reason.
    """
    names = list(result.names)
    if result.setup == "train":
        observed = np.asarray(result.heldout_value, dtype=float)
        predicted = np.asarray(result.heldout_quantiles[:, 1], dtype=float)
        low, high = (
            np.asarray(result.heldout_quantiles[:, 0]),
            np.asarray(result.heldout_quantiles[:, 2]),
        )
        # Series without a fit (NaN band: too few visits for any model) are not scored.
        ok = np.isfinite(predicted)
        y, y_hat = observed[ok], predicted[ok]
        rmse = float(np.sqrt(np.mean((y - y_hat) ** 2))) if ok.any() else float("nan")
        denominator = float(np.sum((y - y.mean()) ** 2)) if ok.any() else 0.0
        r2: dict[str, object] = (
            {"r2": float(1 - np.sum((y - y_hat) ** 2) / denominator)}
            if denominator > 0
            else {
                "r2": None,
                "r2_undefined": "R² across series at the held-out visit needs at least two "
                f"scored series with different held-out values ({int(ok.sum())} scored)",
            }
        )
        return {
            "setup": "train",
            **r2,
            "nrmse": rmse / float(y.mean()) if ok.any() else float("nan"),
            "band_coverage": float(np.mean(((observed >= low) & (observed <= high))[ok])),
            "n_scored": int(ok.sum()),
            "per_series": {
                name: {
                    "heldout_days": float(result.heldout_days[i]),
                    "observed": float(observed[i]),
                    "median": float(predicted[i]),
                    "lower": float(low[i]),
                    "upper": float(high[i]),
                    "relative_error": float(abs(predicted[i] - observed[i]) / observed[i]),
                }
                for i, name in enumerate(names)
            },
        }
    per_series = {}
    for i, name in enumerate(names):
        mask = np.asarray(result.mask[i])
        observed = np.asarray(result.value[i], dtype=float)[mask]
        predicted = np.asarray(result.fitted_values[i], dtype=float)[mask]
        residual_ss = float(np.sum((observed - predicted) ** 2))
        total_ss = float(np.sum((observed - observed.mean()) ** 2))
        per_series[name] = {
            "r2": 1 - residual_ss / total_ss if total_ss > 0 else None,
            "nrmse": float(np.sqrt(residual_ss / observed.size) / observed.mean()),
        }
    return {"setup": "all", "per_series": per_series}
