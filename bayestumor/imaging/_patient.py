"""A patient's anatomy and tumour observations on one voxel grid (plain NumPy, not JAX)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayestumor.errors import InputError
from bayestumor.imaging._grid import Grid
from bayestumor.imaging._resample import (
    average_to_rescaled,
    coarsening_factors,
    crop_grid,
    rescaled_grid,
)

BRAIN_THRESHOLD = 0.5
"""A voxel is brain (tumour cells can live there) when its wm + gm probability is at least this."""

SEGMENTATION_THRESHOLD = 0.5
"""A resampled voxel belongs to a segmentation when at least this fraction of it was inside."""


def _frozen(values: np.ndarray, dtype: type, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A read-only copy of `values` as `dtype`, checked to have `shape`."""
    array = np.array(values, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Tissue probability maps of one brain.

    Attributes:
        wm: white-matter probability in [0, 1], float32 (x, y, z).
        gm: grey-matter probability in [0, 1], float32 (x, y, z).
        csf: cerebrospinal-fluid probability in [0, 1], float32 (x, y, z).
        grid: the voxel grid (shape and voxel-to-world affine, mm).

    Arrays are stored as read-only copies, so an `Anatomy` can be shared and cached safely.
    """

    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    grid: Grid

    def __post_init__(self):
        for name in ("wm", "gm", "csf"):
            object.__setattr__(
                self, name, _frozen(getattr(self, name), np.float32, self.grid.shape, name)
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along each axis."""
        return self.grid.shape

    @property
    def brain_mask(self) -> np.ndarray:
        """Voxels where tumour cells can live: wm + gm ≥ `BRAIN_THRESHOLD` (0.5), bool (x, y, z)."""
        return (self.wm + self.gm) >= BRAIN_THRESHOLD

    def volumes_ml(self) -> dict[str, float]:
        """Total volume of each tissue in millilitres (probability-weighted voxel count)."""
        voxel_ml = self.grid.voxel_volume_ml
        return {
            name: float(np.sum(getattr(self, name), dtype=np.float64)) * voxel_ml
            for name in ("wm", "gm", "csf")
        }

    def resampled(self, spacing_mm: float) -> Anatomy:
        """The same anatomy on isotropic voxels of `spacing_mm` mm covering the same extent.

        Coarsening averages each new voxel over the old voxels it covers (block averaging for
        integer factors: tissue volumes are conserved exactly); refining interpolates linearly.
        The new grid's affine is derived exactly from the old one (see `rescaled_grid`).
        """
        factors = coarsening_factors(self.grid, spacing_mm)
        if factors == (1.0, 1.0, 1.0):
            return self
        return Anatomy(
            wm=average_to_rescaled(self.wm, factors),
            gm=average_to_rescaled(self.gm, factors),
            csf=average_to_rescaled(self.csf, factors),
            grid=rescaled_grid(self.grid, factors),
        )

    def cropped_to_brain(self, margin_voxels: int = 1) -> Anatomy:
        """The bounding box of the brain mask grown by `margin_voxels`, clipped to the volume.

        Whole voxels only, so maps computed on it go back exactly with `to_original_space`.
        """
        voxels = np.argwhere(self.brain_mask)
        if voxels.size == 0:
            raise InputError("the anatomy has no brain voxels (wm + gm ≥ 0.5 nowhere)")
        start = np.maximum(voxels.min(axis=0) - margin_voxels, 0)
        stop = np.minimum(voxels.max(axis=0) + margin_voxels + 1, self.shape)
        return self._cropped(*crop_grid(self.grid, start, stop))

    def cropped_cube(self, center_mm: np.ndarray, size: int) -> Anatomy:
        """A `size`³ box of whole voxels centred on the voxel nearest `center_mm` (world mm),
        shifted inwards where it would leave the volume.

        Raises:
            InputError: if the volume is smaller than `size` along some axis.
        """
        shape = np.array(self.shape)
        if np.any(shape < size):
            raise InputError(f"a {size}³ crop does not fit in a volume of shape {self.shape}")
        centre = np.round(self.grid.world_to_voxel(np.asarray(center_mm, dtype=float))).astype(int)
        start = np.clip(centre - size // 2, 0, shape - size)
        return self._cropped(*crop_grid(self.grid, start, start + size))

    def _cropped(self, slices: tuple[slice, ...], grid: Grid) -> Anatomy:
        return Anatomy(wm=self.wm[slices], gm=self.gm[slices], csf=self.csf[slices], grid=grid)


@dataclass(frozen=True, eq=False)
class Observations:
    """What the scans show of the tumour, on the anatomy's grid.

    Attributes:
        grid: the voxel grid (shape and voxel-to-world affine, mm).
        t1c: enhancing (+ necrotic) core on contrast-enhanced T1, bool (x, y, z), or None.
        flair: FLAIR hyperintensity (oedema + core), bool (x, y, z), or None.
        pet: amino-acid (FET) PET uptake normalised to [0, 1], float32 (x, y, z), or None.
        pet_voxels_averaged: how many voxels of the PET as scanned each `pet` voxel is the
            mean of: 1 on the scan's grid, the product of the coarsening factors after
            `resampled` (8 from 2 mm to 4 mm). The PET likelihood needs it: averaging clipped
            noise changes its law (`bayestumor.model.ClippedNormal`).

    An all-false `t1c` is an observation too (a non-enhancing tumour), distinct from None.
    """

    grid: Grid
    t1c: np.ndarray | None = None
    flair: np.ndarray | None = None
    pet: np.ndarray | None = None
    pet_voxels_averaged: float = 1.0

    def __post_init__(self):
        if not (math.isfinite(self.pet_voxels_averaged) and self.pet_voxels_averaged >= 1.0):
            raise ValueError(f"pet_voxels_averaged must be ≥ 1, got {self.pet_voxels_averaged}")
        for name, dtype in (("t1c", np.bool_), ("flair", np.bool_), ("pet", np.float32)):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, _frozen(values, dtype, self.grid.shape, name))

    @property
    def lesion_mask(self) -> np.ndarray:
        """FLAIR ∪ T1c abnormality, bool (x, y, z); all false when neither is given."""
        lesion = np.zeros(self.grid.shape, dtype=bool)
        for mask in (self.t1c, self.flair):
            if mask is not None:
                lesion |= mask
        return lesion

    def volumes_ml(self) -> dict[str, float]:
        """Volume in millilitres of each segmentation that is present (``t1c``, ``flair``)."""
        return {
            name: float(np.count_nonzero(mask)) * self.grid.voxel_volume_ml
            for name, mask in (("t1c", self.t1c), ("flair", self.flair))
            if mask is not None
        }

    def resampled(self, spacing_mm: float) -> Observations:
        """The observations on isotropic `spacing_mm` voxels (the grid of `Anatomy.resampled`).

        Segmentations: a new voxel is inside when at least `SEGMENTATION_THRESHOLD` (half) of
        it was (overlap fraction when coarsening, linear interpolation of the 0/1 mask when
        refining); a non-empty segmentation never becomes empty — if no voxel reaches half,
        the voxels with the largest fraction are kept. PET: overlap average when coarsening,
        linear interpolation when refining; neither leaves the range of the values (normalised
        PET may lie slightly outside [0, 1], see `load_patient`), and values within [0, 1]
        stay there (rounding is clipped).
        """
        factors = coarsening_factors(self.grid, spacing_mm)
        if factors == (1.0, 1.0, 1.0):
            return self

        def segmentation(mask: np.ndarray | None) -> np.ndarray | None:
            if mask is None:
                return None
            fraction = average_to_rescaled(mask, factors)
            inside = fraction >= SEGMENTATION_THRESHOLD
            if mask.any() and not inside.any():
                inside = fraction == fraction.max()
            return inside

        return Observations(
            grid=rescaled_grid(self.grid, factors),
            t1c=segmentation(self.t1c),
            flair=segmentation(self.flair),
            pet=None if self.pet is None else _resampled_pet(self.pet, factors),
            # Refining interpolates: no more scan voxels per voxel than before.
            pet_voxels_averaged=self.pet_voxels_averaged * math.prod(max(f, 1.0) for f in factors),
        )

    def _cropped(self, slices: tuple[slice, ...], grid: Grid) -> Observations:
        def crop(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[slices]

        return Observations(
            grid=grid,
            t1c=crop(self.t1c),
            flair=crop(self.flair),
            pet=crop(self.pet),
            pet_voxels_averaged=self.pet_voxels_averaged,
        )


def _resampled_pet(pet: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """PET on the rescaled grid, clipped to [0, 1] widened to the input's own range: averages
    and linear interpolation cannot leave that range except by rounding."""
    low, high = min(0.0, float(pet.min())), max(1.0, float(pet.max()))
    return np.clip(average_to_rescaled(pet, factors), low, high)


@dataclass(frozen=True, eq=False)
class Patient:
    """One patient: anatomy and tumour observations on a shared grid.

    Attributes:
        anatomy: tissue probability maps.
        observations: tumour segmentations and optional PET.
        name: identifier used in outputs (the directory name for `load_patient`).
        source: the directory the patient was read from, or None.
        notes: what `load_patient` assumed or changed while reading (the label convention
            used, a missing CSF map taken as zero, a brain mask applied, how PET was
            normalised), one sentence each, for reports; kept by resampling and cropping.
    """

    anatomy: Anatomy
    observations: Observations
    name: str
    source: Path | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.anatomy.grid != self.observations.grid:
            raise ValueError("anatomy and observations must be on the same grid")

    @property
    def grid(self) -> Grid:
        """The shared voxel grid."""
        return self.anatomy.grid

    def lesion_center_mm(self) -> np.ndarray:
        """Centre of mass of the T1c core in world mm, shape (3,); FLAIR when T1c is empty.

        Raises:
            InputError: neither segmentation has a voxel.
        """
        for mask in (self.observations.t1c, self.observations.flair):
            if mask is not None and mask.any():
                return self.grid.voxel_to_world(np.argwhere(mask).mean(axis=0))
        raise InputError("no tumour voxels to take the centre of", self.source)

    def resampled(self, spacing_mm: float) -> Patient:
        """The patient on isotropic voxels of `spacing_mm` mm covering the same extent.

        Tissues and PET are averaged over each new voxel when coarsening (block averaging for
        integer factors, so voxel centres sit at block centres and volumes are conserved) and
        linearly interpolated when refining; segmentations keep voxels at least half inside
        (see `Observations.resampled`). Returns `self` when the spacing is unchanged.
        """
        return Patient(
            anatomy=self.anatomy.resampled(spacing_mm),
            observations=self.observations.resampled(spacing_mm),
            name=self.name,
            source=self.source,
            notes=self.notes,
        )

    def cropped(self, margin_mm: float, center_mm: np.ndarray | None = None) -> Patient:
        """The patient restricted to a box around the tumour (the region of interest, ROI).

        Without `center_mm` the box is the bounding box of the FLAIR ∪ T1c lesion (of the brain
        mask when there is no lesion) grown by `margin_mm` on every side; with `center_mm`
        (world mm, shape (3,)) it is the voxel nearest that point ± `margin_mm`, so the ROI
        shape is fixed (2·ceil(margin_mm / spacing) + 1 per axis) unless clipped. The box is
        clipped to the volume; voxels are never resampled, so the ROI affine is the original
        shifted by whole voxels and `to_original_space` maps ROI results back exactly.

        Args:
            margin_mm: margin in mm, ≥ 0 (rounded up to whole voxels per axis).
            center_mm: optional box centre in world mm.
        """
        if not (math.isfinite(margin_mm) and margin_mm >= 0):
            raise ValueError(f"margin_mm must be a non-negative number, got {margin_mm}")
        margin = np.array([math.ceil(margin_mm / s - 1e-9) for s in self.grid.spacing_mm])
        shape = np.array(self.grid.shape)
        if center_mm is None:
            region = self.observations.lesion_mask
            if not region.any():
                region = self.anatomy.brain_mask
            if not region.any():
                raise InputError("nothing to crop around: no lesion and no brain", self.source)
            voxels = np.argwhere(region)
            low, high = voxels.min(axis=0), voxels.max(axis=0)
        else:
            center = np.round(self.grid.world_to_voxel(np.asarray(center_mm, dtype=float)))
            center = center.astype(int)
            if np.any(center < 0) or np.any(center >= shape):
                raise InputError(f"crop centre {list(center_mm)} mm lies outside the volume")
            low = high = center
        start = np.maximum(low - margin, 0)
        stop = np.minimum(high + margin + 1, shape)
        slices, grid = crop_grid(self.grid, start, stop)
        return Patient(
            anatomy=self.anatomy._cropped(slices, grid),
            observations=self.observations._cropped(slices, grid),
            name=self.name,
            source=self.source,
            notes=self.notes,
        )
