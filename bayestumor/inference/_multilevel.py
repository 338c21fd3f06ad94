"""Coarse-to-fine inference: a posterior sampled on a coarse grid, carried to the fine grid.

A gradient of the fine-grid posterior costs 8× (2 mm against 4 mm) to 64× (1 mm) a coarse one,
and NUTS needs thousands of them. The coarse posterior is close to the fine one — the same
anatomy, data and parameters, another discretisation — but not equal: the coarse front moves a
little differently, so its mode is shifted and its spread rescaled by a fraction of a posterior
sd or more. This module carries the coarse draws across by an affine transport and corrects
what the transport misses by importance sampling, which needs one fine *forward* solve per draw
(batched, no gradient) instead of a fine NUTS run:

1. Laplace approximations N(m_c, Σ_c) and N(m_f, Σ_f) at the coarse and the fine MAP (the fine
   search starts from the coarse mode, preconditioned by Σ_c, so it takes a few steps).
2. Each coarse draw x_c moves to x_f = m_f + A (x_c − m_c), A = L_f L_c⁻¹ with L the Cholesky
   factors of Σ: the coarse Laplace approximation lands exactly on the fine one, and whatever
   is not Gaussian in the coarse posterior (skew, curved ridges) comes along. The transported
   draws are a sample of a proposal q whose density is p_c(x_c) / |det A|.
3. Importance weights w = p_f(x_f) / p_c(x_c) (|det A| is a constant), stabilised by PSIS
   (Vehtari et al. 2024). The Laplace approximations are local; where the posteriors are not
   Gaussian the transported draws' moments miss the fine posterior's. Up to
   `moment_matching` further affine maps then carry the draws' own mean and covariance onto
   the weighted ones (implicitly adaptive importance sampling, Paananen, Piironen, Bürkner &
   Vehtari 2021, Stat. Comput. 31:16); each costs one more fine solve per draw and is kept
   only if it raises the weight ESS without a worse tail (k̂). The composed map is still
   affine, so the weights stay p_f(x_f) / p_c(x_c). With k̂ < 0.7 the weighted draws are the
   fine posterior, resampled
   (systematic resampling) to equal weights for the maps downstream — sampling-importance
   resampling; the sample's ESS is the coarse chains' bulk ESS times the relative weight ESS
   (Kish), a conservative approximation for weighted MCMC draws.
4. With k̂ ≥ 0.7 the transport was not good enough: short fine-grid chains of the same sampler
   start from the weighted draws, with their weighted covariance as the mass matrix (or as
   SMC's reference), and only `refine_warmup` warm-up iterations. Which path was taken is
   recorded (``info["multilevel"]``).

This is multifidelity importance sampling (Peherstorfer, Cui, Marzouk & Willcox 2016, SIAM J.
Sci. Comput. 38(5)) with a Laplace–Laplace transport map instead of a biasing density fitted
by the coarse model; the fallback is the "coarse posterior as a warm start" of multilevel MCMC
(Dodwell, Ketelsen, Scheichl & Teckentrup 2015) without its telescoping sum.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.inference._map import find_map, laplace_covariance
from bayestumor.inference._registry import SamplerOptions, sample
from bayestumor.inference._reweight import PARETO_K_GOOD, psis
from bayestumor.inference._run import SamplerRun
from bayestumor.model import CalibrationProblem, Position, batched, flatten_draws


@dataclasses.dataclass(frozen=True)
class Transport:
    """The affine map x_f = fine_center + matrix (x_c − coarse_center) on flat unconstrained
    positions (sorted-site order).

    Attributes:
        coarse_center, fine_center: the coarse and the fine MAP, (d,).
        matrix: A, (d, d); the identity when a Laplace covariance was not definite.
        kind: ``"affine"`` (Laplace to Laplace) or ``"shift"`` (A = I).
        fine_covariance: the fine Laplace covariance, (d, d).
    """

    coarse_center: np.ndarray
    fine_center: np.ndarray
    matrix: np.ndarray
    kind: str
    fine_covariance: np.ndarray

    @classmethod
    def between(
        cls,
        coarse_center: np.ndarray,
        coarse_covariance: np.ndarray | None,
        fine_center: np.ndarray,
        fine_covariance: np.ndarray | None,
    ) -> Transport:
        """The map carrying N(coarse_center, coarse_covariance) onto N(fine_center,
        fine_covariance): A = L_f L_c⁻¹ (Cholesky factors); a shift when either covariance is
        None (not definite)."""
        coarse_center = np.asarray(coarse_center, np.float64)
        d = coarse_center.size
        if coarse_covariance is None or fine_covariance is None:
            fine = np.eye(d) if fine_covariance is None else fine_covariance
            return cls(coarse_center, np.asarray(fine_center), np.eye(d), "shift", fine)
        coarse_factor = np.linalg.cholesky(np.asarray(coarse_covariance, np.float64))
        fine_factor = np.linalg.cholesky(np.asarray(fine_covariance, np.float64))
        matrix = np.linalg.solve(coarse_factor.T, fine_factor.T).T  # L_f L_c⁻¹
        return cls(
            coarse_center, np.asarray(fine_center, np.float64), matrix, "affine", fine_covariance
        )

    def __call__(self, coarse: np.ndarray) -> np.ndarray:
        """Transport flat coarse positions, (n, d) → (n, d)."""
        return self.fine_center + (coarse - self.coarse_center) @ self.matrix.T


def laplace_transport(
    coarse_problem: CalibrationProblem,
    fine_problem: CalibrationProblem,
    coarse_start: Position,
    fine_start: Position | None = None,
) -> tuple[Transport, int]:
    """The Laplace-to-Laplace transport (module docstring, step 2) and the number of gradients
    it took. The coarse MAP search starts at `coarse_start` (e.g. the best coarse draw), the
    fine one at `fine_start` (default: the coarse MAP)."""
    coarse_center, coarse_stats = find_map(coarse_problem, coarse_start)
    coarse_covariance, coarse_definite = laplace_covariance(coarse_problem, coarse_center)
    # Preconditioned by the coarse curvature, BFGS needs a few steps where it would need
    # hundreds from an identity Hessian (`find_map`).
    fine_center, fine_stats = find_map(
        fine_problem,
        coarse_center if fine_start is None else fine_start,
        covariance=coarse_covariance if coarse_definite else None,
    )
    fine_covariance, fine_definite = laplace_covariance(fine_problem, fine_center)
    coarse_flat = np.asarray(ravel_pytree(coarse_center)[0], np.float64)
    both = coarse_definite and fine_definite
    transport = Transport.between(
        coarse_flat,
        np.asarray(coarse_covariance, np.float64) if both else None,
        np.asarray(ravel_pytree(fine_center)[0], np.float64),
        np.asarray(fine_covariance, np.float64) if fine_definite else None,
    )
    gradients = max(coarse_stats["steps"], 0) + max(fine_stats["steps"], 0) + 4 * coarse_flat.size
    return transport, gradients


def systematic_resample(key: PRNGKeyArray, weights: np.ndarray, n: int) -> np.ndarray:
    """`n` indices drawn by systematic resampling with normalised `weights` (lower variance
    than multinomial draws; Douc, Cappé & Moulines 2005)."""
    offset = float(jax.random.uniform(key))
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, (offset + np.arange(n)) / n, side="right")


MOMENT_MATCHING_ENOUGH = 0.85
"""Relative weight ESS at which moment matching stops: another step could add at most
1/0.85 − 1 ≈ 18 % to the ESS, for one more fine solve per draw (on the 2 mm phantom of
`benchmarks/calibration.py` a third weighing from 0.88 came out at 0.87)."""


def match_moments(draws: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The affine image of `draws` (n, d) whose plain mean and covariance are the
    `weights`-weighted mean and covariance of `draws` (Paananen et al. 2021's combined step);
    `draws` unchanged when either covariance is not definite."""
    mean, weighted_mean = draws.mean(axis=0), weights @ draws
    centered = draws - weighted_mean
    try:
        plain = np.linalg.cholesky(np.cov(draws.T))
        weighted = np.linalg.cholesky((weights[:, None] * centered).T @ centered)
    except np.linalg.LinAlgError:
        return draws
    matrix = np.linalg.solve(plain.T, weighted.T).T  # L_w L_plain⁻¹
    return weighted_mean + (draws - mean) @ matrix.T


def coarse_convergence(
    run: SamplerRun, flat: np.ndarray, names: list[str] | None = None
) -> dict[str, Any]:
    """R-hat, bulk ESS (worst over the unconstrained coordinates, (chain, draw, d) `flat`,
    named by `names` when given) and divergences of the coarse chains: what the importance
    path inherits."""
    names = names or [f"x{k}" for k in range(flat.shape[-1])]
    varying = [k for k in range(flat.shape[-1]) if np.ptp(flat[..., k]) > 0]
    if run.sampler == "smc" or not varying:  # SMC particles have no chains to compare
        return {
            "coarse_r_hat_max": None,
            "coarse_r_hat_worst": None,
            "coarse_ess_bulk_min": None,
            "coarse_divergences": 0,
        }
    r_hat = [float(az.rhat(flat[..., k])) for k in varying]
    ess = [float(az.ess(flat[..., k], method="bulk")) for k in varying]
    return {
        "coarse_r_hat_max": max(r_hat),
        "coarse_r_hat_worst": names[varying[int(np.argmax(r_hat))]],
        "coarse_ess_bulk_min": min(ess),
        "coarse_divergences": int(np.sum(np.asarray(run.sample_stats.get("diverging", False)))),
    }


def _flat(positions: dict[str, Any]) -> np.ndarray:
    """Flat unconstrained positions (n, d) in sorted-site order from sites of shape (n, ...)."""
    tree = {name: jnp.asarray(values) for name, values in positions.items()}
    return np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(tree), np.float64)


def refine_posterior(
    fine_problem: CalibrationProblem,
    coarse_problem: CalibrationProblem,
    coarse_run: SamplerRun,
    sampler: str,
    key: PRNGKeyArray,
    options: SamplerOptions,
    *,
    refine_warmup: int = 100,
    moment_matching: int = 2,
    thin: int = 1,
    batch_size: int = 8,
) -> SamplerRun:
    """The fine posterior from draws of the coarse one (module docstring).

    Args:
        fine_problem: the posterior wanted (the same sample sites as `coarse_problem`).
        coarse_problem: the posterior `coarse_run` sampled.
        coarse_run: its draws.
        sampler: the registered sampler for the fallback (usually the coarse run's).
        key: PRNG key.
        options: sampler settings of the fallback; ``options.start`` is where the fine MAP
            search starts (default: the coarse MAP).
        refine_warmup: warm-up iterations of the fallback's fine chains.
        moment_matching: most moment-matching steps after the Laplace transport (module
            docstring, step 3); 0 for none.
        thin: carry every `thin`-th draw of each coarse chain (one fine solve per carried draw
            and step); the coarse chains' R-hat is judged on all their draws, the ESS that the
            weights then reduce on the draws carried.
        batch_size: forward solves per batch.

    Returns:
        A `SamplerRun` on the fine grid, with ``info["multilevel"]`` saying which path was
        taken, the transport, k̂, the weight ESS and the coarse run's own counts.
    """
    started = time.perf_counter()
    if thin < 1:
        raise ValueError(f"thin must be ≥ 1, got {thin}")
    every, (chains, _) = flatten_draws(coarse_run.positions)
    every_flat = _flat(every)
    every_flat = every_flat.reshape(chains, -1, every_flat.shape[-1])
    flat_draws, (chains, draws) = flatten_draws(
        {name: np.asarray(values)[:, ::thin] for name, values in coarse_run.positions.items()}
    )
    flat_draws = {name: jnp.asarray(values) for name, values in flat_draws.items()}
    coarse_log_density = np.asarray(
        batched(coarse_problem.log_density, batch_size)(flat_draws), np.float64
    )
    coarse_flat = every_flat[:, ::thin].reshape(chains * draws, -1)
    _, unravel = ravel_pytree({name: values[0] for name, values in flat_draws.items()})
    best = int(np.nanargmax(np.where(np.isfinite(coarse_log_density), coarse_log_density, -np.inf)))
    transport, gradients = laplace_transport(
        coarse_problem, fine_problem, unravel(jnp.asarray(coarse_flat[best])), options.start
    )
    transported = time.perf_counter()
    dtype = next(iter(flat_draws.values())).dtype
    fine_log_density = batched(fine_problem.log_density, batch_size)

    def weigh(fine_flat: np.ndarray) -> tuple[Position, np.ndarray, float, float]:
        """Positions, PSIS-normalised weights, k̂ and weight ESS of transported draws."""
        positions = jax.vmap(unravel)(jnp.asarray(fine_flat, dtype))
        raw = np.asarray(fine_log_density(positions), np.float64) - coarse_log_density
        smoothed, pareto_k = psis(np.where(np.isfinite(raw), raw, -np.inf))
        weights = np.exp(smoothed)
        return positions, weights, pareto_k, float(1.0 / np.sum(weights**2))

    fine_flat = transport(coarse_flat)
    fine_positions, weights, pareto_k, weight_ess = weigh(fine_flat)
    steps = [{"pareto_k": pareto_k, "weight_ess": weight_ess, "kept": True}]
    for _ in range(moment_matching):
        if weight_ess >= MOMENT_MATCHING_ENOUGH * len(weights):
            break
        candidate = match_moments(fine_flat, weights)
        positions, candidate_weights, candidate_k, candidate_ess = weigh(candidate)
        # More ESS, and a tail that is reliable or no worse than before.
        kept = candidate_ess > weight_ess and (
            candidate_k < PARETO_K_GOOD or candidate_k < pareto_k
        )
        steps.append({"pareto_k": candidate_k, "weight_ess": candidate_ess, "kept": kept})
        if not kept:
            break
        fine_flat, fine_positions, weights = candidate, positions, candidate_weights
        pareto_k, weight_ess = candidate_k, candidate_ess
    matched = sum(step["kept"] for step in steps[1:])
    key_resample, key_fallback = jax.random.split(key)
    indices = systematic_resample(key_resample, weights, chains * draws)
    # `ravel_pytree` orders a dict's leaves by sorted key.
    names = [name for name in sorted(flat_draws) for _ in range(flat_draws[name][0].size)]
    convergence = coarse_convergence(coarse_run, every_flat, names)
    carried = (
        convergence if thin == 1 else coarse_convergence(coarse_run, every_flat[:, ::thin], names)
    )
    info: dict[str, Any] = {
        "coarse_sampler": coarse_run.sampler,
        **convergence,
        # The ESS of the draws carried (thinned), which the weights then reduce.
        "coarse_ess_bulk_min": carried["coarse_ess_bulk_min"],
        "coarse_ess_bulk_min_all_draws": convergence["coarse_ess_bulk_min"],
        "thin": thin,
        "coarse_seconds": coarse_run.seconds,
        "coarse_gradient_evaluations": coarse_run.gradient_evaluations,
        "transport": transport.kind,
        # Laplace transport first, then each moment-matching step tried (k̂, weight ESS, kept).
        "moment_matching": steps,
        "moment_matching_kept": matched,
        "pareto_k": pareto_k,
        "weight_ess": weight_ess,
        "weight_ess_fraction": weight_ess / len(weights),
        "proposals": len(weights),
        "distinct_resampled": int(np.unique(indices).size),
        # Wall time of the steps after the coarse run: MAPs and Laplace approximations, then
        # one coarse log density per draw and one fine one per draw and weighing.
        "transport_seconds": transported - started,
        "weights_seconds": time.perf_counter() - transported,
    }
    gradients_total = coarse_run.gradient_evaluations + gradients
    densities_total = coarse_run.density_evaluations + len(weights) * (1 + len(steps))
    if pareto_k < PARETO_K_GOOD:
        positions = {
            name: np.asarray(values)[indices].reshape((chains, draws, *np.shape(values)[1:]))
            for name, values in fine_positions.items()
        }
        info["path"] = "importance"
        return SamplerRun(
            sampler=coarse_run.sampler,
            positions=positions,
            sample_stats={},
            info={**coarse_run.info, "multilevel": info},
            gradient_evaluations=gradients_total,
            density_evaluations=densities_total,
            seconds=coarse_run.seconds + time.perf_counter() - started,
        )
    # The transport missed: short fine chains from the weighted draws.
    centered = fine_flat - weights @ fine_flat
    covariance = (weights[:, None] * centered).T @ centered
    if not np.all(np.linalg.eigvalsh(covariance) > 0):
        covariance = transport.fine_covariance
    center = unravel(jnp.asarray(transport.fine_center, dtype))
    if options.progress:  # the fine chains are the slow path: say why they run
        print(
            f"coarse-to-fine: PSIS k̂ = {pareto_k:.2f} ≥ {PARETO_K_GOOD}, the carried draws miss "
            f"the fine posterior: sampling it with fine chains, {options.chains} × "
            f"({refine_warmup} + {options.draws})",
            flush=True,
        )
    fallback = sample(
        fine_problem,
        sampler,
        key_fallback,
        dataclasses.replace(
            options,
            warmup=refine_warmup,
            reference=(center, jnp.asarray(covariance, dtype)),
        ),
    )
    info["path"] = f"fine {fallback.sampler}"
    return fallback._replace(
        info={**fallback.info, "multilevel": info},
        gradient_evaluations=gradients_total + fallback.gradient_evaluations,
        density_evaluations=densities_total + fallback.density_evaluations,
        seconds=coarse_run.seconds + time.perf_counter() - started,
    )


__all__ = [
    "Transport",
    "coarse_convergence",
    "laplace_transport",
    "match_moments",
    "refine_posterior",
    "systematic_resample",
]
