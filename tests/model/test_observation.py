"""The observation model (one `AbstractModality` per scan kind) against hand-computed values and
against the NumPyro model; gradients of the posterior finite across the prior."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_likelihood

from bayestumor.config import PET_BIAS_SCALE_MM
from bayestumor.errors import InputError
from bayestumor.model import (
    PET,
    ClippedNormal,
    Segmentation,
    imaging_parameter_names,
    modality,
    observation_model,
    pet_bias_basis,
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
    # Clipped values are censored: y = 0 has mass Φ((0 − 0.4)/0.1) = Φ(−4), y = 1 has
    # 1 − Φ((1 − 0.4)/0.1) = Φ(−6) (tables: 3.16712e-5, 9.86588e-10).
    values = modality("pet").log_likelihood(jnp.array([0.0, 1.0]), jnp.array([0.5, 0.5]), IMAGING)
    np.testing.assert_allclose(values, [math.log(3.16712e-5), math.log(9.86588e-10)], rtol=1e-5)


def test_clipped_normal_is_the_law_of_a_clipped_gaussian():
    """`ClippedNormal` against independent truths: its masses and density integrate to 1
    (trapezoid rule on 20 001 points, error ~1e-8); the masses at the bounds match the
    frequency of clipped Gaussian draws (4 binomial sd); its closed-form mean and variance
    match Monte Carlo (5 standard errors); and a far tail (z = −20) keeps its float64 value
    log Φ(−20) = −203.917155 in float32, where log of a rounded Φ would be −inf."""
    loc, scale = jnp.array([0.05, 0.5, 0.97]), 0.2
    law = ClippedNormal(loc, scale)
    y = jnp.linspace(0.0, 1.0, 20001)
    inner = jnp.exp(law.log_prob(y[1:-1, None]))
    edges = jnp.exp(law.log_prob(jnp.array([[0.0], [1.0]])))
    total = jnp.trapezoid(inner, y[1:-1], axis=0) + edges.sum(axis=0)
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    n = 200_000
    draws = law.sample(jax.random.key(0), (n,))
    assert float(draws.min()) == 0.0 and float(draws.max()) == 1.0
    for bound, mass in ((0.0, edges[0]), (1.0, edges[1])):
        frequency = np.mean(np.asarray(draws) == bound, axis=0)
        sd = np.sqrt(np.asarray(mass) * (1 - np.asarray(mass)) / n)
        assert np.all(np.abs(frequency - np.asarray(mass)) <= 4 * sd + 1e-6)
    variance = np.asarray(law.variance)
    mean_error = np.abs(np.asarray(draws).mean(axis=0) - np.asarray(law.mean))
    assert np.all(mean_error <= 5 * np.sqrt(variance / n))
    np.testing.assert_allclose(np.asarray(draws).var(axis=0), variance, rtol=0.02)
    tail = ClippedNormal(jnp.float32(1.0), jnp.float32(0.05)).log_prob(jnp.float32(0.0))
    np.testing.assert_allclose(float(tail), -203.917155, rtol=1e-4)


def _maximum_likelihood(y, voxels):
    """(loc, scale) maximising the `ClippedNormal` likelihood of the values `y` (BFGS in
    (loc, log scale), from the sample's mean and sd)."""
    import optimistix as optx

    def negative(theta, _):
        return -ClippedNormal(theta[0], jnp.exp(theta[1]), voxels=voxels).log_prob(y).mean()

    start = jnp.array([y.mean(), jnp.log(y.std() * math.sqrt(voxels))])
    # float32 objective: tolerances at its resolution; the estimates are checked by the caller.
    solver = optx.BFGS(rtol=1e-6, atol=1e-6)
    solution = optx.minimise(negative, solver, start, max_steps=500, throw=False)
    return float(solution.value[0]), float(jnp.exp(solution.value[1]))


def test_clipped_pet_likelihood_recovers_the_uptake_a_gaussian_one_overestimates():
    """Background voxels (true uptake b·u = 0) of a normalised PET are clipped at 0. The
    censored likelihood's maximum recovers uptake 0 and σ within 4 standard errors; a plain
    Gaussian on the same voxels reads the clipped noise as uptake, E = σ/√(2π) ≈ 0.08."""
    sigma, n = 0.2, 20_000
    y = jnp.clip(sigma * jax.random.normal(jax.random.key(2), (n,)), 0.0, 1.0)
    loc, scale = _maximum_likelihood(y, voxels=1.0)
    assert abs(loc) <= 4 * sigma / math.sqrt(n / 2)
    assert abs(scale - sigma) <= 4 * sigma / math.sqrt(n / 2)
    assert float(y.mean()) > 0.07  # the Gaussian MLE of the uptake: σ/√(2π) = 0.0798


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
def test_replicates_have_the_likelihoods_mean_and_idealised_scans_are_sharp(name):
    """Monte Carlo mean of `sample` equals the likelihood's mean (Bernoulli: α(u) = `expected`;
    clipped normal: its closed-form mean, b·u away from the bounds) within 5 standard errors
    of the likelihood's own sd; `idealised` is the sharp contour, which no draw of the
    Bernoulli likelihood is (segmentation voxels at u_c ± 0.02 are 0/1 exactly), and clipped
    uptake for PET."""
    m = modality(name)
    density = jnp.linspace(0.0, 1.0, 41)
    draws = jax.vmap(lambda k: m.sample(k, density, IMAGING))(
        jax.random.split(jax.random.key(0), 4000)
    )
    mean = np.asarray(draws, np.float64).mean(axis=0)
    expected = np.asarray(m.distribution(density, IMAGING).mean, np.float64)
    if name != "pet":
        np.testing.assert_allclose(expected, m.expected(density, IMAGING), rtol=1e-6)
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


def test_pet_averaged_to_coarser_voxels_keeps_its_uptake_and_noise():
    """Resampling 2 mm PET to 4 mm averages 8 clipped scan voxels (`Observations` records
    8). On 4000 block means of clipped background noise (true uptake 0) and of a uniform
    uptake 0.3, the likelihood with ``voxels = 8`` recovers the uptake within 0.1 σ and the
    scan voxel's σ within 10 %: the normal approximation of a mean of 8 is exact at uptake 0.3
    (within its standard errors, ~0.002) and biased where half the voxels are clipped (the
    block mean is skewed there; measured −0.06 σ and +7 %). Taken as one scan voxel each
    (``voxels = 1``), the same background blocks read the averaged noise as uptake ≈ 0.4 σ
    (measured 0.08) and σ as a fifth of it (measured 0.042)."""
    from bayestumor.imaging import Grid, Observations

    sigma, blocks = 0.2, 4000
    fine = jnp.clip(
        jnp.array([0.0, 0.3])[:, None, None]
        + sigma * jax.random.normal(jax.random.key(3), (2, blocks, 8)),
        0.0,
        1.0,
    )
    y = fine.mean(axis=-1)  # (2, blocks): a background row and an uptake-0.3 row
    grid = Grid((4, 4, 4), np.diag([2.0, 2.0, 2.0, 1.0]))
    observations = Observations(grid=grid, pet=np.zeros((4, 4, 4), np.float32))
    assert observations.resampled(4.0).pet_voxels_averaged == 8.0

    for row, truth in zip(y, (0.0, 0.3), strict=True):
        loc, scale = _maximum_likelihood(row, 8.0)
        assert abs(loc - truth) <= 0.1 * sigma and abs(scale - sigma) <= 0.1 * sigma
    loc, scale = _maximum_likelihood(y[0], 1.0)
    assert loc > 0.3 * sigma and scale < 0.6 * sigma


def test_pet_bias_basis_is_a_centred_quadratic_in_position():
    """Columns: t_x, t_y, t_z, t_x², t_y², t_z², t_x t_y, t_x t_z, t_y t_z of
    t = (x − centre) / 30 mm, each centred over the voxels (a constant gain is ``b``'s)."""
    rng = np.random.default_rng(0)
    positions = rng.uniform(-40.0, 40.0, size=(500, 3))
    center = np.array([1.0, -2.0, 3.0])
    basis = pet_bias_basis(positions, center)
    t = (positions - center) / PET_BIAS_SCALE_MM
    expected = np.column_stack([t, t**2, t[:, 0] * t[:, 1], t[:, 0] * t[:, 2], t[:, 1] * t[:, 2]])
    np.testing.assert_allclose(basis, expected - expected.mean(0), rtol=1e-5, atol=1e-6)


def test_pet_bias_multiplies_the_uptake_by_the_gain_field():
    """loc of the PET likelihood = b·u·exp(basis · c), by hand; `expected` (the predicted-uptake
    map) stays b·u; without coefficients the gain is 1."""
    rng = np.random.default_rng(1)
    basis = jnp.asarray(rng.normal(size=(20, 9)), jnp.float32)
    density = jnp.asarray(rng.uniform(size=20), jnp.float32)
    coefficients = jnp.asarray(rng.normal(scale=0.2, size=9), jnp.float32)
    pet = modality("pet", pet_basis=basis)
    imaging = {"b": 0.8, "sigma": 0.05, "pet_bias": coefficients}
    gain = np.exp(np.asarray(basis) @ np.asarray(coefficients))
    np.testing.assert_allclose(
        pet.distribution(density, imaging).loc, 0.8 * np.asarray(density) * gain, rtol=1e-5
    )
    np.testing.assert_allclose(pet.expected(density, imaging), 0.8 * density, rtol=1e-6)
    plain = {"b": 0.8, "sigma": 0.05}
    np.testing.assert_allclose(pet.distribution(density, plain).loc, 0.8 * density, rtol=1e-6)


def test_pet_bias_prior_adds_its_coefficients_to_the_model():
    """``Priors.pet_bias`` = τ samples nine coefficients ~ Normal(0, τ²): the site exists, its
    prior log density is the Gaussian's, and the model and the per-voxel functions agree."""
    problem = tiny_problem(pet=True, priors=FAST_PRIORS.replace(pet_bias=0.2))
    assert "pet_bias" in problem.site_names
    assert "pet_bias" not in tiny_problem(pet=True).site_names
    position = problem.initial_position()
    moved = {**position, "pet_bias": position["pet_bias"] + 0.3}
    expected = float(
        jnp.sum(
            jax.scipy.stats.norm.logpdf(moved["pet_bias"], scale=0.2)
            - jax.scipy.stats.norm.logpdf(position["pet_bias"], scale=0.2)
        )
    )
    assert float(problem.log_prior(moved) - problem.log_prior(position)) == pytest.approx(
        expected, rel=1e-4
    )
    named = problem.constrain(moved)
    sites = {k: v[None] for k, v in named.items() if k in problem.site_names}
    from_model = log_likelihood(problem.model, sites)
    direct = problem.pointwise_log_likelihood(named, problem.brain_density(named))
    np.testing.assert_allclose(from_model["pet"][0], direct["pet"], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="pet_bias"):
        FAST_PRIORS.replace(pet_bias=0.0)
