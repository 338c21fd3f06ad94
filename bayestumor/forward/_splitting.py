"""Strang splitting for the Fisher–Kolmogorov equation: the logistic reaction solved exactly, the
diffusion by a second-order Runge–Kutta–Chebyshev (RKC) step, with a hand-derived discrete adjoint.

In the dimensionless time τ = t / t_end (see `_pde`) the equation is du/dτ = a·Lu + r·u(1 − u),
a = D_w t_end, r = ρ t_end. One step of length h is

    u ← R(h/2) ∘ D(h) ∘ R(h/2) u,

R(t) the exact flow of the logistic ODE, u ↦ u / (u + (1 − u)·e^{−r t}), voxel-wise, and D(h) one
RKC step for u' = a·Lu (Strang 1968: second order in h). RKC2 (van der Houwen & Sommeijer 1980;
Sommeijer, Shampine & Verwer 1998, with damping ε = 2/13) takes s stages, each one application
of L, and is stable for h·a·λ_max ≤ β(s) ≈ 0.65 s²: the stage count grows with the square root
of the stiffness, so the step is set by accuracy — of the splitting and of RKC on the smooth
solution — not by stability. Both Heun bounds (ρΔt ≤ 0.05 for accuracy, a·λ·Δt ≤ 2 for
stability) are gone; what remains is a bound on ρΔt per step (`SplitStep.reaction_step`), which
by the scale invariance of Fisher–KPP (x√(ρ/D), ρt) controls the splitting error of the front,
and a bound on the diffusion per step relative to the seed width (`SplitStep.diffusion_step`)
for the early, diffusion-dominated phase.

Gradients: D(h) is a polynomial P(h·a·L) in the symmetric L, so its transpose is itself; the
adjoint runs the stage recursion backwards from stored stages (one application of L per stage,
which also gives ∂/∂a through ⟨Lḡ_j, Y_{j−1}⟩), and the logistic flow has closed-form
derivatives. The input of every step is stored on the way forward (up to 64 steps; longer
budgets store every K-th and recompute segments), so reverse mode recomputes only each step's
own stages: a gradient costs ≈ 4 forward solves.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import custom_vjp_primal_tree_values

from bayestumor._custom_types import Array
from bayestumor.forward._operator import _add, _divergence, face_cotangents, faces_perturbed

# RKC damping (Sommeijer, Shampine & Verwer 1998): shrinks the stability interval by ≈ 2ε/15
# (≈ 2 %) and keeps |P(z)| ≤ 1 − ε/3-ish inside it, so stiff modes are damped, not merely kept.
RKC_DAMPING = 2.0 / 13.0


class SplitStep(eqx.Module):
    """Strang splitting: the exact logistic flow and a Runge–Kutta–Chebyshev diffusion step.

    The step count of each solve is the largest of three bounds: accuracy of the reaction
    splitting (ρ·Δt ≤ `reaction_step`), accuracy of the diffusion on the seed's scale
    (D_w·Δt ≤ `diffusion_step`·σ_seed²), and stability of RKC with at most `max_stages` stages
    (Δt·D_w·λ_max ≤ `safety`·β(max_stages)). Each step then uses the fewest stages s ≥ 2 that
    are stable for its Δt. Memory for gradients: up to 64 stored step inputs and `max_stages`
    stage volumes.

    Attributes:
        reaction_step: bound on ρ·Δt per step.
        diffusion_step: bound on D_w·Δt / σ_seed² per step.
        max_stages: most RKC stages per step (more stages, longer stable steps; ≥ 2).
        safety: fraction of RKC's stability interval used (the Gershgorin bound on λ_max is
            already an upper bound, so this only absorbs round-off).
    """

    reaction_step: float = 0.35
    diffusion_step: float = 0.5
    min_steps: int = 8
    max_stages: int = 32
    safety: float = 0.95

    def __check_init__(self):
        if not self.reaction_step > 0.0:
            raise ValueError(f"SplitStep.reaction_step must be > 0, got {self.reaction_step}")
        if not self.diffusion_step > 0.0:
            raise ValueError(f"SplitStep.diffusion_step must be > 0, got {self.diffusion_step}")
        if not self.min_steps >= 1:
            raise ValueError(f"SplitStep.min_steps must be ≥ 1, got {self.min_steps}")
        if not 2 <= self.max_stages <= 256:
            raise ValueError(f"SplitStep.max_stages must be in [2, 256], got {self.max_stages}")
        if not 0.0 < self.safety <= 1.0:
            raise ValueError(f"SplitStep.safety must be in (0, 1], got {self.safety}")


@functools.cache
def rkc_tables(max_stages: int) -> tuple[np.ndarray, ...]:
    """RKC2 coefficients for every stage count s = 0…max_stages (rows 0 and 1 unused), float64.

    Returns (beta, mu, nu, mu_tilde, gamma_tilde): beta[s] is the real stability boundary
    (1 + w0)/w1; the others have shape (max_stages + 1, max_stages + 1), entry [s, j] the
    coefficient of stage j of an s-stage step (Sommeijer, Shampine & Verwer 1998, eq. 2.4–2.6):

        Y_0 = y,  Y_1 = Y_0 + μ̃_1 hF(Y_0),
        Y_j = (1 − μ_j − ν_j) Y_0 + μ_j Y_{j−1} + ν_j Y_{j−2} + μ̃_j hF(Y_{j−1}) + γ̃_j hF(Y_0).
    """
    size = max_stages + 1
    beta = np.zeros(size)
    mu, nu, mu_tilde, gamma_tilde = (np.zeros((size, size)) for _ in range(4))
    for s in range(2, size):
        w0 = 1.0 + RKC_DAMPING / s**2
        # Chebyshev T_j(w0) and its first two derivatives by the three-term recurrence.
        T, dT, ddT = np.zeros(s + 1), np.zeros(s + 1), np.zeros(s + 1)
        T[0], T[1], dT[1] = 1.0, w0, 1.0
        for j in range(2, s + 1):
            T[j] = 2 * w0 * T[j - 1] - T[j - 2]
            dT[j] = 2 * T[j - 1] + 2 * w0 * dT[j - 1] - dT[j - 2]
            ddT[j] = 4 * dT[j - 1] + 2 * w0 * ddT[j - 1] - ddT[j - 2]
        w1 = dT[s] / ddT[s]
        b = np.empty(s + 1)
        b[2:] = ddT[2:] / dT[2:] ** 2
        b[0] = b[1] = b[2]
        a = 1.0 - b * T
        mu_tilde[s, 1] = b[1] * w1
        for j in range(2, s + 1):
            mu[s, j] = 2 * b[j] * w0 / b[j - 1]
            nu[s, j] = -b[j] / b[j - 2]
            mu_tilde[s, j] = 2 * b[j] * w1 / b[j - 1]
            gamma_tilde[s, j] = -a[j - 1] * mu_tilde[s, j]
        beta[s] = (1.0 + w0) / w1
    return beta, mu, nu, mu_tilde, gamma_tilde


def stages_for(stiffness, max_stages: int, safety: float):
    """Fewest stages s ∈ [2, max_stages] with safety·β(s) ≥ `stiffness` = h·a·λ_max (capped)."""
    beta = rkc_tables(max_stages)[0]
    # beta[0] = beta[1] = 0 sort first; searchsorted over the increasing tail from s = 2.
    s = 2 + jnp.searchsorted(jnp.asarray(safety * beta[2:], jnp.result_type(stiffness)), stiffness)
    return jnp.clip(s, 2, max_stages)


def _logistic(u: Array, decay) -> Array:
    """Exact logistic flow over a time t with decay = e^{−r t}: u / (u + (1 − u)·decay)."""
    return u / (u + (1.0 - u) * decay)


def _coefficients(tables, stages, dtype):
    """The stage coefficients of an s-stage step, as rows of the static tables (dynamic s)."""
    return tuple(jnp.asarray(table, dtype)[stages] for table in tables[1:])


def _rkc(y: Array, c, stages, coefficients, faces, store=None):
    """One RKC2 step of u' = c·Lu/h (c = h·a). With `store` (a (max_stages, …) buffer), stages
    Y_0…Y_{s−1} are written into it for the adjoint; returns (Y_s, store)."""
    mu, nu, mu_tilde, gamma_tilde = coefficients
    f0 = c * _divergence(y, faces)
    y1 = y + mu_tilde[1] * f0
    if store is not None:
        store = store.at[0].set(y).at[1].set(y1)

    def stage(j, carry):
        previous, before, store = carry
        if store is not None:
            store = store.at[j - 1].set(previous)
        current = (
            (1.0 - mu[j] - nu[j]) * y
            + mu[j] * previous
            + nu[j] * before
            + mu_tilde[j] * c * _divergence(previous, faces)
            + gamma_tilde[j] * f0
        )
        return current, previous, store

    out, _, store = jax.lax.fori_loop(2, stages + 1, stage, (y1, y, store))
    return out, store


def _split_step(u: Array, dt, a, r, faces, max_stages: int, safety: float, lam) -> Array:
    """One Strang step R(dt/2) ∘ RKC(dt) ∘ R(dt/2) of du/dτ = a·Lu + r·u(1 − u)."""
    tables = rkc_tables(max_stages)
    c = dt * a
    stages = stages_for(c * lam, max_stages, safety)
    decay = jnp.exp(-0.5 * r * dt)
    v = _logistic(u, decay)
    w, _ = _rkc(v, c, stages, _coefficients(tables, stages, u.dtype), faces)
    return _logistic(w, decay)


def _rkc_adjoint(g: Array, c, stages, coefficients, store, faces, g_faces=None):
    """Transpose of the RKC step applied to the cotangent g of Y_s, and ∂⟨g, Y_s⟩/∂c.

    Reverse sweep over the stage recursion; per stage one application of L to the stage
    cotangent Ḡ_j, which propagates it (L symmetric) and gives the c-derivative
    ⟨Ḡ_j, LY_{j−1}⟩ = ⟨LḠ_j, Y_{j−1}⟩ from the stored stages. With `g_faces` (face
    cotangents so far, for traced faces) it also adds ∂⟨g, Y_s⟩/∂k_f: stage j applies
    c·L to X_j = μ̃_j Y_{j−1} + γ̃_j Y_0, whose face derivative is −c·ΔḠ_j·ΔX_j.
    Returns (ḡ_y, c̄, g_faces).
    """
    mu, nu, mu_tilde, gamma_tilde = coefficients
    y = store[0]

    def stage(k, carry):
        j = stages - k  # s, s−1, …, 2
        g_j, g_prev_partial, g_0, c_bar, g_faces = carry
        Lg = _divergence(g_j, faces)
        applied_to = mu_tilde[j] * store[j - 1] + gamma_tilde[j] * y
        c_bar = c_bar + Lg * applied_to
        if g_faces is not None:
            g_faces = _add(g_faces, face_cotangents(c * g_j, applied_to))
        g_prev = g_prev_partial + mu[j] * g_j + (mu_tilde[j] * c) * Lg
        g_0 = g_0 + (1.0 - mu[j] - nu[j]) * g_j + (gamma_tilde[j] * c) * Lg
        return g_prev, nu[j] * g_j, g_0, c_bar, g_faces

    zeros = jnp.zeros_like(g)
    g_1, g_partial, g_0, c_bar, g_faces = jax.lax.fori_loop(
        0, stages - 1, stage, (g, zeros, zeros, zeros, g_faces)
    )
    # Stage 1: Y_1 = Y_0 + μ̃_1·c·LY_0; the ν_2 contribution (g_partial) lands on Y_0.
    Lg = _divergence(g_1, faces)
    c_bar = c_bar + mu_tilde[1] * Lg * y
    if g_faces is not None:
        g_faces = _add(g_faces, face_cotangents((mu_tilde[1] * c) * g_1, y))
    g_0 = g_0 + g_partial + g_1 + (mu_tilde[1] * c) * Lg
    return g_0, jnp.sum(c_bar), g_faces


def _step_layout(max_steps: int) -> tuple[int, int]:
    """(segment length K, checkpoint count C) with K·C ≥ max_steps and K ≈ C ≈ √max_steps."""
    segment = math.isqrt(max(max_steps - 1, 0)) + 1
    return segment, -(-max_steps // segment)


# Split solves take tens of steps: up to this many step inputs are stored on the way forward,
# so that reverse mode recomputes nothing but each step's own stages (segment length 1); longer
# budgets fall back to segments of ≈ max_steps / this many steps.
_MAX_CHECKPOINTS = 64


def _split_layout(max_steps: int) -> tuple[int, int]:
    """(segment length K, checkpoint count C) with K·C ≥ max_steps and C ≤ _MAX_CHECKPOINTS."""
    count = max(1, min(max_steps, _MAX_CHECKPOINTS))
    segment = -(-max_steps // count)
    return segment, -(-max_steps // segment)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def split_solve(static, u0, a, r, steps, dt, faces):
    """`steps` Strang/RKC steps of size `dt` from `u0`; NaN if `steps` exceeds the capacity.

    `static` = (max_steps, max_stages, safety, lam), lam the Gershgorin bound on L's spectrum
    (1/mm²). Reverse mode: the discrete adjoint in `_split_solve_bwd`.
    """
    max_steps, max_stages, safety, lam = static
    segment, count = _split_layout(max_steps)
    n = steps.astype(jnp.int32)
    u = jax.lax.fori_loop(
        0, n, lambda _, u: _split_step(u, dt, a, r, faces, max_stages, safety, lam), u0
    )
    return jnp.where(n <= segment * count, u, jnp.nan)


def _split_solve_fwd(static, u0, a, r, steps, dt, faces):
    track_faces = faces_perturbed(faces)
    u0, a, r, steps, dt, faces = custom_vjp_primal_tree_values((u0, a, r, steps, dt, faces))
    max_steps, max_stages, safety, lam = static
    segment, count = _split_layout(max_steps)
    n = steps.astype(jnp.int32)

    def step(i, carry):
        u, store = carry
        store = jax.lax.cond(
            i % segment == 0, lambda s: s.at[i // segment].set(u), lambda s: s, store
        )
        return _split_step(u, dt, a, r, faces, max_stages, safety, lam), store

    store = jnp.zeros((count, *u0.shape), u0.dtype)
    u, store = jax.lax.fori_loop(0, jnp.minimum(n, segment * count), step, (u0, store))
    u = jnp.where(n <= segment * count, u, jnp.nan)
    return u, (store, a, r, n, dt, faces, track_faces)


def _split_solve_bwd(static, residuals, cotangent):
    # Per step, backwards: out = R(w), w = RKC(v), v = R(u) with R(x) = x / (x + (1 − x)e),
    # e = exp(−r·dt/2): ∂R/∂x = e / (x + (1 − x)e)², ∂R/∂r = (dt/2)·R(1 − R).
    store, a, r, n, dt, faces, track_faces = residuals
    max_steps, max_stages, safety, lam = static
    segment, count = _split_layout(max_steps)
    tables = rkc_tables(max_stages)
    dtype = cotangent.dtype
    c = dt * a
    stages = stages_for(c * lam, max_stages, safety)
    coefficients = _coefficients(tables, stages, dtype)
    decay = jnp.exp(-0.5 * r * dt)
    n_segments = (n + segment - 1) // segment
    empty = jnp.zeros((segment, *cotangent.shape), dtype)
    stage_store = jnp.zeros((max_stages, *cotangent.shape), dtype)

    def logistic_adjoint(x, g):
        """(ḡ_x, voxel-wise r-derivative contribution) of R at x."""
        denominator = x + (1.0 - x) * decay
        out = x / denominator
        return g * decay / jnp.square(denominator), g * out * (1.0 - out)

    def adjoint_segment(j_reversed, carry):
        j = n_segments - 1 - j_reversed
        start = j * segment
        stop = jnp.minimum(start + segment, n)

        def recompute(i, state):
            # Inputs of steps start+1 … stop−1 (the last step's output is not needed).
            u, inputs = state
            u = _split_step(u, dt, a, r, faces, max_stages, safety, lam)
            return u, inputs.at[i + 1 - start].set(u)

        inputs = empty.at[0].set(store[j])
        _, inputs = jax.lax.fori_loop(start, stop - 1, recompute, (store[j], inputs))

        def adjoint_step(k, carry):
            # The stage buffer travels in the carry so that XLA updates it in place.
            g, g_a, g_r, stage_store, g_faces = carry
            u = inputs[stop - 1 - k - start]
            v = _logistic(u, decay)
            w, stage_store = _rkc(v, c, stages, coefficients, faces, stage_store)
            g_w, r_out = logistic_adjoint(w, g)
            g_v, c_bar, g_faces = _rkc_adjoint(
                g_w, c, stages, coefficients, stage_store, faces, g_faces
            )
            g_u, r_in = logistic_adjoint(u, g_v)
            return g_u, g_a + c_bar, g_r + r_out + r_in, stage_store, g_faces

        g, g_a_sum, g_r_sum, stage_store, g_faces = carry
        zero = jnp.zeros((), dtype)
        g, g_a, g_r, stage_store, g_faces = jax.lax.fori_loop(
            0, stop - start, adjoint_step, (g, zero, jnp.zeros_like(g), stage_store, g_faces)
        )
        return g, g_a_sum + dt * g_a, g_r_sum + 0.5 * dt * jnp.sum(g_r), stage_store, g_faces

    zero = jnp.zeros((), dtype)
    no_faces = tuple(jnp.zeros_like(face) for face in faces) if track_faces else None
    g, g_a, g_r, _, g_faces = jax.lax.fori_loop(
        0, n_segments, adjoint_segment, (cotangent, zero, zero, stage_store, no_faces)
    )
    ok = n <= segment * count
    nan_if_over = lambda x: jnp.where(ok, x, jnp.nan)  # noqa: E731
    g_faces = tuple(nan_if_over(face) for face in g_faces) if track_faces else None
    return nan_if_over(g), nan_if_over(g_a), nan_if_over(g_r), None, None, g_faces


split_solve.defvjp(_split_solve_fwd, _split_solve_bwd, symbolic_zeros=True)
