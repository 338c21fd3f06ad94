"""Calibrating with the surrogate gives the PDE's posterior on a coarse synthetic patient.

Independent truth: the posterior under the exact PDE forward map (NUTS on the same data, priors
and ROI). Tolerance (from the issue): every growth-parameter posterior mean of the surrogate run
lies within half a PDE posterior sd of the PDE run's mean. The patient: MNI152 at 4 mm, a
right-frontal tumour simulated by the PDE (μ_D ≈ 6.7 mm, μ_ρ ≈ 2.1), T1c/FLAIR drawn from the
model's own Bernoulli likelihood and PET with noise sd 0.2; imaging parameters fixed at the
truth so the test samples the 5 growth parameters (μ_D, μ_ρ, seed x/y/z) only.

Runtime (estimated from the code, not measured): two NUTS runs of 2 × (200 + 200) iterations
with MAP starts on an ROI of up to 32³ voxels; near the truth a PDE solve takes ≈ 90 Heun steps
(reaction bound 0.05 on ρT ≈ 4.5), each leapfrog step one solve and its adjoint — some 10⁴
solves: 10–20 minutes on a 2-core CPU, too long for routine runs.
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
    forwards = {
        "surrogate": surrogate,
        "pde": PDEForward.from_anatomy(roi.anatomy).sized_for(*priors.max_diffusion_and_reaction()),
    }
    problems, posteriors, results = {}, {}, {}
    for kind, forward in forwards.items():
        problems[kind] = CalibrationProblem(forward=forward, data=data, priors=priors)
        result = run_inference(
            problems[kind], "nuts", jax.random.key(1), chains=2, warmup=200, draws=200,
            progress=False,
        )  # fmt: skip
        results[kind] = result
        posterior = result.datatree["posterior"]
        posteriors[kind] = {name: np.asarray(posterior[name]).reshape(-1) for name in GROWTH}
    for name in GROWTH:
        s, p = posteriors["surrogate"][name], posteriors["pde"][name]
        assert abs(s.mean() - p.mean()) <= 0.5 * p.std(), (name, s.mean(), p.mean(), p.std())

    # The hybrid refinement on thinned surrogate draws moves the means towards the PDE's.
    flat = {
        k: np.asarray(v).reshape(-1)[::8] for k, v in results["surrogate"].run.positions.items()
    }
    refinement = reweight(problems["surrogate"], problems["pde"], flat, list(GROWTH))
    assert np.isfinite(refinement.pareto_k)
    assert refinement.ess > 1.0
