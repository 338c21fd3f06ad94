"""NumPyro NUTS (vectorised chains) on a calibration problem."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.inference._run import SamplerRun
from bayestumor.model import CONDITIONAL_PRIOR_SITES, CalibrationProblem, Position

_FIELDS = (
    "diverging",
    "num_steps",
    "accept_prob",
    "potential_energy",
    "energy",
    "adapt_state.step_size",
)


def _mass_matrix_blocks(
    problem: CalibrationProblem, inverse_mass_matrix: jax.Array | None
) -> tuple[bool | list[tuple[str, ...]], jax.Array | dict | None]:
    """NumPyro's `dense_mass` and initial inverse mass matrix: one dense block over the sites
    that the data inform, a diagonal one over `CONDITIONAL_PRIOR_SITES`."""
    names = problem.site_names
    separate = tuple(name for name in names if name in CONDITIONAL_PRIOR_SITES)
    if not separate:
        return True, inverse_mass_matrix
    dense = tuple(name for name in names if name not in separate)
    if inverse_mass_matrix is None:
        return [dense], None
    start = problem.initial_position()
    sizes = [int(np.size(start[name])) for name in names]
    flat = dict(zip(names, np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1]), strict=True))

    def indices(block):
        return np.concatenate([flat[name] for name in block])

    matrix = np.asarray(inverse_mass_matrix)
    inside, outside = indices(dense), indices(separate)
    blocks = {
        dense: jnp.asarray(matrix[np.ix_(inside, inside)]),
        separate: jnp.asarray(np.diag(matrix)[outside]),
    }
    return [dense], blocks


def sample_numpyro_nuts(
    problem: CalibrationProblem,
    key: PRNGKeyArray,
    init: Position,
    *,
    chains: int = 2,
    warmup: int = 300,
    draws: int = 300,
    target_accept: float = 0.8,
    max_tree_depth: int = 8,
    progress: bool = True,
    inverse_mass_matrix: jax.Array | None = None,
    chain_method: str | None = None,
) -> SamplerRun:
    """NUTS with NumPyro's window adaptation.

    Chains run in parallel, one per device (``chain_method="parallel"``, pmap), when there are
    at least `chains` devices and the forward map is `pmap_safe`; otherwise one after the other
    (``"sequential"``). On a CPU, `use_cpu_cores_for_chains` (called by the command line) makes
    each core a device. ``"vectorized"`` also works, but then every leapfrog step of the batch
    pays for the chain with the most solver steps and the deepest tree.

    Args:
        problem: the posterior.
        key: PRNG key.
        init: unconstrained start per site, each of shape (chains,).
        chains, warmup, draws: number of chains, warm-up iterations and kept draws per chain.
        target_accept: dual-averaging target acceptance probability.
        max_tree_depth: NUTS tree depth bound (≤ 2^depth − 1 leapfrog steps per draw).
        progress: show NumPyro's progress bar.
        chain_method: ``"parallel"``, ``"sequential"`` or ``"vectorized"``; default: parallel
            where possible (above), else sequential.
        inverse_mass_matrix: initial dense inverse mass matrix (d, d) over the flat sites in
            sorted order (e.g. `laplace_covariance`), kept fixed; without it a dense matrix is
            adapted from the identity.

    The mass matrix is dense except for `CONDITIONAL_PRIOR_SITES` (``log_T`` when D_w, ρ and T
    are all free), which get their own diagonal block: their posterior is exactly independent
    of every other coordinate. When an initial inverse mass matrix is given (the Laplace
    covariance at the MAP) it is kept and only the step size is adapted: re-estimating a dense
    matrix from NumPyro's short early windows (25–50 draws for 11+ coordinates whose posterior
    sds differ by 10³) made it worse than the Laplace one — measured on the 11-parameter 4 mm
    problem, the step size fell from 0.7 to 0.02 and every draw hit 63 leapfrog steps.
    """
    dense_mass, inverse_mass_matrix = _mass_matrix_blocks(problem, inverse_mass_matrix)
    if chain_method is None:
        parallel = 1 < chains <= jax.local_device_count() and problem.forward.pmap_safe
        chain_method = "parallel" if parallel else "sequential"
    kernel = NUTS(
        problem.model,
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        inverse_mass_matrix=inverse_mass_matrix,
        dense_mass=dense_mass,
        adapt_mass_matrix=inverse_mass_matrix is None,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=chain_method,
        progress_bar=progress,
    )
    if chains == 1:
        # NumPyro wants a chain axis on initial values only when there are several chains.
        init = jax.tree.map(lambda values: values[0], init)
    start = time.perf_counter()
    key_warmup, key_run = jax.random.split(key)
    mcmc.warmup(key_warmup, init_params=init, extra_fields=("num_steps",), collect_warmup=True)
    warmup_steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
    mcmc.run(key_run, extra_fields=_FIELDS)
    fields = jax.block_until_ready(mcmc.get_extra_fields(group_by_chain=True))
    seconds = time.perf_counter() - start
    fields = jax.tree.map(np.asarray, fields)
    samples = mcmc.get_samples(group_by_chain=True)
    sites = {name: samples[name] for name in problem.site_names}
    positions = jax.jit(jax.vmap(jax.vmap(problem.unconstrain)))(sites)
    n_steps = fields["num_steps"]
    stats = {
        "diverging": fields["diverging"].astype(bool),
        "n_steps": n_steps.astype(np.int64),
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "acceptance_rate": fields["accept_prob"],
        "lp": -fields["potential_energy"],
        "energy": fields["energy"],
        "step_size": fields["adapt_state.step_size"],
    }
    return SamplerRun(
        sampler="nuts",
        positions={name: np.asarray(value) for name, value in positions.items()},
        sample_stats=stats,
        info={
            "max_tree_depth": max_tree_depth,
            "target_accept": target_accept,
            "chain_method": chain_method,
        },
        gradient_evaluations=warmup_steps + int(n_steps.sum()),
        density_evaluations=0,
        seconds=seconds,
    )
