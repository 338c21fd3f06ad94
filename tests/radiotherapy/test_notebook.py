"""The radiotherapy notebook executes top to bottom (kernel ``python3``), stored without outputs,
and its bands say what its text says about the known truth.

Independent truth: the burden curve of the notebook's true parameters and its simulated
held-out visit (the last one, not fitted).
"""

from pathlib import Path

import pytest

from tests._notebooks import execute_with_probe

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "03_radiotherapy_bands.ipynb"
PROBE = """import json
true_curve = np.asarray(burden(truth, jnp.asarray(post.grid_days), t_rt))
print(json.dumps({
    "failed_fits": int(boot.n_failed[0]),
    "bootstrap": report,
    "bayes_diagnostics": post.diagnostics,
    "fitted_days": visits[:-1].tolist(),
    "held_out_days": float(visits[-1]),
    "held_out_value": float(area[-1]),
    "grid_days": np.asarray(post.grid_days).tolist(),
    "curve_quantiles": np.asarray(post.curve_quantiles).tolist(),
    "predictive_quantiles": np.asarray(post.predictive_quantiles).tolist(),
    "true_curve": true_curve.tolist(),
}, default=float))"""
"""Appended to the executed notebook (in memory only): what its kernel ended with, as JSON."""


@pytest.mark.slow
def test_notebook_runs_and_its_bands_cover_the_truth(tmp_path, monkeypatch):
    """No error output and a figure; every bootstrap replicate converged; NUTS had no
    divergent transition; as the notebook's text says, the bootstrap band and the
    Bayesian predictive band both contain the held-out visit; and the true curve lies inside
    the Bayesian 95 % band of the curve at every fitted visit."""
    import numpy as np

    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    outputs, probe = execute_with_probe(NOTEBOOK, tmp_path, PROBE, timeout=600)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert probe["failed_fits"] == 0
    assert probe["bayes_diagnostics"]["divergences"] == 0  # one chain: no R-hat to check
    held_out = probe["held_out_value"]
    boot = probe["bootstrap"]
    assert boot["heldout_days"] == probe["held_out_days"]
    assert boot["lower"] <= held_out <= boot["upper"], boot
    grid = np.asarray(probe["grid_days"])
    low, _, high = (
        np.interp(probe["held_out_days"], grid, q) for q in probe["predictive_quantiles"]
    )
    assert low <= held_out <= high, (low, held_out, high)
    fitted = np.asarray(probe["fitted_days"])
    curve_low, _, curve_high = (np.interp(fitted, grid, q) for q in probe["curve_quantiles"])
    truth = np.interp(fitted, grid, probe["true_curve"])
    assert np.all((curve_low <= truth) & (truth <= curve_high)), (curve_low, truth, curve_high)
