"""The learning rate of the power likelihood (`misfit_learning_rate`): the sandwich algebra
against closed forms, the separable kernel sum against the n × n sum, and the estimator on data
the model did and did not generate."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.forward import FixedStep, PDEForward
from bayestumor.imaging import Grid
from bayestumor.inference import (
    LearningRate,
    coordinate_names,
    derived_gradients,
    kernel_smoothed,
    misfit_learning_rate,
    polished_map,
    sandwich_learning_rate,
)
from bayestumor.model import CalibrationProblem, model_data_from_patient
from bayestumor.workflows import displaced_mask
from tests._calibration_problems import FAST_PRIORS, REACTION_STEP, TRUE_SEED_MM, synthetic_patient

NAMES = ["log_T", "log_mu[0]", "seed_x"]


def test_learning_rate_matches_the_worst_understated_parameter_of_interest():
    # H = diag(0, 4, 1) over (log T, log μ_D, seed_x): log T is not identified and left out;
    # the sandwich variances are 40/16 and 2/1, the model's 1/4 and 1: inflations 10 and 2.
    information = np.diag([0.0, 4.0, 1.0])
    meat = np.diag([7.0, 40.0, 2.0])
    rate = sandwich_learning_rate(information, meat, 10.0, 1000, NAMES)
    assert rate.identified == 2
    assert rate.inflation == pytest.approx((10.0, 2.0))
    assert rate.coordinate_inflation == pytest.approx({"log_mu[0]": 10.0, "seed_x": 2.0})
    assert rate.value == pytest.approx(0.1)  # the worst of the two
    assert rate.trace_rate == pytest.approx(2 / 12)  # Lyddon et al.'s trace match, larger
    assert rate.effective_voxels == pytest.approx(100.0)


def test_uniform_understatement_gives_its_inverse_and_never_sharpens():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    information = a @ a.T + 3 * np.eye(3)
    # J = 5 H: every direction, correlated or not, is understated fivefold.
    assert sandwich_learning_rate(information, 5.0 * information, 10.0, 10, NAMES).value == (
        pytest.approx(0.2, rel=1e-9)
    )
    # Less spread than the model claims never sharpens the posterior beyond the exact one.
    assert sandwich_learning_rate(information, 0.5 * information, 10.0, 10, NAMES).value == 1.0


def test_a_derived_quantity_is_judged_along_its_own_direction():
    # A combination g of coordinates: its variance under the model is gᵀH⁻¹g and under the
    # sandwich gᵀH⁻¹JH⁻¹g (direct inverses as the truth). A misfit confined to that combination
    # leaves every coordinate nearly honest yet must set η.
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 3))
    information = a @ a.T + 3 * np.eye(3)
    g = np.array([0.0, 1.0, -0.8])
    inverse = np.linalg.inv(information)
    direction = inverse @ g  # J adds variance along H⁻¹g, the direction g reads
    meat = information + 30.0 * np.outer(information @ direction, information @ direction) / (
        g @ direction
    )
    rate = sandwich_learning_rate(information, meat, 10.0, 10, NAMES, derived={"combo": g})
    truth = g @ inverse @ meat @ inverse @ g / (g @ inverse @ g)
    assert rate.coordinate_inflation["combo"] == pytest.approx(truth, rel=1e-9)
    assert truth == pytest.approx(31.0)
    assert rate.value == pytest.approx(1 / truth, rel=1e-9)
    assert max(v for k, v in rate.coordinate_inflation.items() if k != "combo") < truth
    # A unit vector is its own coordinate.
    unit = sandwich_learning_rate(information, meat, 10.0, 10, NAMES, derived={"e": np.eye(3)[1]})
    assert unit.coordinate_inflation["e"] == pytest.approx(unit.coordinate_inflation["log_mu[0]"])


def test_referenced_growth_directions_at_the_reference_seed():
    """At the reference seed the matched growth is the growth itself, so with T fixed
    log μ_D,ref = ½ log D_w + const and log μ_ρ,ref = ½ log ρ + const. The sampler's coordinate
    z for a log-uniform prior on (a, b) is the logit of log D_w's position in it, so
    ∂ log D_w/∂z = (x − a)(b − x)/(b − a) at x = log D_w: the central differences must read half
    that (to the matching's 1e-5 tolerance over a 0.02 step) and 0 across; the seed's position
    moves neither, its width both. A fixed seed has no referenced growth."""
    patient = synthetic_patient()
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(50.0, 30.0)
    data = model_data_from_patient(patient)
    priors = FAST_PRIORS.replace(seed_sigma=(3.0, 6.0), seed_amplitude=1.0)
    problem = CalibrationProblem(forward, data, priors)
    growth = {"D_w": 0.1, "rho": 0.03}
    truth = {f"log_{k}": np.log(v) for k, v in growth.items()} | {"log_seed_sigma": np.log(4.0)}
    truth.update(zip(("seed_x", "seed_y", "seed_z"), TRUE_SEED_MM, strict=True))
    position = problem.unconstrain({k: jnp.float32(v) for k, v in truth.items()})
    gradients = derived_gradients(problem, position)
    names = coordinate_names(position)

    def half_slope(name: str) -> float:
        a, b = np.log(getattr(FAST_PRIORS, name))
        x = np.log(growth[name])
        return 0.5 * (x - a) * (b - x) / (b - a)

    expected = {
        "mu_D_ref": {"log_D_w": half_slope("D_w"), "log_rho": 0.0},
        "mu_rho_ref": {"log_D_w": 0.0, "log_rho": half_slope("rho")},
    }
    for quantity, slopes in expected.items():
        for name, slope in slopes.items():
            assert gradients[quantity][names.index(name)] == pytest.approx(slope, abs=5e-3)
        for name in ("seed_x", "seed_y", "seed_z"):
            assert gradients[quantity][names.index(name)] == pytest.approx(0.0, abs=5e-3)
        assert abs(gradients[quantity][names.index("log_seed_sigma")]) > 0.02
    fixed = CalibrationProblem(forward, data, FAST_PRIORS)
    without_width = {k: jnp.float32(v) for k, v in truth.items() if k != "log_seed_sigma"}
    assert derived_gradients(fixed, fixed.unconstrain(without_width)) == {}


def test_separable_kernel_sum_equals_the_full_pairwise_sum():
    grid = Grid((5, 6, 4), np.diag([2.0, 3.0, 4.0, 1.0]))
    rng = np.random.default_rng(1)
    index = np.sort(rng.choice(5 * 6 * 4, size=60, replace=False))
    scores = rng.normal(size=(60, 3))
    world = np.argwhere(np.ones(grid.shape)) * np.array([2.0, 3.0, 4.0])
    x = world[index]
    kernel = np.exp(-0.5 * np.sum((x[:, None] - x[None]) ** 2, axis=-1) / 5.0**2)
    np.testing.assert_allclose(
        kernel_smoothed(scores, grid, index, 5.0), kernel @ scores, rtol=1e-12
    )


def _problem(patient) -> CalibrationProblem:
    forward = PDEForward.from_anatomy(
        patient.anatomy, stepping=FixedStep(reaction_step=REACTION_STEP)
    ).sized_for(*FAST_PRIORS.max_diffusion_and_reaction())
    return CalibrationProblem(forward, model_data_from_patient(patient), FAST_PRIORS)


@pytest.fixture(scope="module")
def model_data_rate() -> LearningRate:
    problem = _problem(synthetic_patient(noisy=True))
    position, _ = polished_map(problem)
    return misfit_learning_rate(problem, position, 10.0)


def test_data_drawn_from_the_model_keep_the_exact_likelihood(model_data_rate):
    # Independent Bernoulli voxels: E[J] = H, so no direction is understated by much and the
    # mean inflation stays below 1 + sampling noise; η is (capped at) 1.
    assert model_data_rate.identified == 5  # D_w, ρ and the seed; T and imaging are fixed
    assert model_data_rate.value == 1.0
    assert max(model_data_rate.inflation) < 2.0


def test_boundaries_moved_along_a_stretch_lower_the_learning_rate(model_data_rate):
    patient = synthetic_patient(noisy=False)
    observations = patient.observations
    moved = {
        name: displaced_mask(getattr(observations, name), 10.0, jax.random.key(i), 12.0, 40.0)
        & patient.anatomy.brain_mask
        for i, name in enumerate(("t1c", "flair"))
    }
    displaced = dataclasses.replace(
        patient, observations=dataclasses.replace(observations, **moved)
    )
    problem = _problem(displaced)
    position, _ = polished_map(problem)
    rate = misfit_learning_rate(problem, position, 10.0)
    # The scans now disagree with the model coherently over several voxels: the exact model
    # understates the variance, and η < 1 says by how much.
    assert max(rate.inflation) > 2.0
    assert rate.value < 0.8
    assert rate.value < model_data_rate.value


def test_power_likelihood_scales_the_log_likelihood_and_leaves_the_prior():
    problem = _problem(synthetic_patient(noisy=True))
    tempered = dataclasses.replace(problem, learning_rate=0.3)
    position = problem.initial_position()
    assert float(tempered.log_likelihood(position)) == pytest.approx(
        0.3 * float(problem.log_likelihood(position)), rel=1e-5
    )
    assert float(tempered.log_prior(position)) == float(problem.log_prior(position))
    with pytest.raises(ValueError, match="learning_rate"):
        dataclasses.replace(problem, learning_rate=1.5)
