"""The stress suite's summary (`benchmarks/coverage.py`): its reliability interval treats the
patient, not the voxel, as the independent unit; its model-form error is a marginal
maximum-likelihood fit, cross-validated by configuration, and the package's values are its fit
on the stored suite."""

import json

import numpy as np
import pytest

from bayestumor.config import STRESS_SUITE_MODEL_ERROR
from bayestumor.workflows import STRESS_CONFIGURATIONS
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


def test_model_error_fit_recovers_a_known_spread(coverage):
    """Errors drawn as N(0, s_i² + τ²) with τ = 0.01 and s_i from 0.002 to 0.02: the marginal
    maximum-likelihood τ from 4,000 of them lies within 10 % (its sd here is about 2 %, by the
    Fisher information Σ 2τ²/(s_i² + τ²)² of τ); errors no larger than zero give τ = 0."""
    rng = np.random.default_rng(0)
    sds = rng.uniform(0.002, 0.02, 4000)
    errors = rng.normal(0.0, np.sqrt(sds**2 + 0.01**2))
    assert coverage.fit_model_error(errors, sds) == pytest.approx(0.01, rel=0.1)
    assert coverage.fit_model_error(np.zeros(50), sds[:50]) == 0.0


def _record(configuration, truth, centre, sd=0.01):
    draws = np.exp(np.random.default_rng(0).normal(np.log(centre), sd, 200))
    q05, q95 = np.quantile(draws, [0.05, 0.95])
    entry = {"truth": truth, "q05": q05, "q95": q95, "in90": bool(q05 <= truth <= q95)}
    return {
        "configuration": configuration,
        "draws": {"mu_rho_ref": draws.tolist()},
        "parameters": {"mu_rho_ref": entry},
    }


def test_model_error_is_cross_validated_by_configuration(coverage):
    """Two configurations with PET: on `boundary` the posterior sits 10 % off (four cases), on
    `threshold` on the truth (four). Each case's τ comes from the other configuration only: the
    `threshold` cases get `boundary`'s large τ and stay covered, the `boundary` cases get
    `threshold`'s τ = 0 and stay missed: 4 of 8 covered.
    The MRI-only case, alone of its kind, gets τ = 0 (no other case to learn from)."""
    records = [_record("boundary", 2.0, 2.2) for _ in range(4)]
    records += [_record("threshold", 2.0, 2.0) for _ in range(4)]
    records += [_record("mri-only", 2.0, 2.0)]
    table = coverage.model_error_summary(records)["mu_rho_ref"]
    assert table["cases"] == 9
    assert table["covered_without"] == 5
    assert table["covered_cross_validated"] == 5
    assert table["tau"]["with-pet"] > 0.05 and table["tau"]["mri-only"] == 0.0
    assert table["width90_cross_validated"] > table["width90_without"]


def test_the_package_model_error_is_what_the_stored_suite_gives(coverage):
    """Provenance of `STRESS_SUITE_MODEL_ERROR`: re-fitted from the 42 stored stress patients it
    came from (`benchmarks/reference/stress_suite_model_error.json`, written by the coverage
    summary: each patient's 200 posterior draws of μ_D,ref and μ_ρ,ref and its truth), every τ
    is the package's to its two significant digits, and the widened 90 % intervals,
    cross-validated by configuration, cover in 80–97 % of patients (the honest-posterior issue's
    band) where the model's own cover μ_ρ,ref in fewer than 80 %."""
    cases = json.loads(coverage.MODEL_ERROR_REFERENCE.read_text())["visibility-boundary"]
    assert len(cases) == 42
    assert {c["configuration"] for c in cases} == set(STRESS_CONFIGURATIONS)
    table = coverage.model_error_summary(cases)
    for name, row in table.items():
        for kind, tau in row["tau"].items():
            assert STRESS_SUITE_MODEL_ERROR[kind][name] == pytest.approx(tau, rel=0.05, abs=5e-4)
        assert 0.80 <= row["covered_cross_validated"] / row["cases"] <= 0.97, (name, row)
    assert table["mu_rho_ref"]["covered_without"] / len(cases) < 0.80


def test_interval_record_is_the_draws_own_quantiles(coverage):
    """Truth: NumPy's quantiles of 0, 1, …, 9 (5 %: 0.45, 25 %: 2.25, 75 %: 6.75, 95 %: 8.55)."""
    record = coverage.interval_record(np.arange(10.0), 7.0)
    assert [record[k] for k in ("q05", "q25", "q75", "q95")] == pytest.approx(
        [0.45, 2.25, 6.75, 8.55]
    )
    assert (record["mean"], record["truth"], record["in50"], record["in90"]) == (
        4.5,
        7.0,
        False,
        True,
    )
