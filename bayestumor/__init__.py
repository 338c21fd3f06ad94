"""bayestumor: Bayesian calibration of brain-tumour growth models to a patient's scans.

The package is layered (``docs/architecture.md``); each layer is a subpackage with one public
face: `bayestumor.imaging`, `bayestumor.forward`, `bayestumor.model`, `bayestumor.inference`,
`bayestumor.posterior`, `bayestumor.workflows`, `bayestumor.cohort`, `bayestumor.radiotherapy`,
`bayestumor.cli`; `bayestumor.config`, `bayestumor.errors` and `bayestumor.utils` underneath.
The most used names are also available here. They are imported on first use (PEP 562), so
``import bayestumor`` — and with it the command line's ``--help`` — does not start JAX.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name → the subpackage face that defines it.
_FACES = {
    "BayesTumorError": "bayestumor.errors",
    "DiagnosticsWarning": "bayestumor.errors",
    "InputError": "bayestumor.errors",
    "SolverError": "bayestumor.errors",
    "CalibrationConfig": "bayestumor.config",
    "Priors": "bayestumor.config",
    "Anatomy": "bayestumor.imaging",
    "Grid": "bayestumor.imaging",
    "Observations": "bayestumor.imaging",
    "Patient": "bayestumor.imaging",
    "load_mni152": "bayestumor.imaging",
    "load_nifti": "bayestumor.imaging",
    "load_patient": "bayestumor.imaging",
    "make_phantom": "bayestumor.imaging",
    "resample_to_grid": "bayestumor.imaging",
    "save_nifti": "bayestumor.imaging",
    "save_patient": "bayestumor.imaging",
    "to_original_space": "bayestumor.imaging",
    "AbstractForwardModel": "bayestumor.forward",
    "AdaptiveStep": "bayestumor.forward",
    "FixedStep": "bayestumor.forward",
    "GrowthParams": "bayestumor.forward",
    "PDEForward": "bayestumor.forward",
    "AbstractModality": "bayestumor.model",
    "CalibrationProblem": "bayestumor.model",
    "run_inference": "bayestumor.inference",
    "posterior_maps": "bayestumor.posterior",
    "CalibrationResult": "bayestumor.workflows",
    "ImagingParams": "bayestumor.workflows",
    "calibrate_patient": "bayestumor.workflows",
    "report_directory": "bayestumor.workflows",
    "sample_patient": "bayestumor.workflows",
    "simulate": "bayestumor.workflows",
    "simulate_patient": "bayestumor.workflows",
}

__all__ = [  # noqa: RUF022 (kept in the order of _FACES' layers)
    "__version__",
    "BayesTumorError",
    "DiagnosticsWarning",
    "InputError",
    "SolverError",
    "CalibrationConfig",
    "Priors",
    "Anatomy",
    "Grid",
    "Observations",
    "Patient",
    "load_mni152",
    "load_nifti",
    "load_patient",
    "make_phantom",
    "resample_to_grid",
    "save_nifti",
    "save_patient",
    "to_original_space",
    "AbstractForwardModel",
    "AdaptiveStep",
    "FixedStep",
    "GrowthParams",
    "PDEForward",
    "AbstractModality",
    "CalibrationProblem",
    "run_inference",
    "posterior_maps",
    "CalibrationResult",
    "ImagingParams",
    "calibrate_patient",
    "report_directory",
    "sample_patient",
    "simulate",
    "simulate_patient",
]


def __getattr__(name: str):
    if name in _FACES:
        value = getattr(importlib.import_module(_FACES[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'bayestumor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FACES})
