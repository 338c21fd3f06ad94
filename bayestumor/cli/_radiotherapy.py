"""``bayestumor rt fit``: pooled Bayesian and bootstrap bands for many burden series from a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``rt`` command group with its ``fit`` subcommand."""
    rt = subparsers.add_parser("rt", help="radiotherapy-response burden model (per series)")
    rt_commands = rt.add_subparsers(dest="rt_command", required=True, metavar="COMMAND")
    fit = rt_commands.add_parser(
        "fit",
        help="fit series and write pooled Bayesian and bootstrap bands",
        description=(
            "Fit the RT burden model (Laslo et al. 2025) to every series of SERIES.csv (columns "
            "series, time_days, value[, t_rt_days]; time in days since the first scan, value in "
            "mm² or ml). Default: a hierarchical Bayesian model over all series (NUTS; "
            "posterior-predictive bands) and, side by side, the paper's bootstrap with the "
            "model of each series chosen by AICc. Writes pooled_parameters.csv, "
            "pooled_bands.csv, parameters.csv, model_selection.csv, bands.csv, metrics.json "
            "and plots/<series>.png; with --setup train also forecast.csv and a calibration "
            "table of the held-out visits."
        ),
    )
    fit.add_argument("series_csv", type=Path, metavar="SERIES.csv")
    fit.add_argument(
        "--out", type=Path, required=True, help="output directory (replaced atomically)"
    )
    fit.add_argument("--rt-start", type=Path, help="sidecar CSV with columns series, t_rt_days")
    fit.add_argument(
        "--replicates", type=int, default=100, help="bootstrap replicates (default 100)"
    )
    fit.add_argument(
        "--noise", type=float, default=0.1, help="multiplicative lognormal σ (default 0.1)"
    )
    fit.add_argument("--band", type=float, nargs=2, default=(0.025, 0.975), metavar=("LOW", "HIGH"))
    fit.add_argument(
        "--setup", choices=("all", "train"), default="all", help="'train' holds out the last visit"
    )
    fit.add_argument(
        "--method",
        choices=("both", "pooled", "bootstrap"),
        default="both",
        help="bands: pooled Bayesian, bootstrap, or both side by side (default both)",
    )
    fit.add_argument(
        "--model",
        choices=("auto", "fixed", "regrowth", "free"),
        default="auto",
        help="bootstrap model: chosen per series by AICc (auto, default) or one for all",
    )
    fit.add_argument(
        "--relative",
        action="store_true",
        help="relative instead of log residuals (with an explicit --model only)",
    )
    fit.add_argument("--fit-all", action="store_true", help="same as --model free")
    fit.add_argument("--warmup", type=int, default=400, help="NUTS warm-up steps (default 400)")
    fit.add_argument("--samples", type=int, default=400, help="NUTS draws (default 400)")
    fit.add_argument(
        "--levels",
        type=float,
        nargs="+",
        default=(0.5, 0.8, 0.95),
        help="central bands of the pooled fit and the calibration table",
    )
    fit.add_argument(
        "--starts",
        type=int,
        default=4,
        help="initial guesses per fit, explicit --model (default 4)",
    )
    fit.add_argument(
        "--horizon-days", type=float, default=90.0, help="band extends this far past the last visit"
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--chunk-size", type=int, default=64, help="series per vectorised call")
    fit.add_argument(
        "--units", default="burden", help="y-axis label of the plots, e.g. 'area (mm²)'"
    )
    fit.add_argument("--no-plots", action="store_true")
    fit.set_defaults(func=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    """Run ``bayestumor rt fit``; returns the exit code (0 on success)."""
    import dataclasses

    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from bayestumor.errors import InputError
    from bayestumor.radiotherapy import (
        CANDIDATES,
        BootstrapConfig,
        PooledConfig,
        bootstrap,
        bootstrap_selected,
        forecast_report,
        plot_bootstrap,
        plot_pooled,
        pooled_bands,
        read_series_csv,
        select_models,
        write_outputs,
    )
    from bayestumor.utils import atomic_directory

    series = read_series_csv(args.series_csv, args.rt_start)
    model = "free" if args.fit_all else args.model
    if args.relative and model == "auto":
        raise InputError("AICc compares log-residual fits: --relative needs an explicit --model")
    config = BootstrapConfig(
        n_replicates=args.replicates,
        noise=args.noise,
        band=tuple(args.band),
        setup=args.setup,
        horizon_days=args.horizon_days,
    )
    key = jax.random.key(args.seed)
    boot_key, pooled_key = jax.random.split(key)
    result = selection = pooled = None
    if args.method in ("both", "bootstrap"):
        if model == "auto":
            selection = select_models(series, setup=args.setup)
            result = bootstrap_selected(series, boot_key, selection, config)
        else:
            fit_config = dataclasses.replace(
                CANDIDATES[model],
                log_residuals=not args.relative,
                relative=args.relative,
                n_starts=args.starts,
            )
            result = bootstrap(
                series, boot_key, config, fit_config, chunk_size=args.chunk_size, progress=True
            )
    if args.method in ("both", "pooled"):
        pooled = pooled_bands(
            series,
            pooled_key,
            PooledConfig(
                setup=args.setup,
                num_warmup=args.warmup,
                num_samples=args.samples,
                levels=tuple(args.levels),
                horizon_days=args.horizon_days,
            ),
            progress_bar=True,
        )
    reports = {}
    if args.setup == "train":
        for method, fitted in (("pooled", pooled), ("bootstrap", result)):
            if fitted is not None:
                reports[method] = forecast_report(
                    fitted.names,
                    fitted.heldout_days,
                    fitted.heldout_value,
                    fitted.heldout_draws,
                    levels=args.levels,
                    method=method,
                )
    settings = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    names = (pooled or result).names
    with atomic_directory(args.out) as tmp:
        write_outputs(result, tmp, settings, selection=selection, pooled=pooled, reports=reports)
        if not args.no_plots:
            (tmp / "plots").mkdir()
            panels = [r for r in (result, pooled) if r is not None]
            for i, name in enumerate(tqdm(names, desc="plots", unit="series")):
                fig, axes = plt.subplots(
                    1, len(panels), figsize=(6 * len(panels), 4), sharey=True, squeeze=False
                )
                for ax, panel in zip(axes[0], panels, strict=True):
                    if panel is result:
                        plot_bootstrap(result, i, ax, units=args.units)
                    else:
                        plot_pooled(pooled, i, ax, units=args.units)
                fig.tight_layout()
                fig.savefig(tmp / "plots" / f"{_safe_name(name)}.png", dpi=100)
                plt.close(fig)
    lines = [f"{len(names)} series → {args.out}"]
    if result is not None:
        n_failed = int(result.n_failed.sum())
        n_bad = int((~result.point.converged).sum())
        lines.append(
            f"bootstrap: {n_bad} point fit(s) not converged; {n_failed} failed replicate fit(s) "
            f"of {len(names) * args.replicates}, excluded from the bands"
        )
        if selection is not None:
            counts = {m or "none": selection.model.count(m) for m in sorted(set(selection.model))}
            lines.append(f"models chosen (AICc or fallback): {counts}")
    if pooled is not None:
        lines.append(f"pooled NUTS: {pooled.diagnostics}")
        if pooled.diagnostics["divergences"] > 0:
            lines.append(
                f"warning: {pooled.diagnostics['divergences']} divergent NUTS transition(s): the "
                "pooled bands may be unreliable (more --warmup helps; a single series or a few "
                "give the hierarchy little to pool)"
            )
    for method, report in reports.items():
        summary = report.summary
        lines.append(
            f"held-out visit, {method}: median nRMSE {summary['median_nrmse']:.3f} over "
            f"{summary['n_scored']} series ({summary['n_not_scored']} not scored)"
        )
        lines += ["  " + line for line in report.calibration_lines()]
    print("\n".join(lines))
    return 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "series"
