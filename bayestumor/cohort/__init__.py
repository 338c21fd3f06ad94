"""Cohort calibration on Dask: every patient of a cohort, locally or on a cluster, resumable.

Typical use::

    result = run_cohort("cohort/", "out/", CalibrationConfig(forward="surrogate"))
    result.table                     # also out/cohort.csv and out/cohort.parquet
"""

from bayestumor.cohort._engine import (
    DONE_FILE,
    ERROR_FILE,
    FOREST_PNG,
    TABLE_CSV,
    TABLE_PARQUET,
    CohortResult,
    PatientTask,
    calibrate_task,
    local_client,
    read_record,
    run_cohort,
    worker_environment,
)
from bayestumor.cohort._keys import content_hash, discover_patients, patient_seed
from bayestumor.cohort._synthetic import write_synthetic_cohort
from bayestumor.cohort._table import cohort_table, parameter_column, plot_cohort_forest

__all__ = [
    "DONE_FILE",
    "ERROR_FILE",
    "FOREST_PNG",
    "TABLE_CSV",
    "TABLE_PARQUET",
    "CohortResult",
    "PatientTask",
    "calibrate_task",
    "cohort_table",
    "content_hash",
    "discover_patients",
    "local_client",
    "parameter_column",
    "patient_seed",
    "plot_cohort_forest",
    "read_record",
    "run_cohort",
    "worker_environment",
    "write_synthetic_cohort",
]
