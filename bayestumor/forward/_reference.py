"""Growth re-expressed from the reference seed, exactly in uniform tissue: the radial matching.

`referenced_growth` maps (μ_D, μ_ρ) of a tumour grown from one seed to the (μ_D,ref, μ_ρ,ref)
of the tumour grown from the `REFERENCE_SEED`, by the linearised equation's invariants
(σ_eff² + 2μ_D², ln M₀ + μ_ρ²). That is exact where the density is small everywhere, which a
tumour seen on MRI never is: behind its front the density saturates, and a seed of peak 1
saturates from the start. Measured on the radial equation at the stress suite's sizes (fronts
13–21 mm from the seed), the closed form misplaces the seeds of the prior box (width 2–8 mm,
peak 0.2–1) by up to ±10 % in μ_ρ,ref and ±16 % in μ_D,ref (the u = 0.7 contour up to 2 mm off)
— more than a posterior's width.

`matched_reference_growth` defines the referenced growth by what the scans see instead: the
(μ_D,ref, μ_ρ,ref) whose tumour, grown from the reference seed in uniform tissue, has its
density contours u = 0.25 and u = 0.7 (`MATCHED_LEVELS`: the visibility thresholds of FLAIR
and T1c, Lipkova et al. 2019) at the same radii as the given tumour's. Both tumours are solved
on the radial (spherically symmetric) Fisher–Kolmogorov equation, in the coordinates ξ = r/μ_D,
τ = t/T in which it reads

    ∂u/∂τ = ξ⁻² ∂/∂ξ (ξ² ∂u/∂ξ) + μ_ρ² u (1 − u),   u(ξ, 0) = seed(μ_D ξ),

a finite-volume discretisation in ξ (zero flux at both ends) integrated by diffrax. The two
unknowns solve two equations (optimistix Newton from the closed form, in log coordinates). The
same grid serves both tumours, so its error largely cancels; `tests/forward/test_reference.py`
checks the solve against the closed-form heat kernel and a finer grid.

A tumour whose density never reaches the upper level has no second contour; it is matched by
its centre's density instead (continuous with the radius as the centre reaches the level). One
that does not reach the lower level either keeps the closed form, and the returned flag says so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from bayestumor._custom_types import Array, ArrayLike, Bool, Float
from bayestumor.config import HEAT_KERNEL_THRESHOLD
from bayestumor.forward._seed import REFERENCE_SEED, referenced_growth

MATCHED_LEVELS = (0.25, 0.7)
"""Density contours whose radii the reference tumour matches (FLAIR's and T1c's visibility
thresholds)."""

_CELL = 0.1  # in ξ = r / μ_D: within 0.1 % of a 4× finer grid on the stress box
_NEWTON_TOL = 1e-5  # relative radii: 2e-4 mm on a 20 mm front, float32's reach
_BUCKET = 32  # grids are sized in multiples of this many cells, to reuse compilations
_DOMAIN_MARGIN = 6.0  # ξ beyond the front and the seed's 4σ, where u < 1e-8


def _cell_geometry(cells: int, dxi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres, shell volumes (/4π) and inner-face areas (/4π) of `cells` radial cells."""
    edges = np.arange(cells + 1) * dxi
    centres = 0.5 * (edges[:-1] + edges[1:])
    volumes = (edges[1:] ** 3 - edges[:-1] ** 3) / 3.0
    return centres, volumes, edges[1:-1] ** 2


@dataclass(frozen=True, eq=False)
class RadialGrid:
    """A radial grid in ξ = r / μ_D, sized for a batch of tumours (`radial_grid`): cell
    centres, shell volumes and inner-face areas (both over 4π), cell width, Heun steps."""

    centres: np.ndarray
    volumes: np.ndarray
    faces: np.ndarray
    dxi: float
    steps: int

    def seed(self, scale: ArrayLike, amplitude: ArrayLike, cut: float | None) -> Array:
        """Cell averages of amplitude · exp(−ξ²/2s²) (0 where it is at or below `cut`): exact
        integrals over each shell, so the seed's mass is right however narrow it is."""
        edges = jnp.concatenate([jnp.zeros(1), jnp.cumsum(jnp.full(len(self.centres), self.dxi))])
        if cut is not None:
            reach = scale * jnp.sqrt(2.0 * jnp.log(jnp.maximum(amplitude / cut, 1.0)))
            edges = jnp.minimum(edges, reach)

        def integral(xi):  # ∫₀^ξ x² exp(−x²/2s²) dx
            return scale**2 * (
                scale
                * math.sqrt(math.pi / 2.0)
                * jax.scipy.special.erf(xi / (scale * math.sqrt(2.0)))
                - xi * jnp.exp(-0.5 * jnp.square(xi / scale))
            )

        return amplitude * jnp.diff(integral(edges)) / jnp.asarray(self.volumes)

    def grow(self, u0: Array, mu_rho_sq: ArrayLike) -> Array:
        """u at τ = 1 from `u0` (Heun, fixed steps within its stability bound)."""
        faces = jnp.asarray(self.faces / self.dxi)
        volumes = jnp.asarray(self.volumes)

        def rhs(t, u, q):
            flux = faces * jnp.diff(u)
            divergence = jnp.pad(flux, (0, 1)) - jnp.pad(flux, (1, 0))
            return divergence / volumes + q * u * (1.0 - u)

        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(rhs),
            diffrax.Heun(),
            t0=0.0,
            t1=1.0,
            dt0=1.0 / self.steps,
            y0=u0,
            args=mu_rho_sq,
            stepsize_controller=diffrax.ConstantStepSize(),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=self.steps + 1,
            adjoint=diffrax.ForwardMode(),
        )
        return solution.ys[-1]

    def radius(self, u: Array, level: float) -> Array:
        """ξ where the radially decreasing profile `u` crosses `level` (linear between cells)."""
        return jnp.interp(level, u[::-1], jnp.asarray(self.centres[::-1]))


def radial_grid(cells: int, cell: float = _CELL) -> RadialGrid:
    """The radially symmetric Fisher–Kolmogorov equation in uniform tissue, in ξ = r/μ_D and
    τ = t/T (∂u/∂τ = ∇²_ξ u + μ_ρ² u(1 − u), zero flux at both ends): `cells` finite-volume
    shells `cell` wide, integrated by Heun with the fixed steps its stability allows. This is the
    solver `matched_reference_growth` matches with; it is public to check against.

    ```python
    grid = radial_grid(200)
    u = grid.grow(grid.seed(scale=0.8, amplitude=1.0, cut=None), mu_rho_sq=9.0)
    radius = grid.radius(u, 0.25)  # in units of μ_D
    ```
    """
    centres, volumes, faces = _cell_geometry(cells, cell)
    # Heun is stable for |λΔτ| ≤ 2; Gershgorin bounds the operator by 6/Δξ² (the centre cell).
    steps = math.ceil(1.0 / (0.3 * cell**2))
    return RadialGrid(centres, volumes, faces, cell, steps)


def _features(grid: RadialGrid, mu_D, mu_rho, scale, amplitude, cut) -> Array:
    """The radius (mm) of the lower `MATCHED_LEVELS` contour, and of the upper one where the
    density at the centre exceeds it; where it does not, μ_D·(u(0) − upper) instead: negative,
    and continuous with the radius (both 0 as u(0) reaches the level)."""
    u = grid.grow(grid.seed(scale, amplitude, cut), jnp.square(mu_rho))
    lower, upper = MATCHED_LEVELS
    above = mu_D * grid.radius(u, upper)
    below = mu_D * (u[0] - upper)
    return jnp.stack([mu_D * grid.radius(u, lower), jnp.where(u[0] > upper, above, below)])


@functools.partial(jax.jit, static_argnames=("cells", "cell", "cut"))
@functools.partial(jax.vmap, in_axes=(0, 0, 0, 0, 0, 0, None, None, None))
def _match(mu_D, mu_rho, sigma, amplitude, guess_D, guess_rho, cells, cell, cut):
    grid = radial_grid(cells, cell)
    ref_sigma = float(REFERENCE_SEED["seed_sigma_mm"])
    ref_amplitude = float(REFERENCE_SEED["seed_amplitude"])
    target = _features(grid, mu_D, mu_rho, sigma / mu_D, amplitude, cut)

    def residual(log_ref, _):
        d, r = jnp.exp(log_ref)
        features = _features(grid, d, r, ref_sigma / d, ref_amplitude, None)
        return (features - target) / target[0]

    start = jnp.log(jnp.stack([guess_D, guess_rho]))
    solution = optx.root_find(
        residual, optx.Newton(rtol=_NEWTON_TOL, atol=_NEWTON_TOL), start, max_steps=20, throw=False
    )
    d, r = jnp.exp(solution.value)
    ok = (target[0] > 0) & (solution.result == optx.RESULTS.successful)
    return d, r, ok


def matched_reference_growth(
    mu_D: Float[ArrayLike, "..."],
    mu_rho: Float[ArrayLike, "..."],
    seed_sigma_mm: Float[ArrayLike, "..."],
    seed_amplitude: Float[ArrayLike, "..."],
    seed_shape: str = "gaussian",
    *,
    cell: float = _CELL,
) -> tuple[Float[Array, " b"], Float[Array, " b"], Bool[Array, " b"]]:
    """(μ_D,ref, μ_ρ,ref, matched), flattened over the broadcast batch, of tumours grown with
    (μ_D, μ_ρ) from seeds of `seed_shape`, width and peak (module docstring): the growth from
    the `REFERENCE_SEED` whose radial tumour has its `MATCHED_LEVELS` contours at the same
    radii (for a tumour whose centre stays below the upper level: the same lower contour and
    centre density). Where ``matched`` is False (not even the lower level is reached, or Newton
    did not converge) the closed form `referenced_growth` is returned.

    For posterior draws: concrete arrays (the grid is sized from them; batches of similar
    tumours reuse one compilation), one radial solve per tumour and about ten for its Newton
    steps; `cell` is the grid's cell width in ξ = r/μ_D.
    """
    mu_D, mu_rho, sigma, amplitude = (
        np.ravel(v)
        for v in np.broadcast_arrays(
            *(np.asarray(v, np.float64) for v in (mu_D, mu_rho, seed_sigma_mm, seed_amplitude))
        )
    )
    linear_D, linear_rho = (
        np.asarray(v, np.float64)
        for v in referenced_growth(mu_D, mu_rho, sigma, amplitude, seed_shape)
    )
    # Newton starts from the closed form, kept away from 0 (a seed wider than the tumour).
    guess_D, guess_rho = np.maximum(linear_D, 0.25 * mu_D), np.maximum(linear_rho, 0.25 * mu_rho)
    scale = max(np.max(sigma / mu_D), float(REFERENCE_SEED["seed_sigma_mm"]) / np.min(guess_D))
    extent = 2.4 * max(np.max(mu_rho), np.max(guess_rho)) + 6.0 * scale + _DOMAIN_MARGIN
    cells = _BUCKET * math.ceil(extent / cell / _BUCKET)
    cut = HEAT_KERNEL_THRESHOLD if seed_shape == "heat-kernel" else None
    d, r, ok = _match(mu_D, mu_rho, sigma, amplitude, guess_D, guess_rho, cells, cell, cut)
    return jnp.where(ok, d, linear_D), jnp.where(ok, r, linear_rho), ok
