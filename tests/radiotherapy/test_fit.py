"""Known parameters are recovered by the least-squares fits."""

import numpy as np
import pytest

from bayestumor.radiotherapy import FitConfig, Series, SeriesBatch, fit, fit_many

from .conftest import T_RT_DAYS, TIMES_DAYS, TRUE_PARAMS, true_burden

FITTED = ("A0", "lam", "S", "lam_decay")


@pytest.mark.parametrize(
    "config",
    [
        FitConfig(),
        FitConfig(relative=True),
        pytest.param(FitConfig(forward="ode"), marks=pytest.mark.slow),
    ],
)
def test_noiseless_recovery(config):
    """Noise-free data of the true model: parameters back to 0.5 % (float32)."""
    result = fit(Series("clean", TIMES_DAYS, true_burden(TIMES_DAYS), T_RT_DAYS), config)
    assert bool(result.converged)
    for name in FITTED:
        assert float(getattr(result.params, name)) == pytest.approx(
            float(getattr(TRUE_PARAMS, name)), rel=5e-3
        )
    assert float(result.params.delay) == pytest.approx(21.0, rel=1e-5)  # fixed by default


def test_noisy_recovery_many_series_at_once(noisy_series):
    """200 series with 5 % lognormal noise, fitted in one call: medians within 5 % of truth.

    With 7 visits the estimators are nearly unbiased; the median over 200 fits has a
    sampling error of about 1–3 % (measured spread of single fits ÷ √200).
    """
    batch = SeriesBatch.from_series(noisy_series(200, 0.05, seed=1))
    result = fit_many(batch, FitConfig(relative=True))
    assert result.converged.shape == (200,)
    assert np.mean(result.converged) >= 0.97
    for name in FITTED:
        estimate = np.median(np.asarray(getattr(result.params, name)))
        assert estimate == pytest.approx(float(getattr(TRUE_PARAMS, name)), rel=0.05), name
