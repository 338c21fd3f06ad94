"""The synthetic benchmark cohort: schedule, mechanisms, noise law and truth as documented."""

import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.radiotherapy import (
    MECHANISMS,
    PROGRESSION_FACTOR,
    RTParams,
    burden,
    synthetic_cohort,
)


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort(200, seed=11)


def test_schedule_and_mix(cohort):
    """4–8 visits from day 0, RT start 14–42 days, at most two pre-RT scans; the default mix
    (40/20/20/20 %) exactly; the same seed gives the same cohort."""
    assert len(cohort) == 200
    counts = {m: cohort.mechanism.count(m) for m in MECHANISMS}
    assert counts == {"model": 80, "regrowth": 40, "plateau": 40, "pseudoprogression": 40}
    for series in cohort.series:
        assert 4 <= len(series) <= 8
        assert series.time_days[0] == 0.0
        assert 14 <= series.t_rt_days <= 42
        assert 1 <= np.sum(series.time_days <= series.t_rt_days) <= 2
    again = synthetic_cohort(200, seed=11)
    np.testing.assert_array_equal(again.series[17].value, cohort.series[17].value)


def test_noise_is_ten_percent_lognormal(cohort):
    """log(noisy / clean) over all visits: mean 0 and sd 0.1 within 4 standard errors
    (about 1,200 visits: se of the sd ≈ 0.1/√2n ≈ 0.002)."""
    log_ratio = np.concatenate(
        [np.log(s.value / c) for s, c in zip(cohort.series, cohort.clean, strict=True)]
    )
    n = log_ratio.size
    assert abs(log_ratio.mean()) < 4 * 0.1 / np.sqrt(n)
    assert abs(log_ratio.std() - 0.1) < 4 * 0.1 / np.sqrt(2 * n)


def test_model_mechanism_is_the_package_model(cohort):
    """Independent implementations agree: the generator's NumPy burden of a ``"model"`` (and
    a ``"regrowth"``) series equals `burden` of its true parameters (closed form in JAX)."""
    for mechanism in ("model", "regrowth"):
        i = cohort.mechanism.index(mechanism)
        series = cohort.series[i]
        params = RTParams(
            **{k: float(cohort.truth[k][i]) for k in ("A0", "lam", "S", "lam_decay", "slope")},
            delay=float(cohort.truth["delay"][i]),
            regrowth=float(cohort.truth["regrowth"][i]),
        )
        times = np.linspace(0.0, series.time_days[-1] + 60.0, 50)
        with_jax = np.asarray(burden(params, jnp.asarray(times), series.t_rt_days))
        np.testing.assert_allclose(with_jax, cohort.true_burden(i, times), rtol=2e-4)
        np.testing.assert_allclose(cohort.true_burden(i, series.time_days), cohort.clean[i])


def test_mechanisms_do_what_they_say(cohort):
    """Plateau: long after RT the burden grows no faster than the slow survivors and stays
    above the doomed fraction's floor; pseudo-progression: the clean curve exceeds the bump-free one at the bump's peak by
    the bump height; follow-up stops at the first progressed visit."""
    for i, mechanism in enumerate(cohort.mechanism):
        t_rt = cohort.series[i].t_rt_days
        if mechanism == "pseudoprogression":
            peak = cohort.truth["bump_days"][i]
            with_bump = cohort.true_burden(i, np.array([peak]))[0]
            truth = {k: v[i] for k, v in cohort.truth.items()}
            params = RTParams(
                **{k: float(truth[k]) for k in ("A0", "lam", "S", "lam_decay", "slope", "delay")}
            )
            without = float(burden(params, jnp.asarray([peak]), t_rt)[0])
            assert with_bump / without == pytest.approx(1 + truth["bump_height"], rel=1e-4)
        if mechanism == "plateau":
            t = {k: v[i] for k, v in cohort.truth.items()}
            late = cohort.true_burden(i, np.array([t_rt + 400.0, t_rt + 600.0]))
            # Survivors grow at regrowth·λ (≤ 0.2 λ); the doomed part never drops below its floor.
            assert late[1] / late[0] <= np.exp(t["regrowth"] * t["lam"] * 200.0) * (1 + 1e-9)
            floor = t["floor"] * (1 - t["S"]) * t["A0"] * np.exp(t["lam"] * t_rt)
            assert np.all(late >= floor)
        clean = cohort.clean[i]
        before = clean[cohort.series[i].time_days <= t_rt].max()
        assert np.all(clean[:-1] <= PROGRESSION_FACTOR * before)
