"""bayestumor: Bayesian calibration of brain-tumour growth models to a patient's scans."""

from bayestumor.errors import BayesTumorError, DiagnosticsWarning, InputError
from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.grid import Grid

__version__ = "0.1.0"

__all__ = [
    "AbstractForwardModel",
    "BayesTumorError",
    "DiagnosticsWarning",
    "Grid",
    "GrowthParams",
    "InputError",
    "__version__",
]
