"""The stress suite's reliability interval (`benchmarks/coverage.py`) treats the patient, not
the voxel, as the independent unit."""

import numpy as np
import pytest

from tests._benchmarks import load_benchmark


@pytest.fixture(scope="module")
def coverage():
    return load_benchmark("coverage")


def test_patient_bootstrap_is_the_binomial_over_patients(coverage):
    """Ten patients with 100 voxels each in one bin, five with every voxel inside the true
    region and five with none: the pooled frequency under patient resampling is Binomial(10,
    ½)/10, whose 2.5 % and 97.5 % quantiles are 0.2 and 0.8 (P(X ≤ 1) = 0.011 < 0.025 <
    P(X ≤ 2) = 0.055) — not the ±0.03 of 1,000 independent voxels. Identical patients leave no
    spread, and a bin no patient reaches has none to report."""
    counts = np.zeros((10, 10))
    counts[:, 3] = 100.0
    events = np.zeros((10, 10))
    events[:5, 3] = 100.0
    intervals = coverage.patient_bootstrap(counts, events)
    assert intervals[3] == pytest.approx([0.2, 0.8], abs=1e-9)
    assert all(np.isnan(intervals[k]).all() for k in range(10) if k != 3)
    same = coverage.patient_bootstrap(counts, 30.0 * (counts > 0))
    assert same[3] == pytest.approx([0.3, 0.3], abs=1e-12)
