"""Finite-volume Fisher–Kolmogorov solver on a patient's anatomy, integrated with diffrax.

The model (Swanson et al. 2000; Lipkova et al. 2019, GliomaSolver) is

    ∂u/∂t = ∇·(D(x) ∇u) + ρ u (1 − u),     D = D_w·(p_wm + p_gm / ratio),

with zero flux through the brain boundary and into CSF. Space is discretised by finite volumes on
the voxel grid with harmonic-mean face diffusivities: a face touching a voxel where D = 0 (CSF,
background) carries no flux, so mass never leaves the habitable tissue.

Time is integrated in the dimensionless τ = t / t_end ∈ [0, 1], where the equation reads

    du/dτ = μ_D² ∇·(k ∇u) + μ_ρ² u (1 − u),   μ_D² = D_w t_end [mm²],  μ_ρ² = ρ t_end,

with k = D / D_w ∈ [0, 1] the relative diffusivity. The physical and the scale-free
parametrisations therefore share one solver.

Two time integrators. `FixedStep` (default): Heun's method (diffrax's `Heun` tableau, checked
against it in the tests) in a lean `while` loop, with a hand-derived discrete adjoint for reverse
mode; measured on this CPU, diffrax's own checkpointed loop made gradients 20–40× a forward solve
on small grids, the lean loop ≈ 4–6×. `AdaptiveStep`: Tsit5 with a PID controller through
`diffrax.diffeqsolve`, for reference solutions and tight tolerances.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import custom_vjp_primal_tree_values

from bayestumor._custom_types import Array, ArrayLike, Float, Vector3, Volume
from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.forward._operator import _add, _divergence, face_cotangents, faces_perturbed
from bayestumor.forward._seed import DEFAULT_SEED_SIGMA_MM, check_seed_options, seed_density
from bayestumor.forward._splitting import (
    SplitStep,
    _step_layout,
    rkc_tables,
    split_solve,
    stages_for,
)
from bayestumor.imaging import Grid

# A voxel whose relative diffusivity is below this is treated as uninhabitable (CSF/background).
_MIN_RELATIVE_DIFFUSIVITY = 1e-6
DEFAULT_GM_RATIO = 10.0
"""D_w / D_g of a solver built without one (Swanson et al. 2000 and most later work)."""


class FixedStep(eqx.Module):
    """Explicit Heun (RK2) with a constant step, bounded by stability and by reaction accuracy.

    The step count of each solve is chosen from the parameters. Stability: the largest stable
    step of explicit RK2 on this operator is 2/λ_max, with λ_max ≤ μ_D²·λ_L + μ_ρ² (Gershgorin
    bound λ_L on the discrete diffusion operator plus the reaction's Lipschitz constant); the step
    is `safety` times that. Accuracy: on coarse grids the stability limit allows steps too long
    for the logistic growth, so the growth per step μ_ρ²·dτ is also kept below `reaction_step`
    (Heun's relative error ≈ reaction_step²/6 per e-fold of growth: ≈ 0.4 % over 10 e-folds).
    Measured here: Heun at the limit is within 0.1–1 % of a converged solution, where explicit
    Euler at the same step is 5–15 % off (and up to 60 % in gradients).

    Attributes:
        safety: fraction of the stability limit used as the step (0 < safety ≤ 1).
        reaction_step: bound on ρ·Δt per step.
    """

    safety: float = 0.9
    reaction_step: float = 0.05

    def __check_init__(self):
        if not 0.0 < self.safety <= 1.0:
            raise ValueError(f"FixedStep.safety must be in (0, 1], got {self.safety}")
        if not self.reaction_step > 0.0:
            raise ValueError(f"FixedStep.reaction_step must be > 0, got {self.reaction_step}")


class AdaptiveStep(eqx.Module):
    """Tsit5 with a PID step-size controller.

    Tolerances matter for gradients, not just values: with rtol 1e-3 the solution looks right but
    ∂/∂D_w was measured 32–73 % wrong here; rtol 1e-5 / atol 1e-6 gives exact gradients at about
    the cost of the fixed-step scheme (the step is stability-limited either way).
    """

    rtol: float = 1e-5
    atol: float = 1e-6


TimeStepping = FixedStep | AdaptiveStep | SplitStep


def relative_diffusivity(
    wm: Float[ArrayLike, "x y z"], gm: Float[ArrayLike, "x y z"], gm_ratio: float = DEFAULT_GM_RATIO
) -> np.ndarray:
    """k = p_wm + p_gm / gm_ratio ∈ [0, 1]: diffusivity relative to white matter.

    Args:
        wm, gm: white- and grey-matter probabilities (or masks) in [0, 1]. CSF and background
            contribute nothing: tumour cells do not migrate there.
        gm_ratio: D_w / D_g, 10 in Swanson et al. (2000) and most later work.
    """
    if gm_ratio < 1.0:
        raise ValueError(f"gm_ratio = D_w/D_g must be ≥ 1, got {gm_ratio}")
    return np.clip(np.asarray(wm, np.float64) + np.asarray(gm, np.float64) / gm_ratio, 0.0, 1.0)


def _face_coefficients(k, spacing_mm, xp=np) -> tuple:
    """Harmonic-mean face diffusivities over h², one array per axis (1/mm²).

    Along axis a the array has one more entry than the grid: entry i is the face between voxels
    i − 1 and i, and the two outer faces (the domain boundary) are 0, which is the zero-flux
    condition. `xp` is NumPy (building a solver) or jax.numpy (a traced grey/white ratio).
    """
    faces = []
    for axis, h in enumerate(spacing_mm):
        lo = xp.take(k, xp.arange(k.shape[axis] - 1), axis=axis)
        hi = xp.take(k, xp.arange(1, k.shape[axis]), axis=axis)
        total = lo + hi
        harmonic = xp.where(total > 0, 2.0 * lo * hi / xp.where(total > 0, total, 1.0), 0.0)
        pad = [(0, 0)] * 3
        pad[axis] = (1, 1)
        faces.append(xp.pad(harmonic / h**2, pad))
    return tuple(faces)


def _gershgorin(faces) -> float:
    """Bound on the spectral radius of ∇·(k∇·) with these faces: max_i 2 Σ_faces(i) k_f / h²."""
    row_sum = sum(
        np.take(face, np.arange(1, face.shape[axis]), axis=axis)
        + np.take(face, np.arange(face.shape[axis] - 1), axis=axis)
        for axis, face in enumerate(faces)
    )
    return float(2.0 * row_sum.max())


def _heun_step(u: Array, dt, a, r, faces) -> tuple[Array, Array]:
    """One step of Heun's method (explicit trapezoidal RK2, diffrax's `Heun` tableau) for
    du/dτ = a·Lu + r·u(1 − u). Returns the new state and the Euler predictor z."""
    k1 = a * _divergence(u, faces) + r * u * (1.0 - u)
    z = u + dt * k1
    k2 = a * _divergence(z, faces) + r * z * (1.0 - z)
    return u + 0.5 * dt * (k1 + k2), z


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _heun_solve(layout, u0, a, r, steps, dt, faces):
    """`steps` Heun steps of size `dt` from `u0`; NaN if `steps` exceeds the layout's capacity.

    Reverse mode uses the hand-derived discrete adjoint below rather than JAX's transpose of the
    loop: √N checkpoints stored on the way forward, each segment recomputed once on the way back,
    and the symmetric operator L applied to cotangents. A gradient costs ≈ 3 forward solves.
    """
    segment, count = layout
    n = steps.astype(jnp.int32)
    u = jax.lax.fori_loop(0, n, lambda _, u: _heun_step(u, dt, a, r, faces)[0], u0)
    return jnp.where(n <= segment * count, u, jnp.nan)


def _heun_solve_fwd(layout, u0, a, r, steps, dt, faces):
    track_faces = faces_perturbed(faces)
    u0, a, r, steps, dt, faces = custom_vjp_primal_tree_values((u0, a, r, steps, dt, faces))
    segment, count = layout
    n = steps.astype(jnp.int32)

    def step(i, carry):
        u, store = carry
        store = jax.lax.cond(
            i % segment == 0, lambda s: s.at[i // segment].set(u), lambda s: s, store
        )
        return _heun_step(u, dt, a, r, faces)[0], store

    store = jnp.zeros((count, *u0.shape), u0.dtype)
    u, store = jax.lax.fori_loop(0, jnp.minimum(n, segment * count), step, (u0, store))
    u = jnp.where(n <= segment * count, u, jnp.nan)
    return u, (store, a, r, n, dt, faces, track_faces)


def _heun_solve_bwd(layout, residuals, cotangent):
    # Adjoint of y' = y + dt/2·(k1 + k2), k1 = f(y), z = y + dt·k1, k2 = f(z), with
    # f(y) = a·Ly + r·y(1 − y) and Jf(y)ᵀg = a·Lg + r(1 − 2y)g (L is symmetric):
    #   ḡk2 = dt/2·ḡ,  ḡz = Jf(z)ᵀḡk2,  ḡk1 = dt/2·ḡ + dt·ḡz,  ḡy = ḡ + ḡz + Jf(y)ᵀḡk1,
    #   ∂/∂a = ⟨ḡk2, Lz⟩ + ⟨ḡk1, Ly⟩ = ⟨Lḡk2, z⟩ + ⟨Lḡk1, y⟩  (no extra operator applications),
    #   ∂/∂r = ⟨ḡk2, z(1 − z)⟩ + ⟨ḡk1, y(1 − y)⟩,
    #   ∂/∂k_f = a·(−Δḡk2·Δz − Δḡk1·Δy) per face (only when the faces are traced).
    store, a, r, n, dt, faces, track_faces = residuals
    segment, count = layout
    n_segments = (n + segment - 1) // segment
    empty = jnp.zeros((segment, *cotangent.shape), cotangent.dtype)

    def adjoint_segment(j_reversed, carry):
        j = n_segments - 1 - j_reversed
        start = j * segment
        stop = jnp.minimum(start + segment, n)

        def recompute(i, state):
            u, ys, zs = state
            u_next, z = _heun_step(u, dt, a, r, faces)
            return u_next, ys.at[i - start].set(u), zs.at[i - start].set(z)

        _, ys, zs = jax.lax.fori_loop(start, stop, recompute, (store[j], empty, empty))

        def adjoint_step(k, carry):
            g, g_a, g_r, g_faces = carry
            local = stop - 1 - k - start
            y, z = ys[local], zs[local]
            g_k2 = 0.5 * dt * g
            L_g_k2 = _divergence(g_k2, faces)
            g_z = a * L_g_k2 + r * (1.0 - 2.0 * z) * g_k2
            g_k1 = g_k2 + dt * g_z
            L_g_k1 = _divergence(g_k1, faces)
            g = g + g_z + a * L_g_k1 + r * (1.0 - 2.0 * y) * g_k1
            # Accumulated voxel-wise (fused with the update above), reduced once per segment.
            g_a = g_a + L_g_k2 * z + L_g_k1 * y
            g_r = g_r + g_k2 * z * (1.0 - z) + g_k1 * y * (1.0 - y)
            if track_faces:
                g_faces = _add(g_faces, face_cotangents(g_k2, z), face_cotangents(g_k1, y))
            return g, g_a, g_r, g_faces

        g, g_a_sum, g_r_sum, g_faces = carry
        zeros = jnp.zeros_like(g)
        g, g_a, g_r, g_faces = jax.lax.fori_loop(
            0, stop - start, adjoint_step, (g, zeros, zeros, g_faces)
        )
        return g, g_a_sum + jnp.sum(g_a), g_r_sum + jnp.sum(g_r), g_faces

    zero = jnp.zeros((), cotangent.dtype)
    no_faces = tuple(jnp.zeros_like(face) for face in faces) if track_faces else None
    g, g_a, g_r, g_faces = jax.lax.fori_loop(
        0, n_segments, adjoint_segment, (cotangent, zero, zero, no_faces)
    )
    ok = n <= segment * count
    nan_if_over = lambda x: jnp.where(ok, x, jnp.nan)  # noqa: E731
    g_faces = tuple(nan_if_over(a * face) for face in g_faces) if track_faces else None
    return nan_if_over(g), nan_if_over(g_a), nan_if_over(g_r), None, None, g_faces


_heun_solve.defvjp(_heun_solve_fwd, _heun_solve_bwd, symbolic_zeros=True)


class PDEForward(AbstractForwardModel):
    """Fisher–Kolmogorov forward map on a fixed anatomy (final class).

    Build it with `PDEForward.from_anatomy` (or `from_tissues`); call it with `GrowthParams` to get
    the density at `T`, or use `density_at` for several times. All calls are pure and can be
    `jit`-ed, `vmap`-ed over parameter batches and differentiated in every parameter.

    Attributes:
        faces: harmonic-mean relative face diffusivities over h² per axis (1/mm²), at the
            solver's own grey/white ratio.
        habitable: 1 where tumour cells can live (k > 0), else 0.
        tissues: white- and grey-matter probabilities in the habitable voxels, from which
            `faces_for` rebuilds the faces at another ratio (`GrowthParams.gm_ratio`).
        world_to_voxel: inverse of the grid affine (4×4).
        spacing_mm: voxel size per axis (mm).
        seed_sigma_mm: standard deviation of the Gaussian initial condition (mm).
        seed_amplitude: peak density of the initial condition.
        seed_shape: ``"gaussian"`` or ``"heat-kernel"`` (the Gaussian cut at density 0.1, as
            TumorGrowthToolkit seeds); see `bayestumor.forward.seed_density`.
        gm_ratio: D_w / D_g of `faces`, used when a call's `GrowthParams.gm_ratio` is None.
        lambda_per_mm2: Gershgorin bound on the spectrum of ∇·(k∇·), 1/mm².
        lambda_any_ratio_per_mm2: the same bound for every ratio ≥ 1 (the steps of solves
            whose ratio is a parameter are sized with it).
        stepping: `FixedStep` (default), `SplitStep` (Strang splitting with the exact logistic
            step and Runge–Kutta–Chebyshev diffusion; opt-in) or `AdaptiveStep`.
        max_steps: hard bound on solver steps per solve.
        checkpoints: states diffrax stores for reverse-mode AD of adaptive solves (memory ≈
            checkpoints × one volume; more checkpoints, less recomputation). Fixed-step solves
            store ≈ 2√max_steps volumes instead.
        throw: a solve that needs more than `max_steps` steps (or meets non-finite input)
            raises (`equinox.EquinoxRuntimeError`, also under `jit`); with False it returns NaN
            instead — the path samplers use (`nan_on_failure`), where NaN is a rejection.
    """

    faces: tuple[Array, Array, Array]
    habitable: Array
    tissues: tuple[Array, Array]
    world_to_voxel: Array
    spacing_mm: tuple[float, float, float] = eqx.field(static=True)
    seed_sigma_mm: float = eqx.field(static=True)
    seed_amplitude: float = eqx.field(static=True)
    gm_ratio: float = eqx.field(static=True)
    lambda_per_mm2: float = eqx.field(static=True)
    lambda_any_ratio_per_mm2: float = eqx.field(static=True)
    stepping: TimeStepping = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    checkpoints: int | None = eqx.field(static=True)
    _grid: Grid = eqx.field(static=True)
    throw: bool = eqx.field(static=True, default=True)
    seed_shape: str = eqx.field(static=True, default="gaussian")

    @classmethod
    def from_tissues(
        cls,
        # "_x": documented, not checked by jaxtyping, so that a mismatch gets our own message.
        wm: Float[ArrayLike, "_x _y _z"],
        gm: Float[ArrayLike, "_x _y _z"],
        grid: Grid,
        *,
        gm_ratio: float = DEFAULT_GM_RATIO,
        seed_sigma_mm: float | None = None,
        seed_amplitude: float = 1.0,
        seed_shape: str = "gaussian",
        stepping: TimeStepping | None = None,
        max_steps: int = 4096,
        checkpoints: int | None = 64,
        dtype=None,
    ) -> PDEForward:
        """Build the solver from white/grey-matter probability maps on `grid`.

        Args:
            wm, gm: tissue probabilities in [0, 1], shape `grid.shape`.
            grid: the voxel grid; its axes must be orthogonal (no shear), as for any NIfTI
                written by common tools.
            gm_ratio: D_w / D_g (default 10).
            seed_sigma_mm: width of the Gaussian seed in mm. Default `DEFAULT_SEED_SIGMA_MM`
                (4 mm), widened to the largest voxel edge on coarser grids so that the seed stays
                resolved and its mass varies smoothly with its position.
            seed_amplitude: peak density of the seed, in (0, 1].
            seed_shape: one of `SEED_SHAPES`: ``"gaussian"`` (default) or ``"heat-kernel"``
                (zero where the density is ≤ 0.1; `TUMOR_GROWTH_TOOLKIT_SEED` reproduces that
                tool's initial condition).
            stepping: time-stepping scheme, default `FixedStep()`.
            max_steps: bound on steps per solve. Fixed steps: every solve loops over this static
                bound (skipping unused steps), and fails (raises; NaN with `nan_on_failure`) if
                stability needs more; size it with `sized_for` for the largest parameters.
            checkpoints: states kept for reverse-mode AD of adaptive solves.
            dtype: float dtype of the stored fields (default: JAX's default float).
        """
        wm = np.asarray(wm)
        gm = np.asarray(gm)
        if wm.shape != grid.shape or gm.shape != grid.shape:
            raise ValueError(f"tissue maps {wm.shape}, {gm.shape} do not match grid {grid.shape}")
        if not grid.axes_orthogonal:
            raise ValueError("the grid's axes are not orthogonal; resample to an unsheared grid")
        check_seed_options(seed_shape, seed_sigma_mm, seed_amplitude)
        spacing = grid.spacing_mm
        k = relative_diffusivity(wm, gm, gm_ratio)
        habitable = k >= _MIN_RELATIVE_DIFFUSIVITY
        k = np.where(habitable, k, 0.0)
        if not np.any(k > 0):
            raise ValueError("no habitable tissue (white or grey matter) in the anatomy")
        faces = _face_coefficients(k, spacing)
        # Any ratio ≥ 1 gives k ≤ k(ratio = 1) voxel by voxel, and harmonic faces grow with k.
        any_ratio = _face_coefficients(
            np.where(habitable, relative_diffusivity(wm, gm, 1.0), 0.0), spacing
        )
        dtype = dtype or jnp.zeros(()).dtype
        return cls(
            faces=tuple(jnp.asarray(face, dtype) for face in faces),
            habitable=jnp.asarray(habitable, dtype),
            tissues=(jnp.asarray(wm * habitable, dtype), jnp.asarray(gm * habitable, dtype)),
            world_to_voxel=jnp.asarray(np.linalg.inv(grid.affine), dtype),
            spacing_mm=spacing,
            seed_sigma_mm=float(seed_sigma_mm or max(DEFAULT_SEED_SIGMA_MM, *spacing)),
            seed_amplitude=float(seed_amplitude),
            gm_ratio=float(gm_ratio),
            lambda_per_mm2=_gershgorin(faces),
            lambda_any_ratio_per_mm2=_gershgorin(any_ratio),
            stepping=stepping or FixedStep(),
            max_steps=int(max_steps),
            checkpoints=checkpoints,
            _grid=grid,
            seed_shape=seed_shape,
        )

    @classmethod
    def from_anatomy(cls, anatomy, **options) -> PDEForward:
        """Build the solver from an `Anatomy` (its `wm`, `gm` and `grid`); options as `from_tissues`."""
        return cls.from_tissues(anatomy.wm, anatomy.gm, anatomy.grid, **options)

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def seed_convention(self) -> dict[str, str | float]:
        """This solver's own seed: ``seed_shape``, ``seed_sigma_mm``, ``seed_amplitude``."""
        return {
            "seed_shape": self.seed_shape,
            "seed_sigma_mm": self.seed_sigma_mm,
            "seed_amplitude": self.seed_amplitude,
        }

    def initial_density(
        self,
        seed_mm: Vector3,
        sigma_mm: Float[ArrayLike, ""] | None = None,
        amplitude: Float[ArrayLike, ""] | None = None,
    ) -> Volume:
        """Seed of shape `seed_shape`, width `sigma_mm` and peak `amplitude` (None:
        `seed_sigma_mm`, `seed_amplitude`; either may be traced, for a sampled seed) centred at
        `seed_mm` (world mm), zero in CSF.

        Separable in voxel axes (orthogonal grid), so it costs three 1-D Gaussians.
        """
        seed_mm = jnp.asarray(seed_mm, self.world_to_voxel.dtype)
        centre = self.world_to_voxel[:3, :3] @ seed_mm + self.world_to_voxel[:3, 3]
        blob = seed_density(
            centre,
            self.grid.shape,
            self.spacing_mm,
            sigma_mm=self.seed_sigma_mm if sigma_mm is None else sigma_mm,
            amplitude=self.seed_amplitude if amplitude is None else amplitude,
            seed_shape=self.seed_shape,
        )
        return blob * self.habitable

    def nan_on_failure(self) -> PDEForward:
        """This solver with a failed solve returning NaN instead of raising (for samplers)."""
        return dataclasses.replace(self, throw=False)

    def _checked(self, density: Array) -> Array:
        """`density`, or an error at run time if it is not finite and `throw` is set."""
        if not self.throw:
            return density
        return eqx.error_if(
            density,
            ~jnp.all(jnp.isfinite(density)),
            f"the PDE solve produced non-finite densities: these parameters need more than "
            f"max_steps = {self.max_steps} steps (size the solver with PDEForward.sized_for or "
            f"with_max_steps), or they are not finite",
        )

    def faces_for(self, gm_ratio: Float[ArrayLike, ""]) -> tuple[Array, Array, Array]:
        """Face coefficients at grey/white ratio `gm_ratio` ≥ 1 (may be traced): as `faces`,
        differentiable in the ratio."""
        white, grey = self.tissues
        k = jnp.clip(white + grey / gm_ratio, 0.0, 1.0) * self.habitable
        return _face_coefficients(k, self.spacing_mm, xp=jnp)

    def _diffusion_for(self, gm_ratio) -> tuple[tuple[Array, Array, Array], float]:
        """(faces, Gershgorin bound) of a solve at `gm_ratio` (None: the solver's own)."""
        if gm_ratio is None:
            return self.faces, self.lambda_per_mm2
        gm_ratio = jnp.asarray(gm_ratio, self.world_to_voxel.dtype)
        return self.faces_for(gm_ratio), self.lambda_any_ratio_per_mm2

    @staticmethod
    def _vector_field(tau, u, args):
        diffusion_length_sq, reaction, faces = args
        return diffusion_length_sq * _divergence(u, faces) + reaction * u * (1.0 - u)

    def _split_steps_for(self, diffusion_length_sq, reaction, span, lam) -> Array:
        """Strang/RKC steps over a span of τ (see `SplitStep`): the largest of the reaction and
        diffusion accuracy bounds and RKC's stability with at most `max_stages` stages."""
        stepping = self.stepping
        beta_max = rkc_tables(stepping.max_stages)[0][-1]
        reaction_bound = jnp.ceil(reaction * span / stepping.reaction_step)
        diffusion_bound = jnp.ceil(
            diffusion_length_sq * span / (stepping.diffusion_step * self.seed_sigma_mm**2)
        )
        stability = jnp.ceil(diffusion_length_sq * lam * span / (stepping.safety * beta_max))
        floor = jnp.maximum(jnp.ceil(stepping.min_steps * span), 1.0)
        return jnp.maximum(
            jnp.maximum(reaction_bound, diffusion_bound), jnp.maximum(stability, floor)
        )

    def _steps_for(self, diffusion_length_sq, reaction, span=1.0, lam=None) -> Array:
        """Fixed steps over a span of τ: stable (dτ·λ_max ≤ 2·safety) and accurate (see
        `FixedStep`), for the operator bound `lam` (default `lambda_per_mm2`). Works on traced
        and concrete values alike."""
        lam = self.lambda_per_mm2 if lam is None else lam
        if isinstance(self.stepping, SplitStep):
            return self._split_steps_for(diffusion_length_sq, reaction, span, lam)
        stepping = self.stepping if isinstance(self.stepping, FixedStep) else FixedStep()
        lam = (diffusion_length_sq * lam + reaction) * span
        stability = jnp.ceil(lam / (2.0 * stepping.safety))
        accuracy = jnp.ceil(reaction * span / stepping.reaction_step)
        return jnp.maximum(jnp.maximum(stability, accuracy), 1.0)

    def _fixed_step_interval(self, u: Volume, tau0: Array, tau1: Array, args, lam) -> Volume:
        """Advance `u` from τ0 to τ1 with Heun steps at the stable, accurate step size.

        The step count n depends on the parameters (a `while` loop: a single solve pays for
        exactly n steps; under `vmap` the batch pays for its largest n). Reverse-mode AD uses
        the discrete adjoint of `_heun_solve`, storing about 2√max_steps volumes. If n exceeds
        `max_steps` the result is NaN rather than an unstable solution (`_checked` turns that
        into an error unless `throw` is off).
        """
        a, r, faces = args
        steps = jax.lax.stop_gradient(self._steps_for(a, r, tau1 - tau0, lam))
        dt = jax.lax.stop_gradient((tau1 - tau0) / steps)
        return _heun_solve(_step_layout(self.max_steps), u, a, r, steps, dt, faces)

    def _adaptive_interval(self, u: Volume, tau0: Array, tau1: Array, args, lam) -> Volume:
        """Advance `u` from τ0 to τ1 with Tsit5 and a PID controller (diffrax's own loop)."""
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(self._vector_field),
            diffrax.Tsit5(),
            t0=tau0,
            t1=tau1,
            dt0=None,
            y0=u,
            args=args,
            stepsize_controller=diffrax.PIDController(
                rtol=self.stepping.rtol, atol=self.stepping.atol
            ),
            adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=self.checkpoints),
            max_steps=self.max_steps,
        )
        return solution.ys[-1]

    def _split_interval(self, u: Volume, tau0: Array, tau1: Array, args, lam) -> Volume:
        """Advance `u` from τ0 to τ1 with Strang/RKC steps (`SplitStep`); as
        `_fixed_step_interval`, NaN beyond `max_steps`, discrete adjoint in reverse mode."""
        a, r, faces = args
        steps = jax.lax.stop_gradient(self._steps_for(a, r, tau1 - tau0, lam))
        dt = jax.lax.stop_gradient((tau1 - tau0) / steps)
        static = (self.max_steps, self.stepping.max_stages, self.stepping.safety, lam)
        return split_solve(static, u, a, r, steps, dt, faces)

    def _advance(self, u: Volume, tau0: Array, tau1: Array, args, lam) -> Volume:
        """Advance `u` from τ0 to τ1; `args` = (μ_D², μ_ρ², faces), `lam` the faces' bound."""
        if isinstance(self.stepping, SplitStep):
            return self._split_interval(u, tau0, tau1, args, lam)
        if isinstance(self.stepping, FixedStep):
            return self._fixed_step_interval(u, tau0, tau1, args, lam)
        return self._adaptive_interval(u, tau0, tau1, args, lam)

    def evolve(
        self,
        density: Volume,
        D_w: ArrayLike,
        rho: ArrayLike,
        duration_days: ArrayLike,
        gm_ratio: ArrayLike | None = None,
    ) -> Volume:
        """Advance an arbitrary density field by `duration_days` (e.g. to continue a solve)."""
        dtype = self.world_to_voxel.dtype
        duration_days = jnp.asarray(duration_days, dtype)
        faces, lam = self._diffusion_for(gm_ratio)
        args = (
            jnp.asarray(D_w, dtype) * duration_days,
            jnp.asarray(rho, dtype) * duration_days,
            faces,
        )
        start, end = jnp.zeros((), dtype), jnp.ones((), dtype)
        return self._checked(self._advance(jnp.asarray(density, dtype), start, end, args, lam))

    def _integrate(
        self,
        D_w: ArrayLike,
        rho: ArrayLike,
        t_end_days: ArrayLike,
        seed_mm: ArrayLike,
        fractions: Float[ArrayLike, " n"],
        seed_sigma_mm: ArrayLike | None = None,
        seed_amplitude: ArrayLike | None = None,
        gm_ratio: ArrayLike | None = None,
    ) -> Float[Array, "n x y z"]:
        """Densities at τ = `fractions` (increasing, in (0, 1]) of a solve up to `t_end_days`,
        from a seed of width `seed_sigma_mm` and peak `seed_amplitude`, with grey/white ratio
        `gm_ratio` (None: the solver's own)."""
        dtype = self.world_to_voxel.dtype
        t_end_days = jnp.asarray(t_end_days, dtype)
        faces, lam = self._diffusion_for(gm_ratio)
        args = (jnp.asarray(D_w, dtype) * t_end_days, jnp.asarray(rho, dtype) * t_end_days, faces)

        def interval(carry, tau1):
            u, tau0 = carry
            u = self._advance(u, tau0, tau1, args, lam)
            return (u, tau1), u

        fractions = jnp.asarray(fractions, dtype)
        start = (
            self.initial_density(seed_mm, seed_sigma_mm, seed_amplitude),
            jnp.zeros((), dtype),
        )
        return self._checked(jax.lax.scan(interval, start, fractions)[1])

    def __call__(self, params: GrowthParams) -> Volume:
        """Density in [0, 1] at t = T on `self.grid`."""
        return self._integrate(
            params.D_w,
            params.rho,
            params.T,
            params.seed_mm,
            jnp.ones(1),
            params.seed_sigma_mm,
            params.seed_amplitude,
            params.gm_ratio,
        )[0]

    def density_at(
        self, params: GrowthParams, t_days: Float[ArrayLike, " n"]
    ) -> Float[Array, "n x y z"]:
        """Density at each of the increasing times `t_days` (days since the seed; `params.T` unused).

        One solve, restarted at each requested time, so every output lies on a step boundary.
        """
        t_days = jnp.asarray(t_days)
        t_end = t_days[-1]
        return self._integrate(
            params.D_w,
            params.rho,
            t_end,
            params.seed_mm,
            t_days / t_end,
            params.seed_sigma_mm,
            params.seed_amplitude,
            params.gm_ratio,
        )

    @property
    def pmap_safe(self) -> bool:
        """False with `AdaptiveStep`: gradients of a ``diffrax.diffeqsolve`` under `jax.pmap`
        fail here ("Closure-converted function called with different dynamic arguments");
        the default fixed-step loop has its own adjoint and runs under `pmap`."""
        return isinstance(self.stepping, FixedStep | SplitStep)

    def with_stepping(self, stepping: TimeStepping) -> PDEForward:
        """A copy that integrates in time with `stepping` (same anatomy and step bound)."""
        return dataclasses.replace(self, stepping=stepping)

    def with_max_steps(self, max_steps: int) -> PDEForward:
        """A copy whose fixed-step loop is bounded by `max_steps` (see `stable_steps`)."""
        return dataclasses.replace(self, max_steps=int(max_steps))

    def sized_for(
        self,
        max_D_w_T: float,
        max_rho_T: float,
        margin: float = 1.05,
        *,
        any_gm_ratio: bool = False,
    ) -> PDEForward:
        """A copy whose step bound covers every D_w·T ≤ `max_D_w_T` mm² and ρ·T ≤ `max_rho_T`
        (and, with `any_gm_ratio`, every grey/white ratio ≥ 1 a call may pass).

        Use it with the upper ends of the prior so that no draw is rejected for lack of steps.
        """
        lam = self.lambda_any_ratio_per_mm2 if any_gm_ratio else self.lambda_per_mm2
        steps = float(self._steps_for(float(max_D_w_T), float(max_rho_T), lam=lam))
        return self.with_max_steps(math.ceil(margin * steps))

    def _bound_for(self, params: GrowthParams) -> float:
        return self.lambda_per_mm2 if params.gm_ratio is None else self.lambda_any_ratio_per_mm2

    def stable_steps(self, params: GrowthParams) -> int:
        """Number of fixed steps a solve with `params` takes (for cost estimates; not jittable)."""
        T = float(params.T)
        lam = self._bound_for(params)
        return int(self._steps_for(float(params.D_w) * T, float(params.rho) * T, lam=lam))

    def operator_applications(self, params: GrowthParams) -> int:
        """Applications of the diffusion operator in one forward solve with `params` (the cost
        unit of both fixed-step schemes): 2 per Heun step, s per `SplitStep` step (s RKC stages,
        the same for every step of a solve). Not defined for `AdaptiveStep`; not jittable."""
        steps = self.stable_steps(params)
        if isinstance(self.stepping, SplitStep):
            dt_stiffness = float(params.D_w) * float(params.T) / steps * self._bound_for(params)
            stages = stages_for(dt_stiffness, self.stepping.max_stages, self.stepping.safety)
            return steps * int(stages)
        if isinstance(self.stepping, FixedStep):
            return 2 * steps
        raise ValueError("operator_applications is defined for FixedStep and SplitStep only")

    def diffusion_operator(self, density: Volume) -> Volume:
        """∇·(k∇u) of a field on the grid (1/mm² × density; D_w times it is the diffusion term
        of the PDE): the finite-volume stencil every solver step applies, zero flux through the
        brain boundary."""
        return _divergence(jnp.asarray(density, self.world_to_voxel.dtype), self.faces)
