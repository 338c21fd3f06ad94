"""Workflows: the layer that reads and writes files and prints — calibrate, report, simulate.

- `calibrate_patient` = `sample_patient` (load, validate, crop, sample; writes nothing) +
  `write_run` (the stored run and its report: maps, figures, summary); `report_directory`
  re-renders the report of a stored run without sampling.
- `simulate`, `write_simulation`: forward simulation on a patient's or the MNI152 anatomy.
- `simulate_patient`, `demo_patient`: synthetic patients with known parameters;
  `stress_case`: patients whose scans the calibration model did not generate (the stress suite).
"""

from bayestumor.config import CalibrationConfig as CalibrationConfig
from bayestumor.workflows._calibrate import COARSE_THIN as COARSE_THIN
from bayestumor.workflows._calibrate import calibrate_patient as calibrate_patient
from bayestumor.workflows._calibrate import calibrated_problem as calibrated_problem
from bayestumor.workflows._calibrate import check_against_pde as check_against_pde
from bayestumor.workflows._calibrate import corrected_problem as corrected_problem
from bayestumor.workflows._calibrate import sample_coarse_to_fine as sample_coarse_to_fine
from bayestumor.workflows._calibrate import sample_patient as sample_patient
from bayestumor.workflows._evaluate import EvaluationInputs as EvaluationInputs
from bayestumor.workflows._evaluate import EvaluationResult as EvaluationResult
from bayestumor.workflows._evaluate import PatientEvaluation as PatientEvaluation
from bayestumor.workflows._evaluate import curve_table as curve_table
from bayestumor.workflows._evaluate import evaluate_directory as evaluate_directory
from bayestumor.workflows._evaluate import evaluate_patient as evaluate_patient
from bayestumor.workflows._evaluate import evaluation_table as evaluation_table
from bayestumor.workflows._evaluate import find_evaluation_inputs as find_evaluation_inputs
from bayestumor.workflows._evaluate import format_evaluation as format_evaluation
from bayestumor.workflows._evaluate import is_patient_directory as is_patient_directory
from bayestumor.workflows._evaluate import plot_coverage as plot_coverage
from bayestumor.workflows._html import report_volumes as report_volumes
from bayestumor.workflows._html import write_report_html as write_report_html
from bayestumor.workflows._plots import plot_density_slices as plot_density_slices
from bayestumor.workflows._plots import plot_simulation_slices as plot_simulation_slices
from bayestumor.workflows._plots import plot_trace as plot_trace
from bayestumor.workflows._predict_gbm import PREDICT_GBM_CONFIG as PREDICT_GBM_CONFIG
from bayestumor.workflows._predict_gbm import PREDICT_GBM_ROLES as PREDICT_GBM_ROLES
from bayestumor.workflows._predict_gbm import PredictGBMResult as PredictGBMResult
from bayestumor.workflows._predict_gbm import find_predict_gbm_patients as find_predict_gbm_patients
from bayestumor.workflows._predict_gbm import predict_gbm as predict_gbm
from bayestumor.workflows._predict_gbm import predict_gbm_patient as predict_gbm_patient
from bayestumor.workflows._report import CalibrationResult as CalibrationResult
from bayestumor.workflows._report import format_summary as format_summary
from bayestumor.workflows._report import report_directory as report_directory
from bayestumor.workflows._report import summarise as summarise
from bayestumor.workflows._report import write_run as write_run
from bayestumor.workflows._setup import CalibrationRun as CalibrationRun
from bayestumor.workflows._setup import DiscretisationCorrection as DiscretisationCorrection
from bayestumor.workflows._setup import build_forward as build_forward
from bayestumor.workflows._setup import build_problem as build_problem
from bayestumor.workflows._setup import calibration_spacing_mm as calibration_spacing_mm
from bayestumor.workflows._setup import fine_roi_anatomy as fine_roi_anatomy
from bayestumor.workflows._setup import region_of_interest as region_of_interest
from bayestumor.workflows._setup import validate_patient as validate_patient
from bayestumor.workflows._simulate import MNI152_DEFAULT_SEED_MM as MNI152_DEFAULT_SEED_MM
from bayestumor.workflows._simulate import Simulation as Simulation
from bayestumor.workflows._simulate import simulate as simulate
from bayestumor.workflows._simulate import write_simulation as write_simulation
from bayestumor.workflows._stress import SOLVER_REACTION_STEP as SOLVER_REACTION_STEP
from bayestumor.workflows._stress import STRESS_CONFIGURATIONS as STRESS_CONFIGURATIONS
from bayestumor.workflows._stress import StressCase as StressCase
from bayestumor.workflows._stress import displaced_mask as displaced_mask
from bayestumor.workflows._stress import explicit_euler_fk as explicit_euler_fk
from bayestumor.workflows._stress import smooth_field as smooth_field
from bayestumor.workflows._stress import stress_case as stress_case
from bayestumor.workflows._synthetic import DEMO_SEED_MNI_MM as DEMO_SEED_MNI_MM
from bayestumor.workflows._synthetic import DEMO_TRUTH as DEMO_TRUTH
from bayestumor.workflows._synthetic import ImagingParams as ImagingParams
from bayestumor.workflows._synthetic import demo_patient as demo_patient
from bayestumor.workflows._synthetic import simulate_patient as simulate_patient
