"""NUTS on the NumPyro model recovers the truth within its band (small run)."""

import jax
import numpy as np

from bayestumor.radiotherapy import bayes_bands

from .conftest import true_burden


def test_posterior_band_contains_truth(noisy_series):
    """One series with 10 % noise: the 95 % posterior band of A(t) contains the true curve at
    ≥ 90 % of grid times, and the predictive band is at least as wide as the curve band."""
    series = noisy_series(1, 0.10, seed=7)[0]
    result = bayes_bands(series, jax.random.key(0), num_warmup=200, num_samples=200)
    truth = true_burden(np.asarray(result.grid_days))
    lower, _, upper = np.asarray(result.curve_quantiles)
    assert np.mean((truth >= lower) & (truth <= upper)) >= 0.9
    p_lower, _, p_upper = np.asarray(result.predictive_quantiles)
    assert np.all(p_upper - p_lower >= 0.99 * (upper - lower))
    assert 0.02 < float(np.median(result.sigma)) < 0.3
