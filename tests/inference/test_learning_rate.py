"""The learning rate of the power likelihood (`misfit_learning_rate`): the sandwich algebra
against closed forms, the separable kernel sum against the n × n sum, and the estimator on data
the model did and did not generate."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from bayestumor.forward import FixedStep, PDEForward
from bayestumor.imaging import Grid
from bayestumor.inference import (
    LearningRate,
    kernel_smoothed,
    misfit_learning_rate,
    polished_map,
    sandwich_learning_rate,
)
from bayestumor.model import CalibrationProblem, model_data_from_patient
from bayestumor.workflows import displaced_mask
from tests._calibration_problems import FAST_PRIORS, REACTION_STEP, synthetic_patient

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
