"""The Fisher–Kolmogorov solver against independent truths.

Analytic heat kernels, the travelling-wave speed 2√(Dρ), conservation laws, observed orders of
convergence, finite differences of tight-tolerance solves and exact symmetries of the model.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bayestumor.forward import AdaptiveStep, FixedStep, GrowthParams, PDEForward
from bayestumor.imaging import Grid, make_phantom

TIGHT = AdaptiveStep(rtol=1e-10, atol=1e-12)


def homogeneous(shape, spacing_mm, **options) -> PDEForward:
    """All white matter on a box whose first voxel centre is the world origin."""
    grid = Grid(shape, np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0]))
    ones = np.ones(shape)
    return PDEForward.from_tissues(ones, 0 * ones, grid, **options)


def relative_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def heat_kernel_1d(x_mm, centre_mm, sigma0_mm, D, t):
    """Free-space diffusion of a Gaussian of unit peak: the width grows as σ² = σ0² + 2Dt."""
    var = sigma0_mm**2 + 2 * D * t
    return np.sqrt(sigma0_mm**2 / var) * np.exp(-0.5 * (x_mm - centre_mm) ** 2 / var)


def slab_heat_error(spacing_mm: float) -> float:
    """Relative L2 error of a 1-D (n×1×1) diffusion solve against the analytic heat kernel."""
    n = round(60 / spacing_mm)
    forward = homogeneous((n, 1, 1), spacing_mm, seed_sigma_mm=2.0, stepping=TIGHT)
    centre = 30.0 - spacing_mm / 2
    params = GrowthParams(D_w=1.0, rho=0.0, T=2.0, seed_mm=jnp.array([centre, 0.0, 0.0]))
    u = np.asarray(forward(params))[:, 0, 0]
    x = np.arange(n) * spacing_mm
    return relative_l2(u, heat_kernel_1d(x, centre, 2.0, 1.0, 2.0))


@pytest.mark.usefixtures("dtype_mode")
def test_pure_diffusion_matches_3d_heat_kernel():
    """ρ = 0: a Gaussian seed spreads as the 3-D heat kernel (peak × (σ0/σ)³, σ² = σ0² + 2Dt).

    Tolerance 1 %: the second-order spatial error at h = 1 mm, σ ≥ 3 mm is ~h²/(4σ²) ≈ 0.5 %.
    """
    n, h = 40, 1.0
    forward = homogeneous((n, n, n), h, seed_sigma_mm=3.0)
    centre = (n - 1) * h / 2
    D, t = 1.0, 4.0
    params = GrowthParams(D_w=D, rho=0.0, T=t, seed_mm=jnp.full(3, centre))
    u = np.asarray(eqx.filter_jit(forward)(params))
    axis = np.arange(n) * h
    profile = heat_kernel_1d(axis, centre, 3.0, D, t)
    exact = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    assert relative_l2(u, exact) < 0.01


def test_front_speed_approaches_two_sqrt_D_rho():
    """The Fisher–KPP front moves at 2√(Dρ) (Fisher 1937; Kolmogorov et al. 1937).

    A pulled front from compact initial data lags by (3/2)√(D/ρ)·log t (Bramson 1983), so the
    speed measured between t1 and t2 is 2√(Dρ) − (3/2)√(D/ρ)·log(t2/t1)/(t2 − t1). Asserted: the
    measured speed is within 3 % of 2√(Dρ) and within 1.5 % of the Bramson-corrected value
    (spatial error at h = 0.25 mm against a front width √(D/ρ) ≈ 1.4 mm).
    """
    D, rho, h, n = 1.0, 0.5, 0.25, 1200
    forward = homogeneous((n, 1, 1), h, seed_sigma_mm=1.0)
    t1, t2 = 60.0, 160.0
    forward = forward.sized_for(D * t2, rho * t2)
    params = GrowthParams(D_w=D, rho=rho, T=t2, seed_mm=jnp.zeros(3))
    u = np.asarray(forward.density_at(params, jnp.array([t1, t2])))[:, :, 0, 0]

    def front_mm(profile):
        i = int(np.nonzero(profile >= 0.5)[0].max())
        return h * (i + (profile[i] - 0.5) / (profile[i] - profile[i + 1]))

    speed = (front_mm(u[1]) - front_mm(u[0])) / (t2 - t1)
    asymptotic = 2 * np.sqrt(D * rho)
    bramson = asymptotic - 1.5 * np.sqrt(D / rho) * np.log(t2 / t1) / (t2 - t1)
    assert abs(speed / asymptotic - 1) < 0.03
    assert abs(speed / bramson - 1) < 0.015


@pytest.mark.usefixtures("dtype_mode")
def test_zero_flux_conserves_mass_and_keeps_csf_empty():
    """ρ = 0 on the brain-shaped phantom: Σu is conserved (no flux leaves the brain or enters
    CSF), CSF/background voxels stay exactly 0, and with growth 0 ≤ u ≤ 1 holds throughout."""
    anatomy = make_phantom((32, 32, 32), 4.0)
    forward = PDEForward.from_anatomy(anatomy).sized_for(200.0, 20.0)
    seed = jnp.asarray(anatomy.grid.voxel_to_world(np.array([16.0, 12.0, 16.0])))
    times = jnp.array([50.0, 100.0, 200.0])
    pure = GrowthParams(D_w=1.0, rho=0.0, T=200.0, seed_mm=seed)
    u = np.asarray(forward.density_at(pure, times), np.float64)
    u0 = np.asarray(forward.initial_density(seed), np.float64)
    rtol = 1e-4 if u.dtype == np.float32 or jnp.zeros(()).dtype == jnp.float32 else 1e-10
    np.testing.assert_allclose(u.sum(axis=(1, 2, 3)), u0.sum(), rtol=rtol)
    outside = np.asarray(forward.habitable) == 0
    assert outside.sum() > 1000
    assert np.all(u[:, outside] == 0.0)
    assert u[-1][~outside].std() < u0[~outside].std()  # it did spread

    growing = GrowthParams(D_w=1.0, rho=0.1, T=200.0, seed_mm=seed)
    u = np.asarray(forward.density_at(growing, times))
    assert u.min() >= -1e-6 and u.max() <= 1 + 1e-6
    assert np.all(u[:, outside] == 0.0)
    assert u[-1].max() > 0.99  # logistic saturation reached


def test_spatial_convergence_is_second_order(x64):
    """Finite volumes with smooth coefficients are second order in h: halving h quarters the
    error against the analytic heat kernel (time error removed by a tight adaptive solve)."""
    errors = [slab_heat_error(h) for h in (1.0, 0.5, 0.25)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)


def test_time_convergence_is_second_order(x64):
    """Heun is second order in time: against a tight-tolerance reference the error falls as dt²."""
    forward = homogeneous((160, 1, 1), 0.5, seed_sigma_mm=2.0)
    params = GrowthParams(D_w=1.0, rho=0.3, T=20.0, seed_mm=jnp.array([20.0, 0.0, 0.0]))
    reference = forward.with_stepping(TIGHT)(params)
    errors, steps = [], []
    for safety in (0.4, 0.2, 0.1, 0.05):
        stepped = forward.with_stepping(FixedStep(safety))
        stepped = stepped.sized_for(20.0, 6.0)
        steps.append(stepped.stable_steps(params))
        errors.append(relative_l2(stepped(params), reference))
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 2.0) < 0.2, (steps, errors)


def _objective(forward, weights):
    def objective(theta):
        D_w, rho, T, x, y, z = theta
        params = GrowthParams(D_w=D_w, rho=rho, T=T, seed_mm=jnp.stack([x, y, z]))
        return jnp.sum(forward(params) * weights)

    return objective


@pytest.fixture(scope="module")
def small_brain():
    anatomy = make_phantom((16, 16, 16), 7.5)
    seed = anatomy.grid.voxel_to_world(np.array([8.3, 6.6, 7.4]))
    # ρT = 7.675 keeps the step count (a ceil) away from a jump under small perturbations.
    theta = np.array([0.8, 0.0307, 250.0, *seed])
    weights = np.random.default_rng(0).uniform(size=anatomy.grid.shape)
    return anatomy, theta, weights


def test_gradients_match_finite_differences_of_tight_solve(small_brain, x64):
    """∂/∂(D_w, ρ, T, seed) by reverse-mode AD against central differences of a tight-tolerance
    adaptive solve: AD of the tight solve agrees to 1e-5 (truncation of the differences), AD of
    the default fixed-step solver to 1 % (its time-discretisation error)."""
    anatomy, theta, weights = small_brain
    theta = jnp.asarray(theta)
    tight = _objective(PDEForward.from_anatomy(anatomy, stepping=TIGHT), weights)
    steps = np.abs(theta) * 1e-5 + 1e-4
    fd = np.array(
        [
            (tight(theta + e * s) - tight(theta - e * s)) / (2 * s)
            for e, s in zip(np.eye(6), steps, strict=True)
        ]
    )
    ad_tight = np.asarray(jax.grad(tight)(theta))
    np.testing.assert_allclose(ad_tight, fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())

    default = PDEForward.from_anatomy(anatomy).sized_for(300.0, 10.0)
    ad_default = np.asarray(jax.jit(jax.grad(_objective(default, weights)))(theta))
    np.testing.assert_allclose(ad_default, fd, rtol=0.01, atol=1e-3 * np.abs(fd).max())


def test_fixed_step_gradient_is_exact_for_its_own_scheme(small_brain, x64):
    """The custom VJP of the symmetric diffusion operator and the checkpointed loop give the exact
    derivative of the discrete fixed-step solve (JAX's numerical check, forward and reverse)."""
    anatomy, theta, weights = small_brain
    default = PDEForward.from_anatomy(anatomy).sized_for(300.0, 10.0)
    check_grads(_objective(default, weights), (jnp.asarray(theta),), order=1, modes=["rev"])


def test_default_stepping_error_is_small_against_tight_reference(x64):
    """Density and gradient of the default scheme (Heun at 0.9 of the stability limit) are within
    1 % of a tight-tolerance solve on realistic parameters; explicit Euler at that step was
    measured here at 5–15 % (density) and up to 60 % (gradient)."""
    anatomy = make_phantom((24, 24, 24), 5.0)
    seed = anatomy.grid.voxel_to_world(np.array([12.0, 9.5, 12.0]))
    theta = jnp.array([0.5, 0.025, 300.0, *seed])
    weights = np.asarray(anatomy.wm > 0.5, np.float64)
    default = PDEForward.from_anatomy(anatomy).sized_for(200.0, 10.0)
    tight = PDEForward.from_anatomy(anatomy, stepping=TIGHT)
    params = GrowthParams(D_w=theta[0], rho=theta[1], T=theta[2], seed_mm=theta[3:])
    assert relative_l2(default(params), tight(params)) < 0.01
    g_default = jax.grad(_objective(default, weights))(theta)
    g_tight = jax.grad(_objective(tight, weights))(theta)
    assert relative_l2(g_default[:3], g_tight[:3]) < 0.01
    assert relative_l2(g_default[3:], g_tight[3:]) < 0.01


@pytest.mark.usefixtures("dtype_mode")
def test_scale_free_parametrisation_reproduces_physical():
    """The density at T depends on (D_w, ρ, T) only through μ_D² = D_w T and μ_ρ² = ρ T."""
    forward = PDEForward.from_anatomy(make_phantom((16, 16, 16), 8.0))
    seed = jnp.array([4.0, -6.0, 2.0])
    physical = GrowthParams(D_w=0.6, rho=0.02, T=300.0, seed_mm=seed)
    rescaled = GrowthParams(D_w=1.2, rho=0.04, T=150.0, seed_mm=seed)
    scale_free = GrowthParams.from_scale_free(physical.mu_D, physical.mu_rho, seed)
    u = np.asarray(forward(physical))
    # float32: D_w·T and ρ·T of the two parametrisations round differently (~1e-7 relative),
    # and ~150 steps accumulate that to ~1e-5 absolute.
    rtol = 1e-4 if u.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(forward(rescaled), u, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(forward(scale_free), u, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(scale_free.mu_D, np.sqrt(0.6 * 300.0), rtol=1e-6)


@pytest.mark.usefixtures("dtype_mode")
def test_vmap_over_parameter_batch_matches_single_solves():
    """A vmapped batch gives each member's own solve (batch members need different step counts)."""
    forward = PDEForward.from_anatomy(make_phantom((16, 16, 16), 8.0)).sized_for(400.0, 12.0)
    batch = GrowthParams(
        D_w=jnp.array([0.2, 0.8, 1.5]),
        rho=jnp.array([0.01, 0.03, 0.02]),
        T=jnp.array([200.0, 300.0, 250.0]),
        seed_mm=jnp.array([[0.0, 0.0, 0.0], [8.0, -4.0, 4.0], [-8.0, 4.0, 0.0]]),
    )
    batched = jax.jit(jax.vmap(forward))(batch)
    for i in range(3):
        single = forward(jax.tree.map(lambda leaf, i=i: leaf[i], batch))
        np.testing.assert_allclose(batched[i], single, rtol=1e-5, atol=1e-6)


def test_several_output_times_restart_on_step_boundaries():
    """`density_at` at (T/2, T): the first is exactly a solve to T/2; the second equals a single
    solve to T up to the time-discretisation error (different step sequences)."""
    forward = PDEForward.from_anatomy(make_phantom((16, 16, 16), 8.0))
    seed = jnp.array([4.0, -6.0, 2.0])
    params = GrowthParams(D_w=0.6, rho=0.02, T=300.0, seed_mm=seed)
    half = GrowthParams(D_w=0.6, rho=0.02, T=150.0, seed_mm=seed)
    both = forward.density_at(params, jnp.array([150.0, 300.0]))
    np.testing.assert_allclose(both[0], forward(half), rtol=1e-5, atol=1e-6)
    assert relative_l2(both[1], forward(params)) < 0.01


def test_float32_agrees_with_float64():
    """The default float32 solve is within float32 round-off accumulation of the float64 one."""
    anatomy = make_phantom((16, 16, 16), 8.0)
    params = dict(D_w=0.6, rho=0.02, T=300.0, seed_mm=np.array([4.0, -6.0, 2.0]))
    u32 = PDEForward.from_anatomy(anatomy)(GrowthParams(**params))
    with jax.enable_x64(True):
        u64 = PDEForward.from_anatomy(anatomy)(GrowthParams(**params))
        assert u64.dtype == jnp.float64
    assert u32.dtype == jnp.float32
    assert relative_l2(u32, u64) < 1e-5


def test_exceeding_the_step_budget_raises_or_is_nan_for_samplers_never_garbage():
    """An unstable explicit solve is never returned: beyond `max_steps` a call raises (also
    under `jit`), and the samplers' path (`nan_on_failure`) returns NaN, a rejected draw."""
    forward = PDEForward.from_anatomy(make_phantom((16, 16, 16), 8.0)).with_max_steps(4)
    params = GrowthParams(D_w=1.5, rho=0.02, T=900.0, seed_mm=jnp.zeros(3))
    assert forward.stable_steps(params) > 4
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps = 4"):
        jax.block_until_ready(forward(params))
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps = 4"):
        jax.block_until_ready(eqx.filter_jit(forward)(params))
    assert np.all(np.isnan(forward.nan_on_failure()(params)))
    within_budget = forward.with_max_steps(forward.stable_steps(params))
    assert np.all(np.isfinite(within_budget(params)))


def test_bad_construction_raises():
    anatomy = make_phantom((8, 8, 8), 8.0)
    sheared = Grid((8, 8, 8), np.array([[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1.0]]))
    with pytest.raises(ValueError, match="orthogonal"):
        PDEForward.from_tissues(anatomy.wm, anatomy.gm, sheared)
    with pytest.raises(ValueError, match="do not match"):
        PDEForward.from_tissues(anatomy.wm[:4], anatomy.gm, anatomy.grid)
    with pytest.raises(ValueError, match="no habitable"):
        PDEForward.from_tissues(0 * anatomy.wm, 0 * anatomy.gm, anatomy.grid)
    with pytest.raises(ValueError, match="safety"):
        FixedStep(safety=1.5)


def test_heun_step_is_diffrax_heun(x64):
    """The lean loop's step is diffrax's `Heun` step (same tableau) to round-off: `evolve` over
    a span short enough for a single stable, accurate step equals one `diffrax.Heun` step."""
    import diffrax

    forward = PDEForward.from_anatomy(make_phantom((12, 12, 12), 8.0))
    u = forward.initial_density(jnp.zeros(3))
    D_w, rho, days = 50.0, 3.0, 0.01
    args = (jnp.asarray(D_w * days), jnp.asarray(rho * days), forward.faces)
    assert float(forward._steps_for(*args[:2])) == 1.0
    ours = forward.evolve(u, D_w, rho, days)
    term = diffrax.ODETerm(forward._vector_field)
    theirs = diffrax.Heun().step(term, 0.0, 1.0, u, args, None, False)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15)
