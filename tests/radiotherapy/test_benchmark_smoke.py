"""The benchmark script runs end to end at smoke size (--quick)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "radiotherapy.py"


@pytest.mark.slow
def test_benchmark_quick():
    spec = importlib.util.spec_from_file_location("benchmark_radiotherapy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(quick=True)
    assert results["jax_converged_fraction"] > 0.9
    assert results["median_max_relative_curve_difference_jax_vs_scipy"] < 1e-3
