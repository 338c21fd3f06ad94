"""benchmarks/plans.py runs end to end at smoke size and writes the JSON it promises."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "plans.py"


@pytest.mark.slow
def test_plans_benchmark_quick(tmp_path):
    # Truth: the record's fields exist and are coverages in [0, 1] / volumes > 0; the model plan
    # has exactly the standard plan's volume by definition, so both coverages share plan_ml.
    out = tmp_path / "plans.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "cov model" in completed.stdout
    record = json.loads(out.read_text())
    assert record["quick"] is True and record["wall_s"] > 0
    assert record["settings"]["calibration"]["sampler"] == "smc"
    (row,) = record["patients"]
    for key in (
        "coverage_standard",
        "coverage_model",
        "coverage_standard_all",
        "coverage_model_all",
    ):
        assert 0.0 <= row[key] <= 1.0, key
    for key in ("plan_ml", "recurrence_ml", "core_ml"):
        assert row[key] > 0, key
    for key in ("full_coverage_ml_standard", "full_coverage_ml_model"):
        assert math.isnan(row[key]) or row[key] > 0, key
    assert set(record["mean"]) >= {"coverage_standard", "coverage_model", "full_coverage_ml_model"}
