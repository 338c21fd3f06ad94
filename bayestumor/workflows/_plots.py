"""PNG figures of a calibration: density slices through the lesion and sampler diagnostics."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bayestumor.imaging import Anatomy, Grid, Patient
from bayestumor.posterior import PosteriorMaps
from bayestumor.utils import atomic_path


def _voxel_index(grid: Grid, center_mm) -> tuple[int, int, int]:
    """The voxel nearest `center_mm` (world mm), clipped into the grid."""
    index = np.round(grid.world_to_voxel(np.asarray(center_mm, dtype=float))).astype(int)
    return tuple(int(v) for v in np.clip(index, 0, np.array(grid.shape) - 1))


def _slices(volume: np.ndarray, index: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial (k), coronal (j) and sagittal (i) slices through `index`, transposed for imshow."""
    i, j, k = index
    return [volume[:, :, k].T, volume[:, j, :].T, volume[i, :, :].T]


def plot_density_slices(
    maps: PosteriorMaps,
    roi: Patient,
    path: str | Path,
    center_mm: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Three orthogonal slices of the posterior maps through the lesion centre, as one PNG.

    Columns: white matter with the observed T1c (red) and FLAIR (yellow) contours, posterior
    mean density, posterior sd, P(u > u*) with the CTV contour (cyan), and the predicted FLAIR
    probability when available. Rows: axial, coronal, sagittal (voxel axes of the ROI grid).

    Args:
        maps: posterior maps on the ROI grid.
        roi: the patient on the same ROI grid (anatomy and observations).
        path: PNG destination (written atomically).
        center_mm: slice centre in world mm (default: `roi.lesion_center_mm()`).
        title: figure title.
    """
    center_mm = roi.lesion_center_mm() if center_mm is None else center_mm
    index = _voxel_index(roi.grid, center_mm)
    panels = [
        ("anatomy + observed", roi.anatomy.wm, "gray", (0, 1)),
        ("density mean", maps.mean, "magma", (0, 1)),
        ("density sd", maps.sd, "viridis", (0, max(float(maps.sd.max()), 1e-6))),
        (f"P(u > {maps.threshold_u:g})", maps.exceedance, "inferno", (0, 1)),
    ]
    if "flair_probability" in maps.predicted:
        panels.append(
            ("predicted FLAIR prob.", maps.predicted["flair_probability"], "cividis", (0, 1))
        )
    observations = roi.observations
    # Figure, not pyplot: no global state, and the user's matplotlib backend is left alone.
    figure = Figure(figsize=(2.6 * len(panels), 7.5), layout="constrained")
    axes = figure.subplots(3, len(panels), squeeze=False)
    for column, (label, volume, cmap, (vmin, vmax)) in enumerate(panels):
        for row, image in enumerate(_slices(np.asarray(volume), index)):
            ax = axes[row, column]
            shown = ax.imshow(image, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                for mask, colour in ((observations.flair, "yellow"), (observations.t1c, "red")):
                    if mask is not None:
                        sliced = _slices(mask.astype(float), index)[row]
                        if sliced.any():
                            ax.contour(sliced, levels=[0.5], colors=colour, linewidths=0.8)
            if column == 3:
                sliced = _slices(maps.ctv.astype(float), index)[row]
                if sliced.any():
                    ax.contour(sliced, levels=[0.5], colors="cyan", linewidths=0.8)
            if row == 0:
                ax.set_title(label, fontsize=9)
        figure.colorbar(shown, ax=axes[:, column], shrink=0.6)
    for row, name in enumerate(("axial", "coronal", "sagittal")):
        axes[row, 0].set_ylabel(name)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    return path


def plot_trace(datatree, path: str | Path, var_names: list[str] | None = None) -> Path | None:
    """ArviZ trace plot (`az.plot_trace_dist`) of the posterior, saved as PNG.

    Returns None (with a warning) if ArviZ cannot draw it, e.g. for a single-chain SMC
    posterior with a constant parameter: a figure must never stop a calibration.
    """
    import arviz as az
    import matplotlib.pyplot as plt  # ArviZ draws through pyplot

    path = Path(path)
    try:
        plot = az.plot_trace_dist(datatree, var_names=var_names, backend="matplotlib")
        with atomic_path(path) as tmp:
            plot.savefig(tmp, dpi=90, format="png")
        plt.close("all")
        return path
    except Exception as error:  # plotting is best-effort by design
        plt.close("all")
        warnings.warn(f"trace plot not written: {error}", RuntimeWarning, stacklevel=2)
        return None


__all__ = ["plot_density_slices", "plot_trace"]


def plot_simulation_slices(
    anatomy: Anatomy, density: np.ndarray, center_mm, path: str | Path
) -> Path:
    """Three orthogonal slices through `center_mm`: tissue in grey, density as a colour overlay
    with the u = 0.25 / 0.5 / 0.8 contours. Written atomically as PNG."""
    centre = _voxel_index(anatomy.grid, center_mm)
    tissue = anatomy.wm + 0.5 * anatomy.gm
    spacing = anatomy.grid.spacing_mm
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    names = ("sagittal (i)", "coronal (j)", "axial (k)")
    for axis, ax in enumerate(axes):
        take = [slice(None)] * 3
        take[axis] = centre[axis]
        other = [a for a in range(3) if a != axis]
        aspect = spacing[other[1]] / spacing[other[0]]
        ax.imshow(tissue[tuple(take)].T, cmap="gray", origin="lower", aspect=1 / aspect)
        u = density[tuple(take)].T
        image = ax.imshow(
            np.ma.masked_less(u, 0.02),
            cmap="inferno",
            vmin=0,
            vmax=1,
            origin="lower",
            alpha=0.75,
            aspect=1 / aspect,
        )
        if u.max() > 0.25:
            ax.contour(u, levels=[0.25, 0.5, 0.8], colors=["cyan", "lime", "white"], linewidths=0.8)
        ax.set_title(f"{names[axis]} = {centre[axis]}")
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8, label="tumour-cell density u")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)
