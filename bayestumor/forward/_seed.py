"""The initial condition: a small blob of tumour cells at a continuous seed position.

One function for every forward map (the PDE's initial density, the surrogate's seed channel),
so both start from the same tumour. Differentiable in the seed position.

Two shapes (`SEED_SHAPES`), so a simulation can be reproduced under another tool's convention:

- ``"gaussian"`` (default): amplitude · exp(−r² / 2σ²), smooth everywhere.
- ``"heat-kernel"``: the same peak-normalised Gaussian (heat) kernel set to 0 where the density
  amplitude · exp(−r² / 2σ²) is at or below `HEAT_KERNEL_THRESHOLD` (0.1), as TumorGrowthToolkit's
  Fisher–Kolmogorov solver does (``FK.Solver.gauss_sol3d``: M/(4πDt)^{3/2} exp(−r²/4Dt) with
  M = 250, Dt = 5 and r in mm over ``init_scale`` s, values ≤ 0.1 set to 0). Its seed is ours
  with σ = √(2Dt)·s = √10·s mm ≈ 3.16 mm and amplitude M/(4πDt)^{3/2} ≈ 0.502 (cut radius
  ≈ 5.7 mm at s = 1): `TUMOR_GROWTH_TOOLKIT_SEED`. The cut is hard: the seed is exact, and
  gradients in the seed position are those of the kept kernel (voxels crossing the cut edge as the
  seed moves contribute no gradient). A calibration with it sees a density that jumps where a voxel
  crosses the cut; prefer ``"gaussian"`` for sampling, ``"heat-kernel"`` to reproduce a simulation.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.special as jsp

from bayestumor._custom_types import Array, ArrayLike, Float
from bayestumor.config import HEAT_KERNEL_THRESHOLD, SEED_SHAPES

DEFAULT_SEED_SIGMA_MM = 4.0
"""Standard deviation of the Gaussian seed, mm (widened to the voxel size on coarser grids)."""

REFERENCE_SEED = {
    "seed_shape": "gaussian",
    "seed_sigma_mm": DEFAULT_SEED_SIGMA_MM,
    "seed_amplitude": 1.0,
}
"""The seed the referenced growth summaries count from (`referenced_growth`): a Gaussian of
σ = 4 mm and peak density 1, holding (2π)^{3/2}·4³ ≈ 1008 mm³ of fully dense cells (≈ 1 ml)."""

TUMOR_GROWTH_TOOLKIT_SEED = {
    "seed_shape": "heat-kernel",
    "seed_sigma_mm": math.sqrt(10.0),
    "seed_amplitude": 250.0 / (4.0 * math.pi * 5.0) ** 1.5,
}
"""Seed options reproducing TumorGrowthToolkit's FK initial condition at ``init_scale = 1``
(σ = √10 mm, amplitude ≈ 0.502, cut at density 0.1); scale σ by ``init_scale`` otherwise."""


def check_seed_options(seed_shape: str, sigma_mm: float | None, amplitude: float | None) -> None:
    """Raise `ValueError` naming the problem if the seed options are not usable.

    Args:
        seed_shape: one of `SEED_SHAPES`.
        sigma_mm: width in mm, positive, or None (the default width).
        amplitude: peak density in (0, 1]; above `HEAT_KERNEL_THRESHOLD` for ``"heat-kernel"``
            (else the whole seed is cut away); None: not checked (a traced, sampled amplitude,
            which its prior bounds).
    """
    if seed_shape not in SEED_SHAPES:
        raise ValueError(f"unknown seed shape {seed_shape!r}; choose from {SEED_SHAPES}")
    if sigma_mm is not None and not (math.isfinite(sigma_mm) and sigma_mm > 0):
        raise ValueError(f"seed_sigma_mm must be positive, got {sigma_mm}")
    if amplitude is None:
        return
    if not (math.isfinite(amplitude) and 0.0 < amplitude <= 1.0):
        raise ValueError(f"seed_amplitude must be in (0, 1], got {amplitude}")
    if seed_shape == "heat-kernel" and amplitude <= HEAT_KERNEL_THRESHOLD:
        raise ValueError(
            f"a heat-kernel seed of amplitude {amplitude} lies wholly below its cut at "
            f"{HEAT_KERNEL_THRESHOLD}; use an amplitude above it"
        )


def seed_moments(
    seed_sigma_mm: Float[ArrayLike, "*b"],
    seed_amplitude: Float[ArrayLike, "*b"],
    seed_shape: str = "gaussian",
) -> tuple[Float[Array, "*b"], Float[Array, "*b"]]:
    """Cell mass M₀ = ∫u₀ (mm³ of full density) and rms radius per axis σ_eff (mm; σ_eff² =
    ∫|x − c|² u₀ / 3M₀) of a seed of `seed_shape` on the continuum, before tissue masking.

    A Gaussian of peak A and width σ: M₀ = A (2π)^{3/2} σ³ and σ_eff = σ. The heat kernel keeps
    the Gaussian where A·exp(−r²/2σ²) > c (`HEAT_KERNEL_THRESHOLD`), i.e. r²/σ² < k² = 2 ln(A/c);
    its mass and second moment are the Gaussian's times the χ² distribution functions
    P(χ²₃ < k²) and P(χ²₅ < k²). Differentiable in σ and A (either may be traced). The
    arguments are named as the seed dictionaries' keys (`REFERENCE_SEED`, a forward map's
    ``seed_convention``): ``seed_moments(**seed)``.
    """
    sigma = jnp.asarray(seed_sigma_mm)
    amplitude = jnp.asarray(seed_amplitude)
    mass = amplitude * (2.0 * math.pi) ** 1.5 * sigma**3
    if seed_shape == "gaussian":
        return mass, sigma
    if seed_shape != "heat-kernel":
        raise ValueError(f"unknown seed shape {seed_shape!r}; choose from {SEED_SHAPES}")
    half_k2 = jnp.log(jnp.maximum(amplitude / HEAT_KERNEL_THRESHOLD, 1.0))
    kept_mass = jsp.gammainc(1.5, half_k2)  # P(χ²₃ < k²)
    kept_moment = jsp.gammainc(2.5, half_k2)  # P(χ²₅ < k²)
    return mass * kept_mass, sigma * jnp.sqrt(kept_moment / kept_mass)


def referenced_growth(
    mu_D: Float[ArrayLike, "*b"],
    mu_rho: Float[ArrayLike, "*b"],
    seed_sigma_mm: Float[ArrayLike, "*b"],
    seed_amplitude: Float[ArrayLike, "*b"],
    seed_shape: str = "gaussian",
) -> tuple[Float[Array, "*b"], Float[Array, "*b"]]:
    """μ_D and μ_ρ of a tumour grown from a given seed, re-expressed as if grown from the
    `REFERENCE_SEED`: (μ_D,ref, μ_ρ,ref) with

        μ_D,ref² = μ_D² + (σ_eff² − σ_ref²) / 2,    μ_ρ,ref² = μ_ρ² + ln(M₀ / M_ref),

    (M₀, σ_eff from `seed_moments`). Where the density is small (the front, the infiltration the
    scans do not show) the equation is linear, and in uniform tissue its solution from a seed of
    mass M₀ and variance σ_eff² is, away from the seed, M₀ e^{ρT} times a Gaussian of variance
    σ_eff² + 2D T: it depends on the seed and the growth only through σ_eff² + 2μ_D² and
    ln M₀ + μ_ρ². A tumour seen on MRI is not small everywhere: behind the front the density
    saturates, and a peak-1 seed saturates from the start, so at the sizes of real lesions this
    closed form misplaces the seeds of the prior box by up to ±10 % in μ_ρ,ref and ±16 % in
    μ_D,ref. Posteriors report `matched_reference_growth` instead, which starts its Newton
    iteration here. A value whose square would be negative (a tumour smaller than the reference
    seed) is reported as 0. The seed's arguments are named as the seed dictionaries'
    keys: ``referenced_growth(mu_D, mu_rho, **seed)``.

    Returns:
        (μ_D,ref in mm, μ_ρ,ref).
    """
    mass, width = seed_moments(seed_sigma_mm, seed_amplitude, seed_shape)
    ref_mass, ref_width = seed_moments(**REFERENCE_SEED)
    mu_D_sq = jnp.square(mu_D) + 0.5 * (jnp.square(width) - ref_width**2)
    mu_rho_sq = jnp.square(mu_rho) + jnp.log(mass / ref_mass)
    return jnp.sqrt(jnp.maximum(mu_D_sq, 0.0)), jnp.sqrt(jnp.maximum(mu_rho_sq, 0.0))


def gaussian_seed(
    centre_voxel: Float[Array, "3"],
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    sigma_mm: float | Float[Array, ""],
) -> Float[Array, "x y z"]:
    """exp(−|x − c|² / (2σ²)) at the voxel centres of a grid with orthogonal axes, peak 1.

    Separable in the voxel axes, so it costs three 1-D Gaussians.

    Args:
        centre_voxel: seed position in continuous voxel indices (3,).
        shape: grid shape.
        spacing_mm: voxel edge per axis, mm.
        sigma_mm: width, mm.
    """
    profiles = [
        jnp.exp(
            -0.5
            * jnp.square((jnp.arange(n, dtype=centre_voxel.dtype) - centre_voxel[a]) * h / sigma_mm)
        )
        for a, (n, h) in enumerate(zip(shape, spacing_mm, strict=True))
    ]
    return profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]


def seed_density(
    centre_voxel: Float[Array, "3"],
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    *,
    sigma_mm: float | Float[Array, ""],
    amplitude: float | Float[Array, ""] = 1.0,
    seed_shape: str = "gaussian",
) -> Float[Array, "x y z"]:
    """The initial density of shape `seed_shape` (one of `SEED_SHAPES`) on a grid, before masking.

    Args:
        centre_voxel: seed position in continuous voxel indices (3,).
        shape: grid shape.
        spacing_mm: voxel edge per axis, mm.
        sigma_mm: width σ of the Gaussian (heat) kernel, mm: a number, or a traced scalar (a
            sampled seed width; then checked by the caller's prior).
        amplitude: peak density: a number, or a traced scalar (a sampled amplitude).
        seed_shape: ``"gaussian"`` or ``"heat-kernel"`` (cut at or below `HEAT_KERNEL_THRESHOLD`).
    """
    check_seed_options(
        seed_shape,
        sigma_mm if isinstance(sigma_mm, int | float) else None,
        amplitude if isinstance(amplitude, int | float) else None,
    )
    density = amplitude * gaussian_seed(centre_voxel, shape, spacing_mm, sigma_mm)
    if seed_shape == "heat-kernel":
        # Hard cut: exact, and gradients flow through the kept voxels only.
        density = jnp.where(density > HEAT_KERNEL_THRESHOLD, density, 0.0)
    return density
