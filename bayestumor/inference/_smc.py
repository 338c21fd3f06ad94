"""BlackJAX adaptive tempered SMC with batched (vmapped) forward solves over the particles.

Particles start from a reference distribution q and move through the tempered distributions
p_λ(θ) ∝ q(θ)^(1−λ) π(θ)^λ to the posterior π(θ) ∝ p(θ) L(θ); each next λ is chosen so that the
effective sample size of the incremental weights is `target_ess` × N (Jasra et al. 2011;
BlackJAX `adaptive_tempered_smc`, given log q as its "prior" and log π − log q as its
"likelihood"). The reference is

- the prior (q = p, the classic path p(θ) L(θ)^λ): thousands of voxels make log L span
  thousands of nats across the prior, and the cloud needs hundreds of stages to get through it
  (at 4 mm it had not finished after 56 min);
- or, as the samplers' registry uses it, the Laplace approximation at the MAP with its
  covariance widened by `reference_scale`² (the "warm start" of tempered SMC, e.g. Dai et al.
  2022, JASA 117:1450): q is then already close to π and a few stages bridge the rest.

Either way the final particles target π and the log evidence log p(y) = Σ log mean w is
unbiased for the same normalising constant, since q is normalised.
Each stage resamples systematically and moves every particle with `mcmc_steps` steps of an inner
kernel, retuned from the particle cloud before the stage (Chopin & Papaspiliopoulos 2020, §17):

- ``"rmh"`` (default): Gaussian random walk with proposal covariance (2.38² / d) × the particle
  covariance (Roberts & Rosenthal 2001). Needs forward solves only, no gradients — on a CPU the
  cheapest move per particle.
- ``"hmc"``: HMC with the particle variances as inverse mass matrix and a step size adapted
  between stages towards acceptance 0.65.

The likelihood of all particles is one `vmap`-ed call (or `lax.map` in chunks of `batch_size`).
"""

from __future__ import annotations

import math
import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from bayestumor._custom_types import ArrayLike, PRNGKeyArray
from bayestumor.inference._run import SamplerRun
from bayestumor.model import CalibrationProblem, Position


def _mutation_kernel(kind: str):
    """BlackJAX's inner (step, init) functions for ``"rmh"`` or ``"hmc"``.

    BlackJAX is imported here rather than at module level because importing it starts JAX's
    backend, after which the host device count can no longer be set (`bayestumor.utils._devices`).
    """
    import blackjax
    from blackjax.mcmc import random_walk

    if kind == "rmh":
        additive_step = random_walk.build_additive_step()

        def random_walk_step(rng_key, state, logdensity_fn, proposal_cholesky):
            """A Metropolis step with a Gaussian proposal N(0, C Cᵀ) on the flat position."""

            def random_step(key, position):
                flat, unravel = ravel_pytree(position)
                return unravel(proposal_cholesky @ jax.random.normal(key, flat.shape, flat.dtype))

            return additive_step(rng_key, state, logdensity_fn, random_step)

        return random_walk_step, random_walk.init
    if kind == "hmc":
        return blackjax.hmc.build_kernel(), blackjax.hmc.init
    raise ValueError(f"unknown SMC kernel {kind!r}; use 'rmh' or 'hmc'")


def _gaussian_reference(center: Position, covariance: ArrayLike, scale: float):
    """log q and a sampler of q = N(center, scale² · covariance) over unconstrained positions
    (the flat `ravel_pytree` order `laplace_covariance` uses)."""
    flat_center, unravel = ravel_pytree(center)
    cholesky = scale * jnp.linalg.cholesky(jnp.asarray(covariance, flat_center.dtype))
    law = dist.MultivariateNormal(flat_center, scale_tril=cholesky)

    def log_q(position):
        return law.log_prob(ravel_pytree(position)[0])

    def draw(key, n):
        return jax.vmap(unravel)(law.sample(key, (n,)))

    return log_q, draw


def sample_smc(
    problem: CalibrationProblem,
    key: PRNGKeyArray,
    *,
    particles: int = 256,
    target_ess: float = 0.5,
    mcmc_steps: int = 10,
    kernel: Literal["rmh", "hmc"] = "rmh",
    integration_steps: int = 5,
    max_stages: int = 500,
    batch_size: int = 0,
    progress: bool = True,
    reference: tuple[Position, ArrayLike] | None = None,
    reference_scale: float = 1.5,
) -> SamplerRun:
    """Adaptive tempered SMC; returns N equally weighted particles as one "chain".

    Args:
        problem: the posterior.
        key: PRNG key.
        particles: number of particles N.
        target_ess: fraction of N the weight ESS is held at when choosing each next λ.
        mcmc_steps: inner-kernel steps per stage.
        kernel: ``"rmh"`` (random walk, no gradients) or ``"hmc"``.
        integration_steps: leapfrog steps per HMC move (``kernel="hmc"`` only).
        max_stages: give up (with a `DiagnosticsWarning` later) after this many stages.
        batch_size: particles per `lax.map` chunk (0: one `vmap` over all particles).
        progress: show a tqdm bar of λ.
        reference: (centre, covariance) of a Gaussian reference in unconstrained space — the
            MAP and `laplace_covariance` — or None for the prior (module docstring).
        reference_scale: sd multiplier of the Gaussian reference (> 1: tails heavier than
            the Laplace approximation's, so q covers π where π is skewed).

    The result's ``info`` holds the tempering schedule, the weight ESS of each stage, the
    inner acceptance rates, the log marginal likelihood estimate log p(y) = Σ log mean w, and
    what bounds the information in the returned particles: ``final_weight_ess`` (the weight ESS
    1/Σw² at λ = 1, before the last resampling) and ``final_distinct_ancestors`` (how many
    distinct particles that resampling kept). The returned particles are equally weighted but
    not independent: resampling duplicates particles and the moves only partly separate them.

    Forward solves, counted exactly from BlackJAX's kernels (N particles, m = `mcmc_steps`,
    S adaptive stages, L = `integration_steps`): each adaptive stage evaluates the likelihood
    of every particle once to choose λ, once to initialise the inner kernel (RMH) on the
    resampled particles, once per inner step and once for the new weights; the final stage at
    λ = 1 does the same without the choice of λ. RMH: ``density_evaluations`` =
    S·N·(m + 3) + N·(m + 2), no gradients. HMC: the initialisation and each leapfrog step
    take a gradient, ``gradient_evaluations`` = (S + 1)·N·(1 + m·L), and
    ``density_evaluations`` = S·N·2 + N (the choice of λ and the weights). The log density
    of the returned particles (``lp``, N more solves) is not counted.
    """
    if not 0.0 < target_ess < 1.0:
        raise ValueError(f"target_ess must be in (0, 1), got {target_ess}")

    if reference is None:
        log_reference, log_target_over_reference = problem.log_prior, problem.log_likelihood
    else:
        log_reference, draw_reference = _gaussian_reference(*reference, reference_scale)

        def log_target_over_reference(position):
            return problem.log_density(position) - log_reference(position)

    def loglikelihood(position):
        value = log_target_over_reference(position)
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    from blackjax.smc import adaptive_tempered, resampling, tempered

    step_fn, init_fn = _mutation_kernel(kernel)
    adaptive_kernel = adaptive_tempered.build_kernel(
        log_reference,
        loglikelihood,
        step_fn,
        init_fn,
        resampling.systematic,
        target_ess,
        batch_size=batch_size,
    )
    final_kernel = tempered.build_kernel(
        log_reference,
        loglikelihood,
        step_fn,
        init_fn,
        resampling.systematic,
        batch_size=batch_size,
    )
    adaptive_step = jax.jit(lambda k, s, p: adaptive_kernel(k, s, mcmc_steps, p))
    final_step = jax.jit(lambda k, s, p: final_kernel(k, s, mcmc_steps, 1.0, p))

    start = time.perf_counter()
    key_init, key_loop = jax.random.split(key)
    start_cloud = (
        problem.sample_prior(key_init, particles)
        if reference is None
        else draw_reference(key_init, particles)
    )
    state = tempered.init(start_cloud)
    flatten = jax.jit(jax.vmap(lambda position: ravel_pytree(position)[0]))
    dimension = int(flatten(state.particles).shape[1])
    step_size = 1.0 / dimension**0.25

    def parameters(state) -> dict:
        flat = np.asarray(flatten(state.particles), np.float64)
        weights = np.asarray(state.weights, np.float64)
        mean = weights @ flat
        centred = flat - mean
        covariance = (centred * weights[:, None]).T @ centred + 1e-8 * np.eye(dimension)
        if kernel == "rmh":
            scale = 2.38**2 / dimension
            cholesky = np.linalg.cholesky(scale * covariance)
            return {"proposal_cholesky": jnp.asarray(cholesky, jnp.float32)[None]}
        return {
            "step_size": jnp.full((1,), step_size, jnp.float32),
            "inverse_mass_matrix": jnp.asarray(np.diag(covariance), jnp.float32)[None],
            "num_integration_steps": jnp.full((1,), integration_steps, jnp.int32),
        }

    schedule, ess, acceptance, log_evidence = [0.0], [], [], 0.0
    # λ itself is shown: the first stages move it by 1e-6..1e-3, which a percentage hides.
    bar = tqdm(
        total=1.0,
        desc=f"smc ({kernel})",
        disable=not progress,
        bar_format="{desc}: {bar} λ = {n:.3g}{postfix} [{elapsed}]",
    )
    keys = iter(jax.random.split(key_loop, max_stages + 1))
    stages = 0
    while float(state.tempering_param) < 1.0 and stages < max_stages:
        state, info = adaptive_step(next(keys), state, parameters(state))
        stages += 1
        lam = float(state.tempering_param)
        schedule.append(lam)
        weights = np.asarray(state.weights, np.float64)
        ess.append(float(1.0 / np.sum(weights**2)))
        rate = float(np.mean(np.asarray(info.update_info.acceptance_rate)))
        acceptance.append(rate)
        log_evidence += float(info.log_likelihood_increment)
        if kernel == "hmc":
            step_size *= math.exp(rate - 0.65)
        bar.update(lam - bar.n)
        bar.set_postfix(stage=stages, accept=f"{rate:.2f}")
    bar.close()
    # Final stage at λ = 1: resample the last weights away and move once more, so that the
    # returned particles are equally weighted draws of the posterior.
    final_weight_ess = float(1.0 / np.sum(np.asarray(state.weights, np.float64) ** 2))
    state, info = final_step(next(keys), state, parameters(state))
    final_distinct_ancestors = len(np.unique(np.asarray(info.ancestors)))
    jax.block_until_ready(state.particles)
    seconds = time.perf_counter() - start
    acceptance_final = np.asarray(info.update_info.acceptance_rate)
    positions = {name: np.asarray(value)[None] for name, value in state.particles.items()}
    lp = np.asarray(jax.jit(jax.vmap(problem.log_density))(state.particles))[None]
    # Forward solves per particle and stage: see the docstring (BlackJAX's `ess_solver`,
    # `update_and_take_last` with the kernel's `init`, `mcmc_steps` steps, the new weights).
    if kernel == "hmc":
        gradients = (stages + 1) * particles * (1 + mcmc_steps * integration_steps)
        densities = stages * particles * 2 + particles
    else:
        gradients = 0
        densities = stages * particles * (mcmc_steps + 3) + particles * (mcmc_steps + 2)
    return SamplerRun(
        sampler="smc",
        positions=positions,
        sample_stats={
            "acceptance_rate": acceptance_final[None],
            "lp": lp,
            "diverging": np.zeros_like(lp, dtype=bool),
        },
        info={
            "kernel": kernel,
            "reference": "prior" if reference is None else "laplace",
            "particles": particles,
            "target_ess": target_ess,
            "mcmc_steps": mcmc_steps,
            "stages": stages,
            "reached_posterior": bool(schedule[-1] >= 1.0),
            "tempering_schedule": schedule,
            "weight_ess": ess,
            "acceptance_rate": [*acceptance, float(acceptance_final.mean())],
            "log_marginal_likelihood": log_evidence,
            "final_weight_ess": final_weight_ess,
            "final_distinct_ancestors": final_distinct_ancestors,
        },
        gradient_evaluations=int(gradients),
        density_evaluations=int(densities),
        seconds=seconds,
    )
