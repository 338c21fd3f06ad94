"""Forward maps from growth parameters to tumour-cell density: the PDE and (later) a surrogate."""

from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.forward._corrected import CorrectedForward as CorrectedForward
from bayestumor.forward._corrected import block_average as block_average
from bayestumor.forward._corrected import discretisation_offset as discretisation_offset
from bayestumor.forward._pde import DEFAULT_GM_RATIO as DEFAULT_GM_RATIO
from bayestumor.forward._pde import AdaptiveStep, FixedStep, PDEForward, relative_diffusivity
from bayestumor.forward._reduced import OPTIONAL_FEATURES as OPTIONAL_FEATURES
from bayestumor.forward._reduced import ReducedForward as ReducedForward
from bayestumor.forward._reduced import growth_features as growth_features
from bayestumor.forward._reference import MATCHED_LEVELS as MATCHED_LEVELS
from bayestumor.forward._reference import RadialGrid as RadialGrid
from bayestumor.forward._reference import matched_reference_growth as matched_reference_growth
from bayestumor.forward._reference import radial_grid as radial_grid
from bayestumor.forward._seed import DEFAULT_SEED_SIGMA_MM as DEFAULT_SEED_SIGMA_MM
from bayestumor.forward._seed import HEAT_KERNEL_THRESHOLD as HEAT_KERNEL_THRESHOLD
from bayestumor.forward._seed import REFERENCE_SEED as REFERENCE_SEED
from bayestumor.forward._seed import SEED_SHAPES as SEED_SHAPES
from bayestumor.forward._seed import TUMOR_GROWTH_TOOLKIT_SEED as TUMOR_GROWTH_TOOLKIT_SEED
from bayestumor.forward._seed import gaussian_seed as gaussian_seed
from bayestumor.forward._seed import referenced_growth as referenced_growth
from bayestumor.forward._seed import seed_density as seed_density
from bayestumor.forward._seed import seed_moments as seed_moments
from bayestumor.forward._splitting import SplitStep as SplitStep

__all__ = [
    "DEFAULT_GM_RATIO",
    "DEFAULT_SEED_SIGMA_MM",
    "HEAT_KERNEL_THRESHOLD",
    "MATCHED_LEVELS",
    "OPTIONAL_FEATURES",
    "REFERENCE_SEED",
    "SEED_SHAPES",
    "TUMOR_GROWTH_TOOLKIT_SEED",
    "AbstractForwardModel",
    "AdaptiveStep",
    "CorrectedForward",
    "FixedStep",
    "GrowthParams",
    "PDEForward",
    "RadialGrid",
    "ReducedForward",
    "SplitStep",
    "block_average",
    "discretisation_offset",
    "gaussian_seed",
    "growth_features",
    "matched_reference_growth",
    "radial_grid",
    "referenced_growth",
    "relative_diffusivity",
    "seed_density",
    "seed_moments",
]
