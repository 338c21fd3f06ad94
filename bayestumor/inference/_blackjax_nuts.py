"""BlackJAX NUTS with Stan-style window adaptation (chains run in turn)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.inference._run import SamplerRun
from bayestumor.model import CalibrationProblem, Position


def sample_blackjax_nuts(
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
    chunk: int = 25,
    inverse_mass_matrix: jax.Array | None = None,
) -> SamplerRun:
    """NUTS from BlackJAX on the problem's unconstrained log density.

    Warm-up is `blackjax.window_adaptation` (step size by dual averaging, dense mass
    matrix). Chains run one after another (`lax.map`), not under `vmap`, where every step
    would pay for the chain with the most solver steps (see `sample_numpyro_nuts`). Draws are produced in jitted `scan`
    chunks of `chunk` steps so that a tqdm bar can report progress.

    Args: as `sample_numpyro_nuts`; `init` holds one start per chain, each site (chains,).
    """
    import blackjax  # here, not at module level: importing it starts JAX's backend

    logdensity = problem.log_density
    adaptation = blackjax.window_adaptation(
        blackjax.nuts,
        logdensity,
        target_acceptance_rate=target_accept,
        max_num_doublings=max_tree_depth,
        initial_inverse_mass_matrix=inverse_mass_matrix,
        is_mass_matrix_diagonal=False,
    )
    start = time.perf_counter()
    key_warmup, key_sample = jax.random.split(key)

    @jax.jit
    def run_warmup(keys, positions):
        def one(key, position):
            (state, parameters), info = adaptation.run(key, position, num_steps=warmup)
            tuned = {name: parameters[name] for name in ("step_size", "inverse_mass_matrix")}
            return state, tuned, jnp.sum(info.info.num_integration_steps)

        return jax.lax.map(lambda args: one(*args), (keys, positions))

    if progress:
        print(f"blackjax-nuts: warm-up, {chains} chains × {warmup} steps", flush=True)
    states, parameters, warmup_steps = run_warmup(jax.random.split(key_warmup, chains), init)

    @jax.jit
    def run_chunk(keys, states, parameters):
        def one_chain(key, state, params):
            kernel = blackjax.nuts(logdensity, max_num_doublings=max_tree_depth, **params)

            def step(state, key):
                state, info = kernel.step(key, state)
                return state, (state.position, state.logdensity, info)

            return jax.lax.scan(step, state, jax.random.split(key, chunk))

        return jax.lax.map(lambda args: one_chain(*args), (keys, states, parameters))

    outputs = []
    n_chunks = -(-draws // chunk)
    for key_chunk in tqdm(
        jax.random.split(key_sample, n_chunks), desc="blackjax-nuts", disable=not progress
    ):
        states, output = run_chunk(jax.random.split(key_chunk, chains), states, parameters)
        outputs.append(jax.tree.map(np.asarray, output))
    positions, logdensities, infos = jax.tree.map(
        lambda *parts: np.concatenate(parts, axis=1)[:, :draws], *outputs
    )
    seconds = time.perf_counter() - start
    n_steps = np.asarray(infos.num_integration_steps)
    stats = {
        "diverging": np.asarray(infos.is_divergent, bool),
        "n_steps": n_steps.astype(np.int64),
        "tree_depth": np.asarray(infos.num_trajectory_expansions, np.int64),
        "acceptance_rate": np.asarray(infos.acceptance_rate),
        "lp": np.asarray(logdensities),
        "energy": np.asarray(infos.energy),
        "step_size": np.broadcast_to(
            np.asarray(parameters["step_size"])[:, None], n_steps.shape
        ).copy(),
    }
    return SamplerRun(
        sampler="blackjax-nuts",
        positions=dict(positions),
        sample_stats=stats,
        info={"max_tree_depth": max_tree_depth, "target_accept": target_accept},
        gradient_evaluations=int(np.sum(np.asarray(warmup_steps))) + int(n_steps.sum()),
        density_evaluations=0,
        seconds=seconds,
    )
