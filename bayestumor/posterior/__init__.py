"""Posterior products from density draws: statistics, infiltration probability, target volumes,
and the checks that say when a fit cannot explain the scans (`predictive_checks`,
`parameters_at_prior_bounds`, `target_volumes`), and the reported parameters' model-form error
(`with_model_error`)."""

from bayestumor.config import DEFAULT_CTV_PROBABILITY as DEFAULT_CTV_PROBABILITY
from bayestumor.config import DEFAULT_THRESHOLD_U as DEFAULT_THRESHOLD_U
from bayestumor.posterior._checks import DICE_MIN as DICE_MIN
from bayestumor.posterior._checks import FLAIR_INSIDE_TARGET_MIN as FLAIR_INSIDE_TARGET_MIN
from bayestumor.posterior._checks import TARGET_PROBABILITIES as TARGET_PROBABILITIES
from bayestumor.posterior._checks import dice as dice
from bayestumor.posterior._checks import parameters_at_prior_bounds as parameters_at_prior_bounds
from bayestumor.posterior._checks import predictive_checks as predictive_checks
from bayestumor.posterior._checks import target_volumes as target_volumes
from bayestumor.posterior._maps import DEFAULT_QUANTILES as DEFAULT_QUANTILES
from bayestumor.posterior._maps import PosteriorMaps as PosteriorMaps
from bayestumor.posterior._maps import posterior_maps as posterior_maps
from bayestumor.posterior._maps import write_posterior_maps as write_posterior_maps
from bayestumor.posterior._model_error import model_error_kind as model_error_kind
from bayestumor.posterior._model_error import model_error_sd as model_error_sd
from bayestumor.posterior._model_error import with_model_error as with_model_error
from bayestumor.posterior._plans import BRATS2021_LABELS as BRATS2021_LABELS
from bayestumor.posterior._plans import PREDICTGBM_LABELS as PREDICTGBM_LABELS
from bayestumor.posterior._plans import (
    PREDICTGBM_RECURRENCE_LABELS as PREDICTGBM_RECURRENCE_LABELS,
)
from bayestumor.posterior._plans import STANDARD_MARGIN_MM as STANDARD_MARGIN_MM
from bayestumor.posterior._plans import TUMOUR_ROLES as TUMOUR_ROLES
from bayestumor.posterior._plans import CoverageCurve as CoverageCurve
from bayestumor.posterior._plans import PlanEvaluation as PlanEvaluation
from bayestumor.posterior._plans import TumourLabels as TumourLabels
from bayestumor.posterior._plans import TumourMasks as TumourMasks
from bayestumor.posterior._plans import describe_labels as describe_labels
from bayestumor.posterior._plans import distance_to_mask_mm as distance_to_mask_mm
from bayestumor.posterior._plans import evaluate_plans as evaluate_plans
from bayestumor.posterior._plans import less_tissue as less_tissue
from bayestumor.posterior._plans import margin_coverage_curve as margin_coverage_curve
from bayestumor.posterior._plans import missed_voxels as missed_voxels
from bayestumor.posterior._plans import plan_ranking as plan_ranking
from bayestumor.posterior._plans import recurrence_coverage as recurrence_coverage
from bayestumor.posterior._plans import standard_plan as standard_plan
from bayestumor.posterior._plans import top_k_coverage_curve as top_k_coverage_curve
from bayestumor.posterior._plans import top_k_plan as top_k_plan
from bayestumor.posterior._plans import tumour_masks as tumour_masks
