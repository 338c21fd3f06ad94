"""Calibrating with the surrogate gives the PDE's posterior on a coarse synthetic patient.

Independent truth: the posterior under the exact PDE forward map on the same data, priors and ROI,
reached by Pareto-smoothed importance sampling of the surrogate draws with the PDE likelihood
(Vehtari et al. 2024): when the tail shape k̂ < 0.7 the weighted draws estimate the PDE
posterior consistently, and a surrogate posterior far from the PDE's shows as k̂ ≥ 0.7 (the
shipped 4 mm network: k̂ 13). Tolerances (from the surrogate issue): k̂ < 0.7, and every
growth-parameter mean of the surrogate run lies within half a PDE posterior sd of the PDE
posterior's mean. The patient: MNI152 at 4 mm, a right-frontal tumour simulated by the PDE
(μ_D ≈ 6.7 mm, μ_ρ ≈ 2.1), T1c/FLAIR drawn from the model's own Bernoulli likelihood and PET
with noise sd 0.2; imaging parameters fixed at the truth so the test samples the 5 growth
parameters (μ_D, μ_ρ, seed x/y/z) only.

Runtime: one surrogate NUTS chain of 100 + 200 iterations and 200 PDE solves (no gradients) on
an ROI of up to 32³ voxels (200 draws: the Monte Carlo error of a mean is about 0.1 posterior
sd, a fifth of the tolerance; no R-hat is asked for, so one chain suffices). A second NUTS run with the PDE, which this test used
to make, cost 10 minutes of CI for the same verdict.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.forward import GrowthParams, PDEForward
from bayestumor.forward.surrogate import DEFAULT_MODEL, SurrogateForward, models_dir
from bayestumor.inference import reweight
from bayestumor.model import Priors

SHIPPED = models_dir() / DEFAULT_MODEL
SEED_MM = np.array([26.0, 18.0, 24.0])
TRUTH = dict(D_w=0.15, rho=0.015, T=300.0)
GROWTH = ("mu_D", "mu_rho", "seed_x", "seed_y", "seed_z")


def _patient():
    from bayestumor.imaging import load_mni152
    from bayestumor.workflows import ImagingParams, simulate_patient

    anatomy = load_mni152(4.0).cropped_cube(SEED_MM, 32)  # voxels centre − 16 … centre + 15
    params = GrowthParams(**TRUTH, seed_mm=jnp.asarray(SEED_MM, jnp.float32))
    imaging = ImagingParams(sigma=0.2)
    patient = simulate_patient(anatomy, params, imaging, jax.random.key(5), noisy=True)
    return patient.cropped(margin_mm=16.0), imaging


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED / "surrogate.eqx").exists(), reason="no shipped surrogate")
@pytest.mark.xfail(
    strict=True,  # turns red once the surrogate does agree: then remove this marker (issue 4)
    raises=AssertionError,  # only the disagreement is expected; a crash anywhere fails the test
    reason="fk-mni152-4mm-v1 (31 min of CPU training) is not accurate enough yet: measured "
    "surrogate mean μ_D 8.93 mm vs PDE 7.05 ± 0.08 mm (see its model card, Limits)",
)
def test_surrogate_and_pde_posteriors_agree():
    from bayestumor.inference import run_inference
    from bayestumor.model import CalibrationProblem, model_data_from_patient

    roi, imaging = _patient()
    priors = Priors(
        parametrisation="scale_free",
        u_c_t1c=imaging.u_c_t1c,
        u_c_flair=imaging.u_c_flair,
        sigma_alpha=imaging.sigma_alpha,
        b=imaging.b,
        sigma=imaging.sigma,
    )
    data = model_data_from_patient(roi)
    surrogate = SurrogateForward.from_anatomy(roi.anatomy)
    assert not surrogate.check_ranges(*priors.scale_free_ranges())  # inside the training ranges
    problems = {
        "surrogate": CalibrationProblem(forward=surrogate, data=data, priors=priors),
        "pde": CalibrationProblem(
            forward=PDEForward.from_anatomy(roi.anatomy).sized_for(
                *priors.max_diffusion_and_reaction()
            ),
            data=data,
            priors=priors,
        ),
    }
    result = run_inference(
        problems["surrogate"], "nuts", jax.random.key(1), chains=1, warmup=100, draws=200,
        progress=False,
    )  # fmt: skip
    positions = {k: np.asarray(v).reshape(-1) for k, v in result.run.positions.items()}
    refinement = reweight(problems["surrogate"], problems["pde"], positions, list(GROWTH))
    assert refinement.pareto_k < 0.7, refinement.pareto_k
    for name in GROWTH:
        mean, _, pde_mean, pde_sd, _ = refinement.summary[name]
        assert abs(mean - pde_mean) <= 0.5 * pde_sd, (name, mean, pde_mean, pde_sd)
