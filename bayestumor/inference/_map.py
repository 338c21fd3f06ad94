"""Maximum a posteriori start point with Optimistix (BFGS in unconstrained space)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from bayestumor.model import CalibrationProblem, Position


def find_map(
    problem: CalibrationProblem,
    start: Position | None = None,
    *,
    max_steps: int = 200,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[Position, dict[str, float]]:
    """The posterior mode in unconstrained space, found by BFGS from `start` (prior median).

    The mode is only a start point for the samplers (the physical parametrisation has a ridge
    of equal density along D_w·T, ρ·T = const, so the optimum there is a point on the ridge).
    If the optimiser fails or ends at a non-finite density, `start` is returned.

    Returns:
        The position and a dict with ``log_density`` at the start and at the end and the number
        of optimiser ``steps``.
    """
    start = problem.initial_position() if start is None else start

    def objective(position, _):
        value = -problem.log_density(position)
        # Outside the region the solver supports the density is NaN: make it a wall instead.
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    solution = optx.minimise(
        objective,
        optx.BFGS(rtol=rtol, atol=atol),
        start,
        max_steps=max_steps,
        throw=False,
    )
    end_value = float(-jax.jit(objective)(solution.value, None))
    start_value = float(-jax.jit(objective)(start, None))
    steps = int(solution.stats.get("num_steps", -1))
    if not jnp.isfinite(end_value) or end_value < start_value:
        return start, {"log_density_start": start_value, "log_density": start_value, "steps": steps}
    return solution.value, {
        "log_density_start": start_value,
        "log_density": end_value,
        "steps": steps,
    }


CONDITION_FLOOR = 1e-10
"""Smallest curvature of the Laplace approximation, relative to the largest, treated as
definite (below it the diagonal fallback is used)."""


def laplace_covariance(
    problem: CalibrationProblem, position: Position, step: float = 1e-2
) -> tuple[jax.Array, bool]:
    """Covariance of the Laplace approximation at `position`, (d, d) over the flat
    unconstrained position in `ravel_pytree` order (sites sorted by name): the initial dense
    inverse mass matrix of NUTS.

    The Hessian of the log density is taken by central differences of its gradient (2·d
    gradient evaluations; the solver's custom adjoint rules out forward-over-reverse),
    symmetrised and inverted. If it is not negative definite, the diagonal 1/|H_ii| is used
    (1 where that is not finite). D_w and ρ are strongly correlated given one scan (the
    front position fixes mostly √(D_w/ρ)·T-like combinations), so a dense matrix matters:
    measured here, a diagonal one gave bulk ESS ≈ 50 of 200 draws for D_w and ρ.

    Returns:
        The covariance and whether the Hessian was negative definite.
    """
    flat, unravel = ravel_pytree(position)
    gradient = jax.jit(jax.grad(lambda x: problem.log_density(unravel(x))))
    basis = jnp.eye(flat.size, dtype=flat.dtype) * step
    rows = [(gradient(flat + e) - gradient(flat - e)) / (2 * step) for e in basis]
    hessian = np.asarray(jnp.stack(rows), np.float64)
    hessian = 0.5 * (hessian + hessian.T)
    finite = bool(np.all(np.isfinite(hessian)))
    curvature, vectors = np.linalg.eigh(-hessian) if finite else (None, None)
    # Negative definite and not numerically singular (a flat direction, e.g. log T given μ,
    # can leave an eigenvalue at rounding level: inverting it would blow up).
    if finite and curvature.min() > CONDITION_FLOOR * curvature.max():
        covariance = (vectors / curvature) @ vectors.T
        definite = True
    else:
        diagonal = np.abs(np.diag(hessian))
        diagonal = np.where(np.isfinite(diagonal) & (diagonal > 0), diagonal, 1.0)
        covariance = np.diag(1.0 / diagonal)
        definite = False
    # Keep the matrix well conditioned: variances within [1e-8, 1e2] (unconstrained units).
    scale = np.sqrt(np.clip(np.diag(covariance), 1e-8, 1e2) / np.diag(covariance))
    covariance = covariance * scale[:, None] * scale[None, :]
    return jnp.asarray(covariance, flat.dtype), definite
