"""Synthetic benchmark cohort of burden series: the model's own ranges and mechanisms it lacks.

Each series is one patient's tumour burden (mm²) at 4–8 visits with 10 % multiplicative
lognormal noise. Its noise-free curve comes from one of four mechanisms:

- ``"model"``: the paper's model (Laslo et al., arXiv:2509.09610, 2025; survivors regrow at λ).
- ``"regrowth"``: survivors regrow at ``r · λ`` with ``r`` in [0.3, 0.6] ∪ [1.7, 3] (the paper's
  model has ``r = 1``; this package's ``regrowth`` parameter can represent it).
- ``"plateau"``: survivors barely grow (``r`` in [0, 0.2]) and the doomed fraction stops decaying
  at a floor of 20–50 % of its size at the RT start (scar, necrosis, oedema that stay visible):
  the burden levels off. Neither the paper's model nor this package's contains the floor.
- ``"pseudoprogression"``: the model's curve times a transient swelling
  ``1 + h · exp(−½ ((t − t_pp) / w)²)`` with ``h`` in [0.3, 1], ``t_pp`` 50–100 days after the RT
  start and ``w`` in [15, 30] days (radiation-induced oedema that resolves by itself).

Parameter ranges (log-uniform unless said): ``A₀`` 200–2000 mm²; ``λ`` 0.004–0.02/day
(doubling times 35–170 days); ``S`` 0.02–0.4; ``λ_decay`` 0.01–0.06/day; ``slope``
0.05–0.5/day; ``delay`` uniform 7–35 days. These are the ranges of the module's start guesses
narrowed to growth and response speeds reported for irradiated gliomas, not values fitted by the
paper (which gives none per series).

Visits: the first scan at day 0, the RT start uniform in 14–42 days, with probability ½ a second
(planning) scan 2–10 days before the RT start; the first scan after RT 56–84 days after its start
(four weeks after a six-week course), then gaps of 42–100 days (every 6–14 weeks); 4–8 visits in
all, uniform. Follow-up stops at progression: the first visit whose burden exceeds
`PROGRESSION_FACTOR` (4) times the largest pre-RT burden is the series' last; a draw left with
fewer than four visits is redrawn (so fast regrowers are slightly under-represented).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bayestumor.errors import InputError
from bayestumor.radiotherapy._data import Series

PROGRESSION_FACTOR = 4.0
"""Follow-up stops at the first visit whose burden exceeds this multiple of the largest
pre-RT burden (progression: imaging schedules and treatment change after it)."""

MECHANISMS = ("model", "regrowth", "plateau", "pseudoprogression")
"""Mechanisms of `synthetic_cohort`; only ``"model"`` is inside the paper's model."""

DEFAULT_MIX: Mapping[str, float] = {
    "model": 0.4,
    "regrowth": 0.2,
    "plateau": 0.2,
    "pseudoprogression": 0.2,
}
"""Default shares of the mechanisms in a cohort."""


@dataclass(frozen=True)
class SyntheticCohort:
    """A synthetic cohort with its truth.

    Attributes:
        series: the noisy series (burden in mm², days since the first scan).
        clean: noise-free burden at each series' visits, mm² (same shapes as the values).
        mechanism: mechanism of each series (one of `MECHANISMS`).
        truth: per series, the generating parameters (``A0, lam, S, lam_decay, slope, delay,
            regrowth`` and the mechanism's own: ``floor``, ``bump_height``, ``bump_days``,
            ``bump_width_days``; NaN where not used).
        noise: σ of the multiplicative lognormal noise.
    """

    series: tuple[Series, ...]
    clean: tuple[np.ndarray, ...]
    mechanism: tuple[str, ...]
    truth: Mapping[str, np.ndarray]
    noise: float

    def __len__(self) -> int:
        return len(self.series)

    def true_burden(self, index: int, time_days: np.ndarray) -> np.ndarray:
        """Noise-free burden (mm²) of series ``index`` at any times (days since first scan)."""
        params = {name: float(values[index]) for name, values in self.truth.items()}
        return _clean_burden(
            params,
            np.asarray(time_days, float),
            self.series[index].t_rt_days,
            self.mechanism[index],
        )


def _log_cosh(x: np.ndarray | float) -> np.ndarray | float:
    return np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - np.log(2.0)


def _clean_burden(p: Mapping[str, float], t: np.ndarray, t_rt: float, mechanism: str) -> np.ndarray:
    """The mechanism's noise-free burden (NumPy, float64; independent of the JAX model code)."""
    before, after = np.minimum(t, t_rt), np.maximum(t, t_rt)
    living = (
        p["A0"] * p["S"] * np.exp(p["lam"] * before + p["regrowth"] * p["lam"] * (after - t_rt))
    )
    c = t_rt + p["delay"]
    doomed_at_rt = p["A0"] * (1 - p["S"]) * np.exp(p["lam"] * t_rt)
    doomed = doomed_at_rt * np.exp(
        np.where(t < t_rt, p["lam"] * (t - t_rt), 0.0)
        - (p["lam_decay"] / p["slope"])
        * (_log_cosh(p["slope"] * (after - c)) - _log_cosh(p["slope"] * (t_rt - c)))
    )
    if mechanism == "plateau":
        doomed = np.where(t < t_rt, doomed, np.maximum(doomed, p["floor"] * doomed_at_rt))
    total = living + doomed
    if mechanism == "pseudoprogression":
        total = total * (
            1 + p["bump_height"] * np.exp(-0.5 * ((t - p["bump_days"]) / p["bump_width_days"]) ** 2)
        )
    return total


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _visits(rng: np.random.Generator, t_rt: float) -> np.ndarray:
    n_visits = int(rng.integers(4, 9))
    times = [0.0]
    if rng.uniform() < 0.5:
        times.append(t_rt - rng.uniform(2.0, 10.0))
    t = t_rt + rng.uniform(56.0, 84.0)
    while len(times) < n_visits:
        times.append(t)
        t += rng.uniform(42.0, 100.0)
    return np.round(np.array(times))


def _draw(rng: np.random.Generator, mechanism: str) -> tuple[dict[str, float], float, np.ndarray]:
    """Parameters, RT start (days) and visit times (days) of one series."""
    p = {
        "A0": _log_uniform(rng, 200.0, 2000.0),
        "lam": _log_uniform(rng, 0.004, 0.02),
        "S": _log_uniform(rng, 0.02, 0.4),
        "lam_decay": _log_uniform(rng, 0.01, 0.06),
        "slope": _log_uniform(rng, 0.05, 0.5),
        "delay": float(rng.uniform(7.0, 35.0)),
        "regrowth": 1.0,
    }
    t_rt = float(np.round(rng.uniform(14.0, 42.0)))
    if mechanism == "regrowth":
        p["regrowth"] = float(
            rng.uniform(0.3, 0.6) if rng.uniform() < 0.5 else rng.uniform(1.7, 3.0)
        )
    elif mechanism == "plateau":
        p["regrowth"] = float(rng.uniform(0.0, 0.2))
        p["floor"] = float(rng.uniform(0.2, 0.5))
    elif mechanism == "pseudoprogression":
        p["bump_height"] = float(rng.uniform(0.3, 1.0))
        p["bump_days"] = t_rt + float(rng.uniform(50.0, 100.0))
        p["bump_width_days"] = float(rng.uniform(15.0, 30.0))
    return p, t_rt, _visits(rng, t_rt)


def synthetic_cohort(
    n_series: int = 200,
    seed: int = 0,
    *,
    noise: float = 0.1,
    mix: Mapping[str, float] | None = None,
) -> SyntheticCohort:
    """Draw a cohort of burden series with known truth (see the module docstring).

    Args:
        n_series: number of series.
        seed: NumPy seed; the same seed gives the same cohort.
        noise: σ of the multiplicative lognormal noise (0.1 ≈ 10 %).
        mix: share of each mechanism (normalised), default `DEFAULT_MIX`; mechanisms are
            assigned in fixed proportions (rounded), then shuffled.
    """
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(MECHANISMS)
    if unknown:
        raise InputError(f"unknown mechanism(s) {sorted(unknown)}; known: {MECHANISMS}")
    if n_series < 1 or not noise >= 0:
        raise InputError("n_series must be ≥ 1 and noise ≥ 0")
    rng = np.random.default_rng(seed)
    names = [m for m in MECHANISMS if mix.get(m, 0) > 0]
    shares = np.array([mix[m] for m in names], float)
    counts = np.floor(shares / shares.sum() * n_series).astype(int)
    counts[np.argmax(shares)] += n_series - counts.sum()
    mechanisms = rng.permutation(np.repeat(names, counts))
    keys = ("A0", "lam", "S", "lam_decay", "slope", "delay", "regrowth")
    extra = ("floor", "bump_height", "bump_days", "bump_width_days")
    truth = {k: np.full(n_series, np.nan) for k in keys + extra}
    series, clean = [], []
    for i, mechanism in enumerate(mechanisms):
        while True:  # redraw until follow-up (stopped at progression) keeps ≥ 4 visits
            p, t_rt, times = _draw(rng, mechanism)
            values = _clean_burden(p, times, t_rt, mechanism)
            progressed = np.flatnonzero(values > PROGRESSION_FACTOR * values[times <= t_rt].max())
            if progressed.size:
                times, values = times[: progressed[0] + 1], values[: progressed[0] + 1]
            if times.size >= 4:
                break
        noisy = values * np.exp(noise * rng.standard_normal(values.size))
        series.append(Series(f"{mechanism}-{i:03d}", times, noisy, t_rt))
        clean.append(values)
        for k, v in p.items():
            truth[k][i] = v
    return SyntheticCohort(
        series=tuple(series),
        clean=tuple(clean),
        mechanism=tuple(str(m) for m in mechanisms),
        truth=truth,
        noise=float(noise),
    )
