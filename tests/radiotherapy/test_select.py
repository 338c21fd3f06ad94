"""Model selection by AICc: the formula, the true model picked on clear cases, the fallback."""

import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.radiotherapy import (
    CANDIDATES,
    RTParams,
    Series,
    aicc,
    burden,
    select_models,
)

T_RT = 30.0
TIMES = np.array([0.0, 25.0, 90.0, 150.0, 210.0, 270.0, 330.0, 390.0, 450.0, 510.0, 570.0])
BASE = dict(A0=500.0, lam=0.01, S=0.2, lam_decay=0.04, slope=0.2, delay=21.0)


def _replicates(regrowth: float, n: int, seed: int, sigma: float = 0.05) -> list[Series]:
    clean = np.asarray(
        burden(RTParams(**BASE, regrowth=regrowth), jnp.asarray(TIMES, jnp.float32), T_RT)
    )
    rng = np.random.default_rng(seed)
    return [
        Series(
            f"r{regrowth}-{i}", TIMES, clean * np.exp(sigma * rng.standard_normal(TIMES.size)), T_RT
        )
        for i in range(n)
    ]


def test_aicc_formula():
    """Hurvich–Tsai by hand for n = 10, p = 4 (K = 5): 10 log(RSS/10) + 10 + 60/4; undefined
    (inf) once n ≤ K + 1."""
    assert aicc(0.5, 10, 4) == pytest.approx(10 * np.log(0.05) + 10 + 60 / 4)
    assert aicc(0.5, 6, 4) == np.inf
    assert np.isfinite(aicc(0.5, 7, 4))


def test_aicc_picks_the_true_model_on_clear_cases():
    """Eleven visits, 5 % noise, 12 replicates each. Survivors regrowing at 2.5 λ: "regrowth"
    must win (it contains the truth, the others cannot bend the curve) in ≥ 10 of 12 and
    recover the regrowth ratio (median within 10 %). Data of the 4-parameter model: AICc's
    penalty must prefer "fixed" over the two supersets in ≥ 8 of 12 (for nested models with
    one extra parameter, AIC-type criteria pick the larger one about 16 % of the time; here
    one of two supersets: ≤ ~30 %, and 8/12 is below that at p < 0.05)."""
    fast = select_models(_replicates(2.5, 12, seed=1))
    assert fast.model.count("regrowth") >= 10, fast.model
    chosen = np.asarray(fast.fits["regrowth"].params.regrowth)
    assert np.median(chosen) == pytest.approx(2.5, rel=0.1)
    assert fast.by_aicc.all()
    np.testing.assert_allclose(np.nansum(fast.weights, axis=1), 1.0, rtol=1e-6)

    same = select_models(_replicates(1.0, 12, seed=2))
    assert same.model.count("fixed") >= 8, same.model
    # The weights follow the AICc differences: the chosen model has the largest weight.
    best = np.argmax(same.weights, axis=1)
    assert [same.candidates[j] for j in best] == list(same.model)


def test_short_series_fall_back_or_get_no_model():
    """Five visits: AICc is undefined for every candidate (n ≤ K + 1), so the 4-parameter
    model is used (``by_aicc`` False, NaN weights); three visits: no model can be fitted
    (``""``). (Bootstrapping such a mix end to end: the CLI test in test_validation.py.)"""
    long = _replicates(1.0, 1, seed=3)[0]
    five = Series("five", TIMES[:5], long.value[:5], T_RT)
    three = Series("three", TIMES[:3], long.value[:3], T_RT)
    selection = select_models([long, five, three])
    assert selection.model[1:] == ("fixed", "")
    assert selection.by_aicc.tolist() == [True, False, False]
    assert np.isnan(selection.weights[1:]).all()
    assert set(CANDIDATES) == set(selection.candidates)
    rows = selection.table()
    assert rows[2]["model"] is None and rows[1]["weight_fixed"] is None
