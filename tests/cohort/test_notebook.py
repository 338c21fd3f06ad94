"""The cohort notebook executes top to bottom (kernel ``python3``), stored without outputs, and its
stand-in task recovers the synthetic cohort's known parameters.

Independent truth: the parameters `write_synthetic_cohort` grew each patient's tumour with
(the notebook's ``truth`` table); the corrupt patient it writes itself.
"""

import math
from pathlib import Path

from tests._notebooks import execute_with_probe

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "04_cohort.ipynb"
PROBE = """import json
print(json.dumps({
    "comparison": comparison.reset_index().to_dict(orient="records"),
    "status": result.table.set_index("patient")["status"].to_dict(),
    "reused": list(again.reused),
}, default=float))"""
"""Appended to the executed notebook (in memory only): what its kernel ended with, as JSON."""


def test_cohort_notebook_runs_and_its_estimates_match_the_truth(tmp_path):
    """No error output; the forest plot is drawn (a PNG output); the six synthetic patients are
    done and the corrupt one is an error; the second run reuses all seven; and the stand-in
    recovers what one FLAIR contour at a known T determines: the front's speed, 2√(D_w ρ)
    (Fisher–KPP), so √(D_w ρ) of the estimated means lies within a factor 1.54 of the truth —
    one step in each of the stand-in's 7-point log grids (×1.62 in D_w, ×1.47 in ρ; ×1.27 and
    ×1.21 in √(D_w ρ)). D_w and ρ one by one are not identified by one contour: measured, they
    stray along the ridge by up to ×0.48 and ×1.33 while √(D_w ρ) stays within ×0.79."""
    outputs, probe = execute_with_probe(NOTEBOOK, tmp_path, PROBE, timeout=300)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "cohort_demo" / "out" / "cohort.parquet").is_file()
    status = probe["status"]
    assert status.pop("patient-999") == "error"
    assert sorted(status) == [f"patient-{i:03d}" for i in range(1, 7)]
    assert set(status.values()) == {"done"}
    assert len(probe["reused"]) == 7
    tolerance = math.sqrt((0.09 / 0.005) ** (1 / 6) * (0.03 / 0.003) ** (1 / 6))
    for row in probe["comparison"]:
        estimate = math.sqrt(row["parameters.D_w.mean"] * row["parameters.rho.mean"])
        ratio = estimate / math.sqrt(row["D_w"] * row["rho"])
        assert 1 / tolerance <= ratio <= tolerance, (row, ratio)
