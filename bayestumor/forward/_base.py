"""The forward-map interface shared by the PDE solver and the neural surrogate."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp

from bayestumor._custom_types import Array, ArrayLike, Float, Volume
from bayestumor.forward._reference import matched_reference_growth
from bayestumor.forward._seed import REFERENCE_SEED
from bayestumor.imaging import Grid


class GrowthParams(eqx.Module):
    """Physical parameters of the Fisher–Kolmogorov growth model (a pytree; `vmap` over a batch).

    Attributes:
        D_w: diffusivity in white matter, mm²/day (grey matter gets D_w / ratio, CSF 0).
        rho: proliferation rate, 1/day.
        T: time since the seed, days.
        seed_mm: seed position (x, y, z) in world millimetres (the NIfTI affine's space).
        seed_sigma_mm: width of the initial Gaussian seed, mm, when it is a parameter (sampled
            as a nuisance: T then counts from a seed of this width); None: the forward map's
            own fixed width (`PDEForward.seed_sigma_mm`).
        seed_amplitude: peak density of the seed, in (0, 1], when it is a parameter; None: the
            forward map's own (`PDEForward.seed_amplitude`).
        gm_ratio: D_w / D_g ≥ 1, the white/grey diffusivity ratio, when it is a parameter
            (sampled as a nuisance: tools disagree on it); None: the forward map's own
            (`PDEForward.gm_ratio`, 10).
    """

    D_w: Float[ArrayLike, "*batch"]
    rho: Float[ArrayLike, "*batch"]
    T: Float[ArrayLike, "*batch"]
    seed_mm: Float[ArrayLike, "*batch 3"]
    seed_sigma_mm: Float[ArrayLike, "*batch"] | None = None
    seed_amplitude: Float[ArrayLike, "*batch"] | None = None
    gm_ratio: Float[ArrayLike, "*batch"] | None = None

    @classmethod
    def from_scale_free(
        cls,
        mu_D: Float[ArrayLike, "*batch"],
        mu_rho: Float[ArrayLike, "*batch"],
        seed_mm: Float[ArrayLike, "*batch 3"],
        T: Float[ArrayLike, "*batch"] = 1.0,
        seed_sigma_mm: Float[ArrayLike, "*batch"] | None = None,
        seed_amplitude: Float[ArrayLike, "*batch"] | None = None,
        gm_ratio: Float[ArrayLike, "*batch"] | None = None,
    ) -> GrowthParams:
        """Physical parameters from the scale-free ones μ_D = √(D_w T) [mm], μ_ρ = √(ρ T) [-].

        With a single observed time point only μ_D and μ_ρ are identifiable; the density at T
        depends on (D_w, ρ, T) only through them, so any T > 0 (default 1 day) gives the same map.
        """
        T = jnp.asarray(T)
        return cls(
            D_w=jnp.square(mu_D) / T,
            rho=jnp.square(mu_rho) / T,
            T=T,
            seed_mm=seed_mm,
            seed_sigma_mm=seed_sigma_mm,
            seed_amplitude=seed_amplitude,
            gm_ratio=gm_ratio,
        )

    @property
    def mu_D(self) -> Array:
        """√(D_w T) in mm: the diffusion length."""
        return jnp.sqrt(jnp.asarray(self.D_w) * jnp.asarray(self.T))

    @property
    def mu_rho(self) -> Array:
        """√(ρ T), dimensionless: the square root of the number of proliferation e-folds."""
        return jnp.sqrt(jnp.asarray(self.rho) * jnp.asarray(self.T))


class AbstractForwardModel(eqx.Module):
    """Maps growth parameters to tumour-cell density on a fixed region-of-interest grid.

    Concrete subclasses (`PDEForward`, `SurrogateForward`) are final. Calls are pure and
    `jit`/`vmap`/`grad`-compatible in the parameters.
    """

    @property
    @abc.abstractmethod
    def grid(self) -> Grid:
        """The grid (shape and voxel-to-world affine) on which densities are returned."""

    @abc.abstractmethod
    def __call__(self, params: GrowthParams) -> Volume:
        """Tumour-cell density in [0, 1] at time `params.T` on `self.grid`."""

    def nan_on_failure(self) -> AbstractForwardModel:
        """This map for samplers: a failed evaluation returns NaN (a rejected proposal) rather
        than raising. Maps that cannot fail (the default) return themselves."""
        return self

    @property
    def pmap_safe(self) -> bool:
        """Whether gradients of this map may run under `jax.pmap` (parallel NUTS chains)."""
        return True

    @property
    def seed_convention(self) -> dict[str, str | float]:
        """This map's own seed (``seed_shape``, ``seed_sigma_mm``, ``seed_amplitude``), used
        where `GrowthParams` leave the seed's width or peak unset; by default the
        `REFERENCE_SEED`."""
        return dict(REFERENCE_SEED)

    def referenced_growth(self, params: GrowthParams) -> tuple[Array, Array, Array]:
        """(μ_D,ref, μ_ρ,ref) of a batch of concrete `params`: the growth from the
        `REFERENCE_SEED` that grows the same tumour (`matched_reference_growth`), with this
        map's `seed_convention` where `params` leave the seed's width or peak unset; and
        whether each was matched (else it is the closed form's)."""
        sampled = {"seed_sigma_mm": params.seed_sigma_mm, "seed_amplitude": params.seed_amplitude}
        seed = self.seed_convention | {k: v for k, v in sampled.items() if v is not None}
        return matched_reference_growth(params.mu_D, params.mu_rho, **seed)
