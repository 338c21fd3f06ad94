"""Samplers behind one interface: NumPyro NUTS, BlackJAX NUTS, BlackJAX adaptive tempered SMC.

Every sampler starts from the same place (the Optimistix MAP estimate, jittered per chain) and
returns the same `InferenceResult`: an ArviZ DataTree (posterior, sample_stats,
log_likelihood, posterior_predictive, observed_data, constant_data) plus a diagnostics dict.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from bayestumor._custom_types import PRNGKeyArray
from bayestumor._devices import use_cpu_cores_for_chains
from bayestumor.inference._blackjax_nuts import sample_blackjax_nuts
from bayestumor.inference._map import find_map, laplace_covariance
from bayestumor.inference._numpyro_nuts import sample_numpyro_nuts
from bayestumor.inference._problem import CalibrationProblem, Position
from bayestumor.inference._result import (
    InferenceResult,
    build_result,
    diagnose,
    format_diagnostics,
    parameter_names,
)
from bayestumor.inference._run import SamplerRun
from bayestumor.inference._smc import sample_smc

Sampler = Literal["nuts", "blackjax-nuts", "smc"]
SAMPLERS: tuple[str, ...] = ("nuts", "blackjax-nuts", "smc")


def chain_starts(
    center: Position,
    chains: int,
    key: PRNGKeyArray,
    covariance: jax.Array | None = None,
    jitter: float = 0.1,
) -> Position:
    """`chains` start points around `center` in unconstrained space.

    With `covariance` (the Laplace approximation, flat (d, d) in sorted-site order) the starts
    are draws of N(center, covariance), i.e. already in the typical set of a well-identified
    posterior; otherwise `center` plus N(0, jitter²) noise per coordinate.
    """
    flat, unravel = ravel_pytree(center)
    noise = jax.random.normal(key, (chains, flat.size), flat.dtype)
    if covariance is None:
        steps = jitter * noise
    else:
        cholesky = jnp.linalg.cholesky(jnp.asarray(covariance, flat.dtype))
        steps = noise @ cholesky.T
    return jax.vmap(lambda step: unravel(flat + step))(steps)


def run_inference(
    problem: CalibrationProblem,
    sampler: Sampler,
    key: PRNGKeyArray,
    *,
    chains: int = 2,
    warmup: int = 300,
    draws: int = 300,
    map_start: bool = True,
    max_tree_depth: int = 6,
    smc_particles: int = 256,
    smc_kernel: Literal["rmh", "hmc"] = "rmh",
    smc_mcmc_steps: int = 10,
    progress: bool = True,
) -> InferenceResult:
    """Sample the posterior of `problem` with `sampler` and assemble the result.

    Args:
        problem: the posterior (forward map, data, priors).
        sampler: ``"nuts"`` (NumPyro), ``"blackjax-nuts"`` or ``"smc"`` (BlackJAX adaptive
            tempered SMC; `chains`, `warmup` and `draws` are unused, it returns
            `smc_particles` draws).
        key: PRNG key.
        chains, warmup, draws: MCMC chains, warm-up iterations and draws per chain.
        map_start: start NUTS chains from draws of the Laplace approximation at the MAP
            (Optimistix BFGS; Hessian by finite differences of gradients) rather than near the
            prior median, with its covariance as the initial dense inverse mass matrix.
        max_tree_depth: NUTS tree depth bound (≤ 2^depth − 1 gradients per draw).
        smc_particles, smc_kernel, smc_mcmc_steps: SMC settings (see `sample_smc`).
        progress: progress bars.
    """
    key_map, key_sample, key_predict = jax.random.split(key, 3)
    if sampler in ("nuts", "blackjax-nuts"):
        center = problem.initial_position()
        inverse_mass_matrix = None
        if map_start:
            center, _ = find_map(problem, center)
            inverse_mass_matrix, _ = laplace_covariance(problem, center)
        init = chain_starts(center, chains, key_map, inverse_mass_matrix)
        sample = sample_numpyro_nuts if sampler == "nuts" else sample_blackjax_nuts
        run = sample(
            problem,
            key_sample,
            init,
            chains=chains,
            warmup=warmup,
            draws=draws,
            max_tree_depth=max_tree_depth,
            progress=progress,
            inverse_mass_matrix=inverse_mass_matrix,
        )
    elif sampler == "smc":
        run = sample_smc(
            problem,
            key_sample,
            particles=smc_particles,
            kernel=smc_kernel,
            mcmc_steps=smc_mcmc_steps,
            progress=progress,
        )
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    return build_result(problem, run, key_predict)


__all__ = [
    "SAMPLERS",
    "CalibrationProblem",
    "InferenceResult",
    "Sampler",
    "SamplerRun",
    "build_result",
    "chain_starts",
    "diagnose",
    "find_map",
    "format_diagnostics",
    "laplace_covariance",
    "parameter_names",
    "run_inference",
    "sample_blackjax_nuts",
    "sample_numpyro_nuts",
    "sample_smc",
    "use_cpu_cores_for_chains",
]
