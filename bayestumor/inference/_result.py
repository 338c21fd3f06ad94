"""Turn a sampler's raw output into an ArviZ DataTree and a diagnostics summary."""

from __future__ import annotations

from typing import Any, NamedTuple

import arviz as az
import jax
import numpy as np
import xarray as xr

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.inference._diagnostics import diagnose
from bayestumor.inference._run import SamplerRun
from bayestumor.model import (
    UNITS,
    CalibrationProblem,
    batched,
    flatten_draws,
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


def build_result(
    problem: CalibrationProblem, run: SamplerRun, key: PRNGKeyArray, batch_size: int = 8
) -> InferenceResult:
    """Evaluate the forward map at every draw and assemble the DataTree and diagnostics.

    One batched forward solve per distinct draw (resampled draws repeat) gives the density maps,
    the per-voxel log-likelihood (for `az.loo` / `az.waic`) and posterior-predictive
    segmentations and PET.
    """
    flat_positions, (chains, draws) = flatten_draws(run.positions)
    rows = np.concatenate([v.reshape(len(v), -1) for v in flat_positions.values()], axis=1)
    _, first, repeat = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    repeat = repeat.reshape(-1)
    distinct = {name: values[first] for name, values in flat_positions.items()}
    # Every site the likelihood reads (the PET gain's coefficients too); the posterior group
    # reports the named scalar parameters.
    every = problem.named_parameters(distinct)
    names = problem.parameter_names
    densities = batched(problem.density_volume, batch_size)(every)
    brain, slope = jax.jit(jax.vmap(problem.brain_values))(densities)
    loglik = jax.jit(jax.vmap(problem.pointwise_log_likelihood))(every, brain, slope)
    every, densities, brain, slope = (
        {k: v[repeat] for k, v in every.items()},
        densities[repeat],
        brain[repeat],
        None if slope is None else slope[repeat],
    )
    loglik = {k: v[repeat] for k, v in loglik.items()}
    keys = jax.random.split(key, brain.shape[0])
    predictive = jax.jit(jax.vmap(problem.posterior_predictive))(keys, every, brain, slope)
    named = {name: every[name] for name in names}

    def by_chain(values) -> np.ndarray:
        values = np.asarray(values)
        return values.reshape((chains, draws, *values.shape[1:]))

    data = problem.data
    observed = {name: np.asarray(values) for name, values in data.observed.items()}
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
