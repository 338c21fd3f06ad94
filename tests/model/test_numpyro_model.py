"""Priors and the NumPyro model: names, fixed values, seed truncation, parametrisations."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer import Predictive

from bayestumor.errors import InputError
from bayestumor.model import Priors, bounds, model_data_from_patient, tumour_model
from tests._calibration_problems import TRUE_GROWTH, synthetic_patient, tiny_problem


def test_prior_defaults_cover_realistic_glioblastoma():
    """Defaults contain typical GBM values (Swanson 2000; Lipkova 2019; Ezhov 2023 Table I)."""
    priors = Priors()
    for name, value in {
        "D_w": 0.13,  # mm²/day
        "rho": 0.025,  # 1/day
        "T": 365.0,  # days
        "u_c_t1c": 0.7,
        "u_c_flair": 0.25,
        "sigma_alpha": 0.06,
        "b": 0.9,
        "sigma": 0.05,
    }.items():
        low, high = bounds(getattr(priors, name))
        assert low < value < high, name
    assert priors.max_diffusion_and_reaction() == (1000.0, 200.0)


def test_priors_round_trip_and_validation():
    priors = Priors(parametrisation="scale_free", mu_D=(2.0, 20.0), sigma=0.1)
    assert Priors.from_dict(priors.to_dict()) == priors
    with pytest.raises(ValueError, match="log-uniform"):
        Priors(D_w=(0.0, 1.0))
    with pytest.raises(ValueError, match="low ≤ high"):
        Priors(u_c_t1c=(0.8, 0.6))
    with pytest.raises(ValueError, match="unknown"):
        Priors.from_dict({"D": (1, 2)})


def _trace(problem, include_likelihood=True):
    model = numpyro.handlers.seed(problem.model, jax.random.key(0))
    return numpyro.handlers.trace(model).get_trace(include_likelihood=include_likelihood)


def test_site_names_physical():
    problem = tiny_problem(pet=True)
    trace = _trace(problem)
    sampled = {k for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]}
    assert sampled == {"log_D_w", "log_rho", "seed_x", "seed_y", "seed_z", "sigma"}
    observed = {k for k, v in trace.items() if v["type"] == "sample" and v["is_observed"]}
    assert observed == {"t1c", "flair", "pet"}
    recorded = {k for k, v in trace.items() if v["type"] == "deterministic"}
    assert {"D_w", "rho", "T", "mu_D", "mu_rho", "u_c_t1c", "u_c_flair", "sigma_alpha", "b"} <= (
        recorded
    )
    assert float(trace["T"]["value"]) == TRUE_GROWTH["T"]  # fixed by the prior


def test_site_names_scale_free_and_modalities():
    patient = synthetic_patient(pet=False)
    data = model_data_from_patient(patient)
    problem = tiny_problem(pet=False, priors=Priors(parametrisation="scale_free"))
    trace = numpyro.handlers.trace(numpyro.handlers.seed(tumour_model, jax.random.key(0)))
    sites = trace.get_trace(problem.forward, data, Priors(parametrisation="scale_free"))
    assert {"log_mu_D", "log_mu_rho", "mu_D", "mu_rho", "u_c_t1c", "u_c_flair"} <= set(sites)
    assert not {"D_w", "b", "sigma", "pet"} & set(sites)  # no PET → no PET parameters


def test_seed_prior_centred_on_t1c_and_truncated_to_roi():
    patient = synthetic_patient(pet=False).cropped(10.0)
    data = model_data_from_patient(patient)
    problem = tiny_problem(pet=False)
    draws = Predictive(tumour_model, num_samples=4000)(
        jax.random.key(1),
        problem.forward,
        data,
        Priors(seed_sd_mm=50.0),
        include_likelihood=False,
    )
    low, high = patient.grid.world_bounds_mm()
    seed = np.stack([draws[f"seed_{a}"] for a in "xyz"], -1)
    assert np.all(seed >= low - 1e-3) and np.all(seed <= high + 1e-3)
    # With a narrow sd the prior mean is the T1c centre of mass.
    draws = Predictive(tumour_model, num_samples=4000)(
        jax.random.key(2), problem.forward, data, Priors(seed_sd_mm=2.0), include_likelihood=False
    )
    seed = np.stack([draws[f"seed_{a}"] for a in "xyz"], -1)
    np.testing.assert_allclose(seed.mean(0), patient.lesion_center_mm(), atol=0.2)


def test_model_data_rejects_patients_without_observations():
    patient = synthetic_patient(pet=False)
    empty = type(patient.observations)(grid=patient.grid)
    with pytest.raises(InputError, match="no T1c, FLAIR or PET"):
        model_data_from_patient(type(patient)(patient.anatomy, empty, "x"))


def _all_free_problem():
    return tiny_problem(pet=True, priors=Priors())


def test_scale_free_marginal_is_normalised_and_matches_its_own_draws():
    """p(a, b) = 4 L(a, b) / V integrates to 1 over its box, and a histogram of its exact draws
    ((log D + log T)/2, (log ρ + log T)/2) follows it."""
    from scipy import stats

    from bayestumor.model import ScaleFreeMarginal

    priors = Priors()
    ranges = [np.log(bounds(getattr(priors, n))) for n in ("D_w", "rho", "T")]
    marginal = ScaleFreeMarginal(*ranges)
    support = marginal.support
    low, high = (
        np.asarray(support.base_constraint.lower_bound),
        np.asarray(support.base_constraint.upper_bound),
    )
    n = 400
    edges = [np.linspace(low[i], high[i], n + 1) for i in range(2)]
    centres = [0.5 * (e[1:] + e[:-1]) for e in edges]
    grid = np.stack(np.meshgrid(*centres, indexing="ij"), -1)
    density = np.exp(np.asarray(marginal.log_prob(grid), np.float64))
    cell = np.prod((high - low) / n)
    assert density.sum() * cell == pytest.approx(1.0, abs=2e-3)
    draws = np.asarray(marginal.sample(jax.random.key(0), (100_000,)))
    coarse = [np.linspace(low[i], high[i], 11) for i in range(2)]
    counts = np.histogram2d(draws[:, 0], draws[:, 1], bins=coarse)[0].reshape(-1)
    expected = (density.reshape(10, 40, 10, 40).sum(axis=(1, 3)) * cell).reshape(-1)
    occupied = expected * counts.sum() >= 5  # χ² needs ≥ 5 expected per bin
    assert counts[~occupied].sum() <= 5 + 3 * np.sqrt(expected[~occupied].sum() * counts.sum())
    expected = expected[occupied] / expected[occupied].sum() * counts[occupied].sum()
    assert stats.chisquare(counts[occupied], expected).pvalue > 1e-3


def test_all_free_physical_prior_is_independent_log_uniform():
    """With D_w, ρ and T all free the model samples (log μ_D, log μ_ρ) then log T, but the
    prior it implies on (D_w, ρ, T) is still the independent log-uniforms of `Priors`."""
    from scipy import stats

    problem = _all_free_problem()
    assert {"log_mu", "log_T"} <= set(problem.site_names)
    draws = jax.vmap(problem.constrain)(problem.sample_prior(jax.random.key(3), 4000))
    logs = {}
    for name in ("D_w", "rho", "T"):
        low, high = np.log(bounds(getattr(problem.priors, name)))
        logs[name] = np.log(np.asarray(draws[name], np.float64))
        assert stats.kstest(logs[name], stats.uniform(low, high - low).cdf).pvalue > 1e-3, name
    assert abs(np.corrcoef(np.stack(list(logs.values())))[np.triu_indices(3, 1)]).max() < 0.05


def test_all_free_physical_log_prior_has_the_exact_jacobian():
    """The samplers' log prior in unconstrained space (NumPyro's transforms) equals the
    hand-derived density log(4/V) + log L(a, b) + Σ log(w σ'(u)) + log σ'(u_T), up to the terms
    of the other sites, which are held fixed."""
    from bayestumor.model import ScaleFreeMarginal

    problem = _all_free_problem()
    positions = problem.sample_prior(jax.random.key(4), 64)
    first = {k: jnp.broadcast_to(v[0], v.shape) for k, v in positions.items()}
    positions = first | {k: positions[k] for k in ("log_mu", "log_T")}
    log_prior = np.asarray(jax.vmap(problem.log_prior)(positions), np.float64)

    ranges = [np.log(bounds(getattr(problem.priors, n))) for n in ("D_w", "rho", "T")]
    marginal = ScaleFreeMarginal(*ranges)
    a_b = np.asarray(jax.vmap(problem.constrain)(positions)["log_mu"], np.float64)
    lower, upper = marginal.log_T_interval(a_b)
    width = np.asarray(marginal.support.base_constraint.upper_bound) - np.asarray(
        marginal.support.base_constraint.lower_bound
    )

    def log_sigmoid_derivative(u):
        return -np.logaddexp(0.0, u) - np.logaddexp(0.0, -u)

    volume = np.prod([r[1] - r[0] for r in ranges])
    u_mu = np.asarray(positions["log_mu"], np.float64)
    expected = (
        np.log(4.0 / volume)
        + np.log(np.asarray(upper - lower, np.float64))
        + np.sum(np.log(width) + log_sigmoid_derivative(u_mu), axis=-1)
        + log_sigmoid_derivative(np.asarray(positions["log_T"], np.float64))
    )
    difference = log_prior - expected
    np.testing.assert_allclose(difference, difference[0], atol=2e-4)


def test_a_map_search_from_a_given_start_caches_no_tracer():
    """`CalibrationProblem` initialises its NumPyro model on first use; `find_map` given a start
    must trigger that outside its jitted optimiser, or the next transformation of the same
    problem fails with a leaked tracer."""
    from bayestumor.inference import find_map

    start = tiny_problem().initial_position()
    fresh = dataclasses.replace(tiny_problem(), learning_rate=0.9)
    find_map(fresh, start, max_steps=3)
    gradient = jax.jit(jax.grad(fresh.log_density))(fresh.initial_position())
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gradient))
