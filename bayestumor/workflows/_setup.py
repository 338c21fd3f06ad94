"""How a calibration is set up: its options, the region of interest, the forward map, the problem.

Shared by sampling (`sample_patient`) and reporting (`write_report`, `report_directory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax.numpy as jnp
import numpy as np

from bayestumor.config import DEFAULT_COARSE_SPACING_MM, DEFAULT_SPACING_MM, CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.forward import (
    AbstractForwardModel,
    CorrectedForward,
    FixedStep,
    PDEForward,
    SplitStep,
)
from bayestumor.imaging import (
    PET_TOLERATED_RANGE,
    Anatomy,
    Grid,
    Patient,
    crop_grid,
    resample_to_grid,
)
from bayestumor.inference import InferenceResult, LearningRate, Refinement
from bayestumor.model import CalibrationProblem, model_data_from_patient


@dataclass(frozen=True, eq=False)
class DiscretisationCorrection:
    """The coarse grid's discretisation error, added to the forward map as a fixed offset
    (`bayestumor.forward.CorrectedForward`; `corrected_problem`).

    Attributes:
        refinement: how many times finer the grid that measured it was (per axis).
        fine_spacing_mm: that grid's spacing, mm.
        offset: ε = (fine density block-averaged) − (coarse density) at the mode, on the ROI.
        at: the parameters (constrained, by name; vectors as lists) it was measured at.
        seconds: wall time of the fine solve and the mode search after it.
    """

    refinement: int
    fine_spacing_mm: float
    offset: np.ndarray
    at: dict[str, float | list[float]]
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready summary (the offset itself is stored as ``discretisation_offset.npy``)."""
        magnitude = np.abs(self.offset)
        return {
            "method": "approximation-error mean at the mode (Kaipio & Somersalo 2007)",
            "refinement": self.refinement,
            "fine_spacing_mm": self.fine_spacing_mm,
            "max_abs_offset": float(magnitude.max()),
            "voxels_offset_above_0.01": int(np.count_nonzero(magnitude > 0.01)),
            "at": self.at,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, eq=False)
class CalibrationRun:
    """A sampled posterior and everything needed to report on it; nothing written yet.

    Attributes:
        config: the options it was sampled with.
        patient_name: the patient's name.
        roi: the patient on the region-of-interest grid the model was fitted on.
        original_grid: the patient's input grid (maps are written there).
        original_volumes_ml: visible volumes on the input grid (``t1c``, ``flair``), ml.
        problem: the posterior that was sampled.
        inference: draws, DataTree, diagnostics and density draws on the ROI grid.
        refinement: with a surrogate forward map, the check against the exact PDE, else None.
        roi_margins_mm: every ROI margin sampled with, in order, mm; the last is
            ``config.margin_mm`` (more than one when the ROI was grown, `sample_patient`).
        learning_rate: the power of the likelihood the posterior was sampled with and how it
            was estimated (η = 1 for the exact model).
        discretisation: the discretisation correction the forward map carried, if any
            (``config.discretisation_correction``).
    """

    config: CalibrationConfig
    patient_name: str
    roi: Patient
    original_grid: Grid
    original_volumes_ml: dict[str, float]
    problem: CalibrationProblem
    inference: InferenceResult
    refinement: Refinement | None = None
    roi_margins_mm: tuple[float, ...] = ()
    learning_rate: LearningRate | None = None
    discretisation: DiscretisationCorrection | None = None


def validate_patient(patient: Patient) -> None:
    """Reject observations the model cannot use, with an `InputError` naming the problem.

    Checks: at least one segmentation with a tumour voxel inside the brain; PET (if given)
    finite and normalised: within [0, 1], or within `PET_TOLERATED_RANGE` (the Gaussian PET
    likelihood predicts values a little outside [0, 1]; `load_patient` warns about them).
    """
    observations = patient.observations
    source = patient.source
    segmentations = [m for m in (observations.t1c, observations.flair) if m is not None]
    if not segmentations:
        raise InputError("no T1c or FLAIR segmentation: nothing to calibrate to", source)
    if not any(mask.any() for mask in segmentations):
        raise InputError("the T1c and FLAIR segmentations are empty (no tumour voxel)", source)
    if not any((mask & patient.anatomy.brain_mask).any() for mask in segmentations):
        raise InputError("no tumour voxel lies inside the brain (white + grey matter)", source)
    pet = observations.pet
    if pet is not None:
        if not np.all(np.isfinite(pet)):
            raise InputError("PET contains NaN or infinite values", source)
        low, high = PET_TOLERATED_RANGE
        if pet.min() < low - 1e-4 or pet.max() > high + 1e-4:
            raise InputError(
                f"PET must be normalised to [0, 1] (values in [{low:g}, {high:g}] are tolerated), "
                f"found [{pet.min():g}, {pet.max():g}]; see --pet-normalise",
                source,
            )


def calibration_spacing_mm(patient: Patient, config: CalibrationConfig) -> float:
    """The grid `config` calibrates `patient` on, mm: ``config.spacing_mm`` where given; else
    the grid the method is built for — with ``forward="surrogate"`` the network's own
    (`bayestumor.forward.surrogate.SPACING_MM`), with a ``discretisation_correction`` the
    coarse grid it corrects (`DEFAULT_COARSE_SPACING_MM`), otherwise `DEFAULT_SPACING_MM`
    (coarse-to-fine from `DEFAULT_COARSE_SPACING_MM`) or the scans' coarsest spacing where that
    is coarser: a grid finer than the scans adds solves, not information.
    """
    if config.spacing_mm is not None:
        return float(config.spacing_mm)
    if config.forward == "surrogate":
        from bayestumor.forward.surrogate import SPACING_MM

        return float(SPACING_MM)
    if config.discretisation_correction:
        return DEFAULT_COARSE_SPACING_MM
    return max(DEFAULT_SPACING_MM, float(max(patient.grid.spacing_mm)))


def region_of_interest(patient: Patient, config: CalibrationConfig) -> Patient:
    """The patient resampled to `config`'s grid (`calibration_spacing_mm`) and cropped to the
    lesion ± margin."""
    return patient.resampled(calibration_spacing_mm(patient, config)).cropped(config.margin_mm)


def build_forward(
    roi: Patient, config: CalibrationConfig, kind: Literal["pde", "surrogate"] | None = None
) -> AbstractForwardModel:
    """The forward map on the ROI (of `kind`, default `config.forward`); the PDE's step bound
    sized for the prior's upper ends, its time stepping `config.stepping`, its seed as
    `config.seed_shape`, `seed_sigma_mm`, `seed_amplitude`. A surrogate with a seed other than
    the one it was trained on is refused (`InputError`)."""
    if (kind or config.forward) == "surrogate":
        from bayestumor.forward.surrogate import SurrogateForward

        config.replace(forward="surrogate")  # validates: refuses a seed the network never saw

        surrogate = SurrogateForward.from_anatomy(roi.anatomy)
        # Warns where the prior leaves the network's training ranges.
        surrogate.check_ranges(*config.priors.scale_free_ranges())
        return surrogate
    return pde_forward(roi.anatomy, config).sized_for(
        *config.priors.max_diffusion_and_reaction(), any_gm_ratio=config.priors.gm_ratio is not None
    )


def pde_forward(anatomy: Anatomy, config: CalibrationConfig) -> PDEForward:
    """The PDE on `anatomy` with `config`'s time stepping and seed (its step bound the default)."""
    return PDEForward.from_anatomy(
        anatomy,
        stepping=(
            SplitStep()
            if config.stepping == "split"
            else FixedStep(reaction_step=config.reaction_step)
        ),
        seed_shape=config.seed_shape,
        seed_sigma_mm=config.seed_sigma_mm,
        seed_amplitude=config.seed_amplitude,
    )


def fine_roi_anatomy(patient: Patient, roi: Patient, refinement: int) -> Anatomy | None:
    """The patient's anatomy over the ROI's box on a grid `refinement` times finer, each ROI
    voxel split into `refinement`³ (outside the patient's volume: no tissue); None when the
    patient's own grid is coarser than that (its scans cannot tell the finer grid's anatomy).

    The ROI is a whole-voxel crop of ``patient.resampled(h)``; ``patient.resampled(h / r)``
    starts at the same corner and averages over the same partition, so its blocks of r³ voxels
    average exactly to the ROI's voxels.
    """
    fine_spacing = float(roi.grid.spacing_mm[0]) / refinement
    if max(patient.grid.spacing_mm) > fine_spacing * (1.0 + 1e-3):
        return None
    fine = patient.anatomy.resampled(fine_spacing)
    corner = fine.grid.world_to_voxel(roi.grid.voxel_to_world(np.zeros(3))) - (refinement - 1) / 2
    start = np.round(corner).astype(int)
    if not np.allclose(corner, start, atol=1e-3):
        raise RuntimeError("the ROI is not a whole-voxel crop of the resampled patient")
    _, grid = crop_grid(fine.grid, start, start + refinement * np.asarray(roi.grid.shape))

    def crop(values: np.ndarray) -> np.ndarray:  # a whole-voxel shift: copied, 0 outside
        return resample_to_grid(values, fine.grid, grid, fill=0.0)

    return Anatomy(wm=crop(fine.wm), gm=crop(fine.gm), csf=crop(fine.csf), grid=grid)


def build_problem(
    roi: Patient,
    config: CalibrationConfig,
    forward: AbstractForwardModel | None = None,
    discretisation_offset: np.ndarray | None = None,
) -> CalibrationProblem:
    """The posterior of the ROI patient under `config` (forward map built unless given; with
    `discretisation_offset`, corrected by it: `bayestumor.forward.CorrectedForward`)."""
    if forward is None:
        forward = build_forward(roi, config)
    elif not forward.grid.same_as(roi.grid):
        raise InputError("the given forward model's grid is not the region of interest's grid")
    if discretisation_offset is not None:
        forward = CorrectedForward(forward, jnp.asarray(discretisation_offset, jnp.float32))
    return CalibrationProblem(
        forward=forward,
        data=model_data_from_patient(roi),
        priors=config.priors,
        epsilon=config.epsilon,
    )
