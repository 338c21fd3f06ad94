"""``bayestumor evaluate``: score predictions as radiotherapy plans against the recurrence."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayestumor.errors import InputError

LABEL_ROLES = ("necrotic", "oedema", "enhancing", "other")
# Named conventions are resolved in `run`, where bayestumor.imaging (LABEL_CONVENTIONS) and
# bayestumor.posterior (PredictGBM's pair; it imports JAX) may be imported.
LABEL_NAMES = ("brats2021", "brats2023", "gliodil", "predictgbm")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="score predictions as radiotherapy plans against the recurrence (PredictGBM)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Score a prediction the way PredictGBM does: the standard plan is the tumour core\n"
            "(necrotic + enhancing) dilated by 15 mm within the brain mask; the model plan is\n"
            "the same number of brain voxels where the prediction is highest (ties: nearest to\n"
            "the core first). Reports the share of the recurrence each plan covers (enhancing,\n"
            "and all tumour labels), the missed voxels, and the least plan volume with which\n"
            "each family of plans (top-k of the prediction; core + any margin) covers all of it.\n"
            "\n"
            "PATH is one patient directory, or a cohort directory whose sub-directories are\n"
            "patients. A patient directory holds, on one grid:\n"
            "  prediction, tumorseg, recurrence, brain_mask (.nii.gz or .nii), or in PredictGBM's\n"
            "  layout Patient-X/X-{tumorseg,recurrence,brain_mask}.nii.gz with the predictions\n"
            "  in --predictions PRED_DIR/X.nii.gz.\n"
            "Writes OUT/evaluation.csv (one row per patient), OUT/summary.json, OUT/curves.csv,\n"
            "OUT/coverage.png and OUT/plans/X-{standard,model}_plan.nii.gz; OUT is replaced.\n"
            "Exit code 1 if a patient of a cohort was refused (see the table's error column)."
        ),
        epilog=(
            "label conventions (--labels, --recurrence-labels):\n"
            "  brats2021   necrotic 1, oedema 2, enhancing 4 (default)\n"
            "  brats2023   necrotic 1, oedema 2, enhancing 3\n"
            "  gliodil     necrotic 1, oedema 3, enhancing 4\n"
            "  predictgbm  tumorseg: necrotic 1, oedema 2, enhancing 3; recurrence: the same\n"
            "              and 4 = resection cavity (no tumour)\n"
            "  or explicit: necrotic=1,oedema=3,enhancing=4[,other=5] ('+' joins labels: 1+5)\n"
            "\n"
            "examples:\n"
            "  bayestumor evaluate PATIENT_DIR --out OUT\n"
            "  bayestumor evaluate INPUT_DIR --predictions PRED_DIR --labels predictgbm --out OUT"
        ),
    )
    evaluate.add_argument("path", type=Path, metavar="PATH", help="patient or cohort directory")
    evaluate.add_argument("--out", type=Path, required=True, help="output directory")
    evaluate.add_argument(
        "--predictions",
        type=Path,
        metavar="PRED_DIR",
        help="directory of predictions X.nii.gz, one per patient X (PredictGBM's output)",
    )
    evaluate.add_argument(
        "--labels",
        type=parse_labels,
        default="brats2021",
        metavar="CONVENTION",
        help="label convention of the tumour segmentation (default brats2021; see below)",
    )
    evaluate.add_argument(
        "--recurrence-labels",
        type=parse_labels,
        metavar="CONVENTION",
        help="label convention of the recurrence (default: as --labels)",
    )
    evaluate.add_argument(
        "--margin-mm",
        type=float,
        default=15.0,
        help="margin of the standard plan around the tumour core, mm (default 15)",
    )
    evaluate.add_argument("--no-plans", action="store_true", help="do not write the plans as NIfTI")
    evaluate.set_defaults(func=run)


def parse_labels(spec: str) -> str | dict[str, tuple[int, ...]]:
    """A convention name (lower-cased; checked in `run`) or ``role=label[+label],...`` as a
    role → labels dict."""
    spec = spec.strip()
    if "=" not in spec:
        return spec.lower()
    labels: dict[str, tuple[int, ...]] = {}
    for part in spec.split(","):
        role, equals, values = part.partition("=")
        role = role.strip().lower()
        if not equals or role not in LABEL_ROLES or role in labels:
            raise argparse.ArgumentTypeError(
                f"{spec!r}: expected one of {', '.join(LABEL_NAMES)} or role=label,... with "
                f"roles {', '.join(LABEL_ROLES)} (each once), e.g. necrotic=1,oedema=2,enhancing=4"
            )
        try:
            labels[role] = tuple(int(v) for v in values.split("+") if v.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{spec!r}: labels are integers") from error
    return labels


def run(args: argparse.Namespace) -> int:
    """Run ``bayestumor evaluate``; returns 0, or 1 when a patient of a cohort was refused."""
    from bayestumor.imaging import LABEL_CONVENTIONS
    from bayestumor.posterior import PREDICTGBM_LABELS, PREDICTGBM_RECURRENCE_LABELS
    from bayestumor.workflows import evaluate_directory, format_evaluation

    def resolve(spec: str | dict[str, tuple[int, ...]], recurrence: bool):
        """A role → labels mapping; PredictGBM's recurrence has 4 = resection cavity."""
        if not isinstance(spec, str):
            return spec
        if spec == "predictgbm":
            return PREDICTGBM_RECURRENCE_LABELS if recurrence else PREDICTGBM_LABELS
        if spec in LABEL_CONVENTIONS:
            return {role: (label,) for role, label in LABEL_CONVENTIONS[spec].items()}
        raise InputError(
            f"unknown label convention {spec!r}; known: {', '.join(LABEL_NAMES)}, or "
            "role=label,... (e.g. necrotic=1,oedema=2,enhancing=4)"
        )

    if args.margin_mm < 0:
        raise InputError(f"--margin-mm must be ≥ 0, got {args.margin_mm:g}")
    recurrence_spec = args.labels if args.recurrence_labels is None else args.recurrence_labels
    result = evaluate_directory(
        args.path,
        args.out,
        predictions_dir=args.predictions,
        labels=resolve(args.labels, recurrence=False),
        recurrence_labels=resolve(recurrence_spec, recurrence=True),
        margin_mm=args.margin_mm,
        plans=not args.no_plans,
    )
    print(format_evaluation(result))
    print(f"wrote {result.out_dir}")
    return 1 if result.failed else 0
