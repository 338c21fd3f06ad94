"""Checks that say when a fit cannot explain the scans (`bayestumor.posterior` checks)."""

from __future__ import annotations

import numpy as np
import pytest

from bayestumor.config import Priors
from bayestumor.posterior import (
    dice,
    parameters_at_prior_bounds,
    predictive_checks,
    target_volumes,
)


def test_target_volumes_shrink_with_probability_and_report_the_flair_inside():
    exceedance = np.linspace(0.0, 1.0, 1000).reshape(10, 10, 10)
    flair = exceedance > 0.3  # 699 voxels
    table = target_volumes(exceedance, flair, voxel_ml=0.008, probabilities=(0.1, 0.5, 0.9))
    volumes = [table[p]["volume_ml"] for p in ("0.1", "0.5", "0.9")]
    assert volumes == sorted(volumes, reverse=True)
    assert table["0.1"]["flair_inside"] == 1.0
    assert table["0.5"]["flair_inside"] == pytest.approx(np.mean(exceedance[flair] >= 0.5))
    assert table["0.9"]["volume_ml"] == pytest.approx(np.count_nonzero(exceedance >= 0.9) * 0.008)
    assert target_volumes(exceedance, None, 1.0)["0.5"]["flair_inside"] is None


def test_dice_and_predictive_checks_against_hand_counts():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2] = True  # 32 voxels
    b[1:3] = True  # 32 voxels, 16 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a & False, b & False) is None
    brain = np.ones((4, 4, 4), bool)
    pet = np.full((4, 4, 4), 0.5, np.float32)
    checks = predictive_checks(
        {"flair_probability": a.astype(float) * 0.9, "pet_expected": np.full((4, 4, 4), 0.4)},
        {"flair": b, "t1c": None, "pet": pet},
        brain,
    )
    assert checks["flair"]["dice"] == pytest.approx(0.5)
    assert "t1c" not in checks
    assert checks["pet"]["mean_residual"] == pytest.approx(0.1)
    assert checks["pet"]["rms_residual"] == pytest.approx(0.1)


def test_parameters_piled_at_a_prior_bound_are_flagged_and_flat_ones_are_not():
    rng = np.random.default_rng(0)
    priors = Priors()
    low, high = priors.b
    draws = {
        "b": rng.uniform(low, high, 4000),  # flat over the prior: 2 % near each bound
        "u_c_t1c": np.full(4000, priors.u_c_t1c[1]),  # all at the upper bound
        "D_w": np.exp(rng.uniform(np.log(0.01), np.log(0.0105), 4000)),  # near the lower (log)
        "seed_x": np.zeros(4000),  # not a bounded prior: never flagged
    }
    assert parameters_at_prior_bounds(draws, priors) == ["u_c_t1c (upper)", "D_w (lower)"]
