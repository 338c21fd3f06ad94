"""One calibration problem: forward map, data and prior, with the densities samplers need."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive, init_to_median
from numpyro.infer.util import initialize_model, unconstrain_fn

from bayestumor._custom_types import Array, ArrayLike, PRNGKeyArray
from bayestumor.config import SEED_NAMES, Priors
from bayestumor.forward import AbstractForwardModel, GrowthParams
from bayestumor.model._numpyro import (
    ModelData,
    brain_density,
    brain_fields,
    brain_values,
    modalities_of,
    tumour_model,
)
from bayestumor.model._observation import (
    DEFAULT_EPSILON,
    AbstractModality,
    imaging_parameter_names,
)

Position = dict[str, Array]
"""A point in the samplers' unconstrained space: one scalar per sample site."""


@dataclass(frozen=True, eq=False)
class CalibrationProblem:
    """Everything a sampler needs to know about one patient's posterior.

    Samplers work in NumPyro's unconstrained space (log-uniform parameters as their logs, then
    every bounded parameter through a logit), where `log_density` includes the Jacobian.

    Attributes:
        forward: forward map on the ROI grid (`PDEForward` sized for the prior, or a surrogate).
        data: the patient's brain voxels and observations.
        priors: prior ranges and parametrisation.
        epsilon: clipping of the MRI visibility probability.
        learning_rate: η in (0, 1], the power of the likelihood (1: exact per-voxel model;
            `bayestumor.inference.misfit_learning_rate` estimates it from the misfit).
    """

    forward: AbstractForwardModel
    data: ModelData
    priors: Priors = field(default_factory=Priors)
    epsilon: float = DEFAULT_EPSILON
    learning_rate: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")

    def model(self, include_likelihood: bool = True) -> None:
        """The NumPyro model of this problem (no arguments)."""
        tumour_model(
            self.sampling_forward,
            self.data,
            self.priors,
            epsilon=self.epsilon,
            include_likelihood=include_likelihood,
            learning_rate=self.learning_rate,
        )

    @functools.cached_property
    def sampling_forward(self) -> AbstractForwardModel:
        """The forward map as samplers need it: a failed solve gives NaN (a rejected draw)
        instead of an error (`AbstractForwardModel.nan_on_failure`)."""
        return self.forward.nan_on_failure()

    @functools.cached_property
    def _prior_info(self):
        return initialize_model(
            jax.random.key(0), self.model, model_kwargs={"include_likelihood": False}
        )

    @functools.cached_property
    def _posterior_info(self):
        # Prior median (seed at the lesion centre): a start from which the optimiser sees the
        # lesion; a random start can put the seed where the likelihood is flat.
        return initialize_model(
            jax.random.key(0), self.model, init_strategy=init_to_median(num_samples=15)
        )

    @property
    def site_names(self) -> tuple[str, ...]:
        """Sample sites (unconstrained coordinates), sorted."""
        return tuple(sorted(self._prior_info.param_info.z))

    def initial_position(self) -> Position:
        """A default starting point: the prior median (estimated from 15 prior draws per
        site) in unconstrained space; the seed starts at the lesion centre."""
        return self._posterior_info.param_info.z

    def log_prior(self, position: Position) -> Array:
        """Log prior density in unconstrained space, Jacobian included (no forward solve)."""
        return -self._prior_info.potential_fn(position)

    def log_density(self, position: Position) -> Array:
        """Unnormalised log posterior in unconstrained space (one forward solve)."""
        return -self._posterior_info.potential_fn(position)

    @functools.cached_property
    def compiled_log_density(self) -> Callable[[Position], Array]:
        """`log_density` compiled once for this problem, shared by every MAP search on it
        (`find_map`), which compiled the forward solve anew on every call before."""
        _ = self._posterior_info  # the model is built outside the jit (it caches no tracers)
        return jax.jit(self.log_density)

    @functools.cached_property
    def compiled_log_density_gradient(self) -> Callable[[Position], Position]:
        """The gradient of `log_density` (a position), compiled once for this problem
        (`log_density_hessian`'s 2·d evaluations, once per Hessian before)."""
        _ = self._posterior_info
        return jax.jit(jax.grad(self.log_density))

    def log_likelihood(self, position: Position) -> Array:
        """Total log-likelihood at an unconstrained position (one forward solve), raised to the
        learning rate (η times the per-voxel sum)."""
        return self.log_density(position) - self.log_prior(position)

    def constrain(self, position: Position) -> dict[str, Array]:
        """Named parameters (sampled and deterministic sites) at an unconstrained position."""
        return self._prior_info.postprocess_fn(position)

    def named_parameters(self, positions: dict[str, ArrayLike]) -> dict[str, Array]:
        """Named parameters of a batch of unconstrained positions (`constrain`, vmapped), with
        μ_D,ref and μ_ρ,ref when the seed's size is a nuisance: the growth from the reference
        seed that grows the same tumour (`bayestumor.forward.matched_reference_growth`; radial
        solves on concrete draws, so computed here rather than as the model's sites)."""
        named = jax.jit(jax.vmap(self.constrain))(positions)
        if self.priors.seed_nuisance_names:
            mu_D_ref, mu_rho_ref, matched = self.sampling_forward.referenced_growth(
                self.growth_params(named)
            )
            unmatched = int(np.size(matched) - np.count_nonzero(matched))
            if unmatched:
                warnings.warn(
                    f"mu_D_ref, mu_rho_ref of {unmatched} of {np.size(matched)} draws are the "
                    "closed form's (bayestumor.forward.referenced_growth): their tumours reach "
                    "no density contour to match, or the matching did not converge",
                    stacklevel=2,
                )
            named = {**named, "mu_D_ref": mu_D_ref, "mu_rho_ref": mu_rho_ref}
        return named

    def unconstrain(self, sites: dict[str, Array]) -> Position:
        """Unconstrained position from constrained values of the sample sites."""
        return unconstrain_fn(self.model, (), {"include_likelihood": False}, sites)

    def sample_prior(self, key: PRNGKeyArray, n: int) -> Position:
        """`n` prior draws in unconstrained space, each site of shape (n,)."""
        draws = Predictive(self.model, num_samples=n)(key, include_likelihood=False)
        sites = {name: draws[name] for name in self.site_names}
        return jax.vmap(self.unconstrain)(sites)

    def growth_params(self, named: dict[str, Array]) -> GrowthParams:
        """`GrowthParams` from named (constrained) parameters; works on batches."""
        seed_mm = jnp.stack([named[name] for name in SEED_NAMES], axis=-1)

        def nuisance(name: str) -> Array | None:
            # A sampled one is a named parameter; a fixed one may not be; None: the solver's.
            spec = getattr(self.priors, name)
            if spec is None:
                return None
            if name in self.priors.nuisance_names:
                return named[name]
            return jnp.full(jnp.shape(named[SEED_NAMES[0]]), spec, jnp.float32)  # batch's shape

        sigma, amplitude = nuisance("seed_sigma"), nuisance("seed_amplitude")
        gm_ratio = nuisance("gm_ratio")
        if self.priors.parametrisation == "physical":
            return GrowthParams(
                D_w=named["D_w"],
                rho=named["rho"],
                T=named["T"],
                seed_mm=seed_mm,
                seed_sigma_mm=sigma,
                seed_amplitude=amplitude,
                gm_ratio=gm_ratio,
            )
        return GrowthParams.from_scale_free(
            named["mu_D"],
            named["mu_rho"],
            seed_mm,
            seed_sigma_mm=sigma,
            seed_amplitude=amplitude,
            gm_ratio=gm_ratio,
        )

    @functools.cached_property
    def modalities(self) -> tuple[AbstractModality, ...]:
        """The observation model of the patient's modalities (with this problem's ε)."""
        return modalities_of(self.data, self.priors, self.epsilon)

    @property
    def parameter_names(self) -> list[str]:
        """Named parameters reported in the posterior, in a fixed order: growth (with μ_D, μ_ρ
        in the physical parametrisation, and μ_D,ref, μ_ρ,ref when the seed's size is a
        nuisance), seed, the grey/white ratio when sampled, then the imaging parameters the
        modalities need."""
        growth = list(self.priors.growth_names)
        if self.priors.parametrisation == "physical":
            growth += ["mu_D", "mu_rho"]
        if self.priors.seed_nuisance_names:
            growth += ["mu_D_ref", "mu_rho_ref"]
        seed = [*SEED_NAMES, *self.priors.seed_nuisance_names]
        tissue = ["gm_ratio"] if self.priors.gm_ratio_free else []
        return [*growth, *seed, *tissue, *imaging_parameter_names(self.modalities)]

    def pointwise_log_likelihood(
        self, named: dict[str, Array], density: Array, slope: Array | None = None
    ) -> dict[str, Array]:
        """Per-voxel log-likelihood of each observed modality at the brain voxels, (n,) each
        (`slope`: |∇u| there, as `brain_fields` gives it; needed by the boundary visibility)."""
        return {
            m.name: m.log_likelihood(self.data.observed[m.name], density, named, slope)
            for m in self.modalities
        }

    def posterior_predictive(
        self,
        key: PRNGKeyArray,
        named: dict[str, Array],
        density: Array,
        slope: Array | None = None,
    ) -> dict[str, Array]:
        """One replicated image y_rep ~ p(y | θ) per modality at the brain voxels, (n,) each."""
        keys = jax.random.split(key, len(self.modalities))
        return {
            m.name: m.sample(k, density, named, slope)
            for m, k in zip(self.modalities, keys, strict=True)
        }

    def brain_density(self, named: dict[str, Array]) -> Array:
        """Density at the brain voxels for one set of named parameters, (n,)."""
        return brain_density(self.sampling_forward, self.growth_params(named), self.data)

    def brain_fields(self, named: dict[str, Array]) -> tuple[Array, Array]:
        """Density and its slope |∇u| (per mm) at the brain voxels, (n,) each."""
        return brain_fields(self.sampling_forward, self.growth_params(named), self.data)

    @property
    def reads_slope(self) -> bool:
        """Whether a modality's likelihood reads the density's slope (boundary visibility)."""
        return any(m.reads_slope for m in self.modalities)

    def brain_values(self, volume: Array) -> tuple[Array, Array | None]:
        """A density volume on the ROI grid (`density_volume`) and its slope at the brain
        voxels, (n,) each; the slope is None when no modality reads it."""
        if not self.reads_slope:
            return volume.reshape(-1)[self.data.voxel_index], None
        return brain_values(volume, self.sampling_forward.grid.spacing_mm, self.data)

    def density_volume(self, named: dict[str, Array]) -> Array:
        """Density on the whole ROI grid for one set of named parameters, (x, y, z)."""
        return self.sampling_forward(self.growth_params(named))


def batched(function: Callable, batch_size: int = 8) -> Callable:
    """`function` mapped over a leading axis in chunks (`lax.map`): bounded memory, vmapped."""
    return jax.jit(lambda tree: jax.lax.map(function, tree, batch_size=batch_size))


def flatten_draws(tree: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """(chain, draw, ...) arrays → (chain·draw, ...), with the (chain, draw) shape."""
    first = next(iter(tree.values()))
    shape = first.shape[:2]
    return {k: np.asarray(v).reshape((-1, *np.shape(v)[2:])) for k, v in tree.items()}, shape
