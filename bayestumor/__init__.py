"""bayestumor: Bayesian calibration of brain-tumour growth models to a patient's scans."""

from bayestumor.anatomy import (
    Anatomy,
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
from bayestumor.errors import BayesTumorError, DiagnosticsWarning, InputError
from bayestumor.forward import (
    AbstractForwardModel,
    AdaptiveStep,
    FixedStep,
    GrowthParams,
    PDEForward,
)
from bayestumor.grid import Grid

__version__ = "0.1.0"

__all__ = [
    "AbstractForwardModel",
    "AdaptiveStep",
    "Anatomy",
    "BayesTumorError",
    "DiagnosticsWarning",
    "FixedStep",
    "Grid",
    "GrowthParams",
    "InputError",
    "Observations",
    "PDEForward",
    "Patient",
    "__version__",
    "load_mni152",
    "load_nifti",
    "load_patient",
    "make_phantom",
    "resample_to_grid",
    "save_nifti",
    "to_original_space",
]
