"""Convergence diagnostics of a sampled posterior, and their human-readable table."""

from __future__ import annotations

import math
import warnings
from typing import Any

import arviz as az
import jax
import numpy as np
import xarray as xr

from bayestumor.errors import DiagnosticsWarning
from bayestumor.inference._run import SamplerRun
from bayestumor.model import flatten_draws

RHAT_MAX = 1.01
"""R-hat above this fails (Vehtari et al. 2021, rank-normalised split R-hat)."""
ESS_PER_CHAIN_MIN = 100.0
"""Bulk and tail ESS below 100 per chain fail (Vehtari et al. 2021)."""
SMC_UNIQUE_FRACTION_MIN = 0.25
"""SMC fails when fewer than this fraction of the final particles are distinct."""
SMC_ESS_NOTE = (
    "SMC particles share ancestry: an autocorrelation ESS along the particle index does not "
    "apply. The sample's ESS is approximated by min(weight ESS at λ = 1, distinct particles kept "
    "by the final resampling); MCSE of a mean ≈ sd / √ESS (an approximation, not the SMC "
    "variance estimator of Lee & Whiteley 2018)."
)


def smc_effective_sample_size(info: dict[str, Any]) -> float:
    """Approximate ESS of the equally weighted particles returned by `sample_smc`.

    min(weight ESS 1/Σw² of the λ = 1 weights before the final resampling, number of distinct
    particles that resampling kept): resampling cannot add information and the inner moves
    only partly decorrelate duplicates, so the weighted set before resampling bounds what the
    returned particles know. An approximation (it ignores the moves' decorrelation and the
    ancestry shared across earlier stages); a proper estimator of the variance of SMC means is
    Lee & Whiteley (2018), Biometrika 105(3).
    """
    return float(min(info["final_weight_ess"], info["final_distinct_ancestors"]))


def diagnose(datatree: xr.DataTree, run: SamplerRun, names: list[str]) -> dict[str, Any]:
    """Convergence diagnostics; warns with `DiagnosticsWarning` when any check fails.

    MCMC: rank-normalised split R-hat < `RHAT_MAX`, bulk and tail ESS ≥ `ESS_PER_CHAIN_MIN` per
    chain, no divergent transition (Vehtari et al. 2021). SMC: the schedule reached λ = 1, at
    least `SMC_UNIQUE_FRACTION_MIN` of the final particles are distinct; tempering schedule,
    per-stage weight ESS and the log marginal likelihood are reported. Parameters held fixed by
    the prior are skipped.

    ``effective_sample_size`` is the smallest bulk ESS over the parameters for MCMC and
    `smc_effective_sample_size` for SMC, whose per-parameter R-hat and ESS are None
    (`SMC_ESS_NOTE`): autocorrelation along the particle index says nothing about particles
    that descend from the same ancestors.
    """
    posterior = datatree["posterior"]
    varying = [n for n in names if float(np.ptp(np.asarray(posterior[n]))) > 0]
    chains = int(posterior.sizes["chain"])
    draws = int(posterior.sizes["draw"])
    multilevel = run.info.get("multilevel")
    importance = multilevel is not None and multilevel["path"] == "importance"
    if run.sampler == "smc" or importance:
        per_parameter = {
            name: {"r_hat": None, "ess_bulk": None, "ess_tail": None} for name in varying
        }
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = az.summary(datatree, var_names=varying, kind="diagnostics", round_to="none")
        per_parameter = {
            name: {
                "r_hat": _finite_or_none(table.loc[name, "r_hat"]),
                "ess_bulk": _finite_or_none(table.loc[name, "ess_bulk"]),
                "ess_tail": _finite_or_none(table.loc[name, "ess_tail"]),
            }
            for name in varying
        }
    failures: list[str] = []
    divergences = int(np.sum(np.asarray(run.sample_stats.get("diverging", False))))
    if run.sampler == "smc":
        info = run.info
        if not info["reached_posterior"]:
            failures.append(f"SMC stopped at λ = {info['tempering_schedule'][-1]:.3g} < 1")
        particles, _ = flatten_draws(run.positions)
        flat = np.concatenate([v.reshape(len(v), -1) for v in particles.values()], axis=1)
        unique_fraction = len(np.unique(flat, axis=0)) / flat.shape[0]
        if unique_fraction < SMC_UNIQUE_FRACTION_MIN:
            failures.append(
                f"only {unique_fraction:.0%} of the SMC particles are distinct (poor mixing)"
            )
        smc = {
            "reference": info["reference"],
            "tempering_schedule": info["tempering_schedule"],
            "weight_ess": info["weight_ess"],
            "log_marginal_likelihood": info["log_marginal_likelihood"],
            "stages": info["stages"],
            "unique_fraction": unique_fraction,
            "acceptance_rate": info["acceptance_rate"],
            "final_weight_ess": info["final_weight_ess"],
            "final_distinct_ancestors": info["final_distinct_ancestors"],
            "ess": smc_effective_sample_size(info),
            "ess_note": SMC_ESS_NOTE,
        }
    else:
        smc = None
    if importance:
        failures.extend(importance_failures(multilevel, chains, smc["ess"] if smc else None))
    elif run.sampler != "smc":
        if divergences:
            failures.append(f"{divergences} divergent transitions")
        for name, values in per_parameter.items():
            r_hat = values["r_hat"]
            if chains > 1 and (r_hat is None or r_hat > RHAT_MAX):
                failures.append(f"R-hat of {name} = {r_hat} > {RHAT_MAX}")
            for kind in ("ess_bulk", "ess_tail"):
                ess = values[kind]
                if ess is None or ess < ESS_PER_CHAIN_MIN * chains:
                    failures.append(f"{kind} of {name} = {ess} < {ESS_PER_CHAIN_MIN * chains:g}")
    ess_values = [v["ess_bulk"] for v in per_parameter.values() if v["ess_bulk"] is not None]
    min_ess = min(ess_values) if ess_values else None
    effective = smc["ess"] if smc else min_ess
    if importance:
        effective = importance_effective_sample_size(multilevel, smc["ess"] if smc else None)
    diagnostics = {
        "sampler": run.sampler,
        "chains": chains,
        # NumPyro NUTS: "parallel" (one device per chain) or "sequential"; None otherwise.
        "chain_method": run.info.get("chain_method"),
        # Where it ran: JAX's backend and its first device (a GPU when JAX sees one).
        "device": f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
        "draws": draws,
        "divergences": divergences,
        "parameters": per_parameter,
        # MCMC only: SMC has no per-parameter bulk ESS (see `effective_sample_size`).
        "min_ess_bulk": min_ess,
        # MCMC: min bulk ESS; SMC: `smc_effective_sample_size` (an approximation).
        "effective_sample_size": effective,
        "seconds": run.seconds,
        "ess_bulk_per_second": None if min_ess is None else min_ess / run.seconds,
        "effective_samples_per_second": None if effective is None else effective / run.seconds,
        "gradient_evaluations": run.gradient_evaluations,
        "density_evaluations": run.density_evaluations,
        "gradient_evaluations_per_effective_sample": (
            None if not effective else run.gradient_evaluations / effective
        ),
        "smc": smc,
        "multilevel": multilevel,
        "passed": not failures,
        "failures": failures,
    }
    if failures:
        warnings.warn(
            f"{run.sampler} diagnostics failed — do not trust this posterior: "
            + "; ".join(failures),
            DiagnosticsWarning,
            stacklevel=3,
        )
    return diagnostics


def importance_effective_sample_size(
    multilevel: dict[str, Any], smc_ess: float | None = None
) -> float | None:
    """ESS of coarse draws carried to the fine grid by importance sampling
    (`bayestumor.inference.refine_posterior`): the coarse sample's ESS (the chains' smallest
    bulk ESS, or `smc_ess` for SMC particles) times the relative weight ESS — the usual
    approximation for weighted MCMC draws (the weights' loss and the chains' autocorrelation
    multiply)."""
    base = smc_ess if smc_ess is not None else multilevel["coarse_ess_bulk_min"]
    return None if base is None else float(base * multilevel["weight_ess_fraction"])


def importance_failures(
    multilevel: dict[str, Any], chains: int, smc_ess: float | None
) -> list[str]:
    """What fails a posterior carried from the coarse grid by importance sampling: the coarse
    chains' own checks (R-hat, divergences) and too small an ESS after weighting."""
    failures = []
    r_hat = multilevel["coarse_r_hat_max"]
    if r_hat is not None and r_hat > RHAT_MAX:
        worst = multilevel.get("coarse_r_hat_worst")  # absent from diagnostics written before
        failures.append(
            f"coarse chains: max R-hat {r_hat:.4f}{f' ({worst})' if worst else ''} > {RHAT_MAX}"
        )
    if multilevel["coarse_divergences"]:
        failures.append(f"coarse chains: {multilevel['coarse_divergences']} divergent transitions")
    ess = importance_effective_sample_size(multilevel, smc_ess)
    if ess is not None and ess < ESS_PER_CHAIN_MIN * chains:
        failures.append(
            f"ESS after importance weighting {ess:.0f} < {ESS_PER_CHAIN_MIN * chains:g}"
        )
    return failures


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def format_diagnostics(diagnostics: dict[str, Any]) -> str:
    """A short human-readable table of the diagnostics."""
    lines = [
        f"sampler {diagnostics['sampler']}: {diagnostics['chains']} chain(s) × "
        f"{diagnostics['draws']} draws in {diagnostics['seconds']:.1f} s, "
        f"{diagnostics['divergences']} divergences",
        f"{'parameter':<12} {'r_hat':>7} {'ess_bulk':>9} {'ess_tail':>9}",
    ]
    for name, values in diagnostics["parameters"].items():
        cells = [
            "—" if values[k] is None else f"{values[k]:.3f}" if k == "r_hat" else f"{values[k]:.0f}"
            for k in ("r_hat", "ess_bulk", "ess_tail")
        ]
        lines.append(f"{name:<12} {cells[0]:>7} {cells[1]:>9} {cells[2]:>9}")
    smc = diagnostics.get("smc")
    if smc:
        schedule = ", ".join(f"{lam:.3g}" for lam in smc["tempering_schedule"])
        reference = smc.get("reference", "prior")  # absent from diagnostics written before
        lines.append(f"SMC from the {reference}: {smc['stages']} stages, λ = [{schedule}]")
        lines.append(
            f"SMC: log marginal likelihood {smc['log_marginal_likelihood']:.2f}, "
            f"min weight ESS {min(smc['weight_ess'] or [float('nan')]):.0f}, "
            f"distinct particles {smc['unique_fraction']:.0%}"
        )
        if smc.get("ess") is not None:  # absent from diagnostics written before it existed
            lines.append(
                f"SMC: ESS ≈ {smc['ess']:.0f} = min(weight ESS at λ = 1 "
                f"{smc['final_weight_ess']:.0f}, distinct ancestors {smc['final_distinct_ancestors']})"
                " — per-parameter R-hat/ESS do not apply to SMC particles"
            )
    multilevel = diagnostics.get("multilevel")
    if multilevel:  # absent from diagnostics written before it existed
        lines.append(
            f"coarse-to-fine: {multilevel['path']} ({multilevel['transport']} transport"
            + (
                f" + {multilevel['moment_matching_kept']} moment matching"
                if multilevel.get("moment_matching_kept")  # absent from older diagnostics
                else ""
            )
            + f" of {multilevel['proposals']} coarse draws), PSIS k̂ = "
            f"{multilevel['pareto_k']:.2f}, "
            f"weight ESS {multilevel['weight_ess']:.0f}"
            + (
                ""
                if multilevel["coarse_r_hat_max"] is None
                else f"; coarse chains: max R-hat {multilevel['coarse_r_hat_max']:.4f}, "
                f"min bulk ESS {multilevel['coarse_ess_bulk_min']:.0f}"
            )
        )
    lines.append("diagnostics: " + ("passed" if diagnostics["passed"] else "FAILED"))
    lines.extend(f"  - {failure}" for failure in diagnostics["failures"])
    return "\n".join(lines)
