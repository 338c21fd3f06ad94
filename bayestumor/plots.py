"""PNG figures of a calibration: density slices through the lesion and sampler diagnostics."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bayestumor._atomic import atomic_path
from bayestumor._patient import Patient
from bayestumor.predict import PosteriorMaps


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
    index = np.round(roi.grid.world_to_voxel(np.asarray(center_mm))).astype(int)
    index = tuple(int(v) for v in np.clip(index, 0, np.array(roi.grid.shape) - 1))
    panels = [
        ("anatomy + observed", roi.anatomy.wm, "gray", (0, 1)),
        ("density mean", maps.mean, "magma", (0, 1)),
        ("density sd", maps.sd, "viridis", (0, max(float(maps.sd.max()), 1e-6))),
        (f"P(u > {maps.threshold_u:g})", maps.exceedance, "inferno", (0, 1)),
    ]
    if maps.flair_probability is not None:
        panels.append(("predicted FLAIR prob.", maps.flair_probability, "cividis", (0, 1)))
    observations = roi.observations
    figure, axes = plt.subplots(
        3, len(panels), figsize=(2.6 * len(panels), 7.5), squeeze=False, layout="constrained"
    )
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
    plt.close(figure)
    return path


def plot_trace(datatree, path: str | Path, var_names: list[str] | None = None) -> Path | None:
    """ArviZ trace plot (`az.plot_trace_dist`) of the posterior, saved as PNG.

    Returns None (with a warning) if ArviZ cannot draw it, e.g. for a single-chain SMC
    posterior with a constant parameter: a figure must never stop a calibration.
    """
    import arviz as az

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
