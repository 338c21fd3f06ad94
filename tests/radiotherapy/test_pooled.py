"""Hierarchical (pooled) NUTS fit of a cohort: calibrated held-out forecasts and parameters.

Independent truth: the parameters that generated a synthetic cohort of the model's own
mechanism (`synthetic_cohort` with ``mix={"model": 1}``) and its held-out last visits.
"""

import jax
import numpy as np
import pytest
from scipy import stats

from bayestumor.radiotherapy import PooledConfig, forecast_report, pooled_bands, synthetic_cohort

N_SERIES = 30


def _lower_bound(n: int, p: float, alpha: float = 0.001) -> int:
    """Smallest count k with P(X < k) ≤ alpha for X ~ Binomial(n, p): below it, reject."""
    return int(stats.binom.ppf(alpha, n, p))


@pytest.fixture(scope="module")
def fitted():
    cohort = synthetic_cohort(N_SERIES, seed=5, mix={"model": 1.0})
    config = PooledConfig(setup="train", num_warmup=200, num_samples=200, max_tree_depth=7)
    return cohort, pooled_bands(list(cohort.series), jax.random.key(0), config)


def test_heldout_bands_cover_at_nominal_rate(fitted):
    """Each series' last visit is held out. The model is right here, so its predictive bands
    should be calibrated: the number of held-out visits inside the 95 % (and 50 %) bands lies in
    the binomial acceptance region at false-alarm rate 0.001 (95 %: at least 25 of 30; 50 %:
    between 6 and 24). Bands 3× too narrow would cover about 45 % at 95 %: the test can fail."""
    cohort, result = fitted
    report = forecast_report(
        result.names, result.heldout_days, result.heldout_value, result.heldout_draws
    )
    observed = np.array([s.value[-1] for s in cohort.series])
    np.testing.assert_allclose(result.heldout_value, observed, rtol=1e-6)
    calibration = {row["level"]: row["covered"] for row in report.calibration}
    assert calibration[0.95] >= _lower_bound(N_SERIES, 0.95), report.calibration
    assert (
        _lower_bound(N_SERIES, 0.5) <= calibration[0.5] <= N_SERIES - _lower_bound(N_SERIES, 0.5)
    ), report.calibration
    assert report.summary["median_nrmse"] < 0.3
    assert result.diagnostics["divergences"] <= 0.01 * 200


def test_parameters_recovered(fitted):
    """Per series, the 95 % credible interval of λ contains the true λ for a binomially
    acceptable share of the 30 series; the population mean of log λ is within 4 posterior sds
    (plus 0.05 for float32 and finite sampling) of the mean of the 30 true log λ."""
    cohort, result = fitted
    draws = np.log(np.asarray(result.params.lam))  # (draw, series)
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    truth = np.log(cohort.truth["lam"])
    inside = int(np.sum((truth >= low) & (truth <= high)))
    assert inside >= _lower_bound(N_SERIES, 0.95), (inside, low, truth, high)
    mu = np.asarray(result.population_mean[:, result.pooled.index("lam")])
    assert abs(mu.mean() - truth.mean()) <= 4 * mu.std() + 0.05
    # Sparse series borrow strength: every λ interval is narrower than the prior's (±1.96·1).
    assert np.all(high - low < 2 * 1.96)


def test_outputs_are_complete_json_without_nan(fitted, tmp_path):
    """`write_outputs` with the pooled result only: the pooled tables have one row per series
    (parameters) and per grid time (bands), medians inside the bands, valid JSON."""
    import json

    import pandas as pd

    from bayestumor.radiotherapy import write_outputs

    _, result = fitted
    report = forecast_report(
        result.names, result.heldout_days, result.heldout_value, result.heldout_draws
    )
    write_outputs(None, tmp_path, {"setup": "train"}, pooled=result, reports={"pooled": report})
    parameters = pd.read_csv(tmp_path / "pooled_parameters.csv")
    assert parameters["series"].tolist() == list(result.names)
    assert (parameters["lam_lower"] <= parameters["lam"]).all()
    bands = pd.read_csv(tmp_path / "pooled_bands.csv")
    assert len(bands) == N_SERIES * result.grid_days.shape[1]
    assert (bands["lower_0.95"] <= bands["median"]).all()
    assert (bands["median"] <= bands["upper_0.95"]).all()
    summary = json.loads(
        (tmp_path / "metrics.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"),
    )
    assert summary["forecast"]["pooled"]["summary"]["n_scored"] == N_SERIES
    forecast = pd.read_csv(tmp_path / "forecast.csv")
    assert set(forecast["method"]) == {"pooled"} and len(forecast) == N_SERIES
