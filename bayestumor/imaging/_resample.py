"""Moving volumes between grids: interpolation through affines, volume-conserving averaging, crops.

Convention: a voxel is the cube of half-width 0.5 (in index units) around its centre, so a grid
covers index range [-0.5, n - 0.5) per axis. A target voxel whose centre falls outside the source
grid's cubes gets the fill value; inside, interpolation clamps to the nearest source voxel.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage, sparse

from bayestumor.imaging._grid import Grid

_INTEGER_TOL = 1e-4
"""Index offsets and resampling factors within this of an integer are treated as integers."""


def resample_to_grid(
    volume: np.ndarray, source: Grid, target: Grid, order: int = 1, fill: float = 0.0
) -> np.ndarray:
    """Interpolate a volume from one grid onto another through their world affines.

    When the grids differ by a whole-voxel shift only (a crop, or a crop mapped back), voxels
    are copied exactly for any `order`; otherwise scipy's `affine_transform` is used. No
    anti-aliasing: to coarsen, use `Patient.resampled` / `Anatomy.resampled`.

    Args:
        volume: values of shape ``source.shape``; booleans are interpolated as 0/1.
        source: the grid `volume` lives on.
        target: the grid to sample on.
        order: spline order, 0 (nearest) or 1 (trilinear) for masks and probabilities; 3 for
            smooth fields (may overshoot).
        fill: value of target voxels outside the source grid.

    Returns:
        Array of shape ``target.shape``; float64 if `volume` is float64, else float32.
    """
    volume = np.asarray(volume)
    if volume.shape != source.shape:
        raise ValueError(f"volume shape {volume.shape} does not match grid {source.shape}")
    dtype = np.float64 if volume.dtype == np.float64 else np.float32
    values = volume.astype(dtype, copy=False)
    index_map = np.linalg.inv(source.affine) @ target.affine  # target index -> source index
    matrix, offset = index_map[:3, :3], index_map[:3, 3]
    shift = np.round(offset).astype(int)
    if np.allclose(matrix, np.eye(3), atol=1e-6) and np.allclose(offset, shift, atol=_INTEGER_TOL):
        return _shifted_copy(values, target.shape, shift, fill)
    interpolated = ndimage.affine_transform(
        values, matrix, offset, output_shape=target.shape, order=order, mode="nearest"
    )
    # Order-0 sampling of a zero-padded ones array marks target centres inside source voxels.
    inside = ndimage.affine_transform(
        np.pad(np.ones(source.shape, dtype=np.uint8), 1),
        matrix,
        offset + 1.0,
        output_shape=target.shape,
        order=0,
        mode="constant",
        cval=0,
    )
    return np.where(inside > 0, interpolated, dtype(fill)).astype(dtype, copy=False)


def to_original_space(
    volume: np.ndarray, roi_grid: Grid, original_grid: Grid, order: int = 1
) -> np.ndarray:
    """Map a result on the (cropped, resampled) ROI grid back onto the patient's original grid.

    Voxels outside the ROI are 0. Where the ROI is a pure crop of the original grid the values
    are copied exactly; after resampling they are interpolated with spline `order`.

    Args:
        volume: values of shape ``roi_grid.shape``.
        roi_grid: the grid `volume` lives on.
        original_grid: the grid of the patient's input files.
        order: 0 for labels and masks, 1 (default) for densities and probabilities.

    Returns:
        Array of shape ``original_grid.shape`` (float32, or float64 for float64 input), ready
        for `save_nifti` with ``original_grid``.
    """
    return resample_to_grid(volume, roi_grid, original_grid, order=order, fill=0.0)


def _shifted_copy(
    values: np.ndarray, shape: tuple[int, int, int], shift: np.ndarray, fill: float
) -> np.ndarray:
    """Target voxel ``i`` gets source voxel ``i + shift``, or `fill` where there is none."""
    result = np.full(shape, fill, dtype=values.dtype)
    target_slices, source_slices = [], []
    for n_target, n_source, s in zip(shape, values.shape, shift, strict=True):
        start, stop = max(0, -s), min(n_target, n_source - s)
        if stop <= start:
            return result
        target_slices.append(slice(start, stop))
        source_slices.append(slice(start + s, stop + s))
    result[tuple(target_slices)] = values[tuple(source_slices)]
    return result


def coarsening_factors(grid: Grid, spacing_mm: float) -> tuple[float, float, float]:
    """Per-axis ratio of the new to the old voxel size, snapped to integers within 1e-4."""
    if not (math.isfinite(spacing_mm) and spacing_mm > 0):
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    factors = []
    for old_mm in grid.spacing_mm:
        factor = spacing_mm / old_mm
        rounded = round(factor)
        factors.append(float(rounded) if abs(factor - rounded) < _INTEGER_TOL else factor)
    return tuple(factors)


def rescaled_grid(grid: Grid, factors: tuple[float, float, float]) -> Grid:
    """The grid whose voxels are `factors` times larger per axis, covering the same extent.

    The first new voxel starts where the first old voxel starts, so for an integer factor f each
    new voxel centre sits at the centre of an f×f×f block (an offset of (f - 1)/2 old voxels).
    The new shape is ``ceil(n / f)``; a last partial block extends past the old volume.
    """
    scale = np.eye(4)
    for axis, factor in enumerate(factors):
        scale[axis, axis] = factor
        scale[axis, 3] = (factor - 1.0) / 2.0
    shape = tuple(max(1, math.ceil(n / f - 1e-9)) for n, f in zip(grid.shape, factors, strict=True))
    return Grid(shape, grid.affine @ scale)


def average_to_rescaled(values: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """Resample onto `rescaled_grid`, anti-aliased and volume-conserving where coarsening.

    Per axis: where the factor is ≥ 1 each new voxel is the overlap-weighted mean of the old
    voxels it covers (block averaging for integer factors; the part beyond the old volume
    counts as 0, so sum × voxel volume is conserved exactly); where the factor is < 1 (refining)
    values are linearly interpolated, clamped at the edges.

    Args:
        values: array (x, y, z).
        factors: new / old voxel size per axis.

    Returns:
        float32 array of shape ``rescaled_grid(grid, factors).shape``.
    """
    result = np.asarray(values, dtype=np.float64)
    for axis, factor in enumerate(factors):
        operator = _axis_operator(result.shape[axis], factor)
        moved = np.moveaxis(result, axis, 0)
        flat = operator @ moved.reshape(moved.shape[0], -1)
        result = np.moveaxis(flat.reshape((operator.shape[0], *moved.shape[1:])), 0, axis)
    return np.ascontiguousarray(result, dtype=np.float32)


def _axis_operator(n_old: int, factor: float) -> sparse.csr_array:
    """Sparse (n_new, n_old) matrix taking one axis to the rescaled grid (see `rescaled_grid`)."""
    n_new = max(1, math.ceil(n_old / factor - 1e-9))
    rows, cols, weights = [], [], []
    if factor >= 1.0:
        for new in range(n_new):
            start, stop = new * factor - 0.5, (new + 1) * factor - 0.5  # in old index units
            for old in range(max(0, math.floor(start + 0.5)), min(n_old, math.ceil(stop + 0.5))):
                overlap = min(stop, old + 0.5) - max(start, old - 0.5)
                if overlap > 0:
                    rows.append(new)
                    cols.append(old)
                    weights.append(overlap / factor)
    else:
        for new in range(n_new):
            position = min(max(factor * new + (factor - 1.0) / 2.0, 0.0), n_old - 1.0)
            low = math.floor(position)
            high = min(low + 1, n_old - 1)
            rows += [new, new]
            cols += [low, high]
            weights += [1.0 - (position - low), position - low]
    return sparse.csr_array((weights, (rows, cols)), shape=(n_new, n_old))


def crop_grid(
    grid: Grid, start: npt.ArrayLike, stop: npt.ArrayLike
) -> tuple[tuple[slice, ...], Grid]:
    """The sub-grid of voxels ``start <= index < stop`` (per axis) and the slices selecting it.

    The crop's affine is the original one shifted by whole voxels, so `to_original_space` maps
    results back exactly.
    """
    start = np.asarray(start, dtype=int)
    stop = np.asarray(stop, dtype=int)
    affine = grid.affine.copy()
    affine[:3, 3] = grid.voxel_to_world(start)
    slices = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    return slices, Grid(tuple(int(n) for n in stop - start), affine)
