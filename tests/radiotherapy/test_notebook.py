"""The radiotherapy notebook executes top to bottom (kernel ``python3``, small mode as in CI),
stored without outputs, and what it shows holds against the known truth.

Independent truth: the synthetic cohort's noise-free curves and its held-out (last) visits.
"""

from pathlib import Path

import pytest

from tests._notebooks import execute_with_probe

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "03_radiotherapy_bands.ipynb"
PROBE = """import json
row = pooled_report.per_series[patient]
print(json.dumps({
    "small": SMALL,
    "n_series": len(series),
    "patient_fitted_days": series[patient].time_days[:-1].tolist(),
    "held_out": {k: row[k] for k in ("heldout_days", "observed", "lower_0.95", "upper_0.95")},
    "pooled_summary": pooled_report.summary,
    "boot_summary": boot_report.summary,
    "divergences": pooled.diagnostics["divergences"],
    "true_at_fitted": cohort.true_burden(
        patient, series[patient].time_days[:-1]).tolist(),
    "grid_days": np.asarray(pooled.grid_days[patient]).tolist(),
    "curve_quantiles": np.asarray(pooled.curve_quantiles[patient]).tolist(),
}, default=float))"""
"""Appended to the executed notebook (in memory only): what its kernel ended with, as JSON."""


@pytest.mark.slow
def test_notebook_runs_and_its_bands_hold(tmp_path, monkeypatch):
    """No error output and a figure; small mode; no divergent NUTS transition; as the notebook's
    text says, the displayed patient's pooled 95 % predictive band contains its held-out visit;
    the true curve lies inside the 95 % band of the curve at every fitted visit; every series
    is scored by the pooled forecast, and the bootstrap scores fewer or as many."""
    import numpy as np

    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("BAYESTUMOR_NOTEBOOK_SMALL", "1")
    outputs, probe = execute_with_probe(NOTEBOOK, tmp_path, PROBE, timeout=600)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert probe["small"] is True
    assert probe["divergences"] <= 3  # ≤ 2 % of 150 draws: stray ones tolerated, not more
    held = probe["held_out"]
    assert held["lower_0.95"] <= held["observed"] <= held["upper_0.95"], held
    grid = np.asarray(probe["grid_days"])
    fitted = np.asarray(probe["patient_fitted_days"])
    quantiles = np.asarray(probe["curve_quantiles"])
    low, high = np.interp(fitted, grid, quantiles[0]), np.interp(fitted, grid, quantiles[-1])
    truth = np.asarray(probe["true_at_fitted"])
    assert np.all((low <= truth) & (truth <= high)), (low, truth, high)
    assert probe["pooled_summary"]["n_scored"] == probe["n_series"]
    assert probe["boot_summary"]["n_scored"] <= probe["n_series"]
