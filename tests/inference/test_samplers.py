"""Samplers on a tiny synthetic patient: recovery of the truth, NUTS vs SMC, result structure.

Independent truth: the parameters the synthetic patient was simulated with (the segmentations
are drawn from the model's own Bernoulli likelihood). T and the imaging parameters are fixed
at their true values to keep the run short (5 free parameters: D_w, ρ, seed x, y, z).
"""

import warnings

import arviz as az
import jax
import numpy as np
import pytest

from bayestumor.errors import DiagnosticsWarning
from bayestumor.inference import find_map, run_inference
from tests._calibration_problems import TRUE_GROWTH, TRUE_SEED_MM, tiny_problem

TRUTH = {"D_w": TRUE_GROWTH["D_w"], "rho": TRUE_GROWTH["rho"]} | {
    f"seed_{axis}": value for axis, value in zip("xyz", TRUE_SEED_MM, strict=True)
}


@pytest.fixture(scope="module")
def nuts_result():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return run_inference(
            tiny_problem(),
            "nuts",
            jax.random.key(1),
            chains=2,
            warmup=80,
            draws=100,
            progress=False,
        )


@pytest.fixture(scope="module")
def smc_result():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return run_inference(
            tiny_problem(),
            "smc",
            jax.random.key(2),
            smc_particles=128,
            smc_mcmc_steps=5,
            progress=False,
        )


def _values(result, name):
    return np.asarray(result.datatree["posterior"][name]).reshape(-1)


def test_map_recovers_truth():
    problem = tiny_problem()
    position, info = find_map(problem)
    named = problem.constrain(position)
    assert info["log_density"] > info["log_density_start"]
    assert float(named["D_w"]) == pytest.approx(TRUTH["D_w"], rel=0.3)
    assert float(named["rho"]) == pytest.approx(TRUTH["rho"], rel=0.3)


@pytest.mark.parametrize("sampler", ["nuts", "smc"])
def test_truth_in_90_percent_intervals(sampler, nuts_result, smc_result):
    result = nuts_result if sampler == "nuts" else smc_result
    for name, truth in TRUTH.items():
        low, high = np.quantile(_values(result, name), [0.05, 0.95])
        assert low <= truth <= high, f"{sampler}: {name} = {truth} not in [{low:.4g}, {high:.4g}]"


def test_nuts_and_smc_agree_within_monte_carlo_error(nuts_result, smc_result):
    """Posterior means differ by less than 4 Monte Carlo standard errors of the difference."""
    for name in TRUTH:
        a, b = _values(nuts_result, name), _values(smc_result, name)
        ess_a = nuts_result.diagnostics["parameters"][name]["ess_bulk"]
        ess_b = smc_result.diagnostics["parameters"][name]["ess_bulk"]
        se = np.sqrt(a.var() / ess_a + b.var() / ess_b)
        assert abs(a.mean() - b.mean()) < 4 * se, name
        # And the spreads agree to within a factor 1.6.
        assert 1 / 1.6 < a.std() / b.std() < 1.6, name


def test_datatree_groups_and_loo(nuts_result):
    tree = nuts_result.datatree
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
        "constant_data",
    ):
        assert group in tree.children, group
    n_voxels = tree["observed_data"].sizes["voxel"]
    assert tree["log_likelihood"]["t1c"].shape == (2, 100, n_voxels)
    assert tree["posterior"]["D_w"].attrs["units"] == "mm^2/day"
    assert np.asarray(tree["sample_stats"]["diverging"]).dtype == bool
    # Voxels far from the tumour have a constant log-likelihood (α clipped at ε) that PSIS
    # cannot smooth ("All tail values are the same"); LOO is taken over the informative ones.
    flair = tree["log_likelihood"]["flair"]
    informative = np.flatnonzero(np.asarray(flair.std(("chain", "draw"))) > 1e-6)
    assert informative.size > 0
    loo = az.loo(tree.isel(voxel=informative), var_name="flair")
    assert np.isfinite(loo.elpd)
    assert nuts_result.densities.shape == (200, *tiny_problem().forward.grid.shape)


def test_diagnostics_contents(nuts_result, smc_result):
    for result in (nuts_result, smc_result):
        diagnostics = result.diagnostics
        assert set(diagnostics["parameters"]) >= set(TRUTH)
        assert diagnostics["gradient_evaluations"] >= 0
    smc = smc_result.diagnostics["smc"]
    assert smc["tempering_schedule"][0] == 0.0 and smc["tempering_schedule"][-1] == 1.0
    assert np.isfinite(smc["log_marginal_likelihood"])
    assert len(smc["weight_ess"]) == smc["stages"]


def test_blackjax_nuts_runs_and_short_runs_warn():
    """BlackJAX NUTS produces the same structure; a 10-draw run fails diagnostics loudly."""
    with pytest.warns(DiagnosticsWarning, match="diagnostics failed"):
        result = run_inference(
            tiny_problem(),
            "blackjax-nuts",
            jax.random.key(4),
            chains=2,
            warmup=20,
            draws=10,
            progress=False,
        )
    assert result.datatree["posterior"]["D_w"].shape == (2, 10)
    assert result.diagnostics["passed"] is False
    assert result.diagnostics["gradient_evaluations"] > 0


@pytest.mark.parametrize("sampler", ["nuts", "blackjax-nuts", "smc"])
def test_every_sampler_runs_with_all_eleven_parameters_free(sampler):
    """Default priors (D_w, ρ and T free: the model samples the vector site ``log_mu`` and
    ``log_T``, every imaging parameter free): each sampler returns finite draws inside the prior
    box whose recorded parameters are consistent (D_w·T = μ_D², ρ·T = μ_ρ²)."""
    from bayestumor.model import Priors, bounds

    problem = tiny_problem(pet=True, priors=Priors())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = run_inference(
            problem,
            sampler,
            jax.random.key(0),
            chains=1,
            warmup=8,
            draws=8,
            smc_particles=16,
            smc_mcmc_steps=2,
            progress=False,
        )
    posterior = {k: np.asarray(v, np.float64) for k, v in result.datatree["posterior"].items()}
    assert len(posterior) == 13  # 11 parameters + mu_D, mu_rho
    for name in ("D_w", "rho", "T", "u_c_t1c", "u_c_flair", "sigma_alpha", "b", "sigma"):
        low, high = bounds(getattr(problem.priors, name))
        values = posterior[name]
        assert np.all(np.isfinite(values)), name
        assert np.all((values >= low * (1 - 1e-5)) & (values <= high * (1 + 1e-5))), name
    np.testing.assert_allclose(posterior["D_w"] * posterior["T"], posterior["mu_D"] ** 2, rtol=1e-4)
    np.testing.assert_allclose(
        posterior["rho"] * posterior["T"], posterior["mu_rho"] ** 2, rtol=1e-4
    )


def test_only_the_default_solver_declares_itself_pmap_safe():
    """Parallel chains need `pmap`: the default solver's hand-written adjoint allows it;
    diffrax's adaptive solve fails under it, so it must report itself unsafe (and then chains
    run one after the other). The command line's parallel run: tests/test_calibrate.py."""
    from bayestumor.forward import AdaptiveStep

    forward = tiny_problem().forward
    assert forward.pmap_safe and not forward.with_stepping(AdaptiveStep()).pmap_safe
