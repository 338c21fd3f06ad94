"""`CalibrationConfig.stepping` chooses the PDE's time stepping of a calibration (``--stepping``
on the command line: tests/workflows/test_calibrate.py).

Independent truth: Heun steps and Strang splitting discretise the same PDE, each within 0.2 %
of a tight reference solve (`benchmarks/forward.py`; tests/forward/test_splitting.py checks
SplitStep's < 1 % against one), so on the same ROI their densities agree to 1 % of the peak.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor import GrowthParams, Observations, Patient, make_phantom
from bayestumor.config import PDE_STEPPINGS, CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.forward import FixedStep, SplitStep
from bayestumor.workflows import build_forward


def _roi() -> Patient:
    anatomy = make_phantom((16, 16, 16), 4.0)
    lesion = np.zeros(anatomy.shape, bool)
    lesion[7:9, 7:9, 7:9] = True
    return Patient(anatomy, Observations(anatomy.grid, t1c=lesion, flair=lesion), "roi")


def test_both_steppings_solve_the_same_pde():
    roi = _roi()
    forwards = {
        name: build_forward(roi, CalibrationConfig(stepping=name)) for name in PDE_STEPPINGS
    }
    assert isinstance(forwards["split"].stepping, SplitStep)
    assert forwards["heun"].stepping == FixedStep(reaction_step=CalibrationConfig().reaction_step)
    center = roi.grid.voxel_to_world([7.5, 7.5, 7.5])
    params = GrowthParams(
        D_w=jnp.float32(0.1),
        rho=jnp.float32(0.03),
        T=jnp.float32(200.0),
        seed_mm=jnp.asarray(center),
    )
    heun, split = (np.asarray(forwards[name](params)) for name in ("heun", "split"))
    assert heun.max() > 0.5  # a grown tumour, not the seed
    np.testing.assert_allclose(split, heun, atol=0.01 * heun.max())


def test_a_wrong_stepping_and_a_heun_bound_without_heun_are_refused():
    with pytest.raises(InputError, match="unknown PDE stepping 'rk4'"):
        CalibrationConfig(stepping="rk4")
    with pytest.raises(InputError, match="reaction_step bounds Heun steps"):
        CalibrationConfig(stepping="split", reaction_step=0.25)
    assert CalibrationConfig(stepping="heun", reaction_step=0.25).reaction_step == 0.25
