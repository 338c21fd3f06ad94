"""The grey/white diffusivity ratio D_w / D_g as a parameter (`GrowthParams.gm_ratio`).

Tools disagree on it (5 in Swanson et al. 2000, 10 in most later work), so a calibration can
sample it as a nuisance. Checked here against independent truths: the faces rebuilt at the
solver's own ratio are the precomputed ones, a traced ratio reproduces a solver built at that
ratio, and its derivative — through the face cotangents of each scheme's discrete adjoint —
matches central differences of a tight-tolerance solve.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bayestumor.forward import AdaptiveStep, GrowthParams, PDEForward, SplitStep
from bayestumor.imaging import make_phantom

TIGHT = AdaptiveStep(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def mixed_brain():
    """A phantom with grey matter around the seed, so that the ratio matters."""
    anatomy = make_phantom((16, 16, 16), 7.5)
    seed = anatomy.grid.voxel_to_world(np.array([8.3, 6.6, 7.4]))
    weights = np.random.default_rng(1).uniform(size=anatomy.grid.shape)
    return anatomy, jnp.asarray(seed), weights


def _params(seed, gm_ratio):
    return GrowthParams(D_w=0.8, rho=0.0307, T=250.0, seed_mm=seed, gm_ratio=gm_ratio)


def test_rebuilt_faces_are_the_solver_faces(mixed_brain, x64):
    anatomy, _, _ = mixed_brain
    for ratio in (10.0, 4.0):
        forward = PDEForward.from_anatomy(anatomy, gm_ratio=ratio)
        for rebuilt, stored in zip(forward.faces_for(ratio), forward.faces, strict=True):
            np.testing.assert_allclose(rebuilt, stored, rtol=1e-12, atol=1e-15)
    # Grey matter is where the ratio acts: its faces fall as 1/ratio, pure white ones do not.
    assert forward.lambda_any_ratio_per_mm2 >= forward.lambda_per_mm2


@pytest.mark.parametrize("stepping", [None, SplitStep()], ids=["heun", "split"])
def test_a_traced_ratio_is_a_solver_built_at_that_ratio(mixed_brain, stepping, x64):
    anatomy, seed, _ = mixed_brain
    options = {} if stepping is None else {"stepping": stepping}
    fixed = PDEForward.from_anatomy(anatomy, gm_ratio=5.0, **options).sized_for(300.0, 10.0)
    free = PDEForward.from_anatomy(anatomy, **options).sized_for(300.0, 10.0, any_gm_ratio=True)
    at_five = free(_params(seed, 5.0))
    # The free solver sizes its steps for any ratio ≥ 1 (a few more, shorter steps), so the
    # two agree to the schemes' time-discretisation error, not to round-off.
    reference = fixed(_params(seed, None))
    assert float(jnp.abs(at_five - reference).max()) < 5e-3
    # And the ratio matters: 10 against 5 moves the density by much more than that.
    assert float(jnp.abs(free(_params(seed, 10.0)) - at_five).max()) > 0.05


@pytest.mark.parametrize("stepping", [None, SplitStep()], ids=["heun", "split"])
def test_ratio_gradient_matches_finite_differences_of_tight_solve(mixed_brain, stepping, x64):
    """∂/∂ratio by each scheme's discrete adjoint (face cotangents) against central differences
    of a tight adaptive solve: within 1 % (the schemes' time-discretisation error, as for the
    other parameters in test_pde), and exact for the scheme's own discrete solve."""
    anatomy, seed, weights = mixed_brain

    def objective(forward):
        return lambda ratio: jnp.sum(forward(_params(seed, ratio)) * weights)

    tight = objective(PDEForward.from_anatomy(anatomy, stepping=TIGHT))
    ratio, h = 6.0, 1e-4
    fd = (tight(ratio + h) - tight(ratio - h)) / (2 * h)
    assert abs(float(jax.grad(tight)(ratio)) - fd) < 1e-5 * abs(fd)

    options = {} if stepping is None else {"stepping": stepping}
    scheme = PDEForward.from_anatomy(anatomy, **options).sized_for(300.0, 10.0, any_gm_ratio=True)
    ours = objective(scheme)
    assert abs(float(jax.jit(jax.grad(ours))(ratio)) - fd) < 0.01 * abs(fd)
    check_grads(ours, (jnp.asarray(ratio),), order=1, modes=["rev"])


def test_ratio_gradient_under_vmap_matches_single_gradients(mixed_brain):
    anatomy, seed, weights = mixed_brain
    forward = PDEForward.from_anatomy(anatomy).sized_for(300.0, 10.0, any_gm_ratio=True)
    loss = jax.grad(lambda ratio: jnp.sum(forward(_params(seed, ratio)) * weights))
    ratios = jnp.array([4.0, 8.0])
    batched = jax.jit(jax.vmap(loss))(ratios)
    single = jnp.stack([loss(r) for r in ratios])
    np.testing.assert_allclose(batched, single, rtol=1e-4)


def test_ratio_prior_adds_a_parameter_the_surrogate_refuses():
    """`Priors.gm_ratio` as a range samples ``log_gm_ratio`` and reports ``gm_ratio``; the
    problem's density at a ratio is the forward map's at that ratio; the surrogate, trained at
    one ratio, refuses it."""
    from bayestumor.config import GM_RATIO_RANGE, CalibrationConfig, Priors
    from bayestumor.errors import InputError
    from bayestumor.model import CalibrationProblem, model_data_from_patient
    from tests._calibration_problems import FAST_PRIORS, synthetic_patient

    patient = synthetic_patient()
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(50.0, 30.0, any_gm_ratio=True)
    data = model_data_from_patient(patient)
    free = CalibrationProblem(forward, data, FAST_PRIORS.replace(gm_ratio=GM_RATIO_RANGE))
    assert "log_gm_ratio" in free.site_names and "gm_ratio" in free.parameter_names
    named = free.constrain(free.initial_position())
    params = free.growth_params(named)
    low, high = GM_RATIO_RANGE
    assert low <= float(params.gm_ratio) <= high
    np.testing.assert_allclose(free.density_volume(named), forward(params), atol=1e-6)
    fixed = CalibrationProblem(forward, data, FAST_PRIORS.replace(gm_ratio=5.0))
    assert "gm_ratio" not in fixed.parameter_names
    assert float(fixed.growth_params(fixed.constrain(fixed.initial_position())).gm_ratio) == 5.0
    assert "gm_ratio" not in CalibrationProblem(forward, data, FAST_PRIORS).parameter_names

    with pytest.raises(InputError, match="gm_ratio needs forward='pde'"):
        CalibrationConfig(forward="surrogate", priors=Priors(gm_ratio=GM_RATIO_RANGE))
    with pytest.raises(InputError, match="≥ 1"):
        Priors(gm_ratio=(0.5, 10.0))
