"""Per-voxel observation models linking tumour-cell density to MRI segmentations and PET.

MRI (Lipkova et al. 2019, GliomaSolver, eq. 9; Ezhov et al. 2023): a voxel is visible in a
segmentation with probability

    α(u) = 0.5 + 0.5 · sign(u − u_c) · (1 − exp(−(u − u_c)² / σ_α²)),

continuous in u (the variant of one reference code that jumps at u_c is avoided: gradient-based
samplers need continuity), and the observed label is y ~ Bernoulli(α). α is clipped to
[ε, 1 − ε] so that a single mislabelled voxel costs log ε instead of −∞.

PET (Lipkova et al. 2019): normalised uptake y ~ Normal(b · u, σ).

All functions are pure JAX and act element-wise, so they broadcast over voxels and `vmap` over
posterior draws. Only voxels inside the brain enter the likelihood; the model selects them.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.stats import norm

from bayestumor._custom_types import Array, ArrayLike, Float

DEFAULT_EPSILON = 1e-4
"""Default clipping of the visibility probability α to [ε, 1 − ε] (no log 0)."""


def visibility_probability(
    density: Float[ArrayLike, "*voxels"],
    u_c: Float[ArrayLike, ""],
    sigma_alpha: Float[ArrayLike, ""],
    epsilon: float = DEFAULT_EPSILON,
) -> Float[Array, "*voxels"]:
    """α(u): probability that a voxel of density `u` is inside a segmentation, in [ε, 1 − ε].

    Args:
        density: tumour-cell density u in [0, 1], any shape.
        u_c: visibility threshold (α(u_c) = 0.5), dimensionless.
        sigma_alpha: width of the transition, dimensionless (> 0).
        epsilon: clipping of α away from 0 and 1.
    """
    offset = jnp.asarray(density) - u_c
    # sign(x)·(1 − exp(−x²/σ²)) is C¹ at x = 0 (both one-sided slopes are 0), so gradients exist.
    alpha = 0.5 + 0.5 * jnp.sign(offset) * (-jnp.expm1(-jnp.square(offset / sigma_alpha)))
    return jnp.clip(alpha, epsilon, 1.0 - epsilon)


def segmentation_log_likelihood(
    segmentation: Float[ArrayLike, "*voxels"],
    density: Float[ArrayLike, "*voxels"],
    u_c: Float[ArrayLike, ""],
    sigma_alpha: Float[ArrayLike, ""],
    epsilon: float = DEFAULT_EPSILON,
) -> Float[Array, "*voxels"]:
    """Per-voxel Bernoulli log-likelihood log p(y | u) of a binary segmentation y ∈ {0, 1}."""
    alpha = visibility_probability(density, u_c, sigma_alpha, epsilon)
    y = jnp.asarray(segmentation, alpha.dtype)
    return y * jnp.log(alpha) + (1.0 - y) * jnp.log1p(-alpha)


def pet_log_likelihood(
    pet: Float[ArrayLike, "*voxels"],
    density: Float[ArrayLike, "*voxels"],
    b: Float[ArrayLike, ""],
    sigma: Float[ArrayLike, ""],
) -> Float[Array, "*voxels"]:
    """Per-voxel Gaussian log-likelihood of normalised PET uptake, y ~ Normal(b·u, σ).

    Args:
        pet: uptake in [0, 1].
        density: tumour-cell density u in [0, 1].
        b: uptake per unit density (dimensionless).
        sigma: noise standard deviation (PET units).
    """
    return norm.logpdf(jnp.asarray(pet), b * jnp.asarray(density), sigma)


__all__ = [
    "DEFAULT_EPSILON",
    "pet_log_likelihood",
    "segmentation_log_likelihood",
    "visibility_probability",
]
