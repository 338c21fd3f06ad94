"""``bayestumor report``: re-render the maps, figures and summary of a stored calibration run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    report = subparsers.add_parser(
        "report",
        help="re-render maps, figures and summary of a calibration run without sampling",
        description=(
            "Read RUN_DIR (written by 'bayestumor calibrate': posterior.nc, config.json, run.json, "
            "roi/), recompute the density draws with the forward map and write maps/*.nii.gz, "
            "figures/ and summary.json again — into RUN_DIR (replaced atomically) or --out."
        ),
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument("--out", type=Path, help="write the report here instead of RUN_DIR")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayestumor report``; returns the exit code (3 when the stored diagnostics failed)."""
    from bayestumor.workflows import format_summary, report_directory

    result = report_directory(args.run_dir, args.out, plots=False if args.no_plots else None)
    print(format_summary(result.summary))
    print(f"wrote {result.out_dir}")
    return 0 if result.summary["diagnostics"]["passed"] else 3
