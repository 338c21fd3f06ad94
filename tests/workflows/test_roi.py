"""A region of interest that fits the answer: `sample_patient` grows a margin that cuts the
tumour off and samples again (`CalibrationConfig.roi_growth_rounds`)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor import GrowthParams, PDEForward, make_phantom
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import FixedStep
from bayestumor.model import Priors
from bayestumor.posterior import posterior_maps
from bayestumor.workflows import (
    CalibrationConfig,
    ImagingParams,
    sample_patient,
    simulate_patient,
    write_run,
)
from tests._calibration_problems import REACTION_STEP, TRUE_IMAGING

# A lesion smaller than the phantom's brain (10³ voxels inside 12³ at 10 mm): its thresholded
# contours (noisy=False) leave brain voxels around it, into which the tail of u reaches.
TRUTH = GrowthParams(
    D_w=jnp.float32(0.1),
    rho=jnp.float32(0.03),
    T=jnp.float32(200.0),
    seed_mm=jnp.asarray((0.0, 0.0, 0.0), jnp.float32),
)
PRIORS = Priors(
    D_w=(0.05, 0.2),
    rho=(0.015, 0.06),
    T=200.0,
    u_c_t1c=TRUE_IMAGING.u_c_t1c,
    u_c_flair=TRUE_IMAGING.u_c_flair,
    sigma_alpha=TRUE_IMAGING.sigma_alpha,
    b=TRUE_IMAGING.b,
)
CONFIG = CalibrationConfig(
    spacing_mm=10.0,
    margin_mm=0.0,
    chains=1,
    warmup=10,
    draws=10,
    priors=PRIORS,
    stepping="heun",
    reaction_step=REACTION_STEP,
    sampler="smc",
    smc_particles=16,
    smc_mcmc_steps=2,
    progress=False,
    plots=False,
    likelihood="exact",  # η's MAP and sandwich are not under test here (119 s → 81 s without)
)


def _patient():
    anatomy = make_phantom((12, 12, 12), 10.0)
    forward = PDEForward.from_anatomy(anatomy, stepping=FixedStep(reaction_step=REACTION_STEP))
    return simulate_patient(
        anatomy, TRUTH, ImagingParams(), jax.random.key(0), forward=forward, pet=False
    )


def _ctv_at_edge(run) -> bool:
    maps = posterior_maps(run.inference.densities, run.roi.grid, threshold_u=CONFIG.threshold_u)
    return maps.ctv_at_roi_edge


@pytest.mark.slow
def test_a_margin_that_cuts_the_tumour_is_grown_until_the_ctv_fits(tmp_path):
    """Truth: with margin 0 the ROI is the visible lesion's box, and u > u* reaches beyond the
    visible contours (u_c^FLAIR > u*), so the CTV touches the ROI's faces. With growth the final
    ROI is larger, its CTV touches no face, and the margins tried are recorded; with
    ``roi_growth_rounds=0`` the old behaviour (one ROI, the edge warning) stays."""
    patient = _patient()
    lesion = np.argwhere(patient.observations.lesion_mask)
    brain = np.argwhere(patient.anatomy.brain_mask)
    assert np.all(lesion.min(0) > brain.min(0)) or np.all(lesion.max(0) < brain.max(0))

    fixed = sample_patient(patient, CONFIG.replace(roi_growth_rounds=0))
    assert fixed.roi_margins_mm == (0.0,)
    assert _ctv_at_edge(fixed)
    with pytest.warns(DiagnosticsWarning, match="edge of the region of interest"):
        write_run(fixed, tmp_path / "fixed")

    grown = sample_patient(patient, CONFIG)
    margins = grown.roi_margins_mm
    assert len(margins) >= 2 and margins[0] == 0.0
    assert list(margins) == sorted(set(margins))  # strictly growing
    assert grown.config.margin_mm == margins[-1]
    assert np.prod(grown.roi.grid.shape) > np.prod(fixed.roi.grid.shape)
    assert not _ctv_at_edge(grown)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "the CTV reaches the edge", DiagnosticsWarning)
        result = write_run(grown, tmp_path / "grown")
    assert not result.summary["ctv_at_roi_edge"]
    assert result.summary["roi_margin_mm"] == margins[-1]
