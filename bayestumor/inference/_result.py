"""Turn a sampler's raw output into an ArviZ DataTree and a diagnostics summary."""

from __future__ import annotations

import math
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
    UNITS,
    CalibrationProblem,
    flatten_draws,
)

DENSITY_DTYPE = np.float16
"""Storage type of the density draws: 11 significant bits (relative rounding ≤ 2⁻¹¹ ≈ 4.9e-4,
far below the Monte Carlo error of a posterior map from a thousand draws) at half the memory of
float32 — 4 GB for 1000 draws of a 2-million-voxel 1 mm region instead of 8."""

POINTWISE_VALUES_MAX = 2**29
"""Most values (draws × brain voxels × modalities) that each per-voxel group of the DataTree
(log_likelihood, posterior_predictive) holds: 2 GB of float32. Beyond it the groups keep every
k-th draw of each chain (``datatree.attrs["pointwise_draw_step"]``): of 2 × 500 draws with
three scans, all where there are up to 1.7·10⁵ brain voxels (4 mm, small 2 mm regions), every
2nd up to 3.5·10⁵, every 6th at 10⁶ (1 mm)."""

SOLVE_CHUNK = 32
"""Draws solved between two transfers to host memory (and progress lines)."""


class InferenceResult(NamedTuple):
    """A sampled posterior.

    Attributes:
        datatree: ArviZ DataTree with groups posterior, sample_stats, log_likelihood,
            posterior_predictive, observed_data, constant_data (``voxel_index`` of the brain
            voxels in the flattened ROI volume, dimension ``voxel``). The per-voxel groups may
            hold a thinned subset of the draws (`POINTWISE_VALUES_MAX`; their ``draw``
            coordinate says which).
        diagnostics: JSON-ready summary (see `diagnose`).
        densities: posterior draws of the density on the ROI grid, `DENSITY_DTYPE`
            (chain·draw, x, y, z), for posterior maps.
        run: the sampler's raw output.
    """

    datatree: xr.DataTree
    diagnostics: dict[str, Any]
    densities: np.ndarray
    run: SamplerRun


def pointwise_draw_step(
    n_draws: int, values_per_draw: int, values_max: int = POINTWISE_VALUES_MAX
) -> int:
    """Thinning step k of the per-voxel groups: the smallest with
    ``ceil(n_draws / k) · values_per_draw ≤ values_max`` (at least one draw kept)."""
    kept = max(1, values_max // max(1, values_per_draw))
    return max(1, math.ceil(n_draws / kept))


def build_result(
    problem: CalibrationProblem,
    run: SamplerRun,
    key: PRNGKeyArray,
    batch_size: int = 8,
    progress: bool = False,
    pointwise_values_max: int = POINTWISE_VALUES_MAX,
) -> InferenceResult:
    """Evaluate the forward map at every draw and assemble the DataTree and diagnostics.

    One forward solve per distinct draw (resampled draws repeat) gives the density maps; at
    the draws the per-voxel groups keep (`pointwise_draw_step`) it also gives the per-voxel
    log-likelihood (for `az.loo` / `az.waic`) and a posterior-predictive replicate of each
    scan. Solves run `SOLVE_CHUNK` draws at a time (`batch_size` at once within a chunk), so
    memory stays within the stored results whatever the grid; `progress` prints a line per
    chunk; `pointwise_values_max` caps the per-voxel groups (`POINTWISE_VALUES_MAX`).
    """
    flat_positions, (chains, draws) = flatten_draws(run.positions)
    first, repeat = _distinct(flat_positions)
    # Every site the likelihood reads (the PET gain's coefficients too); the posterior group
    # reports the named scalar parameters.
    every = {k: np.asarray(v) for k, v in problem.named_parameters(flat_positions).items()}
    names = problem.parameter_names
    data = problem.data
    values_per_draw = chains * int(data.voxel_index.shape[0]) * len(data.modalities)
    step = pointwise_draw_step(draws, values_per_draw, pointwise_values_max)
    kept = (np.arange(chains)[:, None] * draws + np.arange(0, draws, step)[None]).reshape(-1)
    kept_distinct = np.unique(repeat[kept])

    volumes, brain, slope = _solve_distinct(
        problem, {k: v[first] for k, v in every.items()}, kept_distinct, batch_size, progress
    )
    # The per-voxel groups at the kept draws (repeats of a draw get their own replicates).
    where = np.searchsorted(kept_distinct, repeat[kept])
    keys = jax.random.split(key, len(kept))
    loglik, predictive = _pointwise(
        problem,
        {k: v[kept] for k, v in every.items()},
        brain[where],
        None if slope is None else slope[where],
        keys,
    )

    def by_chain(values, per_chain) -> np.ndarray:
        values = np.asarray(values)
        return values.reshape((chains, per_chain, *values.shape[1:]))

    observed = {name: np.asarray(values) for name, values in data.observed.items()}
    dims = {name: ["voxel"] for name in data.modalities}
    per_chain = len(kept) // chains
    datatree = az.from_dict(
        {
            "posterior": {name: by_chain(every[name], draws) for name in names},
            "sample_stats": {name: np.asarray(v) for name, v in run.sample_stats.items()},
            "log_likelihood": {name: by_chain(v, per_chain) for name, v in loglik.items()},
            "posterior_predictive": {
                name: by_chain(v, per_chain) for name, v in predictive.items()
            },
            "observed_data": observed,
            "constant_data": {"voxel_index": np.asarray(data.voxel_index)},
        },
        dims={**dims, "voxel_index": ["voxel"]},
    )
    if step > 1:
        thinned = np.arange(0, draws, step)
        for group in ("log_likelihood", "posterior_predictive"):
            datatree[group] = xr.DataTree(datatree[group].to_dataset().assign_coords(draw=thinned))
    datatree.attrs["sampler"] = run.sampler
    datatree.attrs["pointwise_draw_step"] = int(step)
    for name in names:
        datatree["posterior"][name].attrs["units"] = UNITS[name]
    diagnostics = diagnose(datatree, run, names)
    return InferenceResult(
        datatree=datatree,
        diagnostics=diagnostics,
        densities=volumes[repeat],
        run=run,
    )


def density_draws(
    problem: CalibrationProblem,
    named: dict[str, np.ndarray],
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """The density on the ROI grid at each of `named`'s draws ((draws,) arrays of every site
    the forward map reads), (draws, x, y, z) `DENSITY_DTYPE`: one solve per distinct draw,
    `SOLVE_CHUNK` at a time."""
    first, repeat = _distinct(named)
    distinct = {k: np.asarray(v)[first] for k, v in named.items()}
    volumes = _solve_distinct(problem, distinct, np.empty(0, int), batch_size, progress)[0]
    return volumes[repeat]


def _distinct(tree: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first of each distinct draw of `tree` ((draws, ...) arrays) and, per
    draw, which distinct draw it is (resampled draws repeat: each is solved once)."""
    rows = np.concatenate([np.reshape(v, (len(v), -1)) for v in tree.values()], axis=1)
    _, first, repeat = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first, repeat.reshape(-1)


def _solve_distinct(
    problem: CalibrationProblem,
    distinct: dict[str, np.ndarray],
    kept: np.ndarray,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Density volumes (`DENSITY_DTYPE`) at every distinct draw, and the float32 brain values
    (density, slope or None) at the distinct draws `kept` (sorted indices)."""

    def one(named):
        volume = problem.density_volume(named)
        brain, slope = problem.brain_values(volume)
        return volume.astype(DENSITY_DTYPE), brain, slope

    solve = jax.jit(lambda tree: jax.lax.map(one, tree, batch_size=batch_size))
    n = len(next(iter(distinct.values())))
    volumes = np.empty((n, *problem.sampling_forward.grid.shape), DENSITY_DTYPE)
    brain = np.empty((len(kept), int(problem.data.voxel_index.shape[0])), np.float32)
    slope = np.empty_like(brain) if problem.reads_slope else None
    # Equal chunks of at most SOLVE_CHUNK draws, the last padded: one compilation for all of
    # them, and fewer padded solves than chunks.
    size = math.ceil(n / math.ceil(n / SOLVE_CHUNK))
    for start in range(0, n, size):
        stop = min(start + size, n)
        index = np.minimum(np.arange(start, start + size), n - 1)
        chunk_volumes, chunk_brain, chunk_slope = solve({k: v[index] for k, v in distinct.items()})
        volumes[start:stop] = np.asarray(chunk_volumes)[: stop - start]
        mine = np.flatnonzero((kept >= start) & (kept < stop))
        brain[mine] = np.asarray(chunk_brain)[kept[mine] - start]
        if slope is not None:
            slope[mine] = np.asarray(chunk_slope)[kept[mine] - start]
        if progress:
            print(f"posterior maps: {stop}/{n} distinct draws solved", flush=True)
    return volumes, brain, slope


def _pointwise(
    problem: CalibrationProblem,
    named: dict[str, np.ndarray],
    brain: np.ndarray,
    slope: np.ndarray | None,
    keys: jax.Array,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-voxel log-likelihood and one posterior-predictive replicate per draw."""

    def evaluate(key, named, brain, slope):
        return (
            problem.pointwise_log_likelihood(named, brain, slope),
            problem.posterior_predictive(key, named, brain, slope),
        )

    mapped = jax.jit(
        lambda tree: jax.lax.map(lambda args: evaluate(*args), tree, batch_size=SOLVE_CHUNK)
    )
    loglik, predictive = mapped(
        (keys, {k: jnp.asarray(v) for k, v in named.items()}, jnp.asarray(brain), slope)
    )
    return (
        {k: np.asarray(v) for k, v in loglik.items()},
        {k: np.asarray(v) for k, v in predictive.items()},
    )
