"""Importance reweighting of posterior draws from one problem towards another with the same prior.

The typical use is the hybrid check of a surrogate: the surrogate posterior
p_S(θ | y) ∝ p(θ) L_S(θ) is a proposal for the PDE posterior p(θ | y) ∝ p(θ) L_PDE(θ); both
share the prior, so each surrogate draw gets

    log w(θ) = log L_PDE(θ) − log L_S(θ)

(one PDE solve per draw, batched). The raw weights are stabilised by Pareto-smoothed importance
sampling (PSIS; Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25:72), whose fitted tail shape
k̂ says whether the correction can be trusted: k̂ < 0.7 reliable, 0.7 ≤ k̂ < 1 the surrogate
posterior is noticeably off (more draws or PDE sampling needed), k̂ ≥ 1 the weights are
unusable — run the PDE sampler, e.g. started from the surrogate posterior. The relative
weight ESS 1/(N Σ w²) is reported as well (an upper bound for autocorrelated MCMC draws).
"""

from __future__ import annotations

from typing import NamedTuple

import arviz_stats  # noqa: F401  (registers the ``azstats`` xarray accessor)
import jax
import numpy as np
import xarray as xr
from scipy.special import logsumexp

from bayestumor._custom_types import ArrayLike
from bayestumor.model import CalibrationProblem, batched, flatten_draws

PARETO_K_GOOD = 0.7


FLAT_LOG_RATIOS = 0.1
"""`psis`: log ratios spanning at most this (weights within about 10 % of each other, relative
weight ESS > 0.99) are used as they are, with k̂ = −inf. A Pareto tail fitted to them is
degenerate: log-likelihoods are float32 sums over ~10⁵ voxels, so between two nearly equal
forward maps the ratios come in steps of ~0.01 and take a handful of distinct values (3 for the
2 mm `ReducedForward` of `benchmarks/reduced.py`, where ArviZ's fit returned k̂ = NaN)."""


def psis(log_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed, normalised log weights and the tail shape k̂ (Vehtari et al. 2024),
    computed by ArviZ (arviz-stats' ``psislw``).

    ``psislw`` follows the LOO convention — it is given log-likelihoods and smooths their
    negation, the log ratios of leave-one-out weights — so it receives −log w here.

    Args:
        log_weights: raw log importance ratios, shape (n,); −inf marks a draw of weight 0.

    Returns:
        (smoothed log weights summing to 1 in exp, k̂); finite ratios within a factor
        e^`FLAT_LOG_RATIOS` of each other have no tail to fit: the raw weights, k̂ = −inf; with
        too few draws to fit a tail (fewer than 25) the weights are the raw ones and k̂ = inf,
        i.e. not reliable.
    """
    raw = np.asarray(log_weights, np.float64)
    finite = np.isfinite(raw)
    smoothed = np.full(raw.shape, -np.inf)
    if np.ptp(raw[finite]) <= FLAT_LOG_RATIOS:
        smoothed[finite] = raw[finite]
        return smoothed - logsumexp(smoothed), -np.inf
    try:
        values, k = xr.DataArray(-raw[finite], dims=["draw"]).azstats.psislw(dim="draw")
    except ValueError:  # too few draws for a tail of 5 (n < 25): k̂ cannot be estimated
        smoothed[finite] = raw[finite]
        return smoothed - logsumexp(smoothed), np.inf
    smoothed[finite] = np.asarray(values, np.float64)
    return smoothed - logsumexp(smoothed), float(k)


class Refinement(NamedTuple):
    """A surrogate posterior corrected by the PDE.

    Attributes:
        log_weights: PSIS-smoothed normalised log weights of the draws, (n,).
        raw_log_weights: log L_PDE − log L_S per draw, (n,).
        pareto_k: PSIS tail shape k̂ (< 0.7: the reweighted posterior is reliable).
        ess: weight effective sample size 1 / Σ w².
        ess_fraction: ess / n.
        summary: per parameter (surrogate mean, surrogate sd, refined mean, refined sd, shift
            of the mean in surrogate posterior sds).
    """

    log_weights: np.ndarray
    raw_log_weights: np.ndarray
    pareto_k: float
    ess: float
    ess_fraction: float
    summary: dict[str, tuple[float, float, float, float, float]]

    @property
    def reliable(self) -> bool:
        return self.pareto_k < PARETO_K_GOOD

    def resample(self, key: jax.Array, n: int) -> np.ndarray:
        """Indices of `n` draws resampled with the weights (for maps of the refined posterior)."""
        return np.asarray(
            jax.random.choice(key, len(self.log_weights), (n,), p=np.exp(self.log_weights))
        )


def log_likelihoods(
    problem: CalibrationProblem, positions: dict[str, ArrayLike], batch_size: int = 8
) -> np.ndarray:
    """Total log-likelihood of `problem` at flat unconstrained draws (one forward each), (n,)."""
    return np.asarray(batched(problem.log_likelihood, batch_size)(positions), np.float64)


def reweight(
    surrogate_problem: CalibrationProblem,
    pde_problem: CalibrationProblem,
    positions: dict[str, ArrayLike],
    names: list[str] | None = None,
    *,
    batch_size: int = 8,
    surrogate_log_likelihood: np.ndarray | None = None,
) -> Refinement:
    """Importance-reweight draws of `surrogate_problem` towards `pde_problem` (module docstring).

    Args:
        surrogate_problem: the problem the draws were sampled from (e.g. a surrogate forward).
        pde_problem: the target: same data, prior and sample sites, another likelihood (e.g.
            `PDEForward` on the same ROI grid).
        positions: unconstrained draws per sample site, (chain, draw) or flat (n,) each — e.g.
            ``InferenceResult.run.positions``.
        names: parameters to summarise (default: the problem's reported parameters).
        batch_size: forward solves per batch.
        surrogate_log_likelihood: precomputed log L_S per draw, to save the surrogate pass.
    """
    first = np.asarray(next(iter(positions.values())))
    if first.ndim == 2:
        positions, _ = flatten_draws(positions)
    positions = {k: np.asarray(v) for k, v in positions.items()}
    pde = log_likelihoods(pde_problem, positions, batch_size)
    if surrogate_log_likelihood is None:
        surrogate_log_likelihood = log_likelihoods(surrogate_problem, positions, batch_size)
    raw = pde - np.asarray(surrogate_log_likelihood, np.float64)
    raw = np.where(np.isfinite(raw), raw, -np.inf)
    smoothed, k = psis(raw)
    weights = np.exp(smoothed)
    ess = float(1.0 / np.sum(weights**2))
    named = surrogate_problem.named_parameters(positions)
    summary = {}
    for name in names or surrogate_problem.parameter_names:
        values = np.asarray(named[name], np.float64)
        mean, sd = float(values.mean()), float(values.std())
        refined_mean = float(np.sum(weights * values))
        refined_sd = float(np.sqrt(np.sum(weights * (values - refined_mean) ** 2)))
        shift = abs(refined_mean - mean) / sd if sd > 0 else 0.0
        summary[name] = (mean, sd, refined_mean, refined_sd, shift)
    return Refinement(
        log_weights=smoothed,
        raw_log_weights=raw,
        pareto_k=k,
        ess=ess,
        ess_fraction=ess / len(raw),
        summary=summary,
    )


def format_refinement(refinement: Refinement) -> str:
    """A markdown table of the correction, with k̂ and the weight ESS."""
    verdict = (
        "reliable"
        if refinement.reliable
        else "NOT reliable: sample with --forward pde (surrogate-initialised)"
    )
    lines = [
        f"PSIS k̂ = {refinement.pareto_k:.2f} ({verdict}); weight ESS = {refinement.ess:.0f} "
        f"({100 * refinement.ess_fraction:.0f} % of {len(refinement.log_weights)} draws)",
        "",
        "| parameter | surrogate mean | surrogate sd | PDE-reweighted mean | PDE-reweighted sd | shift (sd) |",
        "|---|---|---|---|---|---|",
    ]
    for name, (mean, sd, r_mean, r_sd, shift) in refinement.summary.items():
        lines.append(
            f"| {name} | {mean:.4g} | {sd:.3g} | {r_mean:.4g} | {r_sd:.3g} | {shift:.2f} |"
        )
    return "\n".join(lines)


__all__ = [
    "FLAT_LOG_RATIOS",
    "PARETO_K_GOOD",
    "Refinement",
    "format_refinement",
    "psis",
    "reweight",
]
