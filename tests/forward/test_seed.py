"""The initial condition's shapes, widths and amplitudes against closed forms and conservation.

Independent truths: the Gaussian's formula and its integral (2π)^{3/2} σ³ A; TumorGrowthToolkit's
own seed formula (M/(4πDt)^{3/2} exp(−r²/4Dt), cut at 0.1); mass conservation of pure diffusion
with zero-flux boundaries.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.forward import (
    HEAT_KERNEL_THRESHOLD,
    SEED_SHAPES,
    TUMOR_GROWTH_TOOLKIT_SEED,
    GrowthParams,
    PDEForward,
    seed_density,
)
from bayestumor.imaging import make_phantom


def gaussian_by_hand(shape, spacing_mm, centre_voxel, sigma_mm, amplitude):
    """amplitude · exp(−|x − c|² / 2σ²) over all voxel centres, in NumPy."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    offset_mm = (index - np.asarray(centre_voxel)) * np.asarray(spacing_mm)
    return amplitude * np.exp(-0.5 * np.sum(offset_mm**2, axis=-1) / sigma_mm**2)


def test_gaussian_matches_closed_form(x64):
    """Anisotropic voxels, an off-grid centre: the separable product equals the 3-D formula."""
    shape, spacing = (9, 11, 7), (1.0, 1.5, 2.0)
    centre = jnp.array([4.3, 5.1, 2.7])
    seed = seed_density(centre, shape, spacing, sigma_mm=3.0, amplitude=0.7)
    expected = gaussian_by_hand(shape, spacing, centre, 3.0, 0.7)
    np.testing.assert_allclose(np.asarray(seed), expected, rtol=1e-12, atol=1e-15)


def test_amplitude_scales_the_gaussian(x64):
    centre = jnp.array([5.2, 4.9, 5.5])
    one = seed_density(centre, (11, 11, 11), (1.0, 1.0, 1.0), sigma_mm=2.5, amplitude=1.0)
    half = seed_density(centre, (11, 11, 11), (1.0, 1.0, 1.0), sigma_mm=2.5, amplitude=0.5)
    np.testing.assert_allclose(np.asarray(half), 0.5 * np.asarray(one), rtol=1e-14)


@pytest.mark.parametrize("amplitude", [1.0, 0.5])
def test_heat_kernel_is_the_gaussian_cut_at_the_threshold(x64, amplitude):
    """Zero where amplitude · kernel ≤ 0.1, the kernel itself above: both sets non-empty."""
    shape, spacing = (21, 21, 21), (1.0, 1.0, 1.0)
    centre = jnp.array([10.2, 9.6, 10.4])
    cut = np.asarray(
        seed_density(
            centre, shape, spacing, sigma_mm=3.0, amplitude=amplitude, seed_shape="heat-kernel"
        )
    )
    kernel = gaussian_by_hand(shape, spacing, centre, 3.0, amplitude)
    above = kernel > HEAT_KERNEL_THRESHOLD
    assert above.any() and (~above & (kernel > 1e-6)).any()
    np.testing.assert_allclose(cut[above], kernel[above], rtol=1e-12)
    assert np.all(cut[~above] == 0.0)


def test_tumor_growth_toolkit_seed_matches_its_formula(x64):
    """`TUMOR_GROWTH_TOOLKIT_SEED` reproduces TumorGrowthToolkit's FK ``gauss_sol3d`` at 1 mm
    (M = 250, Dt = 5, init_scale = 1): M/(4πDt)^{3/2} exp(−r²/4Dt) where > 0.1, else 0."""
    shape, spacing = (17, 17, 17), (1.0, 1.0, 1.0)
    centre = np.array([8.0, 8.0, 8.0])
    ours = seed_density(jnp.asarray(centre), shape, spacing, **_sigma_amplitude_shape())
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    r2 = np.sum((index - centre) ** 2, axis=-1)
    theirs = 250.0 / (4 * np.pi * 5.0) ** 1.5 * np.exp(-r2 / (4 * 5.0))
    theirs = np.where(theirs > 0.1, theirs, 0.0)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-12, atol=1e-15)
    # Its support: the voxels within the cut radius √(20 ln(0.502/0.1)) ≈ 5.68 mm.
    assert np.count_nonzero(theirs) == np.count_nonzero(r2 <= 20 * math.log(0.50198 / 0.1))


def _sigma_amplitude_shape():
    options = dict(TUMOR_GROWTH_TOOLKIT_SEED)
    return {
        "sigma_mm": options["seed_sigma_mm"],
        "amplitude": options["seed_amplitude"],
        "seed_shape": options["seed_shape"],
    }


@pytest.mark.parametrize("spacing_mm", [0.5, 2.0])
def test_gaussian_mass_is_its_integral(x64, spacing_mm):
    """Σ u · h³ = (2π)^{3/2} σ³ A to 1e-6 relative.

    Why so tight: by Poisson summation the midpoint sum of a Gaussian on an infinite grid differs
    from the integral by ≈ 6·exp(−2π²σ²/h²) relative (< 1e-7 for h ≤ σ), and a box of ±6σ
    truncates ≈ 3·erfc(6/√2) ≈ 6e-9 of the mass.
    """
    sigma, amplitude = 2.0, 0.8
    n = 2 * round(6 * sigma / spacing_mm) + 1
    centre = jnp.full(3, (n - 1) / 2 + 0.3)  # off the voxel centres
    seed = seed_density(centre, (n, n, n), (spacing_mm,) * 3, sigma_mm=sigma, amplitude=amplitude)
    mass = float(jnp.sum(seed)) * spacing_mm**3
    expected = (2 * math.pi) ** 1.5 * sigma**3 * amplitude
    assert mass == pytest.approx(expected, rel=1e-6)


def _phantom_forward(seed_shape: str) -> PDEForward:
    anatomy = make_phantom((16, 16, 16), 4.0)
    return PDEForward.from_anatomy(anatomy, seed_shape=seed_shape, seed_sigma_mm=5.0)


@pytest.mark.parametrize("seed_shape", SEED_SHAPES)
def test_pure_diffusion_conserves_the_initial_mass(x64, seed_shape):
    """ρ = 0, D > 0: zero-flux finite volumes conserve Σu exactly in exact arithmetic, so the
    mass after 100 days equals the initial condition's to float64 rounding (1e-10 relative)."""
    forward = _phantom_forward(seed_shape)
    seed_mm = jnp.array([6.0, 4.0, 2.0])
    params = GrowthParams(D_w=0.5, rho=0.0, T=100.0, seed_mm=seed_mm)
    initial = forward.initial_density(seed_mm)
    final = eqx.filter_jit(forward.sized_for(50.0, 0.0))(params)
    assert np.all(np.isfinite(np.asarray(final)))
    assert float(jnp.max(final)) < float(jnp.max(initial))  # it did diffuse
    assert float(jnp.sum(final)) == pytest.approx(float(jnp.sum(initial)), rel=1e-10)


@pytest.mark.parametrize("seed_shape", SEED_SHAPES)
def test_gradient_in_the_seed_position_is_finite(seed_shape):
    """jax.grad of a growth solve's total density² w.r.t. the seed: finite and not all zero."""
    forward = _phantom_forward(seed_shape)
    forward = forward.sized_for(0.2 * 60.0, 0.05 * 60.0)

    def loss(seed_mm):
        params = GrowthParams(D_w=0.2, rho=0.05, T=60.0, seed_mm=seed_mm)
        return jnp.sum(jnp.square(forward(params)))

    gradient = np.asarray(jax.jit(jax.grad(loss))(jnp.array([6.0, 4.0, 2.0])))
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0.0)


def test_unusable_seed_options_are_refused():
    anatomy = make_phantom((8, 8, 8), 4.0)
    for options, message in [
        ({"seed_shape": "disc"}, "unknown seed shape"),
        ({"seed_sigma_mm": -1.0}, "seed_sigma_mm"),
        ({"seed_amplitude": 1.5}, "seed_amplitude"),
        ({"seed_shape": "heat-kernel", "seed_amplitude": 0.05}, "below its cut"),
    ]:
        with pytest.raises(ValueError, match=message):
            PDEForward.from_anatomy(anatomy, **options)
