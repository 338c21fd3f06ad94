"""Configuration as plain data: prior ranges (`Priors`) and calibration options (`CalibrationConfig`).

The lowest layer beside `bayestumor.errors` and `bayestumor.utils`: pure Python, no JAX, so the
command line can build its parser and show every default in well under a second.
"""

from bayestumor.config._calibration import BUILTIN_SAMPLERS as BUILTIN_SAMPLERS
from bayestumor.config._calibration import DEFAULT_COARSE_SPACING_MM as DEFAULT_COARSE_SPACING_MM
from bayestumor.config._calibration import DEFAULT_CTV_PROBABILITY as DEFAULT_CTV_PROBABILITY
from bayestumor.config._calibration import DEFAULT_EPSILON as DEFAULT_EPSILON
from bayestumor.config._calibration import DEFAULT_MISFIT_LENGTH_MM as DEFAULT_MISFIT_LENGTH_MM
from bayestumor.config._calibration import DEFAULT_SPACING_MM as DEFAULT_SPACING_MM
from bayestumor.config._calibration import DEFAULT_THRESHOLD_U as DEFAULT_THRESHOLD_U
from bayestumor.config._calibration import FORWARD_KINDS as FORWARD_KINDS
from bayestumor.config._calibration import HEAT_KERNEL_THRESHOLD as HEAT_KERNEL_THRESHOLD
from bayestumor.config._calibration import LESION_TISSUES as LESION_TISSUES
from bayestumor.config._calibration import LIKELIHOODS as LIKELIHOODS
from bayestumor.config._calibration import PDE_STEPPINGS as PDE_STEPPINGS
from bayestumor.config._calibration import PET_NORMALISATIONS as PET_NORMALISATIONS
from bayestumor.config._calibration import SEED_SHAPES as SEED_SHAPES
from bayestumor.config._calibration import TUMOUR_LABEL_CONVENTIONS as TUMOUR_LABEL_CONVENTIONS
from bayestumor.config._calibration import CalibrationConfig as CalibrationConfig
from bayestumor.config._model_error import MODEL_ERRORS as MODEL_ERRORS
from bayestumor.config._model_error import STRESS_SUITE_MODEL_ERROR as STRESS_SUITE_MODEL_ERROR
from bayestumor.config._model_error import STRESS_SUITE_SOURCE as STRESS_SUITE_SOURCE
from bayestumor.config._priors import GM_RATIO_RANGE as GM_RATIO_RANGE
from bayestumor.config._priors import GROWTH_NAMES_PHYSICAL as GROWTH_NAMES_PHYSICAL
from bayestumor.config._priors import GROWTH_NAMES_SCALE_FREE as GROWTH_NAMES_SCALE_FREE
from bayestumor.config._priors import IMAGING_NAMES as IMAGING_NAMES
from bayestumor.config._priors import LOG_UNIFORM as LOG_UNIFORM
from bayestumor.config._priors import PET_BIAS_SCALE_MM as PET_BIAS_SCALE_MM
from bayestumor.config._priors import PET_BIAS_SD as PET_BIAS_SD
from bayestumor.config._priors import SEED_AMPLITUDE_RANGE as SEED_AMPLITUDE_RANGE
from bayestumor.config._priors import SEED_NAMES as SEED_NAMES
from bayestumor.config._priors import SEED_SIGMA_RANGE_MM as SEED_SIGMA_RANGE_MM
from bayestumor.config._priors import UNITS as UNITS
from bayestumor.config._priors import VISIBILITIES as VISIBILITIES
from bayestumor.config._priors import Priors as Priors
from bayestumor.config._priors import Spec as Spec
from bayestumor.config._priors import bounds as bounds
from bayestumor.config._priors import is_fixed as is_fixed
