"""Benchmark: forecasts of a synthetic cohort at held-out visits, and bootstrap speed.

**Forecasts** (the evidence behind the defaults): a synthetic cohort (`synthetic_cohort`: 200
series of 4–8 visits, 10 % lognormal noise; 40 % from the model, 60 % from mechanisms it lacks:
other regrowth rates, plateaus, pseudo-progression), ``train`` setup (each series' last visit
held out). Compared, each with its per-series forecast of the held-out visit scored by
`forecast_report` (median nRMSE = median of |ŷ − y| / y; coverage of the central 50/80/95 %
predictive bands):

- ``pooled``: the hierarchical NUTS fit with default settings (`pooled_bands`, `PooledConfig()`)
  — the package default, whose wall time is also the 200-series timing target (< 5 min);
- ``bootstrap AICc``: the paper's bootstrap with the model of each series chosen by AICc
  (`select_models`, `bootstrap_selected`);
- ``bootstrap old default``: the module's former defaults (slope 0.2/day, delay 21 days fixed,
  absolute residuals), on the series with enough visits;
- ``bootstrap fit-all``: every parameter fitted (``--fit-all``), on the series with enough visits.

Targets: pooled median nRMSE ≤ 0.30; its 95 % bands cover 85–99 % of held-out visits.
``--quick`` (the smoke test): 16 series, short NUTS, the default (first) row only.

**Speed**: 100-replicate bootstrap (one jitted vmap) against a loop of SciPy least_squares.
Both sides fit the same replicates of the same series with the same model (closed form), the
same ordinary residuals on data ÷ max, the same fitted parameters (A0, λ, S, λ_decay; slope and
delay fixed) and the same initial guesses; SciPy uses Levenberg–Marquardt (MINPACK) with
finite-difference Jacobians. Also measures series per second when fitting 1,000 series at once.

Usage: ``python benchmarks/radiotherapy.py [--quick] [--out PATH] [--series N]``; prints tables and writes
the JSON results atomically to ``PATH`` (default ``benchmarks/results/radiotherapy.json``; smoke
runs and tests pass a scratch path so the tracked numbers are never overwritten by quick ones).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

from bayestumor.radiotherapy import (
    CANDIDATES,
    BootstrapConfig,
    FitConfig,
    PooledConfig,
    RTParams,
    bootstrap,
    bootstrap_selected,
    burden,
    fit_arrays,
    forecast_report,
    json_ready,
    pooled_bands,
    select_models,
    start_guesses,
    synthetic_cohort,
)
from bayestumor.utils import atomic_path

RESULTS = Path(__file__).parent / "results" / "radiotherapy.json"

T_RT_DAYS = 50.0
TIMES_DAYS = np.array([0.0, 20.0, 45.0, 70.0, 100.0, 140.0, 200.0])
TRUTH = RTParams(A0=100.0, lam=0.02, S=0.3, lam_decay=0.05, slope=0.2, delay=21.0)


def _log_cosh(x: np.ndarray) -> np.ndarray:
    return np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - np.log(2.0)


def _numpy_burden(
    theta: np.ndarray, t: np.ndarray, slope: float = 0.2, delay: float = 21.0
) -> np.ndarray:
    a0, lam, s_logit, lam_decay = np.exp(theta[0]), np.exp(theta[1]), theta[2], np.exp(theta[3])
    s = 1 / (1 + np.exp(-s_logit))
    c = T_RT_DAYS + delay
    growth = -(lam_decay / slope) * (
        _log_cosh(slope * (np.maximum(t, T_RT_DAYS) - c)) - _log_cosh(slope * (T_RT_DAYS - c))
    )
    return a0 * s * np.exp(lam * t) + a0 * (1 - s) * np.exp(lam * np.minimum(t, T_RT_DAYS) + growth)


def _scipy_fit(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, bool]:
    scale = values.max()
    best = None
    for start in starts:
        x0 = start.copy()
        x0[0] = np.log(values[0] / scale) - np.exp(start[1]) * TIMES_DAYS[0]
        solution = least_squares(
            lambda th: _numpy_burden(th, TIMES_DAYS) - values / scale, x0, method="lm"
        )
        if best is None or solution.cost < best.cost:
            best = solution
    return best.x, bool(best.success)


def _timed(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, report, seconds: float) -> dict[str, object]:
    summary = report.summary
    return {
        "method": name,
        "n_scored": summary["n_scored"],
        "n_not_scored": summary["n_not_scored"],
        "median_nrmse": summary["median_nrmse"],
        "cohort_nrmse": summary["nrmse"],
        **{f"coverage_{lv:g}": summary[f"coverage_{lv:g}"] for lv in report.levels},
        "calibration": list(report.calibration),
        "seconds": seconds,
    }


def forecast_benchmark(n_series: int, quick: bool) -> dict[str, object]:
    """Score every method's held-out forecasts on one synthetic cohort; print the table."""
    cohort = synthetic_cohort(n_series, seed=2025)
    series = list(cohort.series)
    key = jax.random.key(0)
    boot_config = BootstrapConfig(n_replicates=10 if quick else 100, setup="train")
    rows, by_mechanism = [], {}

    start = time.perf_counter()
    pooled_config = (
        PooledConfig(setup="train", num_warmup=60, num_samples=60, max_tree_depth=5)
        if quick
        else PooledConfig(setup="train")
    )
    pooled = pooled_bands(series, key, pooled_config)
    pooled_seconds = time.perf_counter() - start
    report = forecast_report(
        pooled.names, pooled.heldout_days, pooled.heldout_value, pooled.heldout_draws
    )
    rows.append(_row("pooled (default)", report, pooled_seconds))
    mechanism = np.array(cohort.mechanism)
    for m in sorted(set(cohort.mechanism)):
        keep = np.flatnonzero(mechanism == m)
        part = forecast_report(
            [pooled.names[i] for i in keep],
            np.asarray(pooled.heldout_days)[keep],
            np.asarray(pooled.heldout_value)[keep],
            np.asarray(pooled.heldout_draws)[keep],
        )
        by_mechanism[m] = {
            k: part.summary[k] for k in ("n_scored", "median_nrmse", "coverage_0.95")
        }

    chosen: dict[str, int] = {}
    if not quick:  # the smoke run checks the default only (each method compiles its own fits)
        start = time.perf_counter()
        selection = select_models(series, setup="train")
        selected = bootstrap_selected(series, key, selection, boot_config)
        report = forecast_report(
            selected.names, selected.heldout_days, selected.heldout_value, selected.heldout_draws
        )
        rows.append(_row("bootstrap AICc", report, time.perf_counter() - start))
        chosen = {m or "none": selection.model.count(m) for m in sorted(set(selection.model))}

    others = (
        ()
        if quick
        else (("bootstrap old default", FitConfig()), ("bootstrap fit-all", CANDIDATES["free"]))
    )
    for name, fit_config in others:
        usable = [s for s in series if len(s) - 1 >= len(fit_config.fitted)]
        start = time.perf_counter()
        result = bootstrap(usable, key, boot_config, fit_config)
        report = forecast_report(
            result.names, result.heldout_days, result.heldout_value, result.heldout_draws
        )
        row = _row(name, report, time.perf_counter() - start)
        row["n_not_scored"] += len(series) - len(usable)
        rows.append(row)

    header = f"{'method':<24} {'scored':>7} {'med nRMSE':>9} {'50%':>6} {'80%':>6} {'95%':>6} {'time':>8}"
    print(f"held-out visit forecasts, synthetic cohort of {n_series} series (train setup)")
    print(header)
    for row in rows:
        print(
            f"{row['method']:<24} {row['n_scored']:>3}/{n_series:<3} {row['median_nrmse']:>9.3f} "
            f"{row['coverage_0.5']:>6.1%} {row['coverage_0.8']:>6.1%} {row['coverage_0.95']:>6.1%} "
            f"{row['seconds']:>7.1f}s"
        )
    print("pooled, by mechanism:")
    for m, values in by_mechanism.items():
        print(
            f"  {m:<20} n={values['n_scored']:<4} median nRMSE {values['median_nrmse']:.3f}, "
            f"95% coverage {values['coverage_0.95']:.1%}"
        )
    print(f"bootstrap AICc models: {chosen}")
    best = rows[0]
    targets = {
        "median_nrmse_le_0.30": bool(best["median_nrmse"] <= 0.30),
        "coverage_95_in_85_99": bool(0.85 <= best["coverage_0.95"] <= 0.99),
        "pooled_under_5_min": bool(pooled_seconds < 300),
    }
    print(f"targets (pooled default): {targets}")
    return {
        "n_series": n_series,
        "cohort_seed": 2025,
        "mechanisms": {m: cohort.mechanism.count(m) for m in sorted(set(cohort.mechanism))},
        "methods": rows,
        "pooled_by_mechanism": by_mechanism,
        "pooled_diagnostics": pooled.diagnostics,
        "pooled_seconds": pooled_seconds,
        "bootstrap_aicc_models": chosen,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark, print the tables, write the JSON results; returns them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument(
        "--series", type=int, default=None, help="cohort size (default 200; 16 with --quick)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    forecasts = forecast_benchmark(args.series or (16 if quick else 200), quick)
    n_replicates, n_series, repeats = (20, 100, 1) if quick else (100, 1000, 3)
    config = FitConfig()
    rng = np.random.default_rng(0)
    clean = np.asarray(burden(TRUTH, jnp.asarray(TIMES_DAYS, jnp.float32), T_RT_DAYS))
    observed = clean * np.exp(0.1 * rng.standard_normal(clean.size))
    replicates = observed * np.exp(0.1 * rng.standard_normal((n_replicates, clean.size)))

    def batch_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`fit_arrays`' inputs for series of `values` (series, visit) at the common visits."""
        times = np.broadcast_to(TIMES_DAYS, values.shape)
        return values, times, np.ones_like(times), np.full(values.shape[:-1], T_RT_DAYS)

    def jax_bootstrap():
        return fit_arrays(*batch_of(replicates), config)

    start = time.perf_counter()
    jax.block_until_ready(jax_bootstrap())
    jax_first = time.perf_counter() - start
    jax_warm = _timed(jax_bootstrap, repeats)
    jax_result = jax_bootstrap()

    starts = np.asarray(start_guesses(config, jnp.dtype(jnp.float32)))[:, :4].astype(float)
    start = time.perf_counter()
    scipy_fits = [_scipy_fit(v, starts) for v in replicates]
    scipy_time = time.perf_counter() - start
    scipy_theta = np.array([f[0] for f in scipy_fits])
    # Same optimum: compare fitted curves at the visits (relative, both converged).
    both = np.asarray(jax_result.converged) & np.array([f[1] for f in scipy_fits])
    jax_curves = np.asarray(
        jax.vmap(
            lambda th: burden(
                RTParams.from_unconstrained(th), jnp.asarray(TIMES_DAYS, jnp.float32), T_RT_DAYS
            )
        )(jax_result.theta)
    )
    scipy_curves = np.array(
        [
            _numpy_burden(th, TIMES_DAYS) * v.max()
            for th, v in zip(scipy_theta, replicates, strict=True)
        ]
    )
    agreement = float(np.median(np.max(np.abs(jax_curves[both] / scipy_curves[both] - 1), axis=1)))

    many = clean * np.exp(0.1 * rng.standard_normal((n_series, clean.size)))

    def jax_many():
        return fit_arrays(*batch_of(many), config)

    jax.block_until_ready(jax_many())
    many_time = _timed(jax_many, repeats)
    many_converged = float(np.mean(jax_many().converged))

    results = {
        "quick": quick,
        "device": str(jax.devices()[0]),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_device_count": jax.device_count(),
        "n_replicates": n_replicates,
        "n_starts": config.n_starts,
        "jax_bootstrap_s_warm": jax_warm,
        "jax_bootstrap_s_first_call_incl_compile": jax_first,
        "scipy_loop_s": scipy_time,
        "speedup_warm": scipy_time / jax_warm,
        "jax_converged_fraction": float(np.mean(jax_result.converged)),
        "scipy_converged_fraction": float(np.mean([f[1] for f in scipy_fits])),
        "median_max_relative_curve_difference_jax_vs_scipy": agreement,
        "n_series_at_once": n_series,
        "many_series_s": many_time,
        "series_per_second": n_series / many_time,
        "many_converged_fraction": many_converged,
        "forecasts": forecasts,
    }
    rows = [
        (
            "bootstrap, JAX vmap (warm)",
            f"{jax_warm * 1e3:.1f} ms",
            f"{n_replicates} replicates × {config.n_starts} starts",
        ),
        ("bootstrap, JAX first call", f"{jax_first:.2f} s", "includes compilation"),
        ("bootstrap, SciPy loop", f"{scipy_time * 1e3:.1f} ms", "least_squares(method='lm')"),
        ("speed-up (warm)", f"{scipy_time / jax_warm:.1f}×", "target ≥ 20×"),
        ("curve agreement JAX vs SciPy", f"{agreement:.1e}", "median max relative difference"),
        (
            f"{n_series} series at once",
            f"{many_time:.2f} s",
            f"{n_series / many_time:.0f} series/s, {many_converged:.1%} converged",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    results = json_ready(results)  # NaN (e.g. R-hat of one chain) → null: valid JSON
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2, allow_nan=False))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
