"""How a calibration is set up: its options, the region of interest, the forward map, the problem.

Shared by sampling (`sample_patient`) and reporting (`write_report`, `report_directory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bayestumor.config import CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.forward import AbstractForwardModel, FixedStep, PDEForward, SplitStep
from bayestumor.imaging import PET_TOLERATED_RANGE, Grid, Patient
from bayestumor.inference import InferenceResult, LearningRate, Refinement
from bayestumor.model import CalibrationProblem, model_data_from_patient


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


def region_of_interest(patient: Patient, config: CalibrationConfig) -> Patient:
    """The patient resampled to `config.spacing_mm` and cropped to the lesion ± margin."""
    return patient.resampled(config.spacing_mm).cropped(config.margin_mm)


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
    forward = PDEForward.from_anatomy(
        roi.anatomy,
        stepping=(
            SplitStep()
            if config.stepping == "split"
            else FixedStep(reaction_step=config.reaction_step)
        ),
        seed_shape=config.seed_shape,
        seed_sigma_mm=config.seed_sigma_mm,
        seed_amplitude=config.seed_amplitude,
    )
    return forward.sized_for(*config.priors.max_diffusion_and_reaction())


def build_problem(
    roi: Patient, config: CalibrationConfig, forward: AbstractForwardModel | None = None
) -> CalibrationProblem:
    """The posterior of the ROI patient under `config` (forward map built unless given)."""
    if forward is None:
        forward = build_forward(roi, config)
    elif not forward.grid.same_as(roi.grid):
        raise InputError("the given forward model's grid is not the region of interest's grid")
    return CalibrationProblem(
        forward=forward,
        data=model_data_from_patient(roi),
        priors=config.priors,
        epsilon=config.epsilon,
    )
