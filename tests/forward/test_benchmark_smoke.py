"""The forward benchmark script runs end to end and its accuracy columns say what the docs say."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "forward.py"


@pytest.mark.slow
def test_forward_benchmark_quick_run(tmp_path):
    spec = importlib.util.spec_from_file_location("forward_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "forward.json"
    module.main(["--quick", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [row["grid"] for row in rows] == ["32³/4 mm", "64³/2 mm"]
    for row in rows:
        # Heun at the stable step is far more accurate than Euler at the same step.
        assert row["heun_rel_l2_error"] < 0.005 < 0.03 < row["numpy_euler_rel_l2_error"]
        assert row["gradient_s"] > 0 and row["voxel_updates_per_s"] > 0
