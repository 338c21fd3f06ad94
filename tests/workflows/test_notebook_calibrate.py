"""The calibration notebook executes top to bottom at tiny size, stored without outputs, and
recovers the synthetic patient's parameters.

Independent truth: the parameters the notebook's synthetic patient was grown with
(``true_values``: D_w, ρ and the seed; T and the imaging parameters are fixed by its priors).
"""

import os
from pathlib import Path

from tests._notebooks import execute_with_probe

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "01_calibrate_patient.ipynb"
PROBE = """import json
print(json.dumps({
    "parameters": result.summary["parameters"],
    "truth": true_values,
    "ctv_ml": result.summary["ctv_ml"],
    "flair_ml": result.summary["flair_ml"],
}, default=float))"""
"""Appended to the executed notebook (in memory only): what its kernel ended with, as JSON."""


def test_calibration_notebook_runs_and_recovers_the_synthetic_truth(tmp_path, monkeypatch):
    """No error output; figures are produced (trace, rank, pair, density maps: PNG outputs with
    the inline backend); every true parameter lies within 4 posterior sds (+ 2 mm for the
    seed: a fifth of a voxel, for the 10 mm grid) of its posterior mean; the data shrink the
    D_w and ρ priors (log-uniform over a factor 25 and 20) to sds under 25 % of the truth; and
    the printed summary shows the CTV and FLAIR volumes."""
    monkeypatch.setenv("BAYESTUMOR_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    outputs, probe = execute_with_probe(NOTEBOOK, tmp_path, PROBE, timeout=400)
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3
    printed = "".join(str(o.get("text", "")) for o in outputs)
    assert "CTV" in printed and "visible FLAIR" in printed
    parameters, truth = probe["parameters"], probe["truth"]
    assert set(truth) == {"D_w", "rho", "seed_x", "seed_y", "seed_z"}
    for name, value in truth.items():
        stats = parameters[name]
        allowance = 2.0 if name.startswith("seed") else 0.0
        assert abs(stats["mean"] - value) <= 4 * stats["sd"] + allowance, (name, value, stats)
    for name in ("D_w", "rho"):
        assert parameters[name]["sd"] < 0.25 * truth[name], (name, parameters[name])
    assert probe["ctv_ml"] > 0 and probe["flair_ml"] > 0
