"""Workflows: the layer that reads and writes files and prints — calibrate, report, simulate.

- `calibrate_patient` = `sample_patient` (load, validate, crop, sample) + `write_report`
  (maps, figures, summary); `report_from_directory` re-renders a stored run without sampling.
- `simulate`, `write_simulation`: forward simulation on a patient's or the MNI152 anatomy.
- `simulate_patient`, `demo_patient`: synthetic patients with known parameters.
"""

from bayestumor.workflows._calibrate import CalibrationConfig as CalibrationConfig
from bayestumor.workflows._calibrate import CalibrationResult as CalibrationResult
from bayestumor.workflows._calibrate import build_forward as build_forward
from bayestumor.workflows._calibrate import calibrate_patient as calibrate_patient
from bayestumor.workflows._calibrate import check_against_pde as check_against_pde
from bayestumor.workflows._calibrate import format_summary as format_summary
from bayestumor.workflows._calibrate import region_of_interest as region_of_interest
from bayestumor.workflows._calibrate import validate_patient as validate_patient
from bayestumor.workflows._plots import plot_density_slices as plot_density_slices
from bayestumor.workflows._plots import plot_simulation_slices as plot_simulation_slices
from bayestumor.workflows._plots import plot_trace as plot_trace
from bayestumor.workflows._simulate import MNI152_DEFAULT_SEED_MM as MNI152_DEFAULT_SEED_MM
from bayestumor.workflows._simulate import Simulation as Simulation
from bayestumor.workflows._simulate import simulate as simulate
from bayestumor.workflows._simulate import write_simulation as write_simulation
from bayestumor.workflows._synthetic import DEMO_SEED_MNI_MM as DEMO_SEED_MNI_MM
from bayestumor.workflows._synthetic import DEMO_TRUTH as DEMO_TRUTH
from bayestumor.workflows._synthetic import ImagingParams as ImagingParams
from bayestumor.workflows._synthetic import demo_patient as demo_patient
from bayestumor.workflows._synthetic import simulate_patient as simulate_patient
