"""Bootstrap bands: coverage at the nominal rate, failed fits counted, held-out metrics."""

import jax
import numpy as np
import pytest

from bayestumor.radiotherapy import BootstrapConfig, FitConfig, bootstrap, burden, metrics

from .conftest import T_RT_DAYS, TRUE_PARAMS

FIT = FitConfig(relative=True, n_starts=2)


def _coverage(result) -> float:
    truth = np.asarray(
        jax.vmap(lambda grid: burden(TRUE_PARAMS, grid, T_RT_DAYS))(result.grid_days)
    )
    lower, upper = np.asarray(result.grid_quantiles[:, 0]), np.asarray(result.grid_quantiles[:, 2])
    # Ten evenly spaced grid times per series, from the first visit to 90 days past the last.
    columns = np.linspace(0, truth.shape[1] - 1, 10).astype(int)
    return float(np.mean(((truth >= lower) & (truth <= upper))[:, columns]))


def test_band_covers_truth_at_nominal_rate(noisy_series):
    """40 series with known 10 % lognormal noise, 40 replicates each: the 95 % band covers the
    true curve in 85–100 % of (series, time) cells. With correlated cells the binomial standard
    error is ≈ 3–5 %, so a correct band lands well inside; a band from 2 % noise (5× too narrow)
    must fall below 70 % — this test can fail."""
    series = noisy_series(40, 0.10, seed=3)
    config = BootstrapConfig(n_replicates=40, noise=0.10)
    result = bootstrap(series, jax.random.key(0), config, FIT)
    assert 0.85 <= _coverage(result) <= 1.0
    assert int(result.n_failed.sum()) <= 0.05 * 40 * 40
    narrow = bootstrap(series, jax.random.key(0), BootstrapConfig(n_replicates=40, noise=0.02), FIT)
    assert _coverage(narrow) < 0.7


@pytest.mark.slow
def test_failed_fits_are_counted_not_dropped(noisy_series):
    """With a 1-step budget no replicate converges: all are counted and the band is NaN."""
    result = bootstrap(
        noisy_series(2, 0.1),
        jax.random.key(1),
        BootstrapConfig(n_replicates=5),
        FitConfig(max_steps=1, n_starts=1),
    )
    assert result.n_failed.tolist() == [5, 5]
    assert not np.asarray(result.replicates.converged).any()
    assert np.isnan(np.asarray(result.grid_quantiles)).all()


def test_train_setup_holds_out_last_visit(noisy_series):
    """Held-out value is the last visit; metrics computed there by their definitions.

    Same shapes as the coverage test (40 series × 40 replicates): reuses its compilation.
    """
    series = noisy_series(40, 0.05, seed=5)
    result = bootstrap(
        series, jax.random.key(2), BootstrapConfig(n_replicates=40, setup="train"), FIT
    )
    np.testing.assert_allclose(result.heldout_value, [s.value[-1] for s in series], rtol=1e-6)
    assert np.allclose(result.heldout_days, 200.0)
    report = metrics(result)
    observed = np.array([s.value[-1] for s in series])
    predicted = np.asarray(result.heldout_quantiles[:, 1])
    rmse = np.sqrt(np.mean((observed - predicted) ** 2))
    assert report["nrmse"] == pytest.approx(rmse / observed.mean(), rel=1e-5)
    assert report["r2"] == pytest.approx(
        1 - np.sum((observed - predicted) ** 2) / np.sum((observed - observed.mean()) ** 2),
        rel=1e-5,
    )
    # Forecasts lie in the future of the last visit.
    assert np.all(np.asarray(result.forecast_days) > 200.0)
