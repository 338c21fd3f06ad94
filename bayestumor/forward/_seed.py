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

from bayestumor._custom_types import Array, Float
from bayestumor.config import HEAT_KERNEL_THRESHOLD, SEED_SHAPES

DEFAULT_SEED_SIGMA_MM = 4.0
"""Standard deviation of the Gaussian seed, mm (widened to the voxel size on coarser grids)."""

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
