"""benchmarks/reduced.py runs end to end and its numbers are consistent with each other."""

import json

import pytest

from tests._benchmarks import load_benchmark


@pytest.mark.slow
def test_reduced_benchmark_quick_run(tmp_path, capsys):
    """Truths: the ratio is the two timings' ratio; the model is fitted to the solves asked for
    with fewer modes than solves; at 8 mm, around the posterior, the model reproduces the PDE
    well enough that its posterior is importance-weighted onto the PDE's (k̂ < 0.7)."""
    record = load_benchmark("reduced").main(["--quick", "--chains", "1", "--out", str(tmp_path)])
    row = record["row"]
    assert json.loads((tmp_path / "reduced_quick.json").read_text())["row"] == row
    assert row["spacing_mm"] == 8.0 and row["solves"] == 60
    assert 0 < row["modes"] < row["solves"]
    assert row["gradient_ratio"] == pytest.approx(row["gradient_pde_s"] / row["gradient_model_s"])
    assert row["max_density_error"] < 0.05
    assert row["pareto_k"] < 0.7
    assert "PSIS k̂" in capsys.readouterr().out
