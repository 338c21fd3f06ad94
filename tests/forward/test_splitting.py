"""The Strang-splitting solver (`SplitStep`: exact logistic step, Runge–Kutta–Chebyshev diffusion)
against independent truths.

The RKC stability polynomial in closed form (Chebyshev polynomials, Sommeijer, Shampine & Verwer
1998), second-order convergence in Δt against a tight-tolerance reference, conservation of mass
under zero flux, central finite differences of a tight-tolerance solve, JAX's numerical check of
the hand-written adjoint, and the default step's error against a tight reference.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from numpy.polynomial import chebyshev

from bayestumor.forward import AdaptiveStep, GrowthParams, PDEForward, SplitStep
from bayestumor.imaging import Grid, make_phantom
from tests.forward.test_pde import _objective

TIGHT = AdaptiveStep(rtol=1e-10, atol=1e-12)
# Only the bound under test decides the step count.
UNBOUNDED = dict(reaction_step=1e9, diffusion_step=1e9, min_steps=1)


def homogeneous(shape, spacing_mm, **options) -> PDEForward:
    """All white matter on a box whose first voxel centre is the world origin."""
    grid = Grid(shape, np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0]))
    ones = np.ones(shape)
    return PDEForward.from_tissues(ones, 0 * ones, grid, **options)


def relative_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def rkc_polynomial(s: int, z: float, damping: float = 2 / 13) -> tuple[float, float]:
    """(P_s(z), β(s)) of damped second-order RKC in closed form: P_s(z) = a_s + b_s T_s(w0 + w1 z),
    w0 = 1 + ε/s², w1 = T_s'(w0)/T_s''(w0), b_s = T_s''(w0)/T_s'(w0)², a_s = 1 − b_s T_s(w0),
    stable on [−β(s), 0] with β(s) = (1 + w0)/w1 (Sommeijer, Shampine & Verwer 1998, §2)."""
    T = chebyshev.Chebyshev.basis(s)
    w0 = 1 + damping / s**2
    d1, d2 = T.deriv(1)(w0), T.deriv(2)(w0)
    w1 = d1 / d2
    b = d2 / d1**2
    return 1 - b * T(w0) + b * T(w0 + w1 * z), (1 + w0) / w1


@pytest.mark.parametrize("z", [0.3, 2.5, 17.0, 150.0])
def test_diffusion_step_is_the_rkc_polynomial(z, x64):
    """Two voxels coupled by one face: L has eigenvalues 0 and −2 (2/h² is also its Gershgorin
    bound), so one step of pure diffusion multiplies the difference u_0 − u_1 by P_s(−z),
    z = 2·D_w·t, with s the fewest stages whose stability interval (times the safety factor 0.95)
    reaches z. Checked against the closed form; hence |P_s| ≤ 1 and P_s(−z) = e^{−z} + O(z³)."""
    forward = homogeneous((2, 1, 1), 1.0, stepping=SplitStep(**UNBOUNDED, max_stages=32))
    s = next(s for s in range(2, 33) if 0.95 * rkc_polynomial(s, 0.0)[1] >= z)
    u = forward.evolve(jnp.array([1.0, 0.0]).reshape(2, 1, 1), D_w=z / 2, rho=0.0, duration_days=1)
    expected, _ = rkc_polynomial(s, -z)
    np.testing.assert_allclose(u[0, 0, 0] - u[1, 0, 0], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(u.sum(), 1.0, rtol=1e-14)
    assert abs(expected) <= 1.0
    if z < 1:
        assert abs(expected - np.exp(-z)) < z**3


def test_split_time_convergence_is_second_order(x64):
    """Strang splitting with an exact reaction step and a second-order diffusion step is second
    order in Δt (Strang 1968): against a tight-tolerance reference, halving ρΔt quarters the
    error (the RKC stage count changes with Δt, its order does not)."""
    forward = homogeneous((80, 1, 1), 0.5, seed_sigma_mm=2.0)
    params = GrowthParams(D_w=1.0, rho=0.3, T=20.0, seed_mm=jnp.array([15.0, 0.0, 0.0]))
    reference = forward.with_stepping(TIGHT)(params)
    errors, steps = [], []
    for reaction_step in (0.4, 0.2, 0.1):
        stepping = SplitStep(**{**UNBOUNDED, "reaction_step": reaction_step})
        stepped = forward.with_stepping(stepping).sized_for(20.0, 6.0)
        steps.append(stepped.stable_steps(params))
        errors.append(relative_l2(stepped(params), reference))
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 2.0) < 0.2, (steps, errors)


@pytest.mark.usefixtures("dtype_mode")
def test_zero_flux_conserves_mass_and_keeps_csf_empty():
    """ρ = 0 on the brain-shaped phantom: RKC stages are polynomials in L, whose columns sum to
    zero under zero flux, so Σu is conserved; CSF/background voxels stay exactly 0; with growth
    the density stays in [0, 1] (to round-off) and saturates."""
    anatomy = make_phantom((24, 24, 24), 5.0)
    forward = PDEForward.from_anatomy(anatomy, stepping=SplitStep()).sized_for(200.0, 20.0)
    seed = jnp.asarray(anatomy.grid.voxel_to_world(np.array([12.0, 9.0, 12.0])))
    times = jnp.array([50.0, 100.0, 200.0])
    pure = GrowthParams(D_w=1.0, rho=0.0, T=200.0, seed_mm=seed)
    u = np.asarray(forward.density_at(pure, times), np.float64)
    u0 = np.asarray(forward.initial_density(seed), np.float64)
    rtol = 1e-5 if jnp.zeros(()).dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(u.sum(axis=(1, 2, 3)), u0.sum(), rtol=rtol)
    outside = np.asarray(forward.habitable) == 0
    assert outside.sum() > 1000
    assert np.all(u[:, outside] == 0.0)
    assert u[-1][~outside].std() < u0[~outside].std()  # it did spread

    growing = GrowthParams(D_w=1.0, rho=0.1, T=200.0, seed_mm=seed)
    u = np.asarray(forward.density_at(growing, times))
    assert u.min() >= -1e-6 and u.max() <= 1 + 1e-6
    assert np.all(u[:, outside] == 0.0)
    assert u[-1].max() > 0.99


@pytest.fixture(scope="module")
def brain():
    """A 7.5 mm phantom, realistic parameters (D_w T = 150 mm², ρT = 7.5), the tight solution
    and its gradient (float64), and central finite differences of the tight solve."""
    with jax.enable_x64(True):
        anatomy = make_phantom((16, 16, 16), 7.5)
        seed = anatomy.grid.voxel_to_world(np.array([8.3, 6.6, 7.4]))
        theta = jnp.array([0.5, 0.025, 300.0, *seed])
        weights = np.asarray(anatomy.wm > 0.5, np.float64)
        tight = PDEForward.from_anatomy(anatomy, stepping=TIGHT)
        params = GrowthParams(D_w=theta[0], rho=theta[1], T=theta[2], seed_mm=theta[3:])
        objective = jax.jit(_objective(tight, weights))
        steps = np.abs(np.asarray(theta)) * 1e-5 + 1e-6
        fd = np.array(
            [
                (objective(theta + e * s) - objective(theta - e * s)) / (2 * s)
                for e, s in zip(np.eye(6), steps, strict=True)
            ]
        )
        return dict(
            anatomy=anatomy,
            theta=np.asarray(theta),
            weights=weights,
            density=np.asarray(tight(params)),
            gradient=np.asarray(jax.grad(objective)(theta)),
            finite_differences=fd,
        )


def test_gradients_match_finite_differences_of_tight_solve(brain, x64):
    """∂/∂(D_w, ρ, T, seed) of the default `SplitStep` solve by its discrete adjoint agree with
    central differences of a tight-tolerance adaptive solve to 1 % (the scheme's discretisation
    error); the tight solve's own AD agrees with them to 1e-5 (the differences' truncation)."""
    fd = brain["finite_differences"]
    np.testing.assert_allclose(brain["gradient"], fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())
    split = PDEForward.from_anatomy(brain["anatomy"], stepping=SplitStep()).sized_for(200.0, 10.0)
    ad = np.asarray(jax.jit(jax.grad(_objective(split, brain["weights"])))(brain["theta"]))
    np.testing.assert_allclose(ad, fd, rtol=0.01, atol=1e-3 * np.abs(fd).max())


@pytest.mark.usefixtures("dtype_mode")
def test_default_split_error_is_small_against_tight_reference(brain):
    """Density and gradient of the default `SplitStep` (ρΔt ≤ 0.35: 22 steps here against Heun's
    150) are within 1 % of the tight float64 solve, in float32 and in float64 (measured: ≈ 0.05 %,
    comparable to Heun's default)."""
    dtype = jnp.zeros(()).dtype
    split = PDEForward.from_anatomy(brain["anatomy"], stepping=SplitStep()).sized_for(200.0, 10.0)
    theta = jnp.asarray(brain["theta"], dtype)
    params = GrowthParams(D_w=theta[0], rho=theta[1], T=theta[2], seed_mm=theta[3:])
    assert split.stable_steps(params) < 30
    density = eqx.filter_jit(split)(params)
    assert density.dtype == dtype
    assert relative_l2(density, brain["density"]) < 0.01
    weights = jnp.asarray(brain["weights"], dtype)
    gradient = np.asarray(jax.jit(jax.grad(_objective(split, weights)))(theta))
    assert relative_l2(gradient[:3], brain["gradient"][:3]) < 0.01
    assert relative_l2(gradient[3:], brain["gradient"][3:]) < 0.01


def test_split_gradient_is_exact_for_its_own_scheme(x64):
    """The hand-written adjoint (reverse RKC stage sweep, closed-form logistic derivatives,
    checkpointed steps) is the exact derivative of the discrete solve: JAX's numerical check.
    The point is chosen away from jumps of the (integer) step and stage counts."""
    anatomy = make_phantom((10, 10, 10), 6.0)
    seed = anatomy.grid.voxel_to_world(np.array([5.3, 4.6, 4.4]))
    theta = jnp.array([0.83, 0.0307, 250.0, *seed])  # ρT/0.35 = 21.9 steps, 3 RKC stages
    weights = np.random.default_rng(0).uniform(size=anatomy.grid.shape)
    split = PDEForward.from_anatomy(anatomy, stepping=SplitStep()).sized_for(300.0, 10.0)
    check_grads(_objective(split, weights), (theta,), order=1, modes=["rev"])


def test_vmap_over_parameter_batch_matches_single_solves():
    """A vmapped batch gives each member's own solve (members need different step and stage
    counts)."""
    forward = PDEForward.from_anatomy(make_phantom((12, 12, 12), 8.0), stepping=SplitStep())
    forward = forward.sized_for(400.0, 12.0)
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
    assert forward.pmap_safe


def test_exceeding_the_step_budget_raises_or_is_nan():
    """As for Heun: beyond `max_steps` a call raises (also under `jit`); `nan_on_failure` gives
    NaN; the default stepping stays Heun (`FixedStep`)."""
    anatomy = make_phantom((16, 16, 16), 8.0)
    assert type(PDEForward.from_anatomy(anatomy).stepping).__name__ == "FixedStep"
    forward = PDEForward.from_anatomy(anatomy, stepping=SplitStep()).with_max_steps(4)
    params = GrowthParams(D_w=1.5, rho=0.02, T=900.0, seed_mm=jnp.zeros(3))
    assert forward.stable_steps(params) > 4
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps = 4"):
        jax.block_until_ready(eqx.filter_jit(forward)(params))
    assert np.all(np.isnan(forward.nan_on_failure()(params)))
    within_budget = forward.with_max_steps(forward.stable_steps(params))
    assert np.all(np.isfinite(within_budget(params)))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="reaction_step"):
        SplitStep(reaction_step=0.0)
    with pytest.raises(ValueError, match="max_stages"):
        SplitStep(max_stages=1)
    with pytest.raises(ValueError, match="min_steps"):
        SplitStep(min_steps=0)


def test_public_operator_is_symmetric_and_conservative_and_costs_are_counted(x64):
    """`diffusion_operator` is the stencil: symmetric (⟨v, Lu⟩ = ⟨Lv, u⟩), zero column sums
    (zero flux: Σ Lu = 0), zero outside habitable tissue. `operator_applications` counts 2 per
    Heun step and s per split step, s the fewest RKC stages stable for the step (closed form)."""
    anatomy = make_phantom((12, 12, 12), 8.0)
    forward = PDEForward.from_anatomy(anatomy)
    rng = np.random.default_rng(1)
    u, v = (jnp.asarray(rng.uniform(size=anatomy.grid.shape)) for _ in range(2))
    Lu, Lv = forward.diffusion_operator(u), forward.diffusion_operator(v)
    np.testing.assert_allclose(jnp.vdot(v, Lu), jnp.vdot(Lv, u), rtol=1e-12)
    assert abs(float(Lu.sum())) < 1e-10 * float(jnp.abs(Lu).sum())
    assert np.all(np.asarray(Lu)[np.asarray(forward.habitable) == 0] == 0.0)

    params = GrowthParams(D_w=0.6, rho=0.02, T=300.0, seed_mm=jnp.zeros(3))
    assert forward.operator_applications(params) == 2 * forward.stable_steps(params)
    split = forward.with_stepping(SplitStep())
    steps = split.stable_steps(params)
    z = 0.6 * 300.0 / steps * forward.lambda_per_mm2
    s = next(s for s in range(2, 33) if 0.95 * rkc_polynomial(s, 0.0)[1] >= z)
    assert split.operator_applications(params) == steps * s
