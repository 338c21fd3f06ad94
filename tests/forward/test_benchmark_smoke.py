"""The forward benchmark script runs end to end and its accuracy columns say what the docs say."""

import json
import os

import pytest

from tests._benchmarks import load_benchmark


@pytest.mark.slow
def test_forward_benchmark_quick_run(tmp_path, capsys):
    """Independent truths: a fine-step reference solve (Heun at the stable step is far more
    accurate than explicit Euler at the same step); the machine's CPU count from the OS; the
    equal-accuracy speed-up, which is extrapolated rather than measured, is labelled so in the
    JSON key and the table header."""
    module = load_benchmark("forward")
    out = tmp_path / "forward.json"
    module.main(["--quick", "--grids", "4", "--out", str(out)])  # 64³ too took 124 s of CI
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [row["grid"] for row in rows] == ["32³/4 mm"]
    for row in rows:
        assert row["heun_rel_l2_error"] < 0.005 < 0.03 < row["numpy_euler_rel_l2_error"]
        assert row["gradient_s"] > 0 and row["voxel_updates_per_s"] > 0
        assert "speedup_vs_numpy_at_equal_accuracy" not in row
        assert row["speedup_vs_numpy_at_equal_accuracy_extrapolated"] > 0
    assert "speedup_vs_numpy_at_equal_accuracy (extrapolated)" in capsys.readouterr().out
    assert result["machine"]["cpu_count"] == os.cpu_count()
    assert result["machine"]["jax_device_count"] >= 1
