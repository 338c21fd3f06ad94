"""``bayestumor rt fit``: bootstrap bands for many burden series from a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``rt`` command group with its ``fit`` subcommand."""
    rt = subparsers.add_parser("rt", help="radiotherapy-response burden model (per series)")
    rt_commands = rt.add_subparsers(dest="rt_command", required=True, metavar="COMMAND")
    fit = rt_commands.add_parser(
        "fit",
        help="fit series and write bootstrap bands",
        description=(
            "Fit the RT burden model (Laslo et al. 2025) to every series of SERIES.csv (columns "
            "series, time_days, value[, t_rt_days]; time in days since the first scan, value in "
            "mm² or ml) and write parameters.csv, bands.csv, metrics.json and plots/<series>.png."
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
    fit.add_argument("--relative", action="store_true", help="relative residual weighting")
    fit.add_argument("--fit-all", action="store_true", help="also fit slope and delay (rich data)")
    fit.add_argument("--starts", type=int, default=4, help="initial guesses per fit (default 4)")
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
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from bayestumor.radiotherapy import (
        DEFAULT_FIXED,
        BootstrapConfig,
        FitConfig,
        bootstrap,
        plot_bootstrap,
        read_series_csv,
        write_outputs,
    )
    from bayestumor.utils import atomic_directory

    series = read_series_csv(args.series_csv, args.rt_start)
    fit_config = FitConfig(
        fixed={} if args.fit_all else DEFAULT_FIXED, relative=args.relative, n_starts=args.starts
    )
    config = BootstrapConfig(
        n_replicates=args.replicates,
        noise=args.noise,
        band=tuple(args.band),
        setup=args.setup,
        horizon_days=args.horizon_days,
    )
    result = bootstrap(
        series,
        jax.random.key(args.seed),
        config,
        fit_config,
        chunk_size=args.chunk_size,
        progress=True,
    )
    settings = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    with atomic_directory(args.out) as tmp:
        write_outputs(result, tmp, settings)
        if not args.no_plots:
            (tmp / "plots").mkdir()
            for i, name in enumerate(tqdm(result.names, desc="plots", unit="series")):
                fig, ax = plt.subplots(figsize=(6, 4))
                plot_bootstrap(result, i, ax, units=args.units)
                fig.tight_layout()
                fig.savefig(tmp / "plots" / f"{_safe_name(name)}.png", dpi=100)
                plt.close(fig)
    n_failed = int(result.n_failed.sum())
    n_bad = int((~result.point.converged).sum())
    print(
        f"{len(result.names)} series → {args.out} "
        f"({n_bad} point fit(s) not converged; {n_failed} failed replicate fit(s) of "
        f"{len(result.names) * args.replicates}, excluded from the bands)"
    )
    return 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "series"
