"""Pooled Bayesian bands: one hierarchical NumPyro model over all series of a cohort, NUTS.

Every series ``i`` has its own parameters; all but ``A₀`` are partially pooled on their
unconstrained scale (non-centred):

    θ_ik = μ_k + τ_k · η_ik,   η_ik ~ N(0, 1),
    μ_k ~ N(c_k, s_k),         τ_k ~ HalfNormal(t_k),

for ``k`` in ``log λ, logit S, log λ_decay, log slope, log delay, log regrowth`` (centres ``c_k``
and scales ``s_k`` as the single-series priors of `rt_model`; ``t_k`` = 1, or 0.5 for the three
shape parameters ``slope, delay, regrowth`` which few series inform). A series with three visits
then borrows the cohort's growth rate, survival and transition instead of fitting four numbers
to three points. A "cohort" of one series has ``τ = 0`` and ``s = 0``: ``θ = μ`` with the priors above. ``A₀`` is per series and not pooled (burdens differ in scale between patients):
``log A₀_i = log y_i,first − λ_i t_i,first + 0.5 ζ_i``, ``ζ_i ~ N(0, 1)``. The noise is per
series and pooled too: ``log y_ij ~ N(log A(t_ij; θ_i), σ_i)`` (multiplicative noise of about
``σ_i``), ``log σ_i = m + s ξ_i``, ``m ~ N(log 0.1, 1)``, ``s ~ HalfNormal(0.5)``,
``ξ_i ~ N(0, 1)``: a series that the model fits worse than the cohort (a mechanism the model
lacks, such as a pseudo-progression bump) gets a wider band, instead of all bands widening
together (as one shared σ would do) or none (as a fixed noise level would).

Bands are posterior-predictive: each draw's curve times ``exp(σ ε)``, so they include the
observation noise and can be compared with a visit the fit did not see.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, init_to_value

from bayestumor._custom_types import Array, Bool, Float, PRNGKeyArray
from bayestumor.errors import InputError
from bayestumor.radiotherapy._bayes import _PRIOR_CENTRES, _PRIOR_SCALES
from bayestumor.radiotherapy._data import Series, SeriesBatch
from bayestumor.radiotherapy._fit import predict_log
from bayestumor.radiotherapy._ode import PARAM_NAMES, RTParams

POOLED_NAMES = PARAM_NAMES[1:]
"""Parameters that are partially pooled across series (all but ``A0``)."""

_TAU_SCALES = {"lam": 1.0, "S": 1.0, "lam_decay": 1.0, "slope": 0.5, "delay": 0.5, "regrowth": 0.5}
_A0_SCALE = 0.5
_SIGMA_SD_SCALE = 0.5

DEFAULT_LEVELS = (0.5, 0.8, 0.95)
"""Central band probabilities reported by default (the calibration table's rows)."""


@dataclass(frozen=True)
class PooledConfig:
    """Options of `pooled_bands` (hashable).

    Attributes:
        fixed: parameters held fixed for every series, name → natural value (not pooled);
            default none: all six shape parameters pooled, including ``regrowth``.
        setup: ``"all"`` fits every visit; ``"train"`` holds out each series' last visit.
        num_warmup, num_samples, num_chains: NUTS settings (chains run vectorised).
        target_accept: NUTS target acceptance probability.
        max_tree_depth: NUTS tree-depth cap (bounds the cost of one iteration).
        levels: central band probabilities of the stored quantiles.
        n_grid, horizon_days: per-series grid from 0 to the last visit + ``horizon_days``.
    """

    fixed: Mapping[str, float] = field(default_factory=dict)
    setup: str = "all"
    num_warmup: int = 400
    num_samples: int = 400
    num_chains: int = 1
    target_accept: float = 0.9
    max_tree_depth: int = 8
    levels: tuple[float, ...] = DEFAULT_LEVELS
    n_grid: int = 121
    horizon_days: float = 90.0

    def __post_init__(self) -> None:
        fixed = dict(self.fixed)
        unknown = set(fixed) - set(POOLED_NAMES)
        if unknown:
            raise InputError(f"cannot fix {sorted(unknown)}; pooled parameters: {POOLED_NAMES}")
        if self.setup not in ("all", "train"):
            raise InputError(f"setup must be 'all' or 'train', not {self.setup!r}")
        if not all(0 < level < 1 for level in self.levels):
            raise InputError("band levels must lie in (0, 1)")
        object.__setattr__(self, "fixed", tuple(sorted(fixed.items())))
        object.__setattr__(self, "levels", tuple(sorted(float(v) for v in self.levels)))

    @property
    def pooled(self) -> tuple[str, ...]:
        """Names of the pooled (sampled) parameters, in `PARAM_NAMES` order."""
        fixed = dict(self.fixed)
        return tuple(n for n in POOLED_NAMES if n not in fixed)


def _quantile_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Lower ends, the median, upper ends: ``(0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)``."""
    lows = [(1 - level) / 2 for level in reversed(levels)]
    return (*lows, 0.5, *[1 - q for q in reversed(lows)])


def _full_theta(
    eta: Float[Array, "series k"],
    mu: Float[Array, " k"],
    tau: Float[Array, " k"],
    a0_offset: Float[Array, " series"],
    log_a0_centre: Float[Array, " series"],
    t_first: Float[Array, " series"],
    config: PooledConfig,
) -> Float[Array, "series 7"]:
    """Unconstrained per-series parameter vectors from the non-centred sites."""
    n_series = eta.shape[0]
    fixed = dict(config.fixed)
    pooled = mu + tau * eta
    columns = []
    for name in PARAM_NAMES[1:]:
        if name in fixed:
            value = float(
                np.log(fixed[name] / (1 - fixed[name])) if name == "S" else np.log(fixed[name])
            )
            columns.append(jnp.full((n_series,), value, eta.dtype))
        else:
            columns.append(pooled[:, config.pooled.index(name)])
    log_lam = columns[0]
    log_a0 = log_a0_centre - jnp.exp(log_lam) * t_first + _A0_SCALE * a0_offset
    return jnp.stack([log_a0, *columns], axis=-1)


_jit_full_theta = jax.jit(_full_theta, static_argnames="config")


@jax.jit
def _cohort_log_burden(
    theta: Float[Array, "series 7"], time_days: Float[Array, "series n"], t_rt_days: Array
) -> Float[Array, "series n"]:
    """Log burden of every series at its own times (jitted: NumPyro's initialisation runs the
    model eagerly, and op-by-op dispatch of the closed form costs tens of seconds)."""
    return jax.vmap(lambda th, t, rt: predict_log(th, t, rt, "closed_form"))(
        theta, time_days, t_rt_days
    )


def cohort_model(
    time_days: Float[Array, "series n"],
    fit_mask: Bool[Array, "series n"],
    t_rt_days: Float[Array, " series"],
    log_a0_centre: Float[Array, " series"],
    t_first: Float[Array, " series"],
    config: PooledConfig,
    log_value: Float[Array, "series n"] | None = None,
) -> None:
    """Hierarchical NumPyro model of many padded series (see the module docstring).

    Sites: ``mu_<name>``, ``tau_<name>`` per pooled parameter, ``eta`` (series × pooled),
    ``a0_offset`` (series), ``sigma``; the observation ``obs`` on log burden, masked to the
    fitted visits (``fit_mask``).
    """
    n_series = time_days.shape[0]
    mu = jnp.stack(
        [
            numpyro.sample(f"mu_{n}", dist.Normal(_PRIOR_CENTRES[n], _PRIOR_SCALES[n]))
            for n in config.pooled
        ]
    )
    if n_series > 1:
        tau = jnp.stack(
            [numpyro.sample(f"tau_{n}", dist.HalfNormal(_TAU_SCALES[n])) for n in config.pooled]
        )
        eta = numpyro.sample(
            "eta", dist.Normal(0.0, 1.0).expand([n_series, len(config.pooled)]).to_event(2)
        )
    else:
        # One series cannot tell the cohort's spread τ from its own offset η (a funnel NUTS
        # diverges in); with τ = 0 the model is the single-series one, θ = μ ~ N(c, s).
        tau = jnp.zeros(len(config.pooled), mu.dtype)
        eta = jnp.zeros((1, len(config.pooled)), mu.dtype)
    a0_offset = numpyro.sample("a0_offset", dist.Normal(0.0, 1.0).expand([n_series]).to_event(1))
    # Noise per series, pooled: a series the model fits badly (a mechanism it lacks) gets a
    # wider predictive band instead of narrowing everyone's.
    sigma_mean = numpyro.sample("sigma_mean", dist.Normal(np.log(0.1), 1.0))
    if n_series > 1:
        sigma_sd = numpyro.sample("sigma_sd", dist.HalfNormal(_SIGMA_SD_SCALE))
        sigma_offset = numpyro.sample(
            "sigma_offset", dist.Normal(0.0, 1.0).expand([n_series]).to_event(1)
        )
        log_sigma = sigma_mean + sigma_sd * sigma_offset
    else:  # one series: its σ is the "cohort's" (the same funnel as τ otherwise)
        log_sigma = jnp.full((1,), sigma_mean)
    sigma = numpyro.deterministic("sigma", jnp.exp(log_sigma))
    theta = _jit_full_theta(eta, mu, tau, a0_offset, log_a0_centre, t_first, config)
    log_mean = _cohort_log_burden(theta, time_days, t_rt_days)
    with numpyro.handlers.mask(mask=fit_mask):
        numpyro.sample("obs", dist.Normal(log_mean, sigma[:, None]), obs=log_value)


class PooledResult(eqx.Module):
    """Posterior of the hierarchical model and its predictive bands; leading ``series`` axes.

    Quantile arrays run over `quantile_levels` on their second axis: the lower ends of the
    central bands of `levels` (widest first), the median, then the upper ends.

    Attributes:
        names: series identifiers.
        setup: ``"all"`` or ``"train"`` (last visit held out).
        levels: central band probabilities, e.g. ``(0.5, 0.8, 0.95)``.
        quantile_levels: the probabilities of the stored quantiles.
        time_days, value, mask, t_rt_days: the padded input series (see `SeriesBatch`).
        params: per-series posterior draws (`RTParams`, fields ``(draw, series)``).
        sigma: ``(draw, series)`` lognormal noise σ of each series.
        population_mean, population_sd: ``(draw, pooled)`` μ and τ of the pooled parameters
            (unconstrained scale; names in ``pooled``).
        pooled: names of the pooled parameters.
        grid_days: ``(series, grid)`` days since first scan.
        grid_quantiles: ``(series, levels, grid)`` posterior-predictive quantiles (user units).
        curve_quantiles: ``(series, levels, grid)`` quantiles of the noise-free A(t).
        heldout_days, heldout_value: ``(series,)`` the last visit (held out in ``"train"``).
        heldout_draws: ``(series, draw)`` posterior-predictive draws at the last visit.
        heldout_quantiles: ``(series, levels)``.
        diagnostics: divergences, largest split R-hat (NaN with one chain), smallest bulk ESS,
            seconds.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    setup: str = eqx.field(static=True)
    levels: tuple[float, ...] = eqx.field(static=True)
    quantile_levels: tuple[float, ...] = eqx.field(static=True)
    pooled: tuple[str, ...] = eqx.field(static=True)
    time_days: Float[Array, "series n"]
    value: Float[Array, "series n"]
    mask: Bool[Array, "series n"]
    t_rt_days: Float[Array, " series"]
    params: RTParams
    sigma: Float[Array, "draw series"]
    population_mean: Float[Array, "draw pooled"]
    population_sd: Float[Array, "draw pooled"]
    grid_days: Float[Array, "series grid"]
    grid_quantiles: Float[Array, "series q grid"]
    curve_quantiles: Float[Array, "series q grid"]
    heldout_days: Float[Array, " series"]
    heldout_value: Float[Array, " series"]
    heldout_draws: Float[Array, "series draw"]
    heldout_quantiles: Float[Array, "series q"]
    diagnostics: dict[str, int | float] = eqx.field(static=True)


def pooled_bands(
    series: Series | Sequence[Series] | SeriesBatch,
    key: PRNGKeyArray,
    config: PooledConfig | None = None,
    *,
    progress_bar: bool = False,
) -> PooledResult:
    """Sample the hierarchical model of a cohort with NUTS; predictive bands per series.

    Args:
        series: one series, a list, or a padded `SeriesBatch` (days since first scan; burden in
            mm² or ml). One series works too (the population priors then act as its priors).
        key: JAX PRNG key.
        config: pooled/fixed parameters, setup, NUTS settings, band levels, grid.
        progress_bar: NumPyro's progress bar.
    """
    config = PooledConfig() if config is None else config
    if isinstance(series, Series):
        series = [series]
    batch = series if isinstance(series, SeriesBatch) else SeriesBatch.from_series(series)
    dtype = jnp.result_type(float)
    n_points = batch.n_points
    held_out = 1 if config.setup == "train" else 0
    for name, n in zip(batch.names, n_points, strict=True):
        if n - held_out < 1:
            raise InputError(f"series {name!r}: no visit left to fit after holding out the last")
    last = n_points - 1
    fit_mask = batch.mask.copy()
    if held_out:
        fit_mask[np.arange(len(batch)), last] = False
    time_days = jnp.asarray(batch.time_days, dtype)
    log_value = jnp.asarray(np.log(batch.value), dtype)
    t_first = jnp.asarray(batch.time_days[:, 0], dtype)
    # log A₀'s prior centre is log y_first − λ t_first; λ t_first is subtracted per draw.
    log_a0_centre = jnp.asarray(np.log(batch.value[:, 0]), dtype)
    t_rt = jnp.asarray(batch.t_rt_days, dtype)
    start = time.perf_counter()
    init = {f"mu_{n}": _PRIOR_CENTRES[n] for n in config.pooled}
    if len(batch) > 1:
        init |= {f"tau_{n}": 0.3 for n in config.pooled}
        init["eta"] = jnp.zeros((len(batch), len(config.pooled)), dtype)
        init |= {"sigma_sd": 0.2, "sigma_offset": jnp.zeros(len(batch), dtype)}
    init |= {"a0_offset": jnp.zeros(len(batch), dtype), "sigma_mean": float(np.log(0.15))}
    mcmc = MCMC(
        NUTS(
            cohort_model,
            target_accept_prob=config.target_accept,
            max_tree_depth=config.max_tree_depth,
            init_strategy=init_to_value(values=init),
        ),
        num_warmup=config.num_warmup,
        num_samples=config.num_samples,
        num_chains=config.num_chains,
        chain_method="vectorized",
        progress_bar=progress_bar,
    )
    sample_key, noise_key = jax.random.split(key)
    mcmc.run(
        sample_key,
        time_days,
        jnp.asarray(fit_mask),
        t_rt,
        log_a0_centre,
        t_first,
        config,
        log_value=log_value,
        extra_fields=("diverging", "num_steps"),
    )
    by_chain = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(by_chain)
    seconds = time.perf_counter() - start
    draws = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), by_chain)
    mu = jnp.stack([draws[f"mu_{n}"] for n in config.pooled], axis=-1)
    if len(batch) > 1:
        tau = jnp.stack([draws[f"tau_{n}"] for n in config.pooled], axis=-1)
        eta = draws["eta"]
    else:
        tau = jnp.zeros_like(mu)
        eta = jnp.zeros((mu.shape[0], 1, len(config.pooled)), mu.dtype)
    theta = jax.vmap(lambda e, m, s, z: _full_theta(e, m, s, z, log_a0_centre, t_first, config))(
        eta, mu, tau, draws["a0_offset"]
    )  # (draw, series, 7)
    sigma = draws["sigma"]

    t_last = jnp.asarray(batch.time_days[np.arange(len(batch)), last], dtype)
    grid = jnp.linspace(0.0, 1.0, config.n_grid, dtype=dtype)[None, :] * (
        t_last[:, None] + config.horizon_days
    )
    times = jnp.concatenate([grid, t_last[:, None]], axis=1)  # (series, grid + 1)
    log_curves = jax.vmap(
        lambda th: jax.vmap(lambda a, t, rt: predict_log(a, t, rt, "closed_form"))(th, times, t_rt)
    )(theta)  # (draw, series, grid + 1)
    noisy = log_curves + sigma[:, :, None] * jax.random.normal(noise_key, log_curves.shape, dtype)
    q_levels = _quantile_levels(config.levels)
    q = jnp.asarray(q_levels, dtype)
    predictive = jnp.moveaxis(jnp.quantile(jnp.exp(noisy), q, axis=0), 0, 1)
    curve = jnp.moveaxis(jnp.quantile(jnp.exp(log_curves[..., :-1]), q, axis=0), 0, 1)
    extra = mcmc.get_extra_fields()
    sites = [f"mu_{n}" for n in config.pooled] + ["sigma_mean"]
    if len(batch) > 1:
        sites += [f"tau_{n}" for n in config.pooled] + ["eta", "sigma_sd"]
    ess = min(
        float(jnp.min(numpyro.diagnostics.effective_sample_size(np.asarray(by_chain[s]))))
        for s in sites
    )
    rhat = (
        max(
            float(jnp.max(numpyro.diagnostics.split_gelman_rubin(np.asarray(by_chain[s]))))
            for s in sites
        )
        if config.num_chains > 1
        else float("nan")
    )
    return PooledResult(
        names=batch.names,
        setup=config.setup,
        levels=config.levels,
        quantile_levels=q_levels,
        pooled=config.pooled,
        time_days=jnp.asarray(batch.time_days, dtype),
        value=jnp.asarray(batch.value, dtype),
        mask=jnp.asarray(batch.mask),
        t_rt_days=t_rt,
        params=RTParams.from_unconstrained(theta),
        sigma=sigma,
        population_mean=mu,
        population_sd=tau,
        grid_days=grid,
        grid_quantiles=predictive[:, :, :-1],
        curve_quantiles=curve,
        heldout_days=t_last,
        heldout_value=jnp.asarray(batch.value[np.arange(len(batch)), last], dtype),
        heldout_draws=jnp.exp(noisy[:, :, -1]).T,
        heldout_quantiles=predictive[:, :, -1],
        diagnostics={
            "divergences": int(jnp.sum(extra["diverging"])),
            "max_rhat": rhat,
            "min_ess_bulk": ess,
            "mean_leapfrog_steps": float(jnp.mean(extra["num_steps"])),
            "seconds": seconds,
        },
    )
