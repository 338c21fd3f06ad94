"""Least-squares fits of the RT burden model with optimistix (Levenberg–Marquardt, multi-start).

The residual vector handed to the solver is the ordinary residual ``model − data`` (optionally
divided by the data: relative weighting), never its square; the solver squares it. Data are
divided by the series maximum inside the fit so that one set of tolerances serves mm² and ml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from bayestumor._custom_types import Array, ArrayLike, Bool, Float, Int
from bayestumor.errors import InputError
from bayestumor.radiotherapy._data import Series, SeriesBatch
from bayestumor.radiotherapy._ode import PARAM_NAMES, RTParams, burden_ode, log_burden

DEFAULT_FIXED: Mapping[str, float] = {"slope": 0.2, "delay": 21.0, "regrowth": 1.0}
"""Parameters fixed by default: with 4–8 visits the switch shape is not identifiable.

``slope = 0.2``/day makes the switch take about 10 days (tanh from −0.76 to 0.76);
``delay = 21`` days puts the turn from growth to shrinkage three weeks after the RT start,
mid-way through a typical six-week course (54 Gy in 30 fractions for DMG); ``regrowth = 1``
is the paper's model (survivors regrow at λ). These are the least-squares defaults (the
``"fixed"`` candidate of `select_models`); the package's default forecast, `pooled_bands`,
learns slope, delay and regrowth from the cohort instead.
"""

# Ranges (natural units) from which the deterministic multi-start draws initial guesses.
_START_RANGES: Mapping[str, tuple[float, float]] = {
    "lam": (0.002, 0.05),  # 1/day: doubling times 14–350 days
    "S": (0.05, 0.95),
    "lam_decay": (0.005, 0.1),  # 1/day
    "slope": (0.05, 0.5),  # 1/day
    "delay": (5.0, 60.0),  # days
    "regrowth": (0.3, 3.0),  # × λ
}
_START_SEED = 20250901


@dataclass(frozen=True)
class FitConfig:
    """Options of a least-squares fit (hashable: a static argument of the jitted core).

    Attributes:
        fixed: parameters held fixed, name → value in natural units (see `RTParams`); all
            others are fitted. Default: ``slope = 0.2``/day, ``delay = 21`` days and
            ``regrowth = 1`` (`DEFAULT_FIXED`); pass ``{"regrowth": 1.0}`` to fit the paper's
            six when data are rich, ``{}`` to fit all seven.
        relative: divide residuals by the data (relative weighting, natural for multiplicative
            noise); default False (ordinary residuals in user units).
        log_residuals: residuals ``log model − log data`` (the lognormal noise law of the
            bootstrap and the Bayesian model; the scale on which `select_models` computes
            AICc); takes precedence over ``relative``.
        n_starts: number of initial guesses per fit; the one with the lowest loss wins.
        max_steps: Levenberg–Marquardt step budget per start.
        rtol, atol: Cauchy termination tolerances of the solver (on normalised data).
        forward: ``"closed_form"`` (exact, default) or ``"ode"`` (diffrax, same answer, slower).
    """

    fixed: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FIXED))
    relative: bool = False
    log_residuals: bool = False
    n_starts: int = 4
    max_steps: int = 256
    rtol: float = 1e-5
    atol: float = 1e-6
    forward: str = "closed_form"

    def __post_init__(self) -> None:
        fixed = dict(self.fixed)
        unknown = set(fixed) - set(PARAM_NAMES)
        if unknown:
            raise InputError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAM_NAMES}")
        if len(fixed) == len(PARAM_NAMES):
            raise InputError("every parameter is fixed: nothing to fit")
        if self.forward not in ("closed_form", "ode"):
            raise InputError(f"forward must be 'closed_form' or 'ode', not {self.forward!r}")
        if self.n_starts < 1:
            raise InputError("n_starts must be ≥ 1")
        if "S" in fixed and not 0 < fixed["S"] < 1:
            raise InputError("fixed S must lie in (0, 1)")
        if any(v <= 0 for k, v in fixed.items() if k != "S"):
            raise InputError("fixed A0, lam, lam_decay, slope and delay must be > 0")
        # A sorted tuple keeps the dataclass hashable for jax.jit(static_argnames=...).
        object.__setattr__(self, "fixed", tuple(sorted(fixed.items())))

    def __hash__(self) -> int:
        return hash(
            (
                self.fixed,
                self.relative,
                self.log_residuals,
                self.n_starts,
                self.max_steps,
                self.rtol,
                self.atol,
                self.forward,
            )
        )

    @property
    def fitted(self) -> tuple[str, ...]:
        """Names of the fitted parameters, in `PARAM_NAMES` order."""
        fixed = dict(self.fixed)
        return tuple(name for name in PARAM_NAMES if name not in fixed)


class FitResult(eqx.Module):
    """Result of least-squares fits; every field has the leading batch axes of the call.

    Attributes:
        params: best-fit parameters on natural scales (user units, days, 1/day).
        theta: the same as the unconstrained vector ``[log A0, log λ, logit S, …]``.
        loss: ½ Σ residual² at the optimum (residuals on the normalised scale).
        converged: True where the winning start met the solver's tolerances with finite loss.
            The winner is the converged start of lowest loss, or, where none converged, the
            start of lowest loss.
        n_steps: Levenberg–Marquardt steps taken by the winning start.
        n_converged_starts: how many of the starts converged.
    """

    params: RTParams
    theta: Float[Array, "*batch 7"]
    loss: Float[Array, "*batch"]
    converged: Bool[Array, "*batch"]
    n_steps: Int[Array, "*batch"]
    n_converged_starts: Int[Array, "*batch"]


def predict_log(
    theta: Float[Array, " 7"],
    time_days: Float[Array, " n"],
    t_rt_days: Float[Array, ""],
    forward: str,
) -> Float[Array, " n"]:
    """Log burden at ``time_days`` from the unconstrained vector, by closed form or ODE."""
    params = RTParams.from_unconstrained(theta)
    if forward == "ode":
        return jnp.log(jnp.sum(burden_ode(params, time_days, t_rt_days), axis=-1))
    return log_burden(params, time_days, t_rt_days)


def start_guesses(config: FitConfig, dtype: jnp.dtype) -> Float[Array, "starts 7"]:
    """Deterministic initial guesses (unconstrained, A0 slot left at 0): centre, then random."""
    n = len(PARAM_NAMES)
    lows = jnp.zeros(n)
    highs = jnp.zeros(n)
    for i, name in enumerate(PARAM_NAMES[1:], start=1):
        low, high = _START_RANGES[name]
        if name == "S":
            low, high = np.log(low / (1 - low)), np.log(high / (1 - high))
        else:
            low, high = np.log(low), np.log(high)
        lows, highs = lows.at[i].set(low), highs.at[i].set(high)
    draws = jax.random.uniform(jax.random.key(_START_SEED), (config.n_starts, n))
    draws = draws.at[0].set(0.5)
    return (lows + draws * (highs - lows)).astype(dtype)


def _fit_one(
    value: Float[Array, " n"],
    time_days: Float[Array, " n"],
    weight: Float[Array, " n"],
    t_rt_days: Float[Array, ""],
    config: FitConfig,
) -> FitResult:
    """Multi-start Levenberg–Marquardt fit of one (padded) series; pure, vmappable."""
    dtype = time_days.dtype
    fixed = dict(config.fixed)
    fitted_index = jnp.array([PARAM_NAMES.index(n) for n in config.fitted])
    scale = jnp.max(jnp.where(weight > 0, value, 0.0))
    value_n = value / scale
    log_scale = jnp.log(scale)
    fixed_theta = RTParams(
        **{n: jnp.asarray(fixed.get(n, 0.5 if n == "S" else 1.0), dtype) for n in PARAM_NAMES}
    ).to_unconstrained()
    fixed_theta = fixed_theta.at[0].add(-log_scale)  # fits run on data / scale

    def full_theta(theta_fitted: Array) -> Array:
        return fixed_theta.at[fitted_index].set(theta_fitted)

    def residuals(theta_fitted: Array, _: None) -> Array:
        log_model = predict_log(full_theta(theta_fitted), time_days, t_rt_days, config.forward)
        if config.log_residuals:
            return weight * (log_model - jnp.log(value_n))
        residual = jnp.exp(log_model) - value_n
        if config.relative:
            residual = residual / value_n
        return weight * residual

    # Start A0 at the first visit's value, back-extrapolated at the start's growth rate.
    first = jnp.argmax(weight > 0)
    starts = start_guesses(config, dtype)
    starts = starts.at[:, 0].set(jnp.log(value_n[first]) - jnp.exp(starts[:, 1]) * time_days[first])
    starts = jnp.where(jnp.isin(jnp.arange(len(PARAM_NAMES)), fitted_index), starts, fixed_theta)
    starts = starts[:, fitted_index]
    solver = optx.LevenbergMarquardt(rtol=config.rtol, atol=config.atol)

    def solve(theta0: Array) -> tuple[Array, Array, Array, Array]:
        solution = optx.least_squares(
            residuals, solver, theta0, max_steps=config.max_steps, throw=False
        )
        loss = 0.5 * jnp.sum(residuals(solution.value, None) ** 2)
        ok = (solution.result == optx.RESULTS.successful) & jnp.isfinite(loss)
        return (
            solution.value,
            jnp.where(jnp.isfinite(loss), loss, jnp.inf),
            ok,
            solution.stats["num_steps"],
        )

    thetas, losses, oks, steps = jax.vmap(solve)(starts)
    # The best converged start; only where none converged, the lowest loss. (A start that ran
    # out of steps can sit a hair below a converged one, and must not mark the fit failed.)
    best = jnp.where(jnp.any(oks), jnp.argmin(jnp.where(oks, losses, jnp.inf)), jnp.argmin(losses))
    theta = full_theta(thetas[best]).at[0].add(log_scale)
    return FitResult(
        params=RTParams.from_unconstrained(theta),
        theta=theta,
        loss=losses[best],
        converged=oks[best],
        n_steps=steps[best],
        n_converged_starts=jnp.sum(oks),
    )


@partial(jax.jit, static_argnames="config")
def fit_arrays(
    value: Float[ArrayLike, "*batch n"],
    time_days: Float[ArrayLike, "*batch n"],
    weight: Float[ArrayLike, "*batch n"],
    t_rt_days: Float[ArrayLike, "*batch"],
    config: FitConfig,
) -> FitResult:
    """Jitted fit of any batch of padded series (``weight = 0`` on padding); no validation.

    Leading axes of the inputs broadcast into one flat ``vmap``. Use `fit` / `fit_many` for
    validated input.
    """
    value, time_days, weight = jnp.broadcast_arrays(value, time_days, weight)
    dtype = jnp.result_type(float)
    value, time_days, weight = (jnp.asarray(a, dtype) for a in (value, time_days, weight))
    batch = value.shape[:-1]
    t_rt = jnp.broadcast_to(jnp.asarray(t_rt_days, dtype), batch)
    n = value.shape[-1]
    flat = jax.vmap(partial(_fit_one, config=config))(
        value.reshape(-1, n), time_days.reshape(-1, n), weight.reshape(-1, n), t_rt.reshape(-1)
    )
    return jax.tree.map(lambda leaf: leaf.reshape(*batch, *leaf.shape[1:]), flat)


def check_enough_points(n_points: int, config: FitConfig, name: str, held_out: int = 0) -> None:
    """Raise `InputError` if a series has fewer fitted visits than fitted parameters."""
    usable = n_points - held_out
    if usable < len(config.fitted):
        extra = f" after holding out {held_out}" if held_out else ""
        raise InputError(
            f"series {name!r}: {usable} visit(s){extra} but {len(config.fitted)} fitted "
            f"parameters {config.fitted}; add visits or fix parameters (FitConfig.fixed)"
        )


def fit(series: Series, config: FitConfig | None = None) -> FitResult:
    """Least-squares fit of one validated series (scalars in the result).

    Args:
        series: burden over time with its RT start (days since the first scan).
        config: fitted/fixed parameters, weighting and solver options.
    """
    config = FitConfig() if config is None else config
    check_enough_points(len(series), config, series.name)
    return fit_arrays(
        series.value, series.time_days, np.ones_like(series.value), series.t_rt_days, config
    )


def fit_many(batch: SeriesBatch, config: FitConfig | None = None) -> FitResult:
    """Fit every series of a batch in one jitted, vmapped call (leading axis = series)."""
    config = FitConfig() if config is None else config
    for name, n in zip(batch.names, batch.n_points, strict=True):
        check_enough_points(int(n), config, name)
    return fit_arrays(
        batch.value, batch.time_days, batch.mask.astype(float), batch.t_rt_days, config
    )
