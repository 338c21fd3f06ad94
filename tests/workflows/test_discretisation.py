"""The discretisation correction's plumbing: the patient's own anatomy on a grid that subdivides
the region of interest, and the option's validation. (Its effect on a fit is measured by
`benchmarks/coverage.py --arms corrected`; the end-to-end test of `test_calibrate` runs it.)"""

import numpy as np
import pytest

from bayestumor.errors import InputError
from bayestumor.forward import PDEForward, block_average, discretisation_offset
from bayestumor.workflows import CalibrationConfig, fine_roi_anatomy, region_of_interest
from tests._calibration_problems import synthetic_patient, true_params


@pytest.mark.parametrize("margin_mm", [20.0, 500.0])
def test_fine_anatomy_subdivides_the_roi_into_the_patients_own_voxels(margin_mm):
    """25 voxels of 5 mm give 13 of 10 mm, the last one half outside the volume: with a margin
    that takes the whole volume the fine crop reaches past it (no tissue there), and its blocks
    still average to the ROI's voxels exactly, as the resampler counts the outside as 0."""
    patient = synthetic_patient(noisy=False, shape=(25, 25, 25), spacing=5.0)
    roi = region_of_interest(patient, CalibrationConfig(spacing_mm=10.0, margin_mm=margin_mm))
    fine = fine_roi_anatomy(patient, roi, 2)
    assert fine.grid.shape == tuple(2 * n for n in roi.grid.shape)
    assert fine.grid.spacing_mm == pytest.approx((5.0, 5.0, 5.0))
    for tissue in ("wm", "gm", "csf"):
        np.testing.assert_allclose(
            block_average(getattr(fine, tissue), 2), getattr(roi.anatomy, tissue), atol=1e-6
        )
    # The two grids nest as the offset needs (it raises otherwise).
    offset = discretisation_offset(
        PDEForward.from_anatomy(roi.anatomy).sized_for(50.0, 10.0),
        PDEForward.from_anatomy(fine).sized_for(50.0, 10.0),
        true_params(),
    )
    assert offset.shape == roi.grid.shape and np.isfinite(offset).all()


def test_no_fine_anatomy_from_scans_coarser_than_the_fine_grid():
    patient = synthetic_patient(noisy=False)  # 10 mm scans
    roi = region_of_interest(patient, CalibrationConfig(spacing_mm=10.0))
    assert fine_roi_anatomy(patient, roi, 2) is None


@pytest.mark.parametrize("refinement", [1, -2, 9])
def test_a_refinement_other_than_0_or_2_to_8_is_refused(refinement):
    with pytest.raises(InputError, match="discretisation_correction"):
        CalibrationConfig(discretisation_correction=refinement)


def test_the_correction_is_refused_with_coarse_to_fine_inference():
    with pytest.raises(InputError, match="coarse-to-fine"):
        CalibrationConfig(spacing_mm=2.0, discretisation_correction=2)
    config = CalibrationConfig(spacing_mm=2.0, coarse_spacing_mm=None, discretisation_correction=2)
    assert not config.coarse_to_fine
