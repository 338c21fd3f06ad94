"""Priors and the NumPyro model: names, fixed values, seed truncation, parametrisations."""

import jax
import numpy as np
import numpyro
import pytest
from numpyro.infer import Predictive

from bayestumor.errors import InputError
from bayestumor.model import model_data_from_patient, tumour_model
from bayestumor.priors import Priors, bounds
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
