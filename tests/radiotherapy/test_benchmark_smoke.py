"""The benchmark script runs end to end at smoke size (--quick) and writes where it is told."""

import json

import pytest

from tests._benchmarks import BENCHMARKS, load_benchmark

TRACKED = BENCHMARKS / "results" / "radiotherapy.json"


@pytest.mark.slow
def test_benchmark_quick(tmp_path):
    """Independent truths: SciPy's Levenberg–Marquardt fits of the same replicates (the JAX
    fits must reach the same curves to 1e-3); the forecast section scores every series of
    its cohort; the smoke run writes its JSON to ``--out`` and leaves the tracked results
    untouched."""
    module = load_benchmark("radiotherapy")
    tracked_before = TRACKED.read_bytes() if TRACKED.exists() else None
    out = tmp_path / "radiotherapy.json"
    results = module.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == results
    assert (TRACKED.read_bytes() if TRACKED.exists() else None) == tracked_before
    assert results["quick"] is True
    assert results["jax_converged_fraction"] > 0.9
    assert results["median_max_relative_curve_difference_jax_vs_scipy"] < 1e-3
    forecasts = results["forecasts"]
    (pooled,) = forecasts["methods"]  # --quick: the default only
    assert pooled["method"] == "pooled (default)"
    # Every series is scored by the pooled forecast; its coverages are ordered by band width.
    assert pooled["n_scored"] == forecasts["n_series"] == 16
    assert pooled["coverage_0.5"] <= pooled["coverage_0.8"] <= pooled["coverage_0.95"]
    assert set(forecasts["targets"]) == {
        "median_nrmse_le_0.30",
        "coverage_95_in_85_99",
        "pooled_under_5_min",
    }
