"""bayestumor: Bayesian calibration of brain-tumour growth models to a patient's scans."""

from bayestumor.errors import BayesTumorError, DiagnosticsWarning, InputError
from bayestumor.forward import (
    AbstractForwardModel,
    AdaptiveStep,
    FixedStep,
    GrowthParams,
    PDEForward,
)
from bayestumor.imaging import (
    Anatomy,
    Grid,
    Observations,
    Patient,
    load_mni152,
    load_nifti,
    load_patient,
    make_phantom,
    resample_to_grid,
    save_nifti,
    to_original_space,
)
from bayestumor.model import Priors
from bayestumor.workflows import (
    CalibrationConfig,
    CalibrationResult,
    ImagingParams,
    calibrate_patient,
    simulate,
    simulate_patient,
)

__version__ = "0.1.0"

__all__ = [
    "AbstractForwardModel",
    "AdaptiveStep",
    "Anatomy",
    "BayesTumorError",
    "CalibrationConfig",
    "CalibrationResult",
    "DiagnosticsWarning",
    "FixedStep",
    "Grid",
    "GrowthParams",
    "ImagingParams",
    "InputError",
    "Observations",
    "PDEForward",
    "Patient",
    "Priors",
    "__version__",
    "calibrate_patient",
    "load_mni152",
    "load_nifti",
    "load_patient",
    "make_phantom",
    "resample_to_grid",
    "save_nifti",
    "simulate",
    "simulate_patient",
    "to_original_space",
]
