"""``bayestumor cohort``: calibrate every patient of a cohort directory on Dask."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from bayestumor.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``cohort`` command."""
    cohort = subparsers.add_parser(
        "cohort",
        help="calibrate every patient of a cohort (Dask; resumable)",
        description=(
            "Calibrate every sub-directory of COHORT_DIR (one patient each) with one shared "
            "configuration. Writes OUT/<patient>/ per patient, the table OUT/cohort.csv and "
            "OUT/cohort.parquet and the forest plot OUT/cohort_forest.png. Running again "
            "recomputes only patients whose inputs or configuration changed. Exit code 1 if a "
            "patient failed (see the table's status and error columns)."
        ),
    )
    cohort.add_argument("cohort_dir", type=Path, metavar="COHORT_DIR")
    cohort.add_argument("--out", type=Path, required=True, help="output directory")
    cohort.add_argument(
        "--config", type=Path, help="JSON calibration configuration (CalibrationConfig.to_dict())"
    )
    cohort.add_argument(
        "--workers", type=int, help="local worker processes (default: the usable CPU cores)"
    )
    cohort.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use an existing Dask scheduler, e.g. tcp://host:8786",
    )
    cohort.add_argument(
        "--retries",
        type=int,
        default=2,
        help="retries of a patient that raised an error (default 2)",
    )
    cohort.add_argument(
        "--task",
        metavar="MODULE:FUNCTION",
        help="per-patient function (patient_dir, out_dir, config, seed) -> summary; "
        "default: bayestumor's calibration",
    )
    cohort.add_argument("--no-progress", action="store_true", help="no progress bar")
    cohort.set_defaults(func=run_cohort_command)


def run_cohort_command(args: argparse.Namespace) -> int:
    """Run ``bayestumor cohort``; returns 0 if every patient succeeded, else 1."""
    from bayestumor.cohort import run_cohort

    config = None
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read the configuration: {error}", args.config) from error
    result = run_cohort(
        args.cohort_dir,
        args.out,
        config,
        task=None if args.task is None else _load_task(args.task),
        n_workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        progress=not args.no_progress,
    )
    print(
        f"cohort: {len(result.table)} patients: {len(result.computed)} computed, "
        f"{len(result.reused)} reused, {len(result.failed)} failed -> {result.out_dir}"
    )
    for patient in result.failed:
        row = result.table.set_index("patient").loc[patient]
        print(f"  {patient}: {row['status']}: {row['error']}")
    return 1 if result.failed else 0


def _load_task(spec: str):
    """The function named by ``module:function``."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise InputError(f"--task must be MODULE:FUNCTION, got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise InputError(f"cannot load --task {spec!r}: {error}") from error
