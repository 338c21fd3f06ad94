"""Samplers behind one registry: a name maps to a function ``(problem, key, options) → SamplerRun``.

Adding a sampler is one decorated function here (or anywhere, with `register_sampler`); the
command line, the configuration and the cohort runner find it by name in `SAMPLERS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.errors import InputError
from bayestumor.inference._blackjax_nuts import sample_blackjax_nuts
from bayestumor.inference._map import find_map, laplace_covariance
from bayestumor.inference._numpyro_nuts import sample_numpyro_nuts
from bayestumor.inference._result import InferenceResult, build_result
from bayestumor.inference._run import SamplerRun
from bayestumor.inference._smc import sample_smc
from bayestumor.model import CalibrationProblem, Position


@dataclass(frozen=True)
class SamplerOptions:
    """Settings shared by the registered samplers (each reads the ones it needs).

    Attributes:
        chains, warmup, draws: MCMC chains, warm-up iterations and draws per chain.
        map_start: use the Laplace approximation at the MAP (Optimistix BFGS; Hessian by
            finite differences of gradients): NUTS chains start from its draws, with its
            covariance as the initial dense inverse mass matrix, rather than near the prior
            median; SMC tempers from it (widened) rather than from the prior.
        max_tree_depth: NUTS tree depth bound (≤ 2^depth − 1 gradients per draw).
        smc_particles, smc_kernel, smc_mcmc_steps: SMC settings (see `sample_smc`).
        progress: progress bars.
        start: where the MAP search starts (default: the prior median) — a mode already found,
            e.g. that of the untempered likelihood when η < 1, makes it a few steps.
        reference: a Gaussian approximation of the posterior already known, (center, flat
            covariance in sorted-site order), e.g. carried from a coarser grid
            (`refine_posterior`): used instead of the MAP search and the Laplace step.
    """

    chains: int = 2
    warmup: int = 300
    draws: int = 300
    map_start: bool = True
    max_tree_depth: int = 6
    smc_particles: int = 256
    smc_kernel: Literal["rmh", "hmc"] = "rmh"
    smc_mcmc_steps: int = 10
    progress: bool = True
    start: Position | None = None
    reference: tuple[Position, jax.Array] | None = None


SamplerFunction = Callable[[CalibrationProblem, PRNGKeyArray, SamplerOptions], SamplerRun]
_REGISTRY: dict[str, SamplerFunction] = {}


def register_sampler(name: str) -> Callable[[SamplerFunction], SamplerFunction]:
    """Decorator: make a sampler function available under `name` to `run_inference`."""

    def register(function: SamplerFunction) -> SamplerFunction:
        _REGISTRY[name] = function
        return function

    return register


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


def _laplace(
    problem: CalibrationProblem, options: SamplerOptions
) -> tuple[Position, jax.Array | None]:
    """The MAP and the Laplace covariance there (`options.map_start`), or the start point and
    None; `options.reference` when given."""
    if options.reference is not None:
        return options.reference
    center = problem.initial_position() if options.start is None else options.start
    if not options.map_start:
        return center, None
    center, _ = find_map(problem, center)
    return center, laplace_covariance(problem, center)[0]


def _nuts(sample: Callable[..., SamplerRun]) -> SamplerFunction:
    """A registered NUTS sampler: MAP + Laplace start (optional), then `sample`."""

    def run(problem: CalibrationProblem, key: PRNGKeyArray, options: SamplerOptions):
        key_start, key_sample = jax.random.split(key)
        center, inverse_mass_matrix = _laplace(problem, options)
        return sample(
            problem,
            key_sample,
            chain_starts(center, options.chains, key_start, inverse_mass_matrix),
            chains=options.chains,
            warmup=options.warmup,
            draws=options.draws,
            max_tree_depth=options.max_tree_depth,
            progress=options.progress,
            inverse_mass_matrix=inverse_mass_matrix,
        )

    return run


register_sampler("nuts")(_nuts(sample_numpyro_nuts))
register_sampler("blackjax-nuts")(_nuts(sample_blackjax_nuts))


@register_sampler("smc")
def _smc(problem: CalibrationProblem, key: PRNGKeyArray, options: SamplerOptions) -> SamplerRun:
    center, covariance = _laplace(problem, options)
    return sample_smc(
        problem,
        key,
        particles=options.smc_particles,
        kernel=options.smc_kernel,
        mcmc_steps=options.smc_mcmc_steps,
        progress=options.progress,
        reference=None if covariance is None else (center, covariance),
    )


SAMPLERS: tuple[str, ...] = tuple(_REGISTRY)
"""Names of the built-in samplers (`bayestumor.config.BUILTIN_SAMPLERS`, which the command line
and `CalibrationConfig` use without importing JAX)."""
Sampler = Literal["nuts", "blackjax-nuts", "smc"]


def run_inference(
    problem: CalibrationProblem,
    sampler: str,
    key: PRNGKeyArray,
    options: SamplerOptions | None = None,
    **settings,
) -> InferenceResult:
    """Sample the posterior of `problem` with the registered `sampler` and assemble the result.

    Args:
        problem: the posterior (forward map, data, priors).
        sampler: a registered name: ``"nuts"`` (NumPyro), ``"blackjax-nuts"`` or ``"smc"``
            (BlackJAX adaptive tempered SMC; it returns `smc_particles` draws and ignores
            `chains`, `warmup`, `draws`).
        key: PRNG key.
        options: sampler settings (`SamplerOptions`); `settings` override single fields.

    Raises:
        InputError: `sampler` is not registered.
    """
    options = dataclasses.replace(options or SamplerOptions(), **settings)
    key_sample, key_predict = jax.random.split(key)
    run = sample(problem, sampler, key_sample, options)
    return build_result(problem, run, key_predict, progress=options.progress)


def sample(
    problem: CalibrationProblem, sampler: str, key: PRNGKeyArray, options: SamplerOptions
) -> SamplerRun:
    """The registered `sampler`'s raw draws of `problem` (`run_inference` without the forward
    solves per draw that `build_result` adds).

    Raises:
        InputError: `sampler` is not registered.
    """
    if sampler not in _REGISTRY:
        raise InputError(f"unknown sampler {sampler!r}; choose one of {tuple(_REGISTRY)}")
    return _REGISTRY[sampler](problem, key, options)
