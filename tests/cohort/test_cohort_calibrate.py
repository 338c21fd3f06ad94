"""End to end: the cohort engine with bayestumor's real calibration (the default task), tiny size."""

import pytest

from bayestumor.cohort import DONE_FILE, FOREST_PNG, read_record, run_cohort, write_synthetic_cohort

calibrate = pytest.importorskip("bayestumor.workflows._calibrate")

TINY = {"spacing_mm": 8.0, "chains": 1, "warmup": 30, "draws": 30, "plots": False, "seed": 3}


@pytest.mark.slow
def test_default_task_calibrates_a_synthetic_cohort_and_reuses_it(tmp_path):
    cohort_dir, out_dir = tmp_path / "cohort", tmp_path / "out"
    write_synthetic_cohort(cohort_dir, n_patients=2)
    config = calibrate.CalibrationConfig(**TINY)

    result = run_cohort(cohort_dir, out_dir, config, n_workers=2, progress=False)

    assert result.failed == (), result.table[["patient", "error"]]
    for name in result.table["patient"]:
        d_w = read_record(out_dir / name)["summary"]["parameters"]["D_w"]
        assert d_w["q05"] <= d_w["mean"] <= d_w["q95"]
        assert (out_dir / name / DONE_FILE).is_file()
    assert (out_dir / FOREST_PNG).is_file()
    again = run_cohort(cohort_dir, out_dir, config, n_workers=2, progress=False)
    assert again.computed == ()
