"""Forward maps from growth parameters to tumour-cell density: the PDE and (later) a surrogate."""

from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.forward._pde import AdaptiveStep, FixedStep, PDEForward, relative_diffusivity

__all__ = [
    "AbstractForwardModel",
    "AdaptiveStep",
    "FixedStep",
    "GrowthParams",
    "PDEForward",
    "relative_diffusivity",
]
