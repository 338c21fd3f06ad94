"""Inference: a `CalibrationProblem` in, posterior draws out.

Samplers sit behind one registry (`run_inference`, `register_sampler`, `SAMPLERS`): NumPyro
NUTS, BlackJAX NUTS and BlackJAX adaptive tempered SMC. Every sampler returns the same
`SamplerRun`, which `build_result` turns into an `InferenceResult`: an ArviZ DataTree (posterior,
sample_stats, log_likelihood, posterior_predictive, observed_data, constant_data) plus a
diagnostics dict. `reweight` corrects draws of one problem towards another (PSIS); `refine_posterior` carries a
coarse-grid posterior to a fine grid (coarse-to-fine inference). `misfit_learning_rate` sets
the power of the likelihood from the spatial correlation of the misfit at the MAP.
"""

from bayestumor.inference._blackjax_nuts import sample_blackjax_nuts as sample_blackjax_nuts
from bayestumor.inference._diagnostics import ESS_PER_CHAIN_MIN as ESS_PER_CHAIN_MIN
from bayestumor.inference._diagnostics import RHAT_MAX as RHAT_MAX
from bayestumor.inference._diagnostics import diagnose as diagnose
from bayestumor.inference._diagnostics import format_diagnostics as format_diagnostics
from bayestumor.inference._diagnostics import importance_failures as importance_failures
from bayestumor.inference._learning_rate import DERIVED_INTEREST as DERIVED_INTEREST
from bayestumor.inference._learning_rate import INTEREST_SITES as INTEREST_SITES
from bayestumor.inference._learning_rate import LearningRate as LearningRate
from bayestumor.inference._learning_rate import coordinate_names as coordinate_names
from bayestumor.inference._learning_rate import derived_gradients as derived_gradients
from bayestumor.inference._learning_rate import kernel_smoothed as kernel_smoothed
from bayestumor.inference._learning_rate import misfit_learning_rate as misfit_learning_rate
from bayestumor.inference._learning_rate import misfit_sandwich as misfit_sandwich
from bayestumor.inference._learning_rate import sandwich_learning_rate as sandwich_learning_rate
from bayestumor.inference._map import curvature_covariance as curvature_covariance
from bayestumor.inference._map import find_map as find_map
from bayestumor.inference._map import laplace_covariance as laplace_covariance
from bayestumor.inference._map import log_density_hessian as log_density_hessian
from bayestumor.inference._map import polished_map as polished_map
from bayestumor.inference._multilevel import Transport as Transport
from bayestumor.inference._multilevel import laplace_transport as laplace_transport
from bayestumor.inference._multilevel import match_moments as match_moments
from bayestumor.inference._multilevel import refine_posterior as refine_posterior
from bayestumor.inference._multilevel import systematic_resample as systematic_resample
from bayestumor.inference._numpyro_nuts import sample_numpyro_nuts as sample_numpyro_nuts
from bayestumor.inference._registry import SAMPLERS as SAMPLERS
from bayestumor.inference._registry import Sampler as Sampler
from bayestumor.inference._registry import SamplerOptions as SamplerOptions
from bayestumor.inference._registry import chain_starts as chain_starts
from bayestumor.inference._registry import register_sampler as register_sampler
from bayestumor.inference._registry import run_inference as run_inference
from bayestumor.inference._registry import sample as sample
from bayestumor.inference._result import DENSITY_DTYPE as DENSITY_DTYPE
from bayestumor.inference._result import POINTWISE_VALUES_MAX as POINTWISE_VALUES_MAX
from bayestumor.inference._result import InferenceResult as InferenceResult
from bayestumor.inference._result import build_result as build_result
from bayestumor.inference._result import density_draws as density_draws
from bayestumor.inference._result import pointwise_draw_step as pointwise_draw_step
from bayestumor.inference._reweight import FLAT_LOG_RATIOS as FLAT_LOG_RATIOS
from bayestumor.inference._reweight import PARETO_K_GOOD as PARETO_K_GOOD
from bayestumor.inference._reweight import Refinement as Refinement
from bayestumor.inference._reweight import format_refinement as format_refinement
from bayestumor.inference._reweight import psis as psis
from bayestumor.inference._reweight import reweight as reweight
from bayestumor.inference._run import SamplerRun as SamplerRun
from bayestumor.inference._smc import sample_smc as sample_smc
