"""Anatomies available without patient data: nilearn's MNI152 template and a synthetic phantom."""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

from bayestumor.imaging._grid import Grid
from bayestumor.imaging._nifti import load_nifti
from bayestumor.imaging._patient import Anatomy

_MNI152_FILES = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
}
MNI152_T1_BRAIN_THRESHOLD = 0.2
"""Brain mask of the MNI152 T1 template: intensity / max above this (nilearn's own default)."""


@functools.lru_cache(maxsize=4)
def load_mni152(spacing_mm: float = 1.0) -> Anatomy:
    """The MNI152 2009c (ICBM 152, nonlinear symmetric) anatomy shipped inside nilearn's wheel.

    GM and WM are nilearn's packaged probability templates (stored 0–255, scaled to [0, 1]);
    nilearn carries no CSF map, so CSF = clip(1 − wm − gm, 0, 1) inside the template's brain mask
    (T1 intensity above `MNI152_T1_BRAIN_THRESHOLD` of its maximum, as
    `nilearn.datasets.load_mni152_brain_mask`) and 0 outside. Nothing is downloaded. The 1 mm
    grid is 197 × 233 × 189 voxels in MNI space; other spacings use `Anatomy.resampled`
    (block averaging for integer factors). Total wm + gm + csf ≈ 1.9 litres (wm ≈ 0.67 l,
    gm ≈ 1.01 l, csf ≈ 0.22 l; cerebellum and brainstem included). Results are cached.

    Args:
        spacing_mm: isotropic voxel size of the returned anatomy, mm.
    """
    return _mni152_1mm().resampled(spacing_mm)


@functools.lru_cache(maxsize=1)
def _mni152_1mm() -> Anatomy:
    data = importlib.resources.files("nilearn.datasets") / "data"
    volumes = {}
    for name, file_name in _MNI152_FILES.items():
        with importlib.resources.as_file(data / file_name) as path:
            values, grid = load_nifti(path)
        volumes[name] = values / values.max()
    inside = volumes["t1"] > MNI152_T1_BRAIN_THRESHOLD
    csf = np.where(inside, np.clip(1.0 - volumes["wm"] - volumes["gm"], 0.0, 1.0), 0.0)
    return Anatomy(wm=volumes["wm"], gm=volumes["gm"], csf=csf, grid=grid)


def make_phantom(shape: tuple[int, int, int] = (32, 32, 32), spacing_mm: float = 4.0) -> Anatomy:
    """A deterministic, brain-shaped toy anatomy for tests, examples and benchmarks.

    An ellipsoidal brain (semi-axes 0.40, 0.45, 0.38 of the field of view per axis) with a
    grey-matter cortex shell (12 % of the mean brain radius thick), white matter inside, two
    CSF ventricles (ellipsoids left and right of the midline) and a CSF rim outside the brain
    (8 % of the mean radius). Boundaries carry one voxel of partial volume, so the maps are
    probabilities and wm + gm + csf ≤ 1. The geometry scales with the field of view
    (``shape × spacing_mm``), so grids of equal extent sample the same continuous phantom.

    Args:
        shape: voxels per axis.
        spacing_mm: isotropic voxel size, mm.

    Returns:
        An `Anatomy` whose affine is diagonal (spacing_mm, positive: RAS-like axes) with the
        world origin at the centre of the volume.
    """
    shape = tuple(int(n) for n in shape)
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = -spacing_mm * (np.array(shape) - 1) / 2.0
    grid = Grid(shape, affine)
    axes_mm = [spacing_mm * (np.arange(n) - (n - 1) / 2.0) for n in shape]
    xyz_mm = np.meshgrid(*axes_mm, indexing="ij", sparse=True)

    def fraction_inside(center_mm: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
        # First-order signed distance to the ellipsoid surface, g − 1 over |∇g| with
        # g = Σ ((x − c) / r)², ramped over one voxel to mimic partial volume.
        g = sum(((x - c) / r) ** 2 for x, c, r in zip(xyz_mm, center_mm, radii_mm, strict=True))
        grad_norm = np.sqrt(
            sum(
                (2 * (x - c) / r**2) ** 2
                for x, c, r in zip(xyz_mm, center_mm, radii_mm, strict=True)
            )
        )
        distance_mm = (g - 1.0) / np.maximum(grad_norm, 1e-12)
        return np.clip(0.5 - distance_mm / spacing_mm, 0.0, 1.0)

    fov_mm = np.array(shape) * spacing_mm
    brain_radii = fov_mm * np.array([0.40, 0.45, 0.38])
    mean_radius = float(np.prod(brain_radii) ** (1 / 3))
    origin = np.zeros(3)
    brain = fraction_inside(origin, brain_radii)
    core = np.minimum(fraction_inside(origin, brain_radii - 0.12 * mean_radius), brain)
    head = np.maximum(fraction_inside(origin, brain_radii + 0.08 * mean_radius), brain)
    ventricle_radii = brain_radii * np.array([0.12, 0.30, 0.14])
    ventricles = np.maximum(
        *(
            fraction_inside(brain_radii * np.array([side * 0.16, 0.05, 0.10]), ventricle_radii)
            for side in (-1, 1)
        )
    )
    return Anatomy(
        wm=core * (1.0 - ventricles),
        gm=brain - core,
        csf=core * ventricles + (head - brain),
        grid=grid,
    )
