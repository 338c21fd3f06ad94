"""Tiny synthetic calibration problems shared by the likelihood, model and inference tests.

A 12³ phantom at 10 mm (120 mm field of view) with a tumour grown by the same PDE the
calibration uses (`REACTION_STEP` 0.25 keeps the solve at ~35 Heun steps; the data and the model
share the solver, so its discretisation error cannot bias recovery).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from bayestumor import GrowthParams, PDEForward, make_phantom
from bayestumor.forward import FixedStep
from bayestumor.model import CalibrationProblem, Priors, model_data_from_patient
from bayestumor.workflows import ImagingParams, simulate_patient

REACTION_STEP = 0.25
TRUE_GROWTH = {"D_w": 0.1, "rho": 0.03, "T": 300.0}
TRUE_SEED_MM = (10.0, 5.0, 0.0)
TRUE_IMAGING = ImagingParams()
# Imaging parameters and T fixed at the truth: the tests then cost ~5 free parameters.
FAST_PRIORS = Priors(
    D_w=(0.02, 0.5),
    rho=(0.005, 0.1),
    T=TRUE_GROWTH["T"],
    u_c_t1c=TRUE_IMAGING.u_c_t1c,
    u_c_flair=TRUE_IMAGING.u_c_flair,
    sigma_alpha=TRUE_IMAGING.sigma_alpha,
    b=TRUE_IMAGING.b,
)


def true_params() -> GrowthParams:
    return GrowthParams(
        D_w=jnp.float32(TRUE_GROWTH["D_w"]),
        rho=jnp.float32(TRUE_GROWTH["rho"]),
        T=jnp.float32(TRUE_GROWTH["T"]),
        seed_mm=jnp.asarray(TRUE_SEED_MM, jnp.float32),
    )


@functools.lru_cache(maxsize=4)
def synthetic_patient(pet: bool = False, noisy: bool = True, shape=(12, 12, 12), spacing=10.0):
    """The phantom patient; segmentations drawn from the model's Bernoulli likelihood."""
    anatomy = make_phantom(shape, spacing)
    forward = PDEForward.from_anatomy(anatomy, stepping=FixedStep(reaction_step=REACTION_STEP))
    return simulate_patient(
        anatomy,
        true_params(),
        TRUE_IMAGING,
        jax.random.key(0),
        forward=forward,
        noisy=noisy,
        pet=pet,
    )


@functools.lru_cache(maxsize=4)
def tiny_problem(pet: bool = False, priors: Priors = FAST_PRIORS) -> CalibrationProblem:
    """The calibration problem of `synthetic_patient` on its full (uncropped) grid."""
    patient = synthetic_patient(pet=pet)
    forward = PDEForward.from_anatomy(
        patient.anatomy, stepping=FixedStep(reaction_step=REACTION_STEP)
    ).sized_for(*priors.max_diffusion_and_reaction())
    return CalibrationProblem(forward, model_data_from_patient(patient), priors)
