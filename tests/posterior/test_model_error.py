"""The reported parameters' model-form error (`bayestumor.posterior.with_model_error`).

Independent truths: with one draw c, θe^δ is log-normal, with quantiles c·e^{τ z_p}, mean
c·e^{τ²/2} and sd c·e^{τ²/2}·√(e^{τ²} − 1); a mixture's CDF at the returned quantile is p
(the CDF written out here by hand); τ = 0 gives NumPy's own statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from bayestumor.config import STRESS_SUITE_MODEL_ERROR
from bayestumor.posterior import model_error_kind, model_error_sd, with_model_error

PROBABILITIES = (0.05, 0.25, 0.75, 0.95)


@pytest.mark.parametrize("tau", [0.01, 0.3])
def test_one_draw_gives_the_log_normal(tau):
    c = 2.7
    stats = with_model_error(np.array([c]), tau, PROBABILITIES)
    for p in PROBABILITIES:
        assert stats[f"q{round(100 * p):02d}"] == pytest.approx(c * np.exp(tau * norm.ppf(p)), 1e-9)
    assert stats["mean"] == pytest.approx(c * np.exp(tau**2 / 2), 1e-12)
    assert stats["sd"] == pytest.approx(c * np.exp(tau**2 / 2) * np.sqrt(np.expm1(tau**2)), 1e-9)


def test_mixture_quantiles_solve_the_mixture_cdf():
    values = np.exp(np.random.default_rng(0).normal(1.0, 0.02, 300))
    tau = 0.015
    stats = with_model_error(values, tau, PROBABILITIES)
    for p in PROBABILITIES:
        q = stats[f"q{round(100 * p):02d}"]
        assert np.mean(norm.cdf((np.log(q) - np.log(values)) / tau)) == pytest.approx(p, abs=1e-9)
    # Moments of the mixture: E[θ]e^{τ²/2} and E[θ²]e^{2τ²}.
    assert stats["mean"] == pytest.approx(values.mean() * np.exp(tau**2 / 2), 1e-12)
    second = np.mean(values**2) * np.exp(2 * tau**2)
    assert stats["sd"] == pytest.approx(np.sqrt(second - stats["mean"] ** 2), 1e-9)
    # It widens: the 90 % interval is wider than the draws' own.
    own = with_model_error(values, 0.0, PROBABILITIES)
    assert stats["q95"] - stats["q05"] > own["q95"] - own["q05"]


def test_zero_tau_is_numpys_statistics_and_zeros_stay_an_atom():
    values = np.random.default_rng(1).gamma(4.0, 1.0, 101)
    stats = with_model_error(values, 0.0, PROBABILITIES)
    assert [stats[k] for k in ("q05", "q25", "q75", "q95")] == pytest.approx(
        np.quantile(values, PROBABILITIES), abs=0
    )
    assert (stats["mean"], stats["sd"]) == pytest.approx((values.mean(), values.std()), 1e-12)
    # A third of the draws at 0 (no referenced growth): quantiles below 1/3 are 0.
    with_zeros = np.concatenate([np.zeros(50), values[:100]])
    stats = with_model_error(with_zeros, 0.05, PROBABILITIES)
    assert stats["q05"] == stats["q25"] == 0.0 and stats["q75"] > 0.0


def test_bad_draws_and_sd_are_refused_only_where_they_matter():
    with pytest.raises(ValueError, match="non-negative"):
        with_model_error(np.array([1.0, -1.0]), 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        with_model_error(np.array([1.0, np.nan]), 0.1)
    # Without a model error any draws are summarised (seed coordinates are negative too).
    assert with_model_error(np.array([-2.0, -1.0]), 0.0)["mean"] == -1.5
    with pytest.raises(ValueError, match="≥ 0"):
        with_model_error(np.array([1.0]), -0.1)


def test_model_error_sd_reads_the_table_by_kind_of_data():
    names = ["mu_D", "mu_rho", "mu_D_ref", "mu_rho_ref", "seed_x"]
    assert {model_error_kind(True), model_error_kind(False)} == set(STRESS_SUITE_MODEL_ERROR)
    with_pet = model_error_sd(model_error_kind(True), names, "stress-suite")
    assert with_pet == {k: v for k, v in STRESS_SUITE_MODEL_ERROR["with-pet"].items() if v > 0}
    mri = model_error_sd(model_error_kind(False), names, "stress-suite")
    assert mri["mu_rho_ref"] == STRESS_SUITE_MODEL_ERROR["mri-only"]["mu_rho_ref"]
    assert "mu_D_ref" not in mri  # measured as 0: nothing to add
    assert model_error_sd(model_error_kind(True), names, "none") == {}
    assert (
        model_error_sd(model_error_kind(True), ["mu_D", "seed_x"], "stress-suite") == {}
    )  # seed fixed


def test_an_unknown_model_error_is_refused_by_the_config_and_the_command_line(capsys):
    from bayestumor.cli import main
    from bayestumor.config import MODEL_ERRORS, CalibrationConfig
    from bayestumor.errors import InputError

    with pytest.raises(InputError, match="unknown model error 'suite'; choose from"):
        CalibrationConfig(model_error="suite")
    assert CalibrationConfig.from_dict({"model_error": "none"}).model_error == "none"
    with pytest.raises(SystemExit):  # argparse: exit status 2 with the choices
        main(["calibrate", "patient", "--out", "out", "--model-error", "suite"])
    error = capsys.readouterr().err
    assert "--model-error" in error and all(choice in error for choice in MODEL_ERRORS)
