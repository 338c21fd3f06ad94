"""Forward simulation on a patient's (or the MNI152) anatomy, written back to the input space."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bayestumor.errors import InputError, SolverError
from bayestumor.forward import GrowthParams, PDEForward
from bayestumor.imaging import Anatomy, save_nifti, to_original_space
from bayestumor.workflows._plots import plot_simulation_slices

# A seed in the right frontal white matter of MNI152 (world mm), used when none is given.
MNI152_DEFAULT_SEED_MM = (26.0, 18.0, 24.0)

# Steps per progress update: fewer chunks for short solves, at most `_MAX_CHUNKS`.
_STEPS_PER_CHUNK = 50
_MAX_CHUNKS = 20


@dataclass(frozen=True)
class Simulation:
    """Result of `simulate`.

    Attributes:
        density: tumour-cell density on the input anatomy's grid (float32, [0, 1]).
        roi_density: the same on the solver grid (resampled, cropped to the brain).
        roi_grid: that solver grid.
        steps: time steps taken.
        seconds: wall time of the solve (compilation included).
    """

    density: np.ndarray
    roi_density: np.ndarray
    roi_grid: object
    steps: int
    seconds: float


def simulate(
    anatomy: Anatomy,
    params: GrowthParams,
    *,
    spacing_mm: float | None = None,
    progress: bool = True,
    **forward_options,
) -> Simulation:
    """Grow a tumour from `params.seed_mm` for `params.T` days on `anatomy`.

    The anatomy is resampled to `spacing_mm` (if given), cropped to the brain, solved with
    `PDEForward`, and the density mapped back onto the input grid (linear interpolation; exact
    when no resampling was needed).

    Args:
        anatomy: tissue maps on their own grid.
        params: growth parameters (scalars): D_w [mm²/day], ρ [1/day], T [days], seed [world mm].
        spacing_mm: solver voxel size in mm (default: the anatomy's own).
        progress: show a progress bar over the time steps.
        forward_options: passed to `PDEForward.from_anatomy` (e.g. `gm_ratio`, `stepping`, and
            the initial condition's `seed_shape`, `seed_sigma_mm`, `seed_amplitude`).
    """
    work = anatomy.resampled(spacing_mm) if spacing_mm else anatomy
    roi = work.cropped_to_brain()
    seed = np.asarray(params.seed_mm, dtype=float)
    seed_voxel = np.round(roi.grid.world_to_voxel(seed)).astype(int)
    if np.any(seed_voxel < 0) or np.any(seed_voxel >= np.array(roi.grid.shape)):
        raise InputError(f"the seed {seed.tolist()} mm lies outside the brain's bounding box")
    if not roi.brain_mask[tuple(seed_voxel)]:
        raise InputError(f"the seed {seed.tolist()} mm is not in white or grey matter")

    forward = PDEForward.from_anatomy(roi, **forward_options)
    total_steps = forward.stable_steps(params)
    chunks = min(_MAX_CHUNKS, max(1, math.ceil(total_steps / _STEPS_PER_CHUNK)))
    chunk_days = float(params.T) / chunks
    D_w, rho = float(params.D_w), float(params.rho)
    forward = forward.sized_for(D_w * chunk_days, rho * chunk_days)
    evolve = eqx.filter_jit(forward.nan_on_failure().evolve)

    start = time.perf_counter()
    density = forward.initial_density(jnp.asarray(seed))
    with tqdm(total=chunks, desc="simulate", unit="chunk", disable=not progress) as bar:
        for _ in range(chunks):
            density = evolve(density, D_w, rho, chunk_days)
            bar.update()
    roi_density = np.asarray(density, dtype=np.float32)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(roi_density)):
        raise SolverError("the solve diverged (non-finite density); please report this")
    back = to_original_space(roi_density, roi.grid, anatomy.grid, order=1)
    return Simulation(
        density=np.clip(back, 0.0, 1.0).astype(np.float32),
        roi_density=roi_density,
        roi_grid=roi.grid,
        steps=total_steps,
        seconds=seconds,
    )


def write_simulation(simulation: Simulation, anatomy: Anatomy, params, out: str | Path) -> Path:
    """Save the density NIfTI at `out` and a PNG of slices through the seed beside it."""
    out = Path(out)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise InputError("the output must be a .nii or .nii.gz file", out)
    save_nifti(out, simulation.density, anatomy.grid)
    png = out.with_name(out.name.removesuffix(".gz").removesuffix(".nii") + ".png")
    plot_simulation_slices(anatomy, simulation.density, np.asarray(params.seed_mm), png)
    return png
