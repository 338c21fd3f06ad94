"""Posterior products: density statistics, infiltration probability, probabilistic target volume.

From posterior draws of the density u on the region-of-interest grid:

- mean, sd and quantiles of u per voxel;
- P(u > u*) per voxel (infiltration probability at the density threshold u*);
- the probabilistic clinical target volume CTV = {P(u > u*) ≥ p} (Lipkova et al. 2019 propose
  target volumes from the posterior of u; p = 0.5 is the posterior-median contour, smaller p a
  more conservative margin), with its volume in ml next to the visible FLAIR volume;
- the predicted image of each modality, E[y | u] over the posterior (T1c/FLAIR: the visibility
  probability α(u; u_c, σ_α); PET: b·u), from `bayestumor.model.AbstractModality.expected`.

`write_posterior_maps` writes them as NIfTI in the patient's original space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.config import DEFAULT_CTV_PROBABILITY, DEFAULT_THRESHOLD_U
from bayestumor.imaging import Grid, save_nifti, to_original_space
from bayestumor.model import AbstractModality, front_slope

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)
VALUES_PER_CHUNK = 2**26
"""Most float32 values (256 MB) in one working copy of the density draws while summarising
them."""


@dataclass(frozen=True, eq=False)
class PosteriorMaps:
    """Posterior summaries of the density on the ROI grid (float32 (x, y, z) unless stated).

    Attributes:
        grid: the ROI grid.
        mean, sd: posterior mean and sd of u.
        quantiles: {q: q-quantile of u}.
        threshold_u: u*.
        exceedance: P(u > u*).
        ctv_probability: p.
        ctv: {P(u > u*) ≥ p}, bool.
        predicted: posterior mean of each modality's predicted image, by its
            `expected_map_name` (``t1c_probability``, ``flair_probability``, ``pet_expected``).
        n_draws: number of posterior draws used.
    """

    grid: Grid
    mean: np.ndarray
    sd: np.ndarray
    quantiles: dict[float, np.ndarray]
    threshold_u: float
    exceedance: np.ndarray
    ctv_probability: float
    ctv: np.ndarray
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    n_draws: int = 0
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def ctv_ml(self) -> float:
        """CTV volume on the ROI grid, ml."""
        return float(np.count_nonzero(self.ctv)) * self.grid.voxel_volume_ml

    @property
    def ctv_at_roi_edge(self) -> bool:
        """True when the CTV reaches a face of the ROI grid, so the ROI may cut it off (and
        the zero-flux ROI boundary may have held the simulated tumour back): widen the
        margin."""
        ctv = self.ctv
        return bool(ctv[[0, -1]].any() or ctv[:, [0, -1]].any() or ctv[:, :, [0, -1]].any())


def posterior_maps(
    densities: np.ndarray,
    grid: Grid,
    imaging: dict[str, np.ndarray] | None = None,
    modalities: tuple[AbstractModality, ...] = (),
    *,
    threshold_u: float = DEFAULT_THRESHOLD_U,
    ctv_probability: float = DEFAULT_CTV_PROBABILITY,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
) -> PosteriorMaps:
    """Summaries of posterior density draws.

    Args:
        densities: draws of u, (draws, x, y, z) on `grid`.
        grid: the ROI grid.
        imaging: posterior draws (draws,) of the imaging parameters, for the predicted images.
        modalities: the observation model; each modality whose parameters are all in
            `imaging` gets a predicted-image map.
        threshold_u: u* in (0, 1).
        ctv_probability: p in (0, 1].
        quantiles: quantile levels in [0, 1].
    """
    if not 0.0 < threshold_u < 1.0:
        raise ValueError(f"threshold_u must be in (0, 1), got {threshold_u}")
    if not 0.0 < ctv_probability <= 1.0:
        raise ValueError(f"ctv_probability must be in (0, 1], got {ctv_probability}")
    n = int(np.shape(densities)[0])
    if np.ndim(densities) != 4 or tuple(np.shape(densities)[1:]) != grid.shape or n == 0:
        raise ValueError(f"densities must be (draws, *{grid.shape}), got {np.shape(densities)}")
    # Per-voxel statistics slab by slab along x, so a working copy never exceeds
    # `VALUES_PER_CHUNK` (float16 draws of a 1 mm region would be 8 GB as float32).
    mean, sd, exceedance = (np.empty(grid.shape, np.float32) for _ in range(3))
    quantile_maps = np.empty((len(quantiles), *grid.shape), np.float32)
    slab = max(1, VALUES_PER_CHUNK // (n * grid.shape[1] * grid.shape[2]))
    for x0 in range(0, grid.shape[0], slab):
        block = np.asarray(densities[:, x0 : x0 + slab], np.float32)
        where = slice(x0, x0 + block.shape[1])
        mean[where] = block.mean(axis=0, dtype=np.float64)
        sd[where] = block.std(axis=0, dtype=np.float64)
        exceedance[where] = np.count_nonzero(block > threshold_u, axis=0) / n
        quantile_maps[:, where] = np.quantile(block, quantiles, axis=0)
    imaging = {name: np.asarray(v, np.float32) for name, v in (imaging or {}).items()}
    shown = tuple(m for m in modalities if all(name in imaging for name in m.parameter_names))
    predicted = _predicted_means(densities, grid, imaging, shown) if shown else {}
    return PosteriorMaps(
        grid=grid,
        mean=mean,
        sd=sd,
        quantiles={float(q): quantile_maps[i] for i, q in enumerate(quantiles)},
        threshold_u=float(threshold_u),
        exceedance=exceedance,
        ctv_probability=float(ctv_probability),
        ctv=exceedance >= ctv_probability,
        predicted=predicted,
        n_draws=n,
    )


def _predicted_means(
    densities: np.ndarray,
    grid: Grid,
    imaging: dict[str, np.ndarray],
    modalities: tuple[AbstractModality, ...],
) -> dict[str, np.ndarray]:
    """Posterior mean of each modality's predicted image, accumulated over chunks of draws
    (the last padded with weight 0, so one compilation serves them all)."""
    n = int(densities.shape[0])
    chunk = max(1, min(n, VALUES_PER_CHUNK // int(np.prod(grid.shape))))
    reads_slope = any(m.reads_slope for m in modalities)

    @jax.jit
    def weighted_sums(u, draws, weights):
        slope = jax.vmap(lambda v: front_slope(v, grid.spacing_mm))(u) if reads_slope else None
        sums = {}
        for modality in modalities:
            mine = {name: draws[name] for name in modality.parameter_names}
            expected = jax.vmap(modality.expected)(u, mine, slope)
            sums[modality.expected_map_name] = jnp.tensordot(weights, expected, axes=1)
        return sums

    totals = {m.expected_map_name: np.zeros(grid.shape, np.float64) for m in modalities}
    for start in range(0, n, chunk):
        index = np.arange(start, start + chunk)
        weights = (index < n).astype(np.float32)
        index = np.minimum(index, n - 1)
        u = jnp.asarray(np.asarray(densities[index], np.float32))
        sums = weighted_sums(u, {k: v[index] for k, v in imaging.items()}, weights)
        for name, value in sums.items():
            totals[name] += np.asarray(value, np.float64)
    return {name: (total / n).astype(np.float32) for name, total in totals.items()}


def write_posterior_maps(
    maps: PosteriorMaps, out_dir: str | Path, original_grid: Grid
) -> dict[str, object]:
    """Write the maps as NIfTI on `original_grid` (the patient's input space).

    Files (in `out_dir`): ``density_mean``, ``density_sd``, ``density_q<percent>``,
    ``infiltration_probability`` (P(u > u*)), ``ctv`` (uint8 mask) and the predicted images
    (``t1c_probability``, ``flair_probability``, ``pet_expected``, where available), all
    ``.nii.gz``. The CTV is re-thresholded on the
    original grid from the interpolated exceedance map, so its contour is smooth when the ROI
    was coarsened.

    Returns:
        ``{"files": {name: path}, "ctv_ml": CTV volume on the original grid (ml)}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    volumes: dict[str, np.ndarray] = {"density_mean": maps.mean, "density_sd": maps.sd}
    for q, values in maps.quantiles.items():
        volumes[f"density_q{round(100 * q):02d}"] = values
    volumes["infiltration_probability"] = maps.exceedance
    volumes.update(maps.predicted)
    files = {}
    original = {}
    for name, values in volumes.items():
        original[name] = np.clip(to_original_space(values, maps.grid, original_grid, order=1), 0, 1)
        files[name] = save_nifti(out_dir / f"{name}.nii.gz", original[name], original_grid)
    ctv = original["infiltration_probability"] >= maps.ctv_probability
    files["ctv"] = save_nifti(out_dir / "ctv.nii.gz", ctv, original_grid)
    ctv_ml = float(np.count_nonzero(ctv)) * original_grid.voxel_volume_ml
    return {"files": files, "ctv_ml": ctv_ml}


__all__ = [
    "DEFAULT_CTV_PROBABILITY",
    "DEFAULT_QUANTILES",
    "DEFAULT_THRESHOLD_U",
    "PosteriorMaps",
    "posterior_maps",
    "write_posterior_maps",
]
