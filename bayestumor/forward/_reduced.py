"""A patient-specific reduced-order model of a forward map: proper orthogonal decomposition of
solves around one patient's posterior, with the modal coefficients a quadratic response surface
in the growth parameters.

Around one patient's posterior the tumour barely moves: on the eleven-parameter 2 mm phantom of
`benchmarks/calibration.py` the seed's posterior sd is 0.015 mm and the front moves by a
fraction of a voxel. The densities of the PDE there span a space of a few dozen dimensions, and
their coordinates in it are smooth in the parameters. The map is then

    u(θ) ≈ clip(ū + Σ_k c_k(θ) φ_k, 0, 1),    c(θ) = q(z(θ)) W,

with ū and φ_k the mean and leading principal directions (POD modes; Sirovich 1987, Q. Appl.
Math. 45:561) of solves at parameters drawn around the posterior, z the standardised features
(log μ_D, log μ_ρ, the seed position; log seed width, log seed peak and log grey/white ratio
where the parameters carry them), q all monomials of z of degree ≤ 2, and W one least-squares
fit of the solves' coefficients. This is the non-intrusive reduced basis of Hesthaven & Ubbiali
(2018, J. Comput. Phys. 363:55) with a quadratic instead of their network: over a posterior's
neighbourhood a quadratic fitted the 2 mm PDE to a largest density error of 3.4e-6 and a
log-likelihood error of sd 0.002 (240 solves, 26 modes; `benchmarks/reduced.py`), and it is
fitted by one linear solve, with nothing to train.

μ_D = √(D_w T) and μ_ρ = √(ρ T) rather than (D_w, ρ, T): the Fisher–Kolmogorov density at T
depends on the three only through these two (time rescaling), so a model in them holds along the
posterior's ridges of (D_w, ρ, T) that it was never shown.

It is a local model: trusted only where it was fitted. `ReducedForward.fit` says how far (its
features' centre and scale); `bayestumor.inference.reweight` against the exact map (PSIS k̂)
says whether a posterior sampled with it is the exact one.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayestumor._custom_types import Array, Volume
from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.imaging import Grid

OPTIONAL_FEATURES = ("seed_sigma_mm", "seed_amplitude", "gm_ratio")
"""`GrowthParams` fields that are features (their logarithm) where a batch carries them."""
DEFAULT_ENERGY_LEFT = 1e-9
"""`ReducedForward.fit`: keep the fewest modes that leave at most this fraction of the solves'
variance about their mean (the POD truncation error, well below the response surface's own)."""


def growth_features(params: GrowthParams, optional: tuple[str, ...]) -> Array:
    """(log μ_D, log μ_ρ, seed x, y, z, log of each field in `optional`), (*batch, 5 + n)."""
    columns = [jnp.log(params.mu_D), jnp.log(params.mu_rho)]
    seed = jnp.asarray(params.seed_mm)
    columns += [seed[..., axis] for axis in range(3)]
    columns += [jnp.log(jnp.asarray(getattr(params, name))) for name in optional]
    return jnp.stack(columns, axis=-1)


def quadratic_terms(z: Array) -> Array:
    """1, z_i and z_i z_j (i ≤ j) of the last axis: (*batch, 1 + n + n(n + 1)/2)."""
    n = z.shape[-1]
    upper = np.triu_indices(n)
    products = (z[..., :, None] * z[..., None, :])[..., upper[0], upper[1]]
    return jnp.concatenate([jnp.ones((*z.shape[:-1], 1), z.dtype), z, products], axis=-1)


def _rows(params: GrowthParams, start: int, stop: int) -> GrowthParams:
    return jax.tree.map(lambda values: values[start:stop], params)


def _carried(params: GrowthParams) -> tuple[str, ...]:
    return tuple(name for name in OPTIONAL_FEATURES if getattr(params, name) is not None)


class ReducedForward(AbstractForwardModel):
    """A POD model of a forward map around one patient's posterior (module docstring); build it
    with `ReducedForward.fit`.

    Attributes:
        mean: ū, the solves' mean density, flattened over the grid.
        modes: φ, (modes, voxels).
        weights: W, (quadratic terms, modes).
        feature_center, feature_scale: the solves' features' mean and sd (z = (f − centre) /
            scale): where the model was fitted.
        optional: the optional `GrowthParams` fields it reads (`OPTIONAL_FEATURES`).
        energy_left: fraction of the solves' variance about ū the modes leave out.
        solves: how many solves it was fitted to.
    """

    mean: Array
    modes: Array
    weights: Array
    feature_center: Array
    feature_scale: Array
    optional: tuple[str, ...] = eqx.field(static=True)
    energy_left: float = eqx.field(static=True)
    solves: int = eqx.field(static=True)
    _grid: Grid = eqx.field(static=True)
    _seed_convention: tuple[tuple[str, str | float], ...] = eqx.field(static=True)

    @classmethod
    def fit(
        cls,
        forward: AbstractForwardModel,
        params: GrowthParams,
        *,
        energy_left: float = DEFAULT_ENERGY_LEFT,
        batch_size: int = 8,
    ) -> ReducedForward:
        """Solve `forward` at each of a batch of `params` (``batch_size`` at a time) and fit the
        model to the solves.

        Args:
            forward: the exact map (e.g. the patient's fine-grid `PDEForward`).
            params: a batch of parameters around the posterior (e.g. draws of a widened Laplace
                approximation at its mode): at least as many as the quadratic has terms (21
                for the five features), better a few times more.
            energy_left: truncation of the modes (`DEFAULT_ENERGY_LEFT`).

        Raises:
            ValueError: too few solves for the quadratic, a feature that does not vary, or a
                solve that is not finite.
        """
        optional = _carried(params)
        features = np.asarray(growth_features(params, optional), np.float64)
        n, d = features.shape
        terms = 1 + d + d * (d + 1) // 2
        if n < terms + 1:
            raise ValueError(
                f"{n} solves cannot fit a quadratic in {d} features ({terms} terms): give more "
                "than that"
            )
        center, scale = features.mean(axis=0), features.std(axis=0)
        if np.any(scale <= 0):
            names = ["log mu_D", "log mu_rho", "seed_x", "seed_y", "seed_z", *optional]
            flat = [names[i] for i in np.flatnonzero(scale <= 0)]
            raise ValueError(f"the parameters do not vary in {flat}: nothing to fit there")
        solve = jax.jit(jax.vmap(forward))
        snapshots = np.concatenate(
            [np.asarray(solve(_rows(params, i, i + batch_size))) for i in range(0, n, batch_size)]
        ).reshape(n, -1)
        if not np.all(np.isfinite(snapshots)):
            raise ValueError("a solve of the forward map is not finite")
        snapshots = snapshots.astype(np.float64)
        mean = snapshots.mean(axis=0)
        _, singular, directions = np.linalg.svd(snapshots - mean, full_matrices=False)
        energy = np.square(singular)
        left = 1.0 - np.cumsum(energy) / max(energy.sum(), np.finfo(float).tiny)
        count = min(int(np.searchsorted(-left, -energy_left)) + 1, len(energy))
        modes = directions[:count]
        z = (features - center) / scale
        design = np.asarray(quadratic_terms(jnp.asarray(z)), np.float64)
        weights, *_ = np.linalg.lstsq(design, (snapshots - mean) @ modes.T, rcond=None)
        dtype = jnp.result_type(float)
        return cls(
            mean=jnp.asarray(mean, dtype),
            modes=jnp.asarray(modes, dtype),
            weights=jnp.asarray(weights, dtype),
            feature_center=jnp.asarray(center, dtype),
            feature_scale=jnp.asarray(scale, dtype),
            optional=optional,
            energy_left=float(max(left[count - 1], 0.0)),  # count ≥ 1
            solves=n,
            _grid=forward.grid,
            _seed_convention=tuple(forward.seed_convention.items()),
        )

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def seed_convention(self) -> dict[str, str | float]:
        return dict(self._seed_convention)

    def standardised_features(self, params: GrowthParams) -> Array:
        """z(θ): how many fitted sds from the fitted centre each feature of `params` lies (a
        model asked far outside |z| ≲ 2–3 extrapolates)."""
        if _carried(params) != self.optional:
            raise ValueError(
                f"the model was fitted with the optional parameters {self.optional}, "
                f"these carry {_carried(params)}"
            )
        return (growth_features(params, self.optional) - self.feature_center) / self.feature_scale

    def __call__(self, params: GrowthParams) -> Volume:
        coefficients = quadratic_terms(self.standardised_features(params)) @ self.weights
        density = self.mean + coefficients @ self.modes
        return jnp.clip(density, 0.0, 1.0).reshape(self.grid.shape)

    def __repr__(self) -> str:
        return (
            f"ReducedForward({self.modes.shape[0]} modes of {math.prod(self.grid.shape)} "
            f"voxels, {self.solves} solves, {len(self.optional) + 5} features)"
        )
