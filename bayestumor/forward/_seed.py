"""The initial condition: a small Gaussian blob of tumour cells at a continuous seed position.

One function for every forward map (the PDE's initial density, the surrogate's seed channel),
so both start from the same tumour. Differentiable in the seed position.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayestumor._custom_types import Array, Float

DEFAULT_SEED_SIGMA_MM = 4.0
"""Standard deviation of the Gaussian seed, mm (widened to the voxel size on coarser grids)."""


def gaussian_seed(
    centre_voxel: Float[Array, "3"],
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    sigma_mm: float,
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
