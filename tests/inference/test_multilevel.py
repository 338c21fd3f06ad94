"""Coarse-to-fine inference (`refine_posterior`): the transport, the resampling, the weights.

Independent truths:

- the Laplace-to-Laplace transport carries N(m_c, Σ_c) onto N(m_f, Σ_f) exactly (sample moments
  of transported Gaussian draws);
- systematic resampling keeps each draw ⌊n w_i⌋ or ⌈n w_i⌉ times (its defining property);
- importance weighting is exact in the limit: the fine posterior of a *tempered* likelihood
  (η = 0.4, √2.5 times wider and shifted towards the prior) is known to NUTS; the coarse
  draws carried there must agree with NUTS on it within Monte Carlo error;
- the fallback (k̂ ≥ 0.7) hands over to fine chains and says so;
- the polished MAP (the anchor of η) is stationary: its Newton decrement is ~0.
"""

import dataclasses
import sys
import warnings

import arviz as az
import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bayestumor.errors import DiagnosticsWarning
from bayestumor.inference import (
    SamplerOptions,
    SamplerRun,
    Transport,
    build_result,
    curvature_covariance,
    find_map,
    importance_failures,
    match_moments,
    polished_map,
    refine_posterior,
    run_inference,
    sample,
    systematic_resample,
)
from tests._calibration_problems import tiny_problem

NAMES = ("D_w", "rho", "seed_x", "seed_y", "seed_z")
OPTIONS = SamplerOptions(chains=2, warmup=150, draws=300, progress=False)
TEMPERED = 0.4


def test_transport_carries_one_gaussian_onto_another():
    """Moments of 200 000 transported draws within 1 % of the target's (Monte Carlo sd of a
    sample variance ≈ √(2/n) ≈ 0.3 %)."""
    rng = np.random.default_rng(0)
    d = 4
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    coarse_cov, fine_cov = a @ a.T + d * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    coarse_mean, fine_mean = rng.normal(size=d), rng.normal(size=d) * 5
    transport = Transport.between(coarse_mean, coarse_cov, fine_mean, fine_cov)
    draws = rng.multivariate_normal(coarse_mean, coarse_cov, size=200_000)
    moved = transport(draws)
    scale = np.sqrt(np.diag(fine_cov))
    np.testing.assert_allclose(moved.mean(0), fine_mean, atol=0.01 * scale.max())
    np.testing.assert_allclose(
        np.cov(moved.T) / np.outer(scale, scale), fine_cov / np.outer(scale, scale), atol=0.01
    )


def test_moment_matching_moves_draws_onto_the_weighted_moments():
    """`match_moments`' defining property (exact up to round-off): the image's plain mean and
    covariance are the weighted ones. And what it is for: draws of N(0, I) weighted towards
    N(m, S) (a proposal off in location and scale, relative weight ESS well below 1) become,
    once matched, a sample of N(m̂, Ŝ) ≈ N(m, S), whose weights are nearly uniform."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    d, n = 3, 20_000
    mean, covariance = np.array([0.5, -0.3, 0.2]), np.diag([0.6, 1.3, 0.8])
    draws = rng.normal(size=(n, d))

    def relative_ess(points, proposal_mean, proposal_covariance):
        log_w = multivariate_normal(mean, covariance).logpdf(points) - multivariate_normal(
            proposal_mean, proposal_covariance
        ).logpdf(points)
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        return w, 1.0 / np.sum(w**2) / len(w)

    weights, before = relative_ess(draws, np.zeros(d), np.eye(d))
    matched = match_moments(draws, weights)
    weighted_mean = weights @ draws
    centered = draws - weighted_mean
    np.testing.assert_allclose(matched.mean(0), weighted_mean, atol=1e-12)
    np.testing.assert_allclose(
        np.cov(matched.T), (weights[:, None] * centered).T @ centered, atol=1e-12
    )
    # The matched draws are an affine image of Gaussian draws: a sample of N(m̂, Ŝ).
    _, after = relative_ess(matched, weighted_mean, np.cov(matched.T))
    assert before < 0.8 and after > 0.95, (before, after)


def test_systematic_resampling_keeps_each_draw_floor_or_ceil_of_its_share():
    weights = np.random.default_rng(1).dirichlet(np.full(50, 0.3))
    n = 1000
    for seed in range(5):
        counts = np.bincount(systematic_resample(jax.random.key(seed), weights, n), minlength=50)
        assert counts.sum() == n
        assert np.all(counts >= np.floor(n * weights) - 1e-9)
        assert np.all(counts <= np.ceil(n * weights) + 1e-9)


@pytest.fixture(scope="module")
def coarse():
    """The tiny problem and its NUTS draws: the coarse level."""
    problem = tiny_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return problem, sample(problem, "nuts", jax.random.key(0), OPTIONS)


@pytest.fixture(scope="module")
def tempered():
    """The fine level: the same posterior with the likelihood raised to η = 0.4."""
    return dataclasses.replace(tiny_problem(), learning_rate=TEMPERED)


def _summaries(result):
    posterior = result.datatree["posterior"]
    return {name: (float(posterior[name].mean()), float(posterior[name].std())) for name in NAMES}


@pytest.mark.slow
def test_carried_draws_agree_with_nuts_on_the_fine_posterior(coarse, tempered):
    """Means within 0.25 fine posterior sd and sds within 20 % of direct NUTS (both from ESS
    of several hundred: a mean's MC error is ≈ sd/√300 ≈ 0.06 sd, an sd's ≈ 4 %); k̂ < 0.7."""
    problem, run = coarse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        refined = refine_posterior(tempered, problem, run, "nuts", jax.random.key(1), OPTIONS)
        carried = build_result(tempered, refined, jax.random.key(2))
        direct = run_inference(tempered, "nuts", jax.random.key(3), OPTIONS)
    multilevel = carried.diagnostics["multilevel"]
    assert multilevel["path"] == "importance"
    assert multilevel["transport"] == "affine"
    assert multilevel["pareto_k"] < 0.7
    # Each moment-matching step kept raised the weight ESS; the reported one is the last kept.
    steps = multilevel["moment_matching"]
    kept = [step["weight_ess"] for step in steps if step["kept"]]
    assert kept == sorted(kept) and multilevel["weight_ess"] == kept[-1]
    assert multilevel["moment_matching_kept"] == len(kept) - 1
    # The coarse chains' worst R-hat is named by its sample site, and is that site's own.
    worst = multilevel["coarse_r_hat_worst"]
    assert worst in problem.site_names
    assert multilevel["coarse_r_hat_max"] == pytest.approx(
        float(az.rhat(np.asarray(run.positions[worst]))), rel=1e-6
    )
    coarse_sd = {name: float(np.std(_coarse_values(problem, run, name))) for name in NAMES}
    for name, (mean, sd) in _summaries(direct).items():
        got_mean, got_sd = _summaries(carried)[name]
        assert abs(got_mean - mean) < 0.25 * sd, (name, got_mean, mean, sd)
        assert 0.8 < got_sd / sd < 1.2, (name, got_sd, sd)
        # The tempered posterior is wider: the carried draws are not the coarse ones.
        assert got_sd > 1.3 * coarse_sd[name], (name, got_sd, coarse_sd[name])


def _coarse_values(problem, run, name):
    named = jax.vmap(problem.constrain)(
        {k: np.asarray(v).reshape(-1, *np.shape(v)[2:]) for k, v in run.positions.items()}
    )
    return np.asarray(named[name])


@pytest.mark.slow
def test_a_poor_transport_hands_over_to_fine_chains(coarse, tempered, monkeypatch, capsys):
    """With every k̂ judged too large the fine sampler runs, from the carried draws, with
    `refine_warmup` warm-up iterations; the result says so, and so does the progress output
    before the (slow) fine chains start."""
    monkeypatch.setattr(sys.modules[refine_posterior.__module__], "PARETO_K_GOOD", -np.inf)
    problem, run = coarse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        refined = refine_posterior(
            tempered,
            problem,
            run,
            "nuts",
            jax.random.key(4),
            dataclasses.replace(OPTIONS, progress=True),
            refine_warmup=50,
        )
    k_hat = refined.info["multilevel"]["pareto_k"]
    assert (
        f"PSIS k̂ = {k_hat:.2f} ≥ -inf, the carried draws miss the fine posterior: sampling it "
        f"with fine chains, {OPTIONS.chains} × (50 + {OPTIONS.draws})"
    ) in capsys.readouterr().out
    assert refined.info["multilevel"]["path"] == "fine nuts"
    assert refined.positions["seed_x"].shape == (OPTIONS.chains, OPTIONS.draws)
    assert refined.gradient_evaluations > run.gradient_evaluations
    result = build_result(tempered, refined, jax.random.key(5))
    assert result.diagnostics["parameters"]["D_w"]["r_hat"] is not None


def test_refine_posterior_refuses_a_thinning_below_one(tempered):
    """Carrying every 0th draw is not a thinning: refused before any solve."""
    problem = tiny_problem()
    run = SamplerRun(
        sampler="nuts",
        positions={name: np.zeros((1, 4)) for name in problem.site_names},
        sample_stats={},
        info={},
        gradient_evaluations=0,
        density_evaluations=0,
        seconds=0.0,
    )
    with pytest.raises(ValueError, match="thin must be ≥ 1, got 0"):
        refine_posterior(tempered, problem, run, "nuts", jax.random.key(0), OPTIONS, thin=0)


def test_importance_path_fails_on_the_coarse_chains_and_on_a_small_ess():
    good = {
        "coarse_r_hat_max": 1.004,
        "coarse_ess_bulk_min": 900.0,
        "coarse_divergences": 0,
        "weight_ess_fraction": 0.5,
    }
    assert importance_failures(good, chains=2, smc_ess=None) == []
    (failure,) = importance_failures(
        good | {"coarse_r_hat_max": 1.05, "coarse_r_hat_worst": "log_T"}, 2, None
    )
    assert "1.0500 (log_T)" in failure
    assert importance_failures(good | {"coarse_divergences": 3}, 2, None)
    # 900 × 0.2 = 180 < 100 per chain × 2.
    assert importance_failures(good | {"weight_ess_fraction": 0.2}, 2, None)


def test_polished_map_is_stationary_where_a_short_search_is_not():
    """Five BFGS steps from the prior median stop short of the mode; `polished_map` from there
    ends where the Newton decrement gᵀ H⁻¹ g (the log-density gain a Newton step would still
    make, ×2) is below 0.01 nats, and higher than the short search."""
    problem = tiny_problem()
    short, short_stats = find_map(problem, max_steps=5)
    polished, stats = polished_map(problem, short)
    assert stats["log_density"] > short_stats["log_density"]

    def decrement(position):
        flat, unravel = ravel_pytree(position)
        gradient = np.asarray(jax.grad(lambda x: problem.log_density(unravel(x)))(flat))
        return float(gradient @ curvature_covariance(problem, position) @ gradient)

    assert decrement(short) > 0.1
    assert decrement(polished) < 0.01
