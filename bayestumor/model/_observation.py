"""The observation model: how tumour-cell density shows in each kind of scan.

Every use of the observation model — the NumPyro likelihood, the pointwise log-likelihood for
LOO, posterior-predictive replicates, synthetic data and the predicted-image maps — goes through
one `AbstractModality` per scan kind, so a modality (or a change to α(u)) is written once.

MRI segmentations (Lipkova et al. 2019, GliomaSolver, eq. 9; Ezhov et al. 2023): a voxel is
visible with probability

    α(u) = 0.5 + 0.5 · sign(u − u_c) · (1 − exp(−(u − u_c)² / σ_α²)),

continuous in u (the variant of one reference code that jumps at u_c is avoided: gradient-based
samplers need continuity), and the observed label is y ~ Bernoulli(α). α is clipped to
[ε, 1 − ε] so that a single mislabelled voxel costs log ε instead of −∞.

PET (Lipkova et al. 2019): normalised uptake y ~ Normal(b · u, σ).

All methods are pure JAX and act element-wise on the voxels given, so they `vmap` over
posterior draws. Only voxels inside the brain enter the likelihood; the model selects them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping

import equinox as eqx
import jax.numpy as jnp
import numpyro.distributions as dist

from bayestumor._custom_types import Array, ArrayLike, Float, PRNGKeyArray
from bayestumor.config import DEFAULT_EPSILON, IMAGING_NAMES
from bayestumor.errors import InputError

Imaging = Mapping[str, Float[ArrayLike, ""]]
"""Imaging parameters by name (``u_c_t1c``, ``u_c_flair``, ``sigma_alpha``, ``b``, ``sigma``)."""


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


class AbstractModality(eqx.Module):
    """One kind of scan: how density u becomes an observed image, voxel by voxel.

    Subclasses define `distribution` (the likelihood of one voxel's value given its density),
    `expected` (the predicted image E[y | u]) and `idealised` (what a real scan of a known
    density looks like, for synthetic patients); `name` is the observed site and the file stem,
    `parameter_names` the imaging parameters the modality needs.
    """

    name: eqx.AbstractVar[str]

    @property
    def value_range(self) -> tuple[float, float]:
        """Values a stored scan of this modality holds (a segmentation is 0/1, normalised PET
        is in [0, 1]); `sample` does not clip, `stored` does."""
        return (0.0, 1.0)

    @property
    @abc.abstractmethod
    def parameter_names(self) -> tuple[str, ...]:
        """Imaging parameters this modality's likelihood depends on."""

    @property
    @abc.abstractmethod
    def expected_map_name(self) -> str:
        """File stem of the posterior mean of `expected` (e.g. ``flair_probability``)."""

    @abc.abstractmethod
    def distribution(self, density: Float[Array, "*voxels"], imaging: Imaging) -> dist.Distribution:
        """The per-voxel likelihood p(y | u), batched over the voxels of `density`."""

    @abc.abstractmethod
    def expected(self, density: Float[Array, "*voxels"], imaging: Imaging) -> Array:
        """E[y | u] per voxel: the predicted image."""

    @abc.abstractmethod
    def idealised(
        self, key: PRNGKeyArray, density: Float[Array, "*voxels"], imaging: Imaging
    ) -> Array:
        """A realistic scan of `density` that is *not* a draw from `distribution` (sharp
        contours, clipped uptake): what synthetic patients look like unless asked otherwise."""

    def log_likelihood(
        self,
        observed: Float[ArrayLike, "*voxels"],
        density: Float[Array, "*voxels"],
        imaging: Imaging,
    ) -> Float[Array, "*voxels"]:
        """Per-voxel log p(y | u)."""
        return self.distribution(density, imaging).log_prob(jnp.asarray(observed, density.dtype))

    def sample(
        self, key: PRNGKeyArray, density: Float[Array, "*voxels"], imaging: Imaging
    ) -> Array:
        """One replicated image y_rep ~ p(y | u)."""
        return self.distribution(density, imaging).sample(key)

    def stored(self, image: Array) -> Array:
        """`image` as a scan file holds it: clipped to `value_range`."""
        return jnp.clip(image, *self.value_range).astype(jnp.result_type(image))


class Segmentation(AbstractModality):
    """A binary MRI segmentation (T1c or FLAIR) through the visibility curve α(u; u_c, σ_α).

    Attributes:
        name: observed site, ``"t1c"`` or ``"flair"``.
        threshold_name: the imaging parameter holding u_c (``"u_c_t1c"``, ``"u_c_flair"``).
        epsilon: clipping of α to [ε, 1 − ε].
    """

    name: str = eqx.field(static=True)
    threshold_name: str = eqx.field(static=True)
    epsilon: float = eqx.field(static=True, default=DEFAULT_EPSILON)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return (self.threshold_name, "sigma_alpha")

    @property
    def expected_map_name(self) -> str:
        return f"{self.name}_probability"

    def expected(self, density, imaging):
        return visibility_probability(
            density, imaging[self.threshold_name], imaging["sigma_alpha"], self.epsilon
        )

    def distribution(self, density, imaging):
        return dist.Bernoulli(probs=self.expected(density, imaging))

    def idealised(self, key, density, imaging):
        """The contour {u > u_c}: a radiologist's mask is a sharp threshold, not coin flips."""
        del key
        return density > imaging[self.threshold_name]


class PET(AbstractModality):
    """Normalised FET-PET uptake, y ~ Normal(b·u, σ).

    Attributes:
        name: observed site (``"pet"``).
    """

    name: str = eqx.field(static=True, default="pet")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("b", "sigma")

    @property
    def expected_map_name(self) -> str:
        return f"{self.name}_expected"

    def expected(self, density, imaging):
        return imaging["b"] * jnp.asarray(density)

    def distribution(self, density, imaging):
        return dist.Normal(self.expected(density, imaging), imaging["sigma"])

    def idealised(self, key, density, imaging):
        """b·u plus Gaussian noise, clipped to [0, 1] as a normalised scan is."""
        return self.stored(self.sample(key, density, imaging))


OBSERVED_SITES = ("t1c", "flair", "pet")
"""Names of the known modalities, in the order they are reported."""


def modality(name: str, epsilon: float = DEFAULT_EPSILON) -> AbstractModality:
    """The modality observed as `name` (one of `OBSERVED_SITES`).

    Raises:
        InputError: unknown name.
    """
    if name in ("t1c", "flair"):
        return Segmentation(name=name, threshold_name=f"u_c_{name}", epsilon=epsilon)
    if name == "pet":
        return PET()
    raise InputError(f"unknown modality {name!r}; known: {OBSERVED_SITES}")


def observation_model(
    names: Iterable[str], epsilon: float = DEFAULT_EPSILON
) -> tuple[AbstractModality, ...]:
    """The modalities observed as `names`, in `OBSERVED_SITES` order."""
    names = set(names)
    return tuple(modality(name, epsilon) for name in OBSERVED_SITES if name in names)


def imaging_parameter_names(modalities: Iterable[AbstractModality]) -> tuple[str, ...]:
    """Imaging parameters the `modalities` need, each once, in `IMAGING_NAMES` order."""
    needed = {name for m in modalities for name in m.parameter_names}
    return tuple(name for name in IMAGING_NAMES if name in needed)


__all__ = [
    "OBSERVED_SITES",
    "PET",
    "AbstractModality",
    "Imaging",
    "Segmentation",
    "imaging_parameter_names",
    "modality",
    "observation_model",
    "visibility_probability",
]
