"""The statistical model: priors, the observation model, the NumPyro model and the problem.

- `Priors`: prior ranges with units and sources (physical or scale-free parametrisation).
- Observation model: one `AbstractModality` per scan kind (`Segmentation` for T1c and FLAIR,
  `PET`), each giving log-likelihood, replicated data, expected image and the imaging
  parameters it needs; everything that touches observations goes through them.
- `tumour_model`: the NumPyro model (priors → forward map → likelihoods).
- `CalibrationProblem`: forward map + data + priors, with the densities samplers need.
"""

from bayestumor.config import DEFAULT_EPSILON as DEFAULT_EPSILON
from bayestumor.config import GROWTH_NAMES_PHYSICAL as GROWTH_NAMES_PHYSICAL
from bayestumor.config import GROWTH_NAMES_SCALE_FREE as GROWTH_NAMES_SCALE_FREE
from bayestumor.config import IMAGING_NAMES as IMAGING_NAMES
from bayestumor.config import LOG_UNIFORM as LOG_UNIFORM
from bayestumor.config import SEED_NAMES as SEED_NAMES
from bayestumor.config import UNITS as UNITS
from bayestumor.config import Priors as Priors
from bayestumor.config import Spec as Spec
from bayestumor.config import bounds as bounds
from bayestumor.config import is_fixed as is_fixed
from bayestumor.model._numpyro import CONDITIONAL_PRIOR_SITES as CONDITIONAL_PRIOR_SITES
from bayestumor.model._numpyro import ModelData as ModelData
from bayestumor.model._numpyro import ScaleFreeMarginal as ScaleFreeMarginal
from bayestumor.model._numpyro import brain_density as brain_density
from bayestumor.model._numpyro import brain_fields as brain_fields
from bayestumor.model._numpyro import brain_values as brain_values
from bayestumor.model._numpyro import modalities_of as modalities_of
from bayestumor.model._numpyro import model_data_from_patient as model_data_from_patient
from bayestumor.model._numpyro import pet_bias_basis as pet_bias_basis
from bayestumor.model._numpyro import sample_growth_params as sample_growth_params
from bayestumor.model._numpyro import sample_imaging_params as sample_imaging_params
from bayestumor.model._numpyro import tumour_model as tumour_model
from bayestumor.model._observation import OBSERVED_SITES as OBSERVED_SITES
from bayestumor.model._observation import PET as PET
from bayestumor.model._observation import AbstractModality as AbstractModality
from bayestumor.model._observation import ClippedNormal as ClippedNormal
from bayestumor.model._observation import Imaging as Imaging
from bayestumor.model._observation import Segmentation as Segmentation
from bayestumor.model._observation import boundary_visibility as boundary_visibility
from bayestumor.model._observation import front_slope as front_slope
from bayestumor.model._observation import imaging_parameter_names as imaging_parameter_names
from bayestumor.model._observation import modality as modality
from bayestumor.model._observation import observation_model as observation_model
from bayestumor.model._observation import visibility_probability as visibility_probability
from bayestumor.model._problem import CalibrationProblem as CalibrationProblem
from bayestumor.model._problem import Position as Position
from bayestumor.model._problem import batched as batched
from bayestumor.model._problem import flatten_draws as flatten_draws
