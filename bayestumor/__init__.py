"""bayestumor: Bayesian calibration of brain-tumour growth models to a patient's scans.

The public names below are imported on first use (PEP 562), so ``import bayestumor`` does not
start JAX's backend: the command line still can expose one CPU device per NUTS chain
(`bayestumor._devices`) after the package is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Anatomy": "bayestumor.anatomy",
    "Observations": "bayestumor.anatomy",
    "Patient": "bayestumor.anatomy",
    "load_mni152": "bayestumor.anatomy",
    "load_nifti": "bayestumor.anatomy",
    "load_patient": "bayestumor.anatomy",
    "make_phantom": "bayestumor.anatomy",
    "resample_to_grid": "bayestumor.anatomy",
    "save_nifti": "bayestumor.anatomy",
    "to_original_space": "bayestumor.anatomy",
    "CalibrationConfig": "bayestumor.calibrate",
    "CalibrationResult": "bayestumor.calibrate",
    "calibrate_patient": "bayestumor.calibrate",
    "BayesTumorError": "bayestumor.errors",
    "DiagnosticsWarning": "bayestumor.errors",
    "InputError": "bayestumor.errors",
    "AbstractForwardModel": "bayestumor.forward",
    "AdaptiveStep": "bayestumor.forward",
    "FixedStep": "bayestumor.forward",
    "GrowthParams": "bayestumor.forward",
    "PDEForward": "bayestumor.forward",
    "Grid": "bayestumor.grid",
    "Priors": "bayestumor.priors",
    "simulate": "bayestumor.simulate",
    "ImagingParams": "bayestumor.synthetic",
    "simulate_patient": "bayestumor.synthetic",
}

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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bayestumor' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
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
    from bayestumor.calibrate import CalibrationConfig, CalibrationResult, calibrate_patient
    from bayestumor.errors import BayesTumorError, DiagnosticsWarning, InputError
    from bayestumor.forward import (
        AbstractForwardModel,
        AdaptiveStep,
        FixedStep,
        GrowthParams,
        PDEForward,
    )
    from bayestumor.grid import Grid
    from bayestumor.priors import Priors
    from bayestumor.simulate import simulate
    from bayestumor.synthetic import ImagingParams, simulate_patient
