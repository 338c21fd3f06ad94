"""Forecast validation: the report's scores by their definitions, calibration by binomial law."""

import json

import numpy as np
import pytest
from scipy import stats

from bayestumor.radiotherapy import clopper_pearson, forecast_report

N = 400


def _draws(rng: np.random.Generator, n: int, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Lognormal predictive draws around a per-series centre, and a truth of log-sd ``width``."""
    centre = rng.uniform(50, 500, n)
    draws = centre[:, None] * np.exp(0.2 * rng.standard_normal((n, 1000)))
    observed = centre * np.exp(width * rng.standard_normal(n))
    return draws, observed


def test_calibrated_draws_cover_at_nominal_rates():
    """Observations from the predictive distribution itself: for each band the covered count
    lies in the central 99.8 % binomial region of Binomial(400, level) (quantile noise of 1,000
    draws adds < 1 %); observations 3× more spread: the 95 % band covers far less."""
    rng = np.random.default_rng(0)
    draws, observed = _draws(rng, N, 0.2)
    report = forecast_report([f"s{i}" for i in range(N)], np.full(N, 100.0), observed, draws)
    for row in report.calibration:
        low, high = stats.binom.ppf([0.001, 0.999], N, row["level"])
        assert low - 4 <= row["covered"] <= high + 4, row
        assert row["ci_low"] <= row["coverage"] <= row["ci_high"]
    wide_draws, wide_observed = _draws(rng, N, 0.6)
    wide = forecast_report([f"s{i}" for i in range(N)], np.zeros(N), wide_observed, wide_draws)
    assert wide.summary["coverage_0.95"] < 0.6


def test_scores_by_definition_and_json_without_nan():
    """nRMSE at the held-out visit = |median − y| / y; pooled nRMSE = RMSE / mean(y); R² from
    its formula; a series without finite draws is not scored; one series: R² is null with a
    reason, and the JSON has no NaN."""
    draws = np.array([[90.0, 100.0, 110.0], [180.0, 200.0, 220.0], [np.nan] * 3])
    observed = np.array([120.0, 150.0, 10.0])
    report = forecast_report(["a", "b", "c"], np.array([1.0, 2.0, 3.0]), observed, draws)
    a, b, c = report.per_series
    assert a["nrmse"] == pytest.approx(20 / 120) and b["nrmse"] == pytest.approx(50 / 150)
    assert c["scored"] is False and report.summary["n_not_scored"] == 1
    y, y_hat = observed[:2], np.array([100.0, 200.0])
    assert report.summary["nrmse"] == pytest.approx(np.sqrt(np.mean((y - y_hat) ** 2)) / y.mean())
    assert report.summary["r2"] == pytest.approx(
        1 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2)
    )
    single = forecast_report(["a"], np.array([1.0]), observed[:1], draws[:1])
    assert single.summary["r2"] is None and "two" in single.summary["r2_undefined"]
    text = json.dumps(single.to_json(), allow_nan=False)  # raises on NaN
    assert json.loads(text)["summary"]["median_nrmse"] == pytest.approx(20 / 120)


def test_clopper_pearson_matches_beta_quantiles():
    low, high = clopper_pearson(17, 20)
    assert low == pytest.approx(stats.beta.ppf(0.025, 17, 4))
    assert high == pytest.approx(stats.beta.ppf(0.975, 18, 3))
    assert clopper_pearson(20, 20)[1] == 1.0 and clopper_pearson(0, 20)[0] == 0.0
