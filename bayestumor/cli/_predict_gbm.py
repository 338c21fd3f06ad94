"""``bayestumor predict-gbm``: PredictGBM's container contract, Patient-X folders → X.nii.gz."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bayestumor.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``predict-gbm``."""
    parser = subparsers.add_parser(
        "predict-gbm",
        help="predict every PredictGBM Patient-X folder into X.nii.gz (posterior mean density)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Calibrate every INPUT_DIR/Patient-X folder (PredictGBM layout:\n"
            "X-{gm,wm,csf,tumorseg}.nii.gz, optionally X-pet and X-brain_mask; X-t1c, X-flair\n"
            "and X-adc are images and are not read) and write OUTPUT_DIR/X.nii.gz: the posterior\n"
            "mean tumour-cell density on the input grid, float32 in [0, 1]. PredictGBM ranks\n"
            "voxels by it (top-k plans), and the mean orders them by expected density; P(u > u*)\n"
            "would be flat (0 or 1) over most of the brain.\n"
            "\n"
            "Default options: the calibration defaults (PDE, NUTS, 2 mm ROI sampled\n"
            "coarse-to-fine from 4 mm, grown until the target volume fits), tumorseg labels\n"
            "1 necrotic, 2 oedema, 3 enhancing (brats2023),\n"
            "PET normalised by the tumour-to-background ratio (tbr); --config overrides what it\n"
            "names. Existing outputs are kept unless --overwrite. A failing patient is reported on\n"
            "stderr and in OUTPUT_DIR/errors.json and the others go on.\n"
            "Exit code 0: all written; 1: some patient failed; 2: INPUT_DIR unusable."
        ),
        epilog=(
            "container (PredictGBM): input mounted at /mlcube_io0, output at /mlcube_io1;\n"
            "the image's entrypoint is 'bayestumor predict-gbm /mlcube_io0 /mlcube_io1'."
        ),
    )
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="Patient-X folders")
    parser.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="X.nii.gz go here")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="CONFIG.json",
        help="JSON file of CalibrationConfig options; the options it names replace the defaults",
    )
    parser.add_argument(
        "--keep-runs",
        type=Path,
        metavar="DIR",
        help="also keep each patient's full calibration run in DIR/X",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute outputs that exist already"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayestumor predict-gbm``; returns 0, or 1 when some patient failed."""
    from bayestumor.config import CalibrationConfig
    from bayestumor.workflows import PREDICT_GBM_CONFIG, predict_gbm

    config = PREDICT_GBM_CONFIG
    if args.config is not None:
        try:
            options = json.loads(args.config.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read the configuration: {error}", args.config) from error
        if not isinstance(options, dict):
            raise InputError("the configuration must be a JSON object", args.config)
        config = CalibrationConfig.from_dict({**PREDICT_GBM_CONFIG.to_dict(), **options})
    result = predict_gbm(
        args.input_dir,
        args.output_dir,
        config,
        keep_runs=args.keep_runs,
        overwrite=args.overwrite,
    )
    print(
        f"predict-gbm: {len(result.written)} written, {len(result.skipped)} kept (existing), "
        f"{len(result.errors)} failed" + (f": {', '.join(result.errors)}" if result.errors else "")
    )
    return 1 if result.errors else 0
