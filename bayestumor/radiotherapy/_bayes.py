"""Bayesian alternative to the bootstrap: the same RT burden model in NumPyro, sampled by NUTS.

Likelihood: lognormal noise, ``log y_i ~ Normal(log A(t_i; θ), σ)`` (multiplicative noise of
about ``σ``, matching the bootstrap's noise law). Priors on the unconstrained scale of the fitted
parameters (fixed ones as in `FitConfig`):

- ``log A0 ~ N(log y_first − 0.01 t_first, 1)`` (user units),
- ``log λ ~ N(log 0.01, 1)`` (1/day), ``logit S ~ N(0, 1.5)``, ``log λ_decay ~ N(log 0.02, 1)``
  (1/day), ``log slope ~ N(log 0.2, 1)`` (1/day), ``log delay ~ N(log 21, 0.5)`` (days),
  ``log regrowth ~ N(0, 0.5)`` (when fitted),
- ``σ ~ HalfNormal(0.2)``.

Model of Laslo et al. (arXiv:2509.09610, 2025).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

from bayestumor._custom_types import Array, Float, PRNGKeyArray
from bayestumor.radiotherapy._data import Series
from bayestumor.radiotherapy._fit import FitConfig, check_enough_points, predict_log
from bayestumor.radiotherapy._ode import PARAM_NAMES, RTParams

_PRIOR_SCALES = {
    "A0": 1.0,
    "lam": 1.0,
    "S": 1.5,
    "lam_decay": 1.0,
    "slope": 1.0,
    "delay": 0.5,
    "regrowth": 0.5,
}
_PRIOR_CENTRES = {
    "lam": np.log(0.01),
    "S": 0.0,
    "lam_decay": np.log(0.02),
    "slope": np.log(0.2),
    "delay": np.log(21.0),
    "regrowth": 0.0,
}


def rt_model(
    time_days: Float[Array, " n"],
    t_rt_days: float,
    log_a0_centre: float,
    config: FitConfig,
    value: Float[Array, " n"] | None = None,
) -> None:
    """NumPyro model of a burden series; ``value`` (user units) is observed when given.

    Sites: ``theta_<name>`` for each fitted parameter (unconstrained scale), ``sigma``
    (lognormal noise), deterministic ``log_burden`` and the observation ``obs``.
    """
    fixed = dict(config.fixed)
    centres = {**_PRIOR_CENTRES, "A0": log_a0_centre}
    theta = RTParams(
        **{
            n: jnp.asarray(fixed.get(n, 0.5 if n == "S" else 1.0), time_days.dtype)
            for n in PARAM_NAMES
        }
    ).to_unconstrained()
    for i, name in enumerate(PARAM_NAMES):
        if name not in fixed:
            site = numpyro.sample(f"theta_{name}", dist.Normal(centres[name], _PRIOR_SCALES[name]))
            theta = theta.at[i].set(site)
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
    log_mean = numpyro.deterministic(
        "log_burden", predict_log(theta, time_days, jnp.asarray(t_rt_days), config.forward)
    )
    numpyro.sample("obs", dist.LogNormal(log_mean, sigma), obs=value)


class BayesResult(eqx.Module):
    """Posterior of one series and its bands on a time grid (burden in user units).

    Attributes:
        params: posterior draws of all parameters (`RTParams`, leading ``draw`` axis).
        sigma: posterior draws of the lognormal noise σ.
        grid_days: time grid, days since the first scan.
        curve_quantiles: ``(3, grid)`` lower/median/upper of the noise-free burden A(t).
        predictive_quantiles: ``(3, grid)`` of the posterior predictive (A(t) times noise).
        diagnostics: ``divergences`` and the largest split R-hat over fitted parameters.
    """

    params: RTParams
    sigma: Float[Array, " draw"]
    grid_days: Float[Array, " grid"]
    curve_quantiles: Float[Array, "3 grid"]
    predictive_quantiles: Float[Array, "3 grid"]
    diagnostics: dict[str, int | float] = eqx.field(static=True)


def bayes_bands(
    series: Series,
    key: PRNGKeyArray,
    config: FitConfig | None = None,
    *,
    grid_days: Float[Array, " grid"] | None = None,
    band: tuple[float, float] = (0.025, 0.975),
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    progress_bar: bool = False,
) -> BayesResult:
    """Sample the posterior with NUTS and summarise it as bands on a time grid.

    Args:
        series: one validated series (days since first scan; burden in mm² or ml).
        key: JAX PRNG key.
        config: which parameters are fixed (and the forward solver), as for the fits.
        grid_days: output times; default 121 points from 0 to the last visit + 90 days.
        band: lower and upper quantiles (default central 95 %).
        num_warmup, num_samples, num_chains: NUTS settings (chains run vectorised).
        progress_bar: show NumPyro's progress bar.
    """
    config = FitConfig() if config is None else config
    check_enough_points(len(series), config, series.name)
    dtype = jnp.result_type(float)
    time = jnp.asarray(series.time_days, dtype)
    value = jnp.asarray(series.value, dtype)
    if grid_days is None:
        grid_days = jnp.linspace(0.0, series.time_days[-1] + 90.0, 121, dtype=dtype)
    log_a0_centre = float(np.log(series.value[0]) - 0.01 * series.time_days[0])
    mcmc = MCMC(
        NUTS(rt_model, target_accept_prob=0.95),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=progress_bar,
    )
    sample_key, noise_key = jax.random.split(key)
    mcmc.run(sample_key, time, series.t_rt_days, log_a0_centre, config, value=value)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    fixed = dict(config.fixed)
    draws = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), samples)
    n_draws = draws["sigma"].shape[0]
    theta = jnp.broadcast_to(
        RTParams(
            **{n: jnp.asarray(fixed.get(n, 0.5 if n == "S" else 1.0), dtype) for n in PARAM_NAMES}
        ).to_unconstrained(),
        (n_draws, len(PARAM_NAMES)),
    )
    for i, name in enumerate(PARAM_NAMES):
        if name not in fixed:
            theta = theta.at[:, i].set(draws[f"theta_{name}"])
    grid = jnp.asarray(grid_days, dtype)
    log_curves = jax.vmap(
        lambda th: predict_log(th, grid, jnp.asarray(series.t_rt_days, dtype), config.forward)
    )(theta)
    noisy = log_curves + draws["sigma"][:, None] * jax.random.normal(
        noise_key, log_curves.shape, dtype
    )
    levels = jnp.asarray([band[0], 0.5, band[1]], dtype)
    rhat = (
        max(
            float(jnp.max(numpyro.diagnostics.split_gelman_rubin(samples[f"theta_{n}"])))
            for n in config.fitted
        )
        if num_chains > 1
        else float("nan")
    )
    divergences = int(jnp.sum(mcmc.get_extra_fields()["diverging"]))
    return BayesResult(
        params=RTParams.from_unconstrained(theta),
        sigma=draws["sigma"],
        grid_days=grid,
        curve_quantiles=jnp.quantile(jnp.exp(log_curves), levels, axis=0),
        predictive_quantiles=jnp.quantile(jnp.exp(noisy), levels, axis=0),
        diagnostics={"divergences": divergences, "max_rhat": rhat},
    )
