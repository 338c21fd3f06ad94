"""Plan evaluation from files: a prediction scored against the recurrence, one patient or many.

Inputs, all on one grid (same shape and affine), per patient:

- a **prediction** (any real map; higher = plan first: density, P(u > u*), ...);
- the pre-operative tumour segmentation **tumorseg** (label map; core = necrotic + enhancing);
- the follow-up **recurrence** segmentation (label map);
- a **brain_mask** (binary).

Two directory layouts are read (``.nii.gz`` or ``.nii``):

- bayestumor's: ``PATIENT/{prediction,tumorseg,recurrence,brain_mask}.nii.gz``;
- PredictGBM's: ``Patient-X/X-{tumorseg,brain_mask,recurrence}.nii.gz`` with the predictions in
  a separate directory, ``PRED_DIR/X.nii.gz`` (a container's output). X is the prefix of the
  ``X-tumorseg`` file; in bayestumor's layout it is the directory's name, and ``PRED_DIR/X``
  may replace ``prediction.nii.gz`` there too.

A **patient directory** holds a tumour segmentation; any other directory is a **cohort**, whose
sub-directories holding one are its patients. Outputs, written atomically into one directory
(replaced as a whole; nothing is left half-written):

- ``evaluation.csv``: one row per patient — ``patient``, ``status`` (``ok``/``error``),
  ``error``, then `bayestumor.posterior.PlanEvaluation`'s metrics;
- ``summary.json``: settings (margin, label conventions, tie rule), cohort statistics (mean and
  median of each coverage, which family reaches full coverage with less tissue, counted) and
  every patient's metrics;
- ``curves.csv``: the coverage-volume curves (``patient, target, plan, volume_ml, coverage,
  margin_mm``; at most 200 exact corners per curve);
- ``coverage.png``: coverage against plan volume for both families of plans;
- ``plans/X-standard_plan.nii.gz``, ``plans/X-model_plan.nii.gz`` (uint8) unless ``plans=False``.

A single patient with bad input raises `InputError` and writes nothing; in a cohort such a
patient gets an error row and the others go on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayestumor.errors import BayesTumorError, InputError
from bayestumor.imaging import NIFTI_SUFFIXES, Grid, load_nifti, save_nifti
from bayestumor.posterior import (
    BRATS2021_LABELS,
    STANDARD_MARGIN_MM,
    CoverageCurve,
    PlanEvaluation,
    TumourLabels,
    describe_labels,
    evaluate_plans,
    tumour_masks,
)
from bayestumor.utils import atomic_directory

EVALUATION_FORMAT = "bayestumor-evaluation/1"
INPUT_ROLES = ("prediction", "tumorseg", "recurrence", "brain_mask")
TIE_RULE = (
    "prediction highest first; equal predictions: nearest to the tumour core (mm) first; "
    "then the lowest flat (C-order) voxel index"
)
CURVE_POINTS = 200
"""Most corners kept per coverage curve in ``curves.csv`` (exact corners, not interpolated)."""

_COVERAGE_KEYS = (
    "recurrence_coverage_standard",
    "recurrence_coverage_model",
    "recurrence_coverage_standard_all",
    "recurrence_coverage_model_all",
)
_VOLUME_KEYS = (
    "plan_ml",
    "full_coverage_ml_standard",
    "full_coverage_ml_model",
    "full_coverage_ml_standard_all",
    "full_coverage_ml_model_all",
    "full_coverage_margin_mm",
    "full_coverage_margin_mm_all",
)


class EvaluationInputs(NamedTuple):
    """The four files of one patient, and its name (X)."""

    patient: str
    prediction: Path
    tumorseg: Path
    recurrence: Path
    brain_mask: Path


class PatientEvaluation(NamedTuple):
    """What `evaluate_directory` keeps of a patient's `bayestumor.posterior.PlanEvaluation`:
    its inputs, metrics and coverage curves (the plans themselves go to disk)."""

    inputs: EvaluationInputs
    metrics: dict[str, float | int | str]
    curves: dict[str, CoverageCurve]


Scored = PlanEvaluation | PatientEvaluation
"""Anything with ``metrics`` and ``curves`` by patient: tables and plots take either."""


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Outcome of `evaluate_directory`.

    Attributes:
        out_dir: the output directory.
        table: one row per patient (``evaluation.csv``).
        summary: what ``summary.json`` holds.
        evaluations: `PatientEvaluation` by patient, for those evaluated.
        failed: patients whose input was refused (cohort only), with the reason.
    """

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]
    evaluations: dict[str, PatientEvaluation]
    failed: dict[str, str]


# ---------------------------------------------------------------------------------- layouts


def _nifti_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))


def _stem(path: Path) -> str:
    """The file name without its NIfTI suffix."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def is_patient_directory(path: str | Path) -> bool:
    """True when `path` holds a tumour segmentation (``tumorseg`` or ``X-tumorseg``)."""
    path = Path(path)
    return path.is_dir() and any(
        _stem(f) == "tumorseg" or _stem(f).endswith("-tumorseg") for f in _nifti_files(path)
    )


def find_evaluation_inputs(
    patient_dir: str | Path, predictions_dir: str | Path | None = None
) -> EvaluationInputs:
    """The four files of a patient directory, in either layout (module docstring).

    Args:
        patient_dir: ``PATIENT/`` (bayestumor's layout) or ``Patient-X/`` (PredictGBM's).
        predictions_dir: where the prediction is ``X.nii.gz``; default: ``prediction.nii.gz``
            (or ``X-prediction.nii.gz``) inside `patient_dir`.

    Raises:
        InputError: a missing directory or file, or two candidates for one file.
    """
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise InputError("patient directory not found", patient_dir)
    stems = {_stem(f): f for f in _nifti_files(patient_dir)}
    prefixed = sorted(s.removesuffix("-tumorseg") for s in stems if s.endswith("-tumorseg"))
    if len(prefixed) > 1:
        raise InputError(f"several tumour segmentations {prefixed}: one patient per directory")
    patient = prefixed[0] if prefixed else patient_dir.name
    files: dict[str, Path] = {}
    for role in INPUT_ROLES:
        if role == "prediction" and predictions_dir is not None:
            files[role] = _one_file(
                Path(predictions_dir), [patient], f"the prediction of {patient}"
            )
        else:
            files[role] = _one_file(patient_dir, [role, f"{patient}-{role}"], role)
    return EvaluationInputs(patient=patient, **files)


def _one_file(directory: Path, stems: list[str], what: str) -> Path:
    """The single NIfTI file in `directory` whose stem is one of `stems`."""
    if not directory.is_dir():
        raise InputError("directory not found", directory)
    found = [f for f in _nifti_files(directory) if _stem(f) in stems]
    expected = " or ".join(f"{s}.nii.gz" for s in stems)
    if not found:
        raise InputError(f"no {what}: expected {expected}", directory)
    if len(found) > 1:
        raise InputError(f"several files for {what}: {[f.name for f in found]}", directory)
    return found[0]


# ------------------------------------------------------------------------------ one patient


def evaluate_patient(
    inputs: EvaluationInputs,
    *,
    labels: TumourLabels = BRATS2021_LABELS,
    recurrence_labels: TumourLabels | None = None,
    margin_mm: float = STANDARD_MARGIN_MM,
) -> PlanEvaluation:
    """Read one patient's files and score its prediction (`bayestumor.posterior.evaluate_plans`).

    Writes nothing.

    Args:
        inputs: the four files (`find_evaluation_inputs`).
        labels: label convention of the tumour segmentation (default BraTS 2021).
        recurrence_labels: label convention of the recurrence (default: `labels`).
        margin_mm: the standard plan's margin, mm.

    Raises:
        InputError: an unreadable file, grids that differ (naming both files), a brain mask
            that is not binary, labels outside the convention, no tumour core.
    """
    volumes: dict[str, np.ndarray] = {}
    grid: Grid | None = None
    reference: Path | None = None
    for role in ("tumorseg", "prediction", "recurrence", "brain_mask"):
        path = getattr(inputs, role)
        volumes[role], role_grid = load_nifti(path)
        if grid is None:
            grid, reference = role_grid, path
        elif not role_grid.same_as(grid):
            raise InputError(
                f"its grid (shape {role_grid.shape}, spacing {_mm(role_grid.spacing_mm)} mm) "
                f"differs from that of {reference} (shape {grid.shape}, spacing "
                f"{_mm(grid.spacing_mm)} mm); all inputs must share one grid",
                path,
            )
    assert grid is not None
    brain = volumes["brain_mask"]
    not_binary = np.unique(brain[(brain != 0) & (brain != 1)])
    if not_binary.size:
        shown = ", ".join(f"{v:g}" for v in not_binary[:5])
        raise InputError(f"the brain mask must be binary (0/1), found {shown}", inputs.brain_mask)
    if not brain.any():
        raise InputError("the brain mask is empty", inputs.brain_mask)
    recurrence_labels = labels if recurrence_labels is None else recurrence_labels
    for role, convention in (("tumorseg", labels), ("recurrence", recurrence_labels)):
        try:
            masks = tumour_masks(volumes[role], convention)
        except InputError as error:
            raise InputError(error.problem, getattr(inputs, role)) from error
        if role == "tumorseg" and not masks.core.any():
            raise InputError(
                f"no tumour core (necrotic or enhancing) under the label convention "
                f"{describe_labels(convention)}",
                inputs.tumorseg,
            )
    try:
        return evaluate_plans(
            volumes["prediction"],
            volumes["tumorseg"],
            volumes["recurrence"],
            brain.astype(bool),
            grid,
            labels=labels,
            recurrence_labels=recurrence_labels,
            margin_mm=margin_mm,
        )
    except InputError as error:
        raise InputError(error.problem, error.path or inputs.tumorseg.parent) from error


def _mm(spacing: tuple[float, ...]) -> str:
    return " × ".join(f"{s:g}" for s in spacing)


# -------------------------------------------------------------------------- patient, cohort


def evaluate_directory(
    path: str | Path,
    out_dir: str | Path,
    *,
    predictions_dir: str | Path | None = None,
    labels: TumourLabels = BRATS2021_LABELS,
    recurrence_labels: TumourLabels | None = None,
    margin_mm: float = STANDARD_MARGIN_MM,
    plans: bool = True,
) -> EvaluationResult:
    """Evaluate a patient directory or a cohort directory and write the results (module
    docstring) into `out_dir`, atomically.

    Args:
        path: a patient directory (holds a tumour segmentation) or a cohort directory (its
            sub-directories that hold one are the patients).
        out_dir: output directory (replaced as a whole when it exists).
        predictions_dir: ``X.nii.gz`` per patient X (PredictGBM's output); default: the
            ``prediction`` file in each patient directory.
        labels: label convention of the tumour segmentations (default BraTS 2021).
        recurrence_labels: label convention of the recurrences (default: `labels`).
        margin_mm: the standard plan's margin, mm.
        plans: also write both plans of each patient as NIfTI.

    Raises:
        InputError: `path` missing, a single patient's bad input (nothing written), or a
            cohort without patients.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError("directory not found", path)
    options = {"labels": labels, "recurrence_labels": recurrence_labels, "margin_mm": margin_mm}
    if is_patient_directory(path):
        layout, patient_dirs, skipped = "patient", [path], []
    else:
        layout = "cohort"
        directories = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        patient_dirs = [d for d in directories if is_patient_directory(d)]
        skipped = [d.name for d in directories if d not in patient_dirs]
        if not patient_dirs:
            raise InputError(
                "neither a patient directory (no tumorseg.nii.gz or X-tumorseg.nii.gz) nor a "
                "cohort directory (no sub-directory holds one)",
                path,
            )
    evaluations: dict[str, PatientEvaluation] = {}
    failed: dict[str, str] = {}
    out_dir = Path(out_dir)
    # Inside the temporary directory from the start: each patient's plans are written as soon
    # as they are computed and only numbers and curves are kept (two 1 mm brain-sized masks per
    # patient would hold gigabytes for a cohort); any error of a single patient leaves nothing.
    with atomic_directory(out_dir) as tmp:
        for directory in patient_dirs:
            try:
                found = find_evaluation_inputs(directory, predictions_dir)
                if found.patient in evaluations:
                    raise InputError(f"a second patient named {found.patient!r}", directory)
                evaluation = evaluate_patient(found, **options)
            except BayesTumorError as error:
                if layout == "patient":
                    raise
                failed[_unique(directory.name, failed)] = str(error)
                continue
            if plans:
                for plan in ("standard", "model"):
                    save_nifti(
                        tmp / "plans" / f"{found.patient}-{plan}_plan.nii.gz",
                        getattr(evaluation, f"{plan}_plan"),
                        evaluation.grid,
                    )
            evaluations[found.patient] = PatientEvaluation(
                found, evaluation.metrics, evaluation.curves
            )
        table = evaluation_table(evaluations, failed)
        summary = _summary(layout, path, predictions_dir, options, evaluations, failed, skipped)
        table.to_csv(tmp / "evaluation.csv", index=False)
        curve_table(evaluations).to_csv(tmp / "curves.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(_json_ready(summary), indent=2))
        if evaluations:
            plot_coverage(evaluations, tmp / "coverage.png")
    return EvaluationResult(out_dir, table, summary, evaluations, failed)


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    """`name`, or `name` with a number appended when `taken` already has it."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name} ({number})"
    return candidate


def evaluation_table(
    evaluations: Mapping[str, Scored], failed: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per patient: ``patient``, ``status``, ``error``, then the metrics (sorted by
    patient)."""
    rows = [
        {"patient": name, "status": "ok", "error": None, **evaluation.metrics}
        for name, evaluation in evaluations.items()
    ]
    rows += [
        {"patient": name, "status": "error", "error": message}
        for name, message in (failed or {}).items()
    ]
    table = pd.DataFrame(rows, columns=None if rows else ["patient", "status", "error"])
    return table.sort_values("patient", kind="stable").reset_index(drop=True)


def curve_table(evaluations: Mapping[str, Scored]) -> pd.DataFrame:
    """The coverage-volume curves in long form: ``patient, target, plan, volume_ml, coverage,
    margin_mm`` — at most `CURVE_POINTS` exact corners per curve (the first corner at or above
    each coverage level k/`CURVE_POINTS`, and the last)."""
    frames = []
    for name, evaluation in evaluations.items():
        for key, curve in evaluation.curves.items():
            if curve.coverage.size == 0:
                continue
            levels = np.arange(1, CURVE_POINTS + 1) / CURVE_POINTS
            keep = np.unique(
                np.append(
                    np.searchsorted(curve.coverage, levels - 1e-12, side="left"),
                    curve.coverage.size - 1,
                )
            )
            keep = keep[keep < curve.coverage.size]
            plan, _, target = key.partition("_")
            frames.append(
                pd.DataFrame(
                    {
                        "patient": name,
                        "target": target or "enhancing",
                        "plan": plan,
                        "volume_ml": curve.volume_ml[keep],
                        "coverage": curve.coverage[keep],
                        "margin_mm": np.nan if curve.margin_mm is None else curve.margin_mm[keep],
                    }
                )
            )
    columns = ["patient", "target", "plan", "volume_ml", "coverage", "margin_mm"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _summary(
    layout: str,
    path: Path,
    predictions_dir: str | Path | None,
    options: dict[str, Any],
    evaluations: Mapping[str, PatientEvaluation],
    failed: Mapping[str, str],
    skipped: list[str],
) -> dict[str, Any]:
    """What ``summary.json`` holds."""
    labels = options["labels"]
    recurrence_labels = options["recurrence_labels"] or labels
    statistics: dict[str, Any] = {}
    for key in (*_COVERAGE_KEYS, *_VOLUME_KEYS):
        values = np.array([float(e.metrics[key]) for e in evaluations.values()])
        values = values[np.isfinite(values)]
        statistics[key] = {
            "mean": float(values.mean()) if values.size else None,
            "median": float(np.median(values)) if values.size else None,
            "n": int(values.size),
        }
    for suffix in ("", "_all"):
        verdicts = [
            e.metrics[f"less_tissue_for_full_coverage{suffix}"] for e in evaluations.values()
        ]
        statistics[f"less_tissue_for_full_coverage{suffix}"] = {
            verdict: verdicts.count(verdict)
            for verdict in ("model", "standard", "equal", "neither")
        }
    return {
        "format": EVALUATION_FORMAT,
        "layout": layout,
        "input": str(path),
        "predictions_dir": None if predictions_dir is None else str(predictions_dir),
        "settings": {
            "margin_mm": float(options["margin_mm"]),
            "labels": {role: [int(v) for v in values] for role, values in labels.items()},
            "recurrence_labels": {
                role: [int(v) for v in values] for role, values in recurrence_labels.items()
            },
            "core": "necrotic + enhancing",
            "targets": {"": "enhancing recurrence", "_all": "necrotic + oedema + enhancing"},
            "model_plan": "top-k of the prediction in the brain mask, k = standard plan voxels",
            "tie_rule": TIE_RULE,
        },
        "n_patients": len(evaluations) + len(failed),
        "n_evaluated": len(evaluations),
        "failed": dict(failed),
        "skipped_directories": skipped,
        "cohort": statistics,
        "patients": {
            name: {
                "inputs": {
                    role: str(getattr(evaluations[name].inputs, role)) for role in INPUT_ROLES
                },
                "metrics": evaluations[name].metrics,
            }
            for name in sorted(evaluations)
        },
    }


def _json_ready(value: Any) -> Any:
    """NaN and infinities as null (JSON has no NaN), NumPy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------------- plot


def plot_coverage(
    evaluations: Mapping[str, Scored], path: str | Path, *, relative: bool | None = None
) -> Path:
    """Recurrence coverage against plan volume, for the model's top-k plans and the core +
    margin plans, as one PNG: enhancing recurrence (left), all tumour labels (right).

    One patient: volume in ml, the standard plan's volume (15 mm) marked — a cross where each
    family's plan of that volume lies (the two plans PredictGBM compares) — and a dot at the
    least volume reaching full coverage of each family. Several: volume relative to each patient's standard
    plan (1 = the comparison PredictGBM makes), one thin line per patient and the mean over
    patients in bold.

    Args:
        evaluations: `PlanEvaluation` or `PatientEvaluation` by patient (at least one).
        path: PNG destination.
        relative: x axis relative to the standard plan (default: for more than one patient).
    """
    if not evaluations:
        raise ValueError("plot_coverage: no evaluations")
    relative = len(evaluations) > 1 if relative is None else relative
    colours = {"model": "tab:blue", "standard": "tab:orange"}
    names = {"model": "top-k of the prediction", "standard": "core + margin"}
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    grid = np.linspace(0.0, 3.0, 301)
    for ax, suffix, title in zip(
        axes, ("", "_all"), ("enhancing recurrence", "all tumour labels"), strict=True
    ):
        for plan in ("model", "standard"):
            mean_curve = []
            for index, evaluation in enumerate(evaluations.values()):
                curve = evaluation.curves[f"{plan}{suffix}"]
                if curve.n_recurrence == 0:
                    continue
                scale = float(evaluation.metrics["plan_ml"]) if relative else 1.0
                if relative:
                    mean_curve.append(curve.coverage_at(grid * scale))
                    ax.plot(grid, mean_curve[-1], color=colours[plan], lw=0.6, alpha=0.35)
                    continue
                volumes = np.concatenate([[0.0], curve.volume_ml, [curve.max_volume_ml]])
                coverage = np.concatenate([[0.0], curve.coverage, curve.coverage[-1:]])
                label = names[plan] if index == 0 else None
                ax.step(volumes, coverage, where="post", color=colours[plan], label=label)
                full = curve.volume_for(1.0)
                if np.isfinite(full):
                    ax.plot([full], [1.0], "o", color=colours[plan], ms=5)
                # The plan PredictGBM scores: this family's plan of the standard volume.
                plan_ml = float(evaluation.metrics["plan_ml"])
                ax.plot([plan_ml], [curve.coverage_at(plan_ml)], "x", color=colours[plan], ms=8)
            if relative and mean_curve:
                ax.plot(
                    grid,
                    np.mean(mean_curve, axis=0),
                    color=colours[plan],
                    lw=2.2,
                    label=f"{names[plan]} (mean of {len(mean_curve)})",
                )
        if relative:
            ax.axvline(1.0, color="gray", ls=":", lw=1)
            ax.set_xlabel("plan volume / standard plan volume")
        else:
            evaluation = next(iter(evaluations.values()))
            plan_ml = float(evaluation.metrics["plan_ml"])
            margin = float(evaluation.metrics["margin_mm"])
            ax.axvline(plan_ml, color="gray", ls=":", lw=1)
            ax.text(plan_ml, 0.02, f" {margin:g} mm plan", color="gray", fontsize=8)
            ax.set_xlim(0, min(3.0 * plan_ml, float(evaluation.metrics["brain_ml"])))
            ax.set_xlabel("plan volume (ml)")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("recurrence coverage")
    if len(evaluations) == 1:
        figure.suptitle(f"{next(iter(evaluations))}: coverage against plan volume")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, format="png")
    return path


def format_evaluation(result: EvaluationResult) -> str:
    """A short text table of a result, one line per patient: the plan volume, the coverage of
    the enhancing recurrence (``enh``) and of all tumour labels (``all``) by the standard
    (``std``) and the model plan, and the least volume with which each family of plans covers
    the whole enhancing recurrence (``full``; – where none does)."""
    columns = ("plan ml", "enh std", "enh model", "all std", "all model", "full std", "full model")
    width = max([len("patient"), *(len(name) for name in result.evaluations)]) + 2
    lines = [f"{'patient':<{width}}" + "".join(f"{c:>11}" for c in columns)]

    def cell(value: float, percent: bool = False) -> str:
        if not math.isfinite(value):
            return f"{'–':>11}"
        return f"{100 * value:>10.0f}%" if percent else f"{value:>11.1f}"

    for name in sorted(result.evaluations):
        m = result.evaluations[name].metrics
        lines.append(
            f"{name:<{width}}"
            + cell(float(m["plan_ml"]))
            + "".join(
                cell(float(m[f"recurrence_coverage_{plan}{suffix}"]), percent=True)
                for suffix in ("", "_all")
                for plan in ("standard", "model")
            )
            + cell(float(m["full_coverage_ml_standard"]))
            + cell(float(m["full_coverage_ml_model"]))
        )
    for name, message in sorted(result.failed.items()):
        lines.append(f"{name:<{width}}error: {message}")
    return "\n".join(lines)
