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

That curve puts a contour's uncertainty in density. A contour's errors — another rater,
registration, partial volumes — are errors of its *position*, and a fixed density band is a band
of distances that narrows where the front is steep: a fit can then make the labels near the
contour more certain by steepening the front there, which is a change of growth (smaller μ_D,
larger μ_ρ), not of position. On sharp masks (a radiologist's contour) σ_α piles at its lower
bound and the bias stays. The ``"boundary"`` visibility (`boundary_visibility`) models the
position instead: a voxel at signed distance d from the surface u = u_c is inside the contour with
probability Φ(d / s), s the sd of the contour's position in mm (``boundary_sd``), and d is the
first-order distance (u − u_c) / |∇u| with |∇u| from central differences of the density on the
grid (`front_slope`). Measured on the demo's sharp masks without PET (modes, 4 mm MNI152): μ_D
27 % low with the density curve, 2 % high with the boundary one.

PET (after Lipkova et al. 2019): normalised uptake y = clip(b · u + ε, 0, 1), ε ~ Normal(0, σ):
the Gaussian of the paper, censored where a normalised scan is (`ClippedNormal`). A voxel at 0
says only "b·u + ε ≤ 0"; treated as a Gaussian value instead, the clipped noise of the healthy
background (mean 0.4 σ > 0) reads as uptake, and the fit grows a diffusive tail to explain it —
on the stress suite (data from the model, PET clipped) μ_D came out ≈ 10 % high and μ_ρ low.

All methods are pure JAX and act element-wise on the voxels given, so they `vmap` over
posterior draws. Only voxels inside the brain enter the likelihood; the model selects them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.stats import norm
from numpyro.distributions import constraints

from bayestumor._custom_types import Array, ArrayLike, Float, PRNGKeyArray, Scalar
from bayestumor.config import DEFAULT_EPSILON, IMAGING_NAMES, VISIBILITIES
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


SLOPE_FLOOR_PER_MM = 1e-4
"""|∇u| below this (per mm) counts as this in `boundary_visibility`: where the density is flat
(the core, the far field) a voxel is then many sds from the contour, as it is."""


def front_slope(
    density: Float[ArrayLike, "x y z"], spacing_mm: tuple[float, float, float]
) -> Float[Array, "x y z"]:
    """|∇u| on the grid, per mm: central differences inside, one-sided at the volume's faces.

    Args:
        density: tumour-cell density on a grid, (x, y, z).
        spacing_mm: the grid's voxel size along each axis, mm.
    """
    partials = jnp.gradient(jnp.asarray(density), *(float(h) for h in spacing_mm))
    # The square root of a sum with a tiny positive term has a finite derivative at a flat spot.
    return jnp.sqrt(sum(jnp.square(p) for p in partials) + SLOPE_FLOOR_PER_MM**2)


def boundary_visibility(
    density: Float[ArrayLike, "*voxels"],
    slope: Float[ArrayLike, "*voxels"],
    u_c: Float[ArrayLike, ""],
    boundary_sd: Float[ArrayLike, ""],
    epsilon: float = DEFAULT_EPSILON,
) -> Float[Array, "*voxels"]:
    """Probability that a voxel is inside a segmentation whose contour is the surface u = u_c
    displaced by a Normal(0, `boundary_sd`²) error along its normal: Φ(d / boundary_sd), in
    [ε, 1 − ε], with d = (u − u_c) / |∇u| the signed distance to the surface to first order.

    Args:
        density: tumour-cell density u in [0, 1], any shape.
        slope: |∇u| at the same voxels, per mm (`front_slope`).
        u_c: visibility threshold (the contour is u = u_c), dimensionless.
        boundary_sd: sd of the contour's position, mm (> 0).
        epsilon: clipping of the probability away from 0 and 1.
    """
    distance = (jnp.asarray(density) - u_c) / jnp.maximum(jnp.asarray(slope), SLOPE_FLOOR_PER_MM)
    return jnp.clip(norm.cdf(distance / boundary_sd), epsilon, 1.0 - epsilon)


class ClippedNormal(dist.Distribution):
    """The law of the mean of `voxels` independent clip(X, low, high), X ~ Normal(loc, scale):
    a Gaussian censored at both ends (Tobit), averaged as resampling a scan to coarser voxels
    averages it.

    - ``voxels = 1`` (a scan on its own grid): exact. Mass Φ((low − loc)/scale) on `low`,
      1 − Φ((high − loc)/scale) on `high`, the Gaussian density in between.
    - ``voxels = k > 1`` (each voxel the block mean of k scan voxels): exact at the bounds (a
      mean at `low` means all k were clipped there: mass Φ(·)^k), and between them the normal
      approximation of a mean of k — the clipped law's own mean and variance / k (closed form,
      `mean`, `variance`), which is what makes averaged background noise (mean 0.4·scale > 0)
      read as noise and not as uptake.

    `log_prob` treats values at or beyond a bound as lying on it. Tail masses use
    `norm.logcdf`, accurate far into the tails in float32 too, where log(Φ) of a rounded Φ is
    not. `voxels` may be traced.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params: ClassVar[list[str]] = ["loc", "scale"]

    def __init__(self, loc, scale, low=0.0, high=1.0, voxels=1.0, *, validate_args=None):
        self.loc, self.scale = dist.util.promote_shapes(loc, scale)
        self.low, self.high, self.voxels = low, high, voxels
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        """Exact for one voxel; for k > 1 a draw of the normal approximation, clipped."""
        exact = jnp.clip(
            dist.Normal(self.loc, self.scale).sample(key, sample_shape), self.low, self.high
        )
        averaged = dist.Normal(self.mean, jnp.sqrt(self.variance)).sample(key, sample_shape)
        return jnp.where(self.voxels > 1.0, jnp.clip(averaged, self.low, self.high), exact)

    def log_prob(self, value):
        z_low = (self.low - self.loc) / self.scale
        z_high = (self.high - self.loc) / self.scale
        exact_inside = dist.Normal(self.loc, self.scale).log_prob(value)
        averaged_inside = dist.Normal(self.mean, jnp.sqrt(self.variance)).log_prob(value)
        inside = jnp.where(self.voxels > 1.0, averaged_inside, exact_inside)
        return jnp.where(
            value <= self.low,
            self.voxels * norm.logcdf(z_low),
            jnp.where(value >= self.high, self.voxels * norm.logcdf(-z_high), inside),
        )

    @property
    def mean(self):
        """E[clip(X, low, high)] in closed form (truncated-normal moments)."""
        z_low = (self.low - self.loc) / self.scale
        z_high = (self.high - self.loc) / self.scale
        mass_low, mass_high = norm.cdf(z_low), norm.sf(z_high)
        middle = self.loc * (1.0 - mass_low - mass_high) + self.scale * (
            norm.pdf(z_low) - norm.pdf(z_high)
        )
        return self.low * mass_low + middle + self.high * mass_high

    @property
    def variance(self):
        """Var of the mean of `voxels` clipped draws: Var[clip(X, low, high)] / voxels."""
        a = (self.low - self.loc) / self.scale
        b = (self.high - self.loc) / self.scale
        mass_low, mass_high = norm.cdf(a), norm.sf(b)
        inner = 1.0 - mass_low - mass_high
        pdf_a, pdf_b = norm.pdf(a), norm.pdf(b)
        # Second moment about `loc` (no cancellation against a large mean in float32).
        about_loc = (
            jnp.square(self.low - self.loc) * mass_low
            + jnp.square(self.scale) * (inner + a * pdf_a - b * pdf_b)
            + jnp.square(self.high - self.loc) * mass_high
        )
        variance = about_loc - jnp.square(self.mean - self.loc)
        # A floor far below any noise a scan has: a voxel deep in saturation (all mass on a
        # bound) must not make the normal approximation degenerate.
        floor = jnp.square(VARIANCE_FLOOR * self.scale)
        return jnp.maximum(variance, floor) / jnp.maximum(self.voxels, 1.0)


VARIANCE_FLOOR = 1e-3
"""Smallest sd of a clipped voxel, relative to the noise sd (numerical floor only)."""


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
    def reads_slope(self) -> bool:
        """Whether the likelihood reads the density's slope |∇u| (`front_slope`) too."""
        return False

    @property
    @abc.abstractmethod
    def expected_map_name(self) -> str:
        """File stem of the posterior mean of `expected` (e.g. ``flair_probability``)."""

    @abc.abstractmethod
    def distribution(
        self, density: Float[Array, "*voxels"], imaging: Imaging, slope: Array | None = None
    ) -> dist.Distribution:
        """The per-voxel likelihood p(y | u), batched over the voxels of `density`; `slope`
        is |∇u| at the same voxels (`front_slope`), needed by a segmentation's boundary
        visibility and ignored otherwise."""

    @abc.abstractmethod
    def expected(
        self, density: Float[Array, "*voxels"], imaging: Imaging, slope: Array | None = None
    ) -> Array:
        """E[y | u] per voxel: the predicted image (`slope` as in `distribution`)."""

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
        slope: Array | None = None,
    ) -> Float[Array, "*voxels"]:
        """Per-voxel log p(y | u)."""
        law = self.distribution(density, imaging, slope)
        return law.log_prob(jnp.asarray(observed, density.dtype))

    def sample(
        self,
        key: PRNGKeyArray,
        density: Float[Array, "*voxels"],
        imaging: Imaging,
        slope: Array | None = None,
    ) -> Array:
        """One replicated image y_rep ~ p(y | u)."""
        return self.distribution(density, imaging, slope).sample(key)

    def stored(self, image: Array) -> Array:
        """`image` as a scan file holds it: clipped to `value_range`."""
        return jnp.clip(image, *self.value_range).astype(jnp.result_type(image))


class Segmentation(AbstractModality):
    """A binary MRI segmentation (T1c or FLAIR): Bernoulli through the visibility curve
    α(u; u_c, σ_α) (``visibility="density"``) or the contour-position law
    Φ(d / boundary_sd) (``"boundary"``; module docstring).

    Attributes:
        name: observed site, ``"t1c"`` or ``"flair"``.
        threshold_name: the imaging parameter holding u_c (``"u_c_t1c"``, ``"u_c_flair"``).
        epsilon: clipping of the probability to [ε, 1 − ε].
        visibility: ``"density"`` or ``"boundary"`` (`bayestumor.config.VISIBILITIES`).
    """

    name: str = eqx.field(static=True)
    threshold_name: str = eqx.field(static=True)
    epsilon: float = eqx.field(static=True, default=DEFAULT_EPSILON)
    visibility: str = eqx.field(static=True, default="density")

    def __check_init__(self):
        if self.visibility not in VISIBILITIES:
            raise InputError(f"unknown visibility {self.visibility!r}; known: {VISIBILITIES}")

    @property
    def reads_slope(self) -> bool:
        return self.visibility == "boundary"

    @property
    def parameter_names(self) -> tuple[str, ...]:
        width = "sigma_alpha" if self.visibility == "density" else "boundary_sd"
        return (self.threshold_name, width)

    @property
    def expected_map_name(self) -> str:
        return f"{self.name}_probability"

    def expected(self, density, imaging, slope=None):
        u_c = imaging[self.threshold_name]
        if self.visibility == "density":
            return visibility_probability(density, u_c, imaging["sigma_alpha"], self.epsilon)
        if slope is None:
            raise InputError(f"the {self.name} boundary visibility needs the density's slope")
        return boundary_visibility(density, slope, u_c, imaging["boundary_sd"], self.epsilon)

    def distribution(self, density, imaging, slope=None):
        return dist.Bernoulli(probs=self.expected(density, imaging, slope))

    def idealised(self, key, density, imaging):
        """The contour {u > u_c}: a radiologist's mask is a sharp threshold, not coin flips."""
        del key
        return density > imaging[self.threshold_name]


class PET(AbstractModality):
    """Normalised FET-PET uptake, y = clip(b·u + ε, 0, 1) with ε ~ Normal(0, σ)
    (`ClippedNormal`; module docstring). `expected` is b·u, the uptake before noise and
    clipping (the predicted-uptake map).

    Attributes:
        name: observed site (``"pet"``).
        voxels: scan voxels each PET voxel averages (1 on the scan's own grid; 8 after
            resampling 2 mm PET to 4 mm: `Observations.pet_voxels_averaged`); σ is the noise
            sd of one scan voxel whatever the calibration grid.
        basis: with a smooth gain field (``Priors.pet_bias``), its basis at the voxels the
            likelihood is evaluated on, (n, k): the noise-free uptake there is
            b·u·exp(basis · c) with the coefficients c the imaging parameter ``pet_bias``.
            `expected` stays b·u (the predicted-uptake map shows the growth model's own
            prediction); `distribution`, and so the likelihood and posterior-predictive
            replicates, carry the gain.
    """

    name: str = eqx.field(static=True, default="pet")
    voxels: Scalar = 1.0
    basis: Float[Array, "n k"] | None = None

    @property
    def bias_size(self) -> int:
        """Number of gain-field coefficients (0 without a basis)."""
        return 0 if self.basis is None else int(self.basis.shape[-1])

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("b", "sigma")

    @property
    def expected_map_name(self) -> str:
        return f"{self.name}_expected"

    def expected(self, density, imaging, slope=None):
        del slope
        return imaging["b"] * jnp.asarray(density)

    def distribution(self, density, imaging, slope=None):
        loc = self.expected(density, imaging)
        if self.basis is not None and "pet_bias" in imaging:
            loc = loc * jnp.exp(self.basis @ imaging["pet_bias"])
        return ClippedNormal(loc, imaging["sigma"], *self.value_range, self.voxels)

    def idealised(self, key, density, imaging):
        """b·u plus Gaussian noise, clipped to [0, 1] as a normalised scan is (a draw from
        `distribution`: the PET model now includes the clipping)."""
        return self.stored(self.sample(key, density, imaging))


OBSERVED_SITES = ("t1c", "flair", "pet")
"""Names of the known modalities, in the order they are reported."""


def modality(
    name: str,
    epsilon: float = DEFAULT_EPSILON,
    pet_voxels: Scalar = 1.0,
    pet_basis: Array | None = None,
    visibility: str = "density",
) -> AbstractModality:
    """The modality observed as `name` (one of `OBSERVED_SITES`); `pet_voxels`, `pet_basis` as
    `PET.voxels`, `PET.basis`; `visibility` as `Segmentation.visibility`.

    Raises:
        InputError: unknown name or visibility.
    """
    if name in ("t1c", "flair"):
        return Segmentation(
            name=name, threshold_name=f"u_c_{name}", epsilon=epsilon, visibility=visibility
        )
    if name == "pet":
        return PET(voxels=pet_voxels, basis=pet_basis)
    raise InputError(f"unknown modality {name!r}; known: {OBSERVED_SITES}")


def observation_model(
    names: Iterable[str],
    epsilon: float = DEFAULT_EPSILON,
    pet_voxels: Scalar = 1.0,
    pet_basis: Array | None = None,
    visibility: str = "density",
) -> tuple[AbstractModality, ...]:
    """The modalities observed as `names`, in `OBSERVED_SITES` order (`pet_voxels`,
    `pet_basis`: `PET.voxels`, `PET.basis`; `visibility`: `Segmentation.visibility`)."""
    names = set(names)
    return tuple(
        modality(name, epsilon, pet_voxels, pet_basis, visibility)
        for name in OBSERVED_SITES
        if name in names
    )


def imaging_parameter_names(modalities: Iterable[AbstractModality]) -> tuple[str, ...]:
    """Imaging parameters the `modalities` need, each once, in `IMAGING_NAMES` order."""
    needed = {name for m in modalities for name in m.parameter_names}
    return tuple(name for name in IMAGING_NAMES if name in needed)


__all__ = [
    "OBSERVED_SITES",
    "PET",
    "AbstractModality",
    "ClippedNormal",
    "Imaging",
    "Segmentation",
    "boundary_visibility",
    "front_slope",
    "imaging_parameter_names",
    "modality",
    "observation_model",
    "visibility_probability",
]
