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
    u = jnp.asarray(densities, jnp.float32)
    if u.ndim != 4 or u.shape[1:] != grid.shape:
        raise ValueError(f"densities must be (draws, *{grid.shape}), got {u.shape}")
    exceedance = np.asarray(jnp.mean(u > threshold_u, axis=0), np.float32)
    levels = jnp.asarray(quantiles, jnp.float32)
    quantile_maps = np.asarray(jnp.quantile(u, levels, axis=0), np.float32)
    imaging = {name: jnp.asarray(v, jnp.float32) for name, v in (imaging or {}).items()}
    predicted = {}
    slope = None
    if any(m.reads_slope for m in modalities):
        slope = jax.vmap(lambda volume: front_slope(volume, grid.spacing_mm))(u)
    for modality in modalities:
        if all(name in imaging for name in modality.parameter_names):
            draws = {name: imaging[name] for name in modality.parameter_names}
            expected = jax.vmap(modality.expected)(u, draws, slope)
            predicted[modality.expected_map_name] = np.asarray(jnp.mean(expected, 0), np.float32)
    return PosteriorMaps(
        grid=grid,
        mean=np.asarray(jnp.mean(u, axis=0), np.float32),
        sd=np.asarray(jnp.std(u, axis=0), np.float32),
        quantiles={float(q): quantile_maps[i] for i, q in enumerate(quantiles)},
        threshold_u=float(threshold_u),
        exceedance=exceedance,
        ctv_probability=float(ctv_probability),
        ctv=exceedance >= ctv_probability,
        predicted=predicted,
        n_draws=int(u.shape[0]),
    )


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
