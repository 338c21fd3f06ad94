"""Patient anatomy and NIfTI I/O: tissues, tumour observations, grids, resampling and cropping.

Typical use::

    patient = load_patient("Patient-001")            # 1 mm input grid
    roi = patient.resampled(2.0).cropped(margin_mm=30.0)
    density = forward(params)                          # on roi.grid
    save_nifti("density.nii.gz", to_original_space(density, roi.grid, patient.grid), patient.grid)
"""

from bayestumor._nifti import load_nifti, save_nifti
from bayestumor._patient import (
    BRAIN_THRESHOLD,
    SEGMENTATION_THRESHOLD,
    Anatomy,
    Observations,
    Patient,
)
from bayestumor._patient_io import load_patient
from bayestumor._resample import resample_to_grid, to_original_space
from bayestumor._templates import load_mni152, make_phantom

__all__ = [
    "BRAIN_THRESHOLD",
    "SEGMENTATION_THRESHOLD",
    "Anatomy",
    "Observations",
    "Patient",
    "load_mni152",
    "load_nifti",
    "load_patient",
    "make_phantom",
    "resample_to_grid",
    "save_nifti",
    "to_original_space",
]
