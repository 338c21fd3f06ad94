"""`sample_coarse_to_fine`, the workflow `calibrate` runs on grids finer than its coarse level.

Truths: what the workflow promises by construction — the coarse level is tempered by the fine
level's η (one η, estimated on the fine grid), its chains run `COARSE_THIN` times the draws
asked for and every `COARSE_THIN`-th is carried (as many fine solves as draws asked for), the
result has the draws asked for, and its diagnostics say so. The statistics of the carrying
(weights, transport, moment matching) are tested in tests/inference/test_multilevel.py.
"""

import warnings

import jax

from bayestumor import PDEForward
from bayestumor.errors import DiagnosticsWarning
from bayestumor.inference import SamplerOptions
from bayestumor.model import CalibrationProblem, model_data_from_patient
from bayestumor.workflows import COARSE_THIN, CalibrationConfig, sample_coarse_to_fine
from tests._calibration_problems import FAST_PRIORS, synthetic_patient

FINE_MM, COARSE_MM = 5.0, 10.0


def _problem(patient):
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(
        *FAST_PRIORS.max_diffusion_and_reaction()
    )
    return CalibrationProblem(forward, model_data_from_patient(patient), FAST_PRIORS)


def test_coarse_to_fine_tempers_both_levels_alike_and_carries_thinned_draws():
    patient = synthetic_patient(shape=(24, 24, 24), spacing=FINE_MM)
    fine, coarse = _problem(patient), _problem(patient.resampled(COARSE_MM))
    config = CalibrationConfig(
        spacing_mm=FINE_MM, coarse_spacing_mm=COARSE_MM, likelihood="calibrated", progress=False
    )
    options = SamplerOptions(chains=2, warmup=50, draws=30, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        problem, result, learning_rate = sample_coarse_to_fine(
            fine, coarse, config, options, jax.random.key(0)
        )
    multilevel = result.diagnostics["multilevel"]
    assert 0.0 < learning_rate.value <= 1.0
    assert problem.learning_rate == learning_rate.value
    assert multilevel["coarse_learning_rate"] == learning_rate.value
    assert multilevel["thin"] == COARSE_THIN
    assert multilevel["coarse_spacing_mm"] == COARSE_MM
    # As many fine solves per weighing as draws asked for; the result has those draws.
    assert multilevel["proposals"] == options.chains * options.draws
    assert result.datatree["posterior"]["D_w"].shape == (options.chains, options.draws)
