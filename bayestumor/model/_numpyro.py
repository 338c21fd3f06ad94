"""The NumPyro model: priors on growth and imaging parameters, forward map, per-voxel likelihoods.

The model is a plain function (`tumour_model`); its observed sites are the patient's modalities
(``t1c``, ``flair``, ``pet``: `bayestumor.model.AbstractModality`), each a vector over the brain
voxels of the region of interest. Growth parameters with log-uniform priors are sampled as ``log_<name>`` (so samplers
move in log space) and recorded under their own names as deterministic sites, so every result
carries ``D_w, rho, T`` (or ``mu_D, mu_rho``), ``seed_x, seed_y, seed_z`` and the imaging
parameters ``u_c_t1c, u_c_flair, sigma_alpha, b, sigma`` by those names.

When the seed's width or peak is a nuisance parameter, T — and with it μ_D, μ_ρ — counts from
a seed whose size the scans barely constrain, and μ_D, μ_ρ trade against it along a ridge. The
posterior then also reports ``mu_D_ref`` and ``mu_rho_ref``: the same growth re-expressed as if
from the `bayestumor.forward.REFERENCE_SEED` (`bayestumor.forward.referenced_growth`), the
summaries one scan identifies whatever the seed, and the ones to compare across tools. They are
computed from the draws (`CalibrationProblem.named_parameters`), not as sites of this model:
each takes radial solves (`bayestumor.forward.matched_reference_growth`).

One scan identifies only μ_D = √(D_w T) and μ_ρ = √(ρ T), so with D_w, ρ and T all free the
posterior of (log D_w, log ρ, log T) is a thin ridge along log T, bent by the prior box in the
samplers' unconstrained space — NUTS mixes badly along it. The model therefore samples the same
prior in coordinates aligned with what the data see: ``log_mu`` = (log μ_D, log μ_ρ) from its
exact marginal (`ScaleFreeMarginal`), then ``log_T`` uniform on the interval the box leaves
given them. The likelihood depends on ``log_mu`` alone, and ``log_T`` given it is the prior's
conditional, a fixed shape in unconstrained space: no ridge. D_w = μ_D²/T and ρ = μ_ρ²/T are
recorded as before; the prior on (D_w, ρ, T) is unchanged (independent log-uniforms).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayestumor._custom_types import Array, ArrayLike, Float, Int, PRNGKeyArray, Scalar
from bayestumor.config import (
    LOG_UNIFORM,
    PET_BIAS_SCALE_MM,
    SEED_NAMES,
    Priors,
    Spec,
    bounds,
    is_fixed,
)
from bayestumor.errors import InputError
from bayestumor.forward import AbstractForwardModel, GrowthParams
from bayestumor.imaging import Patient
from bayestumor.model._observation import (
    DEFAULT_EPSILON,
    OBSERVED_SITES,
    PET,
    AbstractModality,
    front_slope,
    imaging_parameter_names,
    observation_model,
)

CONDITIONAL_PRIOR_SITES = ("log_T",)
"""Sample sites whose unconstrained coordinate is, given the others, distributed as the prior
says whatever the data (``log_T`` of `_physical_without_ridge`: a fixed logistic shape):
independent a posteriori of every other coordinate."""


class ModelData(NamedTuple):
    """Observations of one patient on its region-of-interest grid, ready for the model.

    Attributes:
        voxel_index: flat (C-order) indices of the brain voxels into the ROI volume, int32 (n,).
        observed: the observed images at those voxels by modality name (``t1c``, ``flair``:
            float32 0/1; ``pet``: normalised uptake), each (n,); only the modalities present.
        seed_center_mm: centre of the seed prior, world mm (3,).
        seed_low_mm: lower bounds of the seed prior (the ROI's lowest voxel centre), mm (3,).
        seed_high_mm: upper bounds of the seed prior (the ROI's highest voxel centre), mm (3,).
        pet_voxels: scan voxels each PET voxel averages (`Observations.pet_voxels_averaged`).
        pet_basis: the smooth functions of position a PET gain field is made of, at the brain
            voxels, (n, 9) (`pet_bias_basis`); used when ``Priors.pet_bias`` is set.
    """

    voxel_index: Int[Array, " n"]
    observed: dict[str, Float[Array, " n"]]
    seed_center_mm: Float[Array, "3"]
    seed_low_mm: Float[Array, "3"]
    seed_high_mm: Float[Array, "3"]
    pet_voxels: Scalar = 1.0
    pet_basis: Float[Array, "n 9"] | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        """Observed modalities present, in `OBSERVED_SITES` order."""
        return tuple(name for name in OBSERVED_SITES if name in self.observed)


def pet_bias_basis(positions_mm: Float[np.ndarray, "n 3"], center_mm: np.ndarray) -> np.ndarray:
    """The PET gain field's basis at `positions_mm` (`bayestumor.config.Priors.pet_bias`): with
    t = (x − `center_mm`) / `PET_BIAS_SCALE_MM`, the three t_a, the three t_a² and the three
    t_a t_b — each centred over the voxels given, so that none of them is a constant gain,
    which ``b`` already is — (n, 9) float32."""
    t = (np.asarray(positions_mm, np.float64) - np.asarray(center_mm)) / PET_BIAS_SCALE_MM
    columns = [t[:, 0], t[:, 1], t[:, 2], *(t[:, a] * t[:, c] for a, c in _QUADRATIC)]
    basis = np.stack(columns, axis=1)
    return (basis - basis.mean(axis=0)).astype(np.float32)


_QUADRATIC = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def modalities_of(
    data: ModelData, priors: Priors, epsilon: float = DEFAULT_EPSILON
) -> tuple[AbstractModality, ...]:
    """The observation model of `data`'s modalities under `priors` (the PET gain field's basis
    when ``priors.pet_bias`` is set)."""
    basis = data.pet_basis if priors.pet_bias is not None else None
    return observation_model(data.modalities, epsilon, data.pet_voxels, basis, priors.visibility)


def model_data_from_patient(patient: Patient) -> ModelData:
    """Select the brain voxels of `patient` (already on the ROI grid) and its observations.

    Only voxels inside the brain (wm + gm ≥ 0.5, `Anatomy.brain_mask`) count: elsewhere the
    model has no tumour cells and the scans carry no information about growth.

    Raises:
        InputError: no brain voxel, no observation at all, or no tumour voxel to centre on.
    """
    brain = patient.anatomy.brain_mask
    if not brain.any():
        raise InputError("the region of interest contains no brain tissue", patient.source)
    images = {
        name: getattr(patient.observations, name)
        for name in OBSERVED_SITES
        if getattr(patient.observations, name) is not None
    }
    if not images:
        raise InputError("the patient has no T1c, FLAIR or PET observation", patient.source)
    index = np.flatnonzero(brain.reshape(-1)).astype(np.int32)
    low, high = patient.grid.world_bounds_mm()
    positions = patient.grid.voxel_to_world(np.argwhere(brain))  # C order, as `index`
    center = np.clip(patient.lesion_center_mm(), low, high)
    return ModelData(
        voxel_index=jnp.asarray(index),
        observed={
            name: jnp.asarray(values.reshape(-1)[index], jnp.float32)
            for name, values in images.items()
        },
        seed_center_mm=jnp.asarray(center, jnp.float32),
        seed_low_mm=jnp.asarray(low, jnp.float32),
        seed_high_mm=jnp.asarray(high, jnp.float32),
        pet_voxels=float(patient.observations.pet_voxels_averaged),
        pet_basis=(
            jnp.asarray(pet_bias_basis(positions, (low + high) / 2)) if "pet" in images else None
        ),
    )


def _parameter(name: str, spec: Spec) -> Array:
    """Sample (or fix) one scalar parameter, recorded under `name`."""
    if is_fixed(spec):
        return numpyro.deterministic(name, jnp.asarray(bounds(spec)[0], jnp.float32))
    low, high = bounds(spec)
    if name in LOG_UNIFORM:
        log_value = numpyro.sample(f"log_{name}", dist.Uniform(np.log(low), np.log(high)))
        return numpyro.deterministic(name, jnp.exp(log_value))
    return numpyro.sample(name, dist.Uniform(low, high))


class ScaleFreeMarginal(dist.Distribution):
    """Law of (log μ_D, log μ_ρ) = ((log D_w + log T)/2, (log ρ + log T)/2) when log D_w, log ρ
    and log T are independent uniforms on [x_l, x_h], [y_l, y_h], [t_l, t_h].

    With a = log μ_D, b = log μ_ρ the map (x, y, t) → (a, b, t) has Jacobian 1/4, so the joint
    density of (a, b, t) is 4/V on {2a − t ∈ [x_l, x_h], 2b − t ∈ [y_l, y_h], t ∈ [t_l, t_h]}
    (V the volume of the box), and the marginal is p(a, b) = 4 L(a, b) / V with L the length
    of the t-interval `log_T_interval` — zero outside a hexagon inside the declared box support.
    Sampling transforms uniform draws, so it is exact.
    """

    arg_constraints: ClassVar[dict] = {}
    pytree_data_fields = ("log_D_w", "log_rho", "log_T")

    def __init__(self, log_D_w, log_rho, log_T, *, validate_args=None):
        self.log_D_w, self.log_rho, self.log_T = (jnp.asarray(v) for v in (log_D_w, log_rho, log_T))
        super().__init__(batch_shape=(), event_shape=(2,), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        low = jnp.stack([self.log_D_w[0] + self.log_T[0], self.log_rho[0] + self.log_T[0]]) / 2
        high = jnp.stack([self.log_D_w[1] + self.log_T[1], self.log_rho[1] + self.log_T[1]]) / 2
        return constraints.independent(constraints.interval(low, high), 1)

    def log_T_interval(
        self, value: Float[ArrayLike, "*batch 2"]
    ) -> tuple[Float[Array, "*batch"], Float[Array, "*batch"]]:
        """Bounds of log T given (log μ_D, log μ_ρ) = `value` (empty where high ≤ low)."""
        value = jnp.asarray(value)
        a, b = value[..., 0], value[..., 1]
        (x_l, x_h), (y_l, y_h), (t_l, t_h) = self.log_D_w, self.log_rho, self.log_T
        low = jnp.maximum(t_l, jnp.maximum(2 * a - x_h, 2 * b - y_h))
        high = jnp.minimum(t_h, jnp.minimum(2 * a - x_l, 2 * b - y_l))
        return low, high

    def sample(self, key: PRNGKeyArray, sample_shape=()) -> Array:
        keys = jax.random.split(key, 3)
        x, y, t = (
            jax.random.uniform(k, sample_shape, minval=bounds_[0], maxval=bounds_[1])
            for k, bounds_ in zip(keys, (self.log_D_w, self.log_rho, self.log_T), strict=True)
        )
        return jnp.stack([(x + t) / 2, (y + t) / 2], axis=-1)

    def log_prob(self, value: Float[ArrayLike, "*batch 2"]) -> Float[Array, "*batch"]:
        low, high = self.log_T_interval(value)
        length = high - low
        (x_l, x_h), (y_l, y_h), (t_l, t_h) = self.log_D_w, self.log_rho, self.log_T
        volume = (x_h - x_l) * (y_h - y_l) * (t_h - t_l)
        # The inner where keeps the gradient finite outside the support (log of a positive).
        log_length = jnp.log(jnp.where(length > 0, length, 1.0))
        return jnp.where(length > 0, log_length + jnp.log(4.0) - jnp.log(volume), -jnp.inf)


def _physical_without_ridge(priors: Priors) -> tuple[Array, Array, Array]:
    """D_w, ρ, T with all three free, sampled as ``log_mu`` then ``log_T`` (module docstring)."""
    marginal = ScaleFreeMarginal(
        *(np.log(bounds(getattr(priors, name))) for name in ("D_w", "rho", "T"))
    )
    log_mu = numpyro.sample("log_mu", marginal)
    low, high = marginal.log_T_interval(log_mu)
    # Outside the support `log_mu` already has log density −∞; keep this interval non-empty.
    log_T = numpyro.sample("log_T", dist.Uniform(low, jnp.maximum(high, low + 1e-6)))
    D_w = numpyro.deterministic("D_w", jnp.exp(2 * log_mu[0] - log_T))
    rho = numpyro.deterministic("rho", jnp.exp(2 * log_mu[1] - log_T))
    return D_w, rho, numpyro.deterministic("T", jnp.exp(log_T))


def sample_growth_params(priors: Priors, data: ModelData) -> GrowthParams:
    """Sample the growth parameters and the seed (with its width and peak when
    `priors.seed_sigma`, `priors.seed_amplitude` say so; ``log_seed_sigma``,
    ``log_seed_amplitude`` are sampled, ``seed_sigma``, ``seed_amplitude`` recorded), and the
    grey/white diffusivity ratio when `priors.gm_ratio` says so (``log_gm_ratio``,
    ``gm_ratio``); returns `GrowthParams`."""
    seed = []
    for axis, name in enumerate(SEED_NAMES):
        prior = dist.TruncatedNormal(
            data.seed_center_mm[axis],
            priors.seed_sd_mm,
            low=data.seed_low_mm[axis],
            high=data.seed_high_mm[axis],
        )
        seed.append(numpyro.sample(name, prior))
    seed_mm = jnp.stack(seed)
    seed_sigma = None if priors.seed_sigma is None else _parameter("seed_sigma", priors.seed_sigma)
    amplitude = (
        None
        if priors.seed_amplitude is None
        else _parameter("seed_amplitude", priors.seed_amplitude)
    )
    gm_ratio = None if priors.gm_ratio is None else _parameter("gm_ratio", priors.gm_ratio)
    if priors.parametrisation == "physical":
        if any(is_fixed(getattr(priors, name)) for name in ("D_w", "rho", "T")):
            D_w, rho, T = (_parameter(name, getattr(priors, name)) for name in ("D_w", "rho", "T"))
        else:
            D_w, rho, T = _physical_without_ridge(priors)
        params = GrowthParams(
            D_w=D_w,
            rho=rho,
            T=T,
            seed_mm=seed_mm,
            seed_sigma_mm=seed_sigma,
            seed_amplitude=amplitude,
            gm_ratio=gm_ratio,
        )
        numpyro.deterministic("mu_D", params.mu_D)
        numpyro.deterministic("mu_rho", params.mu_rho)
        return params
    mu_D = _parameter("mu_D", priors.mu_D)
    mu_rho = _parameter("mu_rho", priors.mu_rho)
    return GrowthParams.from_scale_free(
        mu_D, mu_rho, seed_mm, seed_sigma_mm=seed_sigma, seed_amplitude=amplitude, gm_ratio=gm_ratio
    )


def sample_imaging_params(
    priors: Priors, modalities: tuple[AbstractModality, ...]
) -> dict[str, Array]:
    """Sample the imaging parameters the observed `modalities` need, and the PET gain field's
    coefficients ``pet_bias`` (Normal(0, τ²) each) when a PET modality has a basis."""
    imaging = {
        name: _parameter(name, getattr(priors, name))
        for name in imaging_parameter_names(modalities)
    }
    for modality in modalities:
        size = modality.bias_size if isinstance(modality, PET) else 0
        if size and priors.pet_bias is not None:
            prior = dist.Normal(0.0, priors.pet_bias).expand([size]).to_event(1)
            imaging["pet_bias"] = numpyro.sample("pet_bias", prior)
    return imaging


def brain_density(forward: AbstractForwardModel, params: GrowthParams, data: ModelData) -> Array:
    """Tumour-cell density at the brain voxels, (n,)."""
    return forward(params).reshape(-1)[data.voxel_index]


def brain_fields(
    forward: AbstractForwardModel, params: GrowthParams, data: ModelData
) -> tuple[Array, Array]:
    """Tumour-cell density and its slope |∇u| (per mm, `front_slope`) at the brain voxels,
    (n,) each: what the modalities' likelihoods read."""
    volume = forward(params)
    return brain_values(volume, forward.grid.spacing_mm, data)


def brain_values(
    volume: Float[Array, "x y z"], spacing_mm: tuple[float, float, float], data: ModelData
) -> tuple[Array, Array]:
    """A density `volume` on the ROI grid and its slope (`front_slope`) at the brain voxels."""
    slope = front_slope(volume, spacing_mm)
    return volume.reshape(-1)[data.voxel_index], slope.reshape(-1)[data.voxel_index]


def tumour_model(
    forward: AbstractForwardModel,
    data: ModelData,
    priors: Priors | None = None,
    *,
    epsilon: float = DEFAULT_EPSILON,
    include_likelihood: bool = True,
    learning_rate: float = 1.0,
) -> None:
    """NumPyro model of one patient's scans given the growth model.

    With a `learning_rate` η < 1 the likelihood is raised to the power η (a generalised-Bayes
    power posterior: every observed site's log density is scaled by η): the scans then count as
    η·n independent voxels rather than n (`bayestumor.inference.misfit_learning_rate`).

    Args:
        forward: forward map from `GrowthParams` to density on the ROI grid (PDE or surrogate).
        data: the patient's brain voxels and observations (`model_data_from_patient`).
        priors: prior ranges (`Priors`), including the parametrisation (default `Priors()`).
        epsilon: clipping of the MRI visibility probability to [ε, 1 − ε].
        include_likelihood: False gives the prior alone (no forward solve), used for prior
            draws and the prior term of tempered SMC.
        learning_rate: η in (0, 1]; 1 is the exact per-voxel likelihood.
    """
    priors = Priors() if priors is None else priors
    modalities = modalities_of(data, priors, epsilon)
    params = sample_growth_params(priors, data)
    imaging = sample_imaging_params(priors, modalities)
    if not include_likelihood:
        return
    density, slope = brain_fields(forward, params, data)
    with numpyro.handlers.scale(scale=learning_rate):
        for modality in modalities:
            numpyro.sample(
                modality.name,
                modality.distribution(density, imaging, slope),
                obs=data.observed[modality.name],
            )


__all__ = [
    "CONDITIONAL_PRIOR_SITES",
    "ModelData",
    "ScaleFreeMarginal",
    "brain_density",
    "brain_fields",
    "brain_values",
    "modalities_of",
    "model_data_from_patient",
    "pet_bias_basis",
    "sample_growth_params",
    "sample_imaging_params",
    "tumour_model",
]
