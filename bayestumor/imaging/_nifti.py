"""Reading and writing single NIfTI volumes, with validation that names the offending file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from bayestumor.errors import InputError
from bayestumor.imaging._grid import Grid
from bayestumor.utils import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
"""File endings read and written as NIfTI-1."""


def load_nifti(path: str | Path) -> tuple[np.ndarray, Grid]:
    """Read one 3-D NIfTI volume and its grid.

    A trailing singleton 4th (or higher) dimension, as some tools write, is squeezed away.
    Intensity scaling (``scl_slope``/``scl_inter``) is applied. The affine is the one nibabel
    reports (sform if set, else qform).

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        The voxel values, float32 of shape (x, y, z), and the grid (shape and affine in mm).

    Raises:
        InputError: the file is missing or unreadable, is not 3-D, has a singular or non-finite
            affine, or contains NaN or infinite values. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        image = nib.load(path)
        values = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as error:  # nibabel raises many types for corrupt or non-NIfTI files
        raise InputError(f"cannot read as NIfTI ({type(error).__name__}: {error})", path) from error
    while values.ndim > 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim != 3:
        raise InputError(f"expected a 3-D volume, got shape {image.shape}", path)
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError("the voxel-to-world affine is singular or not finite", path)
    n_bad = int(np.count_nonzero(~np.isfinite(values)))
    if n_bad:
        raise InputError(f"{n_bad} voxel(s) are NaN or infinite", path)
    return values, Grid(values.shape, affine)


def save_nifti(path: str | Path, volume: np.ndarray, grid: Grid) -> Path:
    """Write a volume as NIfTI-1, atomically (a temporary file renamed on success).

    Booleans are stored as uint8, integers as int32, everything else as float32. The grid's
    affine is stored as both qform and sform (code 1, scanner space), units mm, so any reader
    recovers it; affines whose entries are float32-representable round-trip exactly.

    Args:
        path: destination, ending in ``.nii`` or ``.nii.gz`` (compressed).
        volume: array of shape ``grid.shape``.
        grid: the voxel grid the volume lives on.

    Returns:
        The path written.
    """
    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise InputError("a NIfTI file name must end in .nii or .nii.gz", path)
    volume = np.asarray(volume)
    if volume.shape != grid.shape:
        raise InputError(f"volume shape {volume.shape} does not match grid {grid.shape}", path)
    if volume.dtype == np.bool_:
        stored = volume.astype(np.uint8)
    elif np.issubdtype(volume.dtype, np.integer):
        stored = volume.astype(np.int32)
    else:
        stored = volume.astype(np.float32)
    image = nib.Nifti1Image(stored, grid.affine)
    image.set_qform(grid.affine, code=1)
    image.set_sform(grid.affine, code=1)
    image.header.set_xyzt_units(xyz="mm")
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    return path
