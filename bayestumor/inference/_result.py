"""Turn a sampler's raw output into an ArviZ DataTree and a diagnostics summary."""

from __future__ import annotations

from typing import Any, NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.inference._diagnostics import diagnose
from bayestumor.inference._run import SamplerRun
from bayestumor.model import (
    IMAGING_NAMES,
    SEED_NAMES,
    UNITS,
    CalibrationProblem,
    batched,
    flatten_draws,
    visibility_probability,
)


class InferenceResult(NamedTuple):
    """A sampled posterior.

    Attributes:
        datatree: ArviZ DataTree with groups posterior, sample_stats, log_likelihood,
            posterior_predictive, observed_data, constant_data (``voxel_index`` of the brain
            voxels in the flattened ROI volume, dimension ``voxel``).
        diagnostics: JSON-ready summary (see `diagnose`).
        densities: posterior draws of the density on the ROI grid, float32
            (chain·draw, x, y, z), for posterior maps.
        run: the sampler's raw output.
    """

    datatree: xr.DataTree
    diagnostics: dict[str, Any]
    densities: np.ndarray
    run: SamplerRun


def parameter_names(problem: CalibrationProblem) -> list[str]:
    """Named parameters reported in the posterior, in a fixed order."""
    growth = list(problem.priors.growth_names)
    if problem.priors.parametrisation == "physical":
        growth += ["mu_D", "mu_rho"]
    modalities = problem.data.modalities
    imaging = [
        name
        for name in IMAGING_NAMES
        if (name == "u_c_t1c" and "t1c" in modalities)
        or (name == "u_c_flair" and "flair" in modalities)
        or (name == "sigma_alpha" and ("t1c" in modalities or "flair" in modalities))
        or (name in ("b", "sigma") and "pet" in modalities)
    ]
    return [*growth, *SEED_NAMES, *imaging]


def build_result(
    problem: CalibrationProblem, run: SamplerRun, key: PRNGKeyArray, batch_size: int = 8
) -> InferenceResult:
    """Evaluate the forward map at every draw and assemble the DataTree and diagnostics.

    One batched forward solve per draw gives the density maps, the per-voxel log-likelihood
    (for `az.loo` / `az.waic`) and posterior-predictive segmentations and PET.
    """
    flat_positions, (chains, draws) = flatten_draws(run.positions)
    named = jax.jit(jax.vmap(problem.constrain))(flat_positions)
    names = parameter_names(problem)
    named = {name: named[name] for name in names}
    densities = batched(problem.density_volume, batch_size)(named)
    brain = densities.reshape(densities.shape[0], -1)[:, problem.data.voxel_index]
    loglik = jax.jit(jax.vmap(problem.pointwise_log_likelihood))(named, brain)
    predictive = _posterior_predictive(problem, named, brain, key)

    def by_chain(values) -> np.ndarray:
        values = np.asarray(values)
        return values.reshape((chains, draws, *values.shape[1:]))

    data = problem.data
    observed = {name: np.asarray(getattr(data, name)) for name in data.modalities}
    dims = {name: ["voxel"] for name in data.modalities}
    datatree = az.from_dict(
        {
            "posterior": {name: by_chain(named[name]) for name in names},
            "sample_stats": {name: np.asarray(v) for name, v in run.sample_stats.items()},
            "log_likelihood": {name: by_chain(v) for name, v in loglik.items()},
            "posterior_predictive": {name: by_chain(v) for name, v in predictive.items()},
            "observed_data": observed,
            "constant_data": {"voxel_index": np.asarray(data.voxel_index)},
        },
        dims={**dims, "voxel_index": ["voxel"]},
    )
    datatree.attrs["sampler"] = run.sampler
    for name in names:
        datatree["posterior"][name].attrs["units"] = UNITS[name]
    diagnostics = diagnose(datatree, run, names)
    return InferenceResult(
        datatree=datatree,
        diagnostics=diagnostics,
        densities=np.asarray(densities, np.float32),
        run=run,
    )


def _posterior_predictive(
    problem: CalibrationProblem,
    named: dict[str, jax.Array],
    brain_density: jax.Array,
    key: PRNGKeyArray,
) -> dict[str, jax.Array]:
    """Replicated observations y_rep ~ p(y | θ) at the brain voxels, one per draw."""
    data = problem.data
    key_t1c, key_flair, key_pet = jax.random.split(key, 3)
    result = {}
    for name, subkey in (("t1c", key_t1c), ("flair", key_flair)):
        if getattr(data, name) is not None:
            alpha = visibility_probability(
                brain_density,
                named[f"u_c_{name}"][:, None],
                named["sigma_alpha"][:, None],
                problem.epsilon,
            )
            result[name] = jax.random.bernoulli(subkey, alpha).astype(jnp.int8)
    if data.pet is not None:
        noise = jax.random.normal(key_pet, brain_density.shape, brain_density.dtype)
        result["pet"] = named["b"][:, None] * brain_density + named["sigma"][:, None] * noise
    return result
