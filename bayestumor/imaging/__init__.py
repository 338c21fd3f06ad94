"""Imaging: grids, patient anatomy and observations, NIfTI I/O, resampling, templates (NumPy only).

The lowest layer of the package: nothing here imports JAX. Typical use::

    patient = load_patient("Patient-001")            # 1 mm input grid
    roi = patient.resampled(2.0).cropped(margin_mm=30.0)
    density = forward(params)                          # on roi.grid
    save_nifti("density.nii.gz", to_original_space(density, roi.grid, patient.grid), patient.grid)
"""

from bayestumor.imaging._grid import Grid as Grid
from bayestumor.imaging._lesion import (
    LESION_OUTSIDE_WHITE_MATTER_WARNING as LESION_OUTSIDE_WHITE_MATTER_WARNING,
)
from bayestumor.imaging._lesion import LESION_TISSUES as LESION_TISSUES
from bayestumor.imaging._lesion import lesion_tissue_fractions as lesion_tissue_fractions
from bayestumor.imaging._lesion import with_lesion_tissue as with_lesion_tissue
from bayestumor.imaging._nifti import NIFTI_SUFFIXES as NIFTI_SUFFIXES
from bayestumor.imaging._nifti import load_nifti as load_nifti
from bayestumor.imaging._nifti import save_nifti as save_nifti
from bayestumor.imaging._patient import BRAIN_THRESHOLD as BRAIN_THRESHOLD
from bayestumor.imaging._patient import SEGMENTATION_THRESHOLD as SEGMENTATION_THRESHOLD
from bayestumor.imaging._patient import Anatomy as Anatomy
from bayestumor.imaging._patient import Observations as Observations
from bayestumor.imaging._patient import Patient as Patient
from bayestumor.imaging._patient_io import LABEL_CONVENTIONS as LABEL_CONVENTIONS
from bayestumor.imaging._patient_io import PET_PERCENTILE as PET_PERCENTILE
from bayestumor.imaging._patient_io import PET_TOLERATED_RANGE as PET_TOLERATED_RANGE
from bayestumor.imaging._patient_io import TBR_BACKGROUND_MARGIN_MM as TBR_BACKGROUND_MARGIN_MM
from bayestumor.imaging._patient_io import TBR_TUMOUR_THRESHOLD as TBR_TUMOUR_THRESHOLD
from bayestumor.imaging._patient_io import load_patient as load_patient
from bayestumor.imaging._patient_io import save_patient as save_patient
from bayestumor.imaging._resample import average_to_rescaled as average_to_rescaled
from bayestumor.imaging._resample import coarsening_factors as coarsening_factors
from bayestumor.imaging._resample import crop_grid as crop_grid
from bayestumor.imaging._resample import resample_to_grid as resample_to_grid
from bayestumor.imaging._resample import rescaled_grid as rescaled_grid
from bayestumor.imaging._resample import to_original_space as to_original_space
from bayestumor.imaging._templates import load_mni152 as load_mni152
from bayestumor.imaging._templates import make_phantom as make_phantom
