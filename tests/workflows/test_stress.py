"""The stress suite's generators (`bayestumor.workflows.stress_case` and its parts): each makes
data the calibration model did not, and each does what it says."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.forward import (
    TUMOR_GROWTH_TOOLKIT_SEED,
    GrowthParams,
    PDEForward,
    matched_reference_growth,
)
from bayestumor.imaging import Anatomy, Grid
from bayestumor.workflows import (
    STRESS_CONFIGURATIONS,
    displaced_mask,
    explicit_euler_fk,
    smooth_field,
    stress_case,
)


def test_smooth_field_has_unit_sd_and_the_stated_correlation():
    length = 4.0  # voxels of 1 mm
    field = smooth_field(jax.random.key(0), (64, 64, 64), 1.0, length)
    # ≈ (64/ℓ)³ = 4096 correlation volumes: the sample mean's sd is ≈ 1/64, and the sample
    # variance's relative sd ≈ √(2/4096) ≈ 0.02 (both loose: neighbouring volumes overlap).
    assert abs(field.mean()) < 0.1
    assert field.std() == pytest.approx(1.0, abs=0.1)
    lag = 4
    correlation = np.mean(field[:-lag] * field[lag:]) / np.mean(field * field)
    # White noise blurred by a Gaussian of sd ℓ: correlation exp(−d²/4ℓ²) = exp(−1/4) at d = ℓ;
    # ±0.1 for the finite field (≈ (64/ℓ)³ = 4096 correlation volumes).
    assert correlation == pytest.approx(np.exp(-0.25), abs=0.1)


def test_smooth_field_on_a_grid_hardly_larger_than_its_length_keeps_zero_mean_and_unit_sd():
    # 12³ voxels, ℓ = 4 voxels: one draw is nearly constant, so its sd must come from the kernel,
    # not from the draw. Pooled over 200 draws (≈ 200 independent means): mean within ±0.3
    # (about 4 standard errors), sd within 15 %.
    draws = np.stack(
        [smooth_field(jax.random.key(i), (12, 12, 12), 10.0, 40.0) for i in range(200)]
    )
    assert abs(draws.mean()) < 0.3
    assert draws.std() == pytest.approx(1.0, rel=0.15)


def test_displaced_mask_moves_a_boundary_by_the_stated_sd():
    shape = (48, 48, 48)
    mask = np.zeros(shape, bool)
    mask[:24] = True  # a plane boundary between x = 23 and 24
    # Boundary position per (y, z) column, mm, pooled over 8 fields: one 48² plane holds only
    # ≈ 48² / (4πℓ²) ≈ 5 correlation areas of a field with ℓ = 6 mm, too few for its sd alone.
    shifts = np.stack(
        [
            displaced_mask(mask, 1.0, jax.random.key(k), sd_mm=2.0, length_mm=6.0).sum(axis=0)
            - 24.0
            for k in range(8)
        ]
    )
    # Mean 0 up to half a voxel of rounding and the sampling error of ≈ 40 correlation areas
    # (2 mm / √40 ≈ 0.3 mm): |mean| < 0.5 + 2 × 0.3.
    assert abs(shifts.mean()) < 1.1
    assert shifts.std() == pytest.approx(2.0, rel=0.25)
    # Smooth: neighbouring columns move together (a rater's error along a stretch).
    assert np.corrcoef(shifts[:, :-1].ravel(), shifts[:, 1:].ravel())[0, 1] > 0.8


def _white_box(n: int = 20, spacing: float = 2.0) -> Anatomy:
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (n - 1) / 2
    ones = np.ones((n, n, n), np.float32)
    return Anatomy(wm=ones, gm=0 * ones, csf=0 * ones, grid=Grid((n, n, n), affine))


def test_explicit_euler_conserves_cells_without_proliferation():
    anatomy = _white_box()
    params = GrowthParams(D_w=0.2, rho=0.0, T=100.0, seed_mm=jnp.asarray([1.0, -2.0, 0.5]))
    start = explicit_euler_fk(
        anatomy, GrowthParams(D_w=0.2, rho=0.0, T=1e-9, seed_mm=params.seed_mm)
    )
    end = explicit_euler_fk(anatomy, params)
    assert end.sum() == pytest.approx(start.sum(), rel=1e-5)  # zero flux through the box
    assert end.max() < start.max()  # and it spread


def test_explicit_euler_agrees_with_the_package_solver_as_its_step_shrinks():
    # Same seed (4 mm Gaussian, peak 1, no cut) on a homogeneous white-matter box, where the
    # face means coincide: the two independent solvers must converge to the same density.
    anatomy = _white_box()
    params = GrowthParams(D_w=0.1, rho=0.02, T=200.0, seed_mm=jnp.asarray([0.0, 1.0, -1.0]))
    pde = PDEForward.from_anatomy(anatomy, seed_sigma_mm=4.0)
    reference = np.asarray(pde.with_max_steps(pde.stable_steps(params) + 1)(params))
    euler = explicit_euler_fk(
        anatomy, params, seed_sigma_mm=4.0, seed_amplitude=1.0, seed_cut=0.0, courant=0.1
    )
    assert np.max(np.abs(euler - reference)) < 0.01
    # At its stability limit with TumorGrowthToolkit's seed it is a different model.
    other = explicit_euler_fk(anatomy, params)
    assert np.max(np.abs(other - reference)) > 0.05


def test_explicit_euler_steps_are_bounded_by_reaction_accuracy():
    """At the suite's small diffusivities the stability limit alone allows steps with ρΔt ≈ 0.3,
    where Euler's growth factor 1 + ρΔt falls well short of e^{ρΔt}: the generator would then
    differ from the equation by its own error. With the reaction bound it grows the package
    solver's tumour (same seed, homogeneous tissue, where the face means coincide)."""
    anatomy = _white_box()
    params = GrowthParams(D_w=0.04, rho=0.018, T=250.0, seed_mm=jnp.asarray([0.0, 1.0, -1.0]))
    seed = {"seed_sigma_mm": 4.0, "seed_amplitude": 1.0, "seed_cut": 0.0}
    pde = PDEForward.from_anatomy(anatomy, seed_sigma_mm=4.0)
    mass = float(np.sum(pde.with_max_steps(pde.stable_steps(params) + 1)(params)))
    bounded = explicit_euler_fk(anatomy, params, **seed)
    unbounded = explicit_euler_fk(anatomy, params, reaction_step=None, **seed)
    assert float(bounded.sum()) == pytest.approx(mass, rel=0.01)
    assert float(unbounded.sum()) < 0.9 * mass


@pytest.mark.parametrize("configuration", STRESS_CONFIGURATIONS)
def test_stress_cases_show_a_lesion_and_record_their_truth(configuration):
    case = stress_case(configuration, jax.random.key(3))
    volumes = case.patient.observations.volumes_ml()
    assert volumes["flair"] > volumes["t1c"] > 0
    assert case.truth["mu_D"] == pytest.approx(np.sqrt(case.truth["D_w"] * case.truth["T"]))
    seed = np.array([case.truth[f"seed_{a}"] for a in "xyz"])
    voxel = np.round(case.patient.grid.world_to_voxel(seed[None])[0]).astype(int)
    assert case.density[tuple(voxel)] > 0.5  # the tumour grew around its recorded seed
    # Referenced growth: the generator's own μ for the reference seed; for the other solver's
    # smaller seed (≈ 160 against ≈ 1008 mm³ of cells, rms radius 2.3 against 4 mm) the matched
    # one, less than the raw μ: it takes less growth from a larger seed.
    if configuration == "solver":
        matched = matched_reference_growth(
            case.truth["mu_D"], case.truth["mu_rho"], **TUMOR_GROWTH_TOOLKIT_SEED
        )
        assert case.truth["mu_D_ref"] == pytest.approx(float(matched[0][0]), rel=1e-6)
        assert case.truth["mu_rho_ref"] == pytest.approx(float(matched[1][0]), rel=1e-6)
        assert case.truth["mu_D_ref"] < case.truth["mu_D"]
        assert case.truth["mu_rho_ref"] < case.truth["mu_rho"]
    else:
        assert case.truth["mu_D_ref"] == pytest.approx(case.truth["mu_D"], rel=1e-6)
        assert case.truth["mu_rho_ref"] == pytest.approx(case.truth["mu_rho"], rel=1e-6)
    assert case.truth["gm_ratio"] == (5.0 if configuration == "solver" else 10.0)
    assert (case.patient.observations.pet is None) == (configuration == "mri-only")
    if configuration == "threshold":
        flair = case.patient.observations.flair
        np.testing.assert_array_equal(
            flair, case.patient.anatomy.brain_mask & (case.density > case.truth["u_c_flair"])
        )
