"""The observation model (one `AbstractModality` per scan kind) against hand-computed values and
against the NumPyro model; gradients of the posterior finite across the prior."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_likelihood

from bayestumor.errors import InputError
from bayestumor.model import (
    PET,
    Segmentation,
    imaging_parameter_names,
    modality,
    observation_model,
    visibility_probability,
)
from tests._calibration_problems import FAST_PRIORS, tiny_problem


def test_visibility_hand_values():
    # α(u_c) = 1/2; α(u_c ± σ) = 1/2 ± (1 − e^{-1})/2 (the formula with (u − u_c)²/σ² = 1).
    u_c, sigma = 0.7, 0.05
    u = jnp.array([0.7, 0.75, 0.65, 0.7 + 2 * 0.05])
    expected = [0.5, 0.5 + 0.5 * (1 - math.exp(-1)), 0.5 - 0.5 * (1 - math.exp(-1))]
    expected.append(0.5 + 0.5 * (1 - math.exp(-4)))
    np.testing.assert_allclose(visibility_probability(u, u_c, sigma), expected, rtol=1e-6)


def test_visibility_is_clipped_and_continuous():
    epsilon = 1e-3
    alpha = visibility_probability(jnp.array([0.0, 1.0]), 0.5, 0.05, epsilon)
    np.testing.assert_allclose(alpha, [epsilon, 1 - epsilon], rtol=1e-6)
    # Continuity at u_c: no jump (the discontinuous variant of one reference code jumps by 1).
    left, right = visibility_probability(jnp.array([0.7 - 1e-6, 0.7 + 1e-6]), 0.7, 0.05)
    assert abs(float(right - left)) < 1e-5


IMAGING = {"u_c_t1c": 0.7, "u_c_flair": 0.25, "sigma_alpha": 0.05, "b": 0.8, "sigma": 0.1}


def test_segmentation_and_pet_log_likelihood_hand_values():
    alpha = 0.5 + 0.5 * (1 - math.exp(-1))
    t1c = modality("t1c")
    values = t1c.log_likelihood(jnp.array([1.0, 0.0]), jnp.array([0.75, 0.75]), IMAGING)
    np.testing.assert_allclose(values, [math.log(alpha), math.log(1 - alpha)], rtol=1e-5)
    # Normal(b·u, σ): y = 0.5, b·u = 0.4, σ = 0.1 → −½·1² − log 0.1 − ½ log 2π.
    expected = -0.5 - math.log(0.1) - 0.5 * math.log(2 * math.pi)
    values = modality("pet").log_likelihood(jnp.array([0.5]), jnp.array([0.5]), IMAGING)
    np.testing.assert_allclose(values, [expected], rtol=1e-5)


def test_modalities_name_their_parameters_once_in_a_fixed_order():
    assert observation_model(["pet", "flair"]) == (modality("flair"), modality("pet"))
    assert isinstance(modality("flair"), Segmentation) and isinstance(modality("pet"), PET)
    assert imaging_parameter_names(observation_model(["t1c", "flair"])) == (
        "u_c_t1c",
        "u_c_flair",
        "sigma_alpha",
    )
    assert imaging_parameter_names(observation_model(["pet"])) == ("b", "sigma")
    with pytest.raises(InputError, match="unknown modality 'adc'"):
        modality("adc")


@pytest.mark.parametrize("name", ["t1c", "flair", "pet"])
def test_replicates_have_the_likelihoods_mean_and_idealised_scans_are_not_draws(name):
    """Monte Carlo mean of `sample` equals `expected` (Bernoulli: α(u); Normal: b·u) within 5
    standard errors of the likelihood's own sd; `idealised` is the sharp contour / clipped uptake, which no draw of the
    likelihood is (segmentation voxels at u_c ± 0.02 are 0/1 exactly)."""
    m = modality(name)
    density = jnp.linspace(0.0, 1.0, 41)
    draws = jax.vmap(lambda k: m.sample(k, density, IMAGING))(
        jax.random.split(jax.random.key(0), 4000)
    )
    mean = np.asarray(draws, np.float64).mean(axis=0)
    expected = np.asarray(m.expected(density, IMAGING), np.float64)
    sd = np.sqrt(np.asarray(m.distribution(density, IMAGING).variance, np.float64))
    assert np.all(np.abs(mean - expected) <= 5 * sd / np.sqrt(4000) + 1e-6)
    sharp = np.asarray(m.idealised(jax.random.key(1), density, IMAGING), np.float64)
    if name == "pet":
        assert sharp.min() >= 0.0 and sharp.max() <= 1.0
    else:
        u_c = IMAGING[f"u_c_{name}"]
        np.testing.assert_array_equal(sharp, np.asarray(density) > u_c)


@pytest.mark.parametrize("pet", [False, True])
def test_model_sites_match_pointwise_log_likelihood(pet):
    """The NumPyro model's observed sites and the per-voxel functions agree voxel by voxel."""
    problem = tiny_problem(pet=pet)
    named = problem.constrain(problem.initial_position())
    sites = {k: v[None] for k, v in named.items() if k in problem.site_names}
    from_model = log_likelihood(problem.model, sites)
    direct = problem.pointwise_log_likelihood(named, problem.brain_density(named))
    assert set(from_model) == set(direct) == set(problem.data.modalities)
    for name in direct:
        np.testing.assert_allclose(from_model[name][0], direct[name], rtol=1e-5, atol=1e-5)


def test_gradients_finite_across_the_prior():
    """Gradients of the log posterior are finite at 16 prior draws (PET and MRI)."""
    problem = tiny_problem(pet=True, priors=FAST_PRIORS.replace(b=(0.6, 1.02)))
    positions = problem.sample_prior(jax.random.key(3), 16)
    grads = jax.jit(jax.vmap(jax.grad(problem.log_density)))(positions)
    for name, values in grads.items():
        assert np.all(np.isfinite(values)), name
