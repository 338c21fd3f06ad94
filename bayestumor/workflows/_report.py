"""Writing a calibration: the stored run, and the report rendered from it (maps, figures, summary).

A run directory holds what was sampled — ``posterior.nc``, ``diagnostics.json``,
``config.json``, ``run.json`` (patient name, input grid, visible volumes, surrogate check),
``roi/`` (the patient on the region-of-interest grid, as NIfTI) and, when the PDE carried a
discretisation correction, ``discretisation_offset.npy`` (its density offset on the ROI grid) —
and the report rendered from
it: ``maps/*.nii.gz`` in the patient's input space, ``figures/*.png`` and ``summary.json``.
`report_directory` re-renders the report from a stored run without sampling (the density draws
are recomputed by the forward map from the stored posterior draws).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from bayestumor.config import STRESS_SUITE_SOURCE, CalibrationConfig
from bayestumor.errors import DiagnosticsWarning, InputError
from bayestumor.imaging import Grid, Patient, load_patient, save_patient
from bayestumor.inference import Refinement, density_draws, format_diagnostics, format_refinement
from bayestumor.model import UNITS, AbstractModality
from bayestumor.posterior import (
    DICE_MIN,
    FLAIR_INSIDE_TARGET_MIN,
    PosteriorMaps,
    model_error_kind,
    model_error_sd,
    parameters_at_prior_bounds,
    posterior_maps,
    predictive_checks,
    target_volumes,
    with_model_error,
    write_posterior_maps,
)
from bayestumor.utils import atomic_directory
from bayestumor.workflows._setup import CalibrationRun, build_problem

RUN_FORMAT = "bayestumor-run/1"
STORED_FILES = ("posterior.nc", "diagnostics.json", "config.json", "run.json")
"""Files of a run directory that the report is rendered from (plus ``roi/``, for a surrogate run
``pde_check.md`` and for a corrected PDE `OFFSET_FILE`)."""
OFFSET_FILE = "discretisation_offset.npy"


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Outcome of `calibrate_patient` or `report_directory`.

    Attributes:
        datatree: ArviZ DataTree (saved as ``posterior.nc``).
        summary: JSON-ready dict (saved as ``summary.json``): per-parameter mean, sd, q05, q95
            and units (with ``model_error_sd`` and ``without_model_error`` where the model-form
            error widens them, ``model_error`` saying how); diagnostics (``passed``,
            ``failures``, ...); ``ctv_ml``, ``flair_ml``,
            ``t1c_ml``; ``runtime_s``; sampler and patient name.
        maps: posterior maps on the ROI grid.
        roi: the patient on the ROI grid the model was fitted on.
        out_dir: the output directory.
    """

    datatree: xr.DataTree
    summary: dict[str, Any]
    maps: PosteriorMaps
    roi: Patient
    out_dir: Path


class _Report(NamedTuple):
    """What the report is rendered from, whether the run was just sampled or read back."""

    config: CalibrationConfig
    patient_name: str
    roi: Patient
    original_grid: Grid
    original_volumes_ml: dict[str, float]
    datatree: xr.DataTree
    diagnostics: dict[str, Any]
    densities: np.ndarray
    modalities: tuple[AbstractModality, ...]
    names: list[str]
    voxels: int
    pde_check: dict[str, Any] | None


def summarise(
    datatree: xr.DataTree, names: list[str], model_error: dict[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-parameter posterior mean, sd, 5 % and 95 % quantiles, with units.

    A parameter with a model-form error τ in `model_error` is reported with it
    (`bayestumor.posterior.with_model_error`), its τ and the model's own statistics beside."""
    posterior = datatree["posterior"]
    model_error = model_error or {}
    table = {}
    for name in names:
        values = np.asarray(posterior[name], np.float64).reshape(-1)
        stats = with_model_error(values, model_error.get(name, 0.0), (0.05, 0.95))
        if name in model_error:
            stats |= {
                "model_error_sd": model_error[name],
                "without_model_error": with_model_error(values, 0.0, (0.05, 0.95)),
            }
        table[name] = stats | {"units": UNITS[name]}
    return table


def model_error_record(
    config: CalibrationConfig, modalities: tuple[AbstractModality, ...], names: list[str]
) -> dict[str, Any] | None:
    """The model-form error the summary adds to the reported parameters
    (``CalibrationConfig.model_error``): its τ per parameter, the kind of data it was measured
    for and where; None when there is none (``"none"``, or no parameter it applies to)."""
    kind = model_error_kind(any(m.name == "pet" for m in modalities))
    sd = model_error_sd(kind, names, config.model_error)
    return {"sd": sd, "data": kind, "source": STRESS_SUITE_SOURCE} if sd else None


def refinement_summary(refinement: Refinement) -> dict[str, Any]:
    """JSON-ready form of a `Refinement` for ``summary.json`` and ``run.json``."""
    keys = ("surrogate_mean", "surrogate_sd", "pde_mean", "pde_sd", "shift_in_sd")
    return {
        "draws": len(refinement.log_weights),
        "pareto_k": refinement.pareto_k,
        "reliable": refinement.reliable,
        "weight_ess": refinement.ess,
        "parameters": {
            name: dict(zip(keys, values, strict=True))
            for name, values in refinement.summary.items()
        },
    }


def write_run(
    run: CalibrationRun, out_dir: str | Path, *, started: float | None = None
) -> CalibrationResult:
    """Write a sampled run and its report into `out_dir`, atomically (module docstring).

    Args:
        run: the sampled posterior (`sample_patient`).
        out_dir: output directory (replaced only once everything is written).
        started: `time.perf_counter()` at the start of the calibration, for ``runtime_s``.
    """
    started = time.perf_counter() if started is None else started
    refinement = run.refinement
    diagnostics = dict(run.inference.diagnostics)
    if run.learning_rate is not None:
        diagnostics["likelihood"] = run.learning_rate.to_dict()
    if run.discretisation is not None:
        diagnostics["discretisation_correction"] = run.discretisation.to_dict()
    diagnostics["model_error"] = model_error_record(
        run.config, run.problem.modalities, run.problem.parameter_names
    )
    report = _Report(
        config=run.config,
        patient_name=run.patient_name,
        roi=run.roi,
        original_grid=run.original_grid,
        original_volumes_ml=run.original_volumes_ml,
        datatree=run.inference.datatree,
        diagnostics=diagnostics,
        densities=run.inference.densities,
        modalities=run.problem.modalities,
        names=run.problem.parameter_names,
        voxels=int(run.problem.data.voxel_index.shape[0]),
        pde_check=None if refinement is None else refinement_summary(refinement),
    )
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        run.inference.datatree.to_netcdf(tmp / "posterior.nc", engine="h5netcdf")
        _write_json(tmp / "diagnostics.json", diagnostics)
        _write_json(tmp / "config.json", run.config.to_dict())
        _write_json(
            tmp / "run.json",
            {
                "format": RUN_FORMAT,
                "patient": run.patient_name,
                "original_grid": {
                    "shape": list(run.original_grid.shape),
                    "affine": np.asarray(run.original_grid.affine).tolist(),
                },
                "original_volumes_ml": run.original_volumes_ml,
                "pde_check": report.pde_check,
                # Not in the ROI's NIfTI files: how many scan voxels each PET voxel averages.
                "pet_voxels_averaged": run.roi.observations.pet_voxels_averaged,
            },
        )
        save_patient(run.roi, tmp / "roi")
        if run.discretisation is not None:
            np.save(tmp / OFFSET_FILE, run.discretisation.offset)
        if refinement is not None:
            (tmp / "pde_check.md").write_text(format_refinement(refinement) + "\n")
        maps, summary = _render(report, tmp, started)
    if run.config.progress:
        print(format_diagnostics(diagnostics))
        print(format_summary(summary))
        if refinement is not None:
            print(
                "\nsurrogate posterior checked against the PDE:\n" + format_refinement(refinement)
            )
    return CalibrationResult(
        datatree=run.inference.datatree, summary=summary, maps=maps, roi=run.roi, out_dir=out_dir
    )


def report_directory(
    run_dir: str | Path, out_dir: str | Path | None = None, *, plots: bool | None = None
) -> CalibrationResult:
    """Re-render maps, figures and ``summary.json`` of a stored run without sampling.

    The density draws are recomputed from the stored posterior draws with the forward map the
    run's ``config.json`` describes, on the stored ROI (``roi/``).

    Args:
        run_dir: a directory written by `calibrate_patient` (``bayestumor calibrate``).
        out_dir: where to write the report; default `run_dir` itself (replaced atomically,
            the stored run copied along).
        plots: write figures (default: as the stored configuration says).

    Raises:
        InputError: `run_dir` is not a complete run directory, naming what is missing.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    missing = [name for name in (*STORED_FILES, "roi") if not (run_dir / name).exists()]
    if missing:
        raise InputError(
            f"not a calibration run directory (missing {', '.join(missing)}); "
            "run 'bayestumor calibrate' first",
            run_dir,
        )
    try:
        stored = _read_json(run_dir / "config.json")
        if not isinstance(stored, dict):
            raise InputError("not a JSON object of calibration options", run_dir / "config.json")
        # A run written before `stepping` existed was solved with Heun steps.
        stored.setdefault("stepping", "heun")
        config = CalibrationConfig.from_dict(stored)
        record = _read_json(run_dir / "run.json")
        diagnostics = _read_json(run_dir / "diagnostics.json")
        if record.get("format") != RUN_FORMAT:
            raise InputError(f"unknown run format {record.get('format')!r}", run_dir / "run.json")
        grid = Grid(
            tuple(record["original_grid"]["shape"]), np.array(record["original_grid"]["affine"])
        )
    except (KeyError, TypeError) as error:
        raise InputError(f"incomplete run record: {error}", run_dir / "run.json") from error
    config = config.replace(progress=False, plots=config.plots if plots is None else plots)
    try:
        datatree = xr.load_datatree(run_dir / "posterior.nc", engine="h5netcdf")
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the posterior: {error}", run_dir / "posterior.nc") from error
    roi = load_patient(run_dir / "roi")
    roi = dataclasses.replace(
        roi,
        observations=dataclasses.replace(
            roi.observations, pet_voxels_averaged=record.get("pet_voxels_averaged", 1.0)
        ),
    )
    offset = None
    if (run_dir / OFFSET_FILE).exists():
        offset = np.load(run_dir / OFFSET_FILE)
        if offset.shape != roi.grid.shape:
            raise InputError(
                f"offset of shape {offset.shape} on an ROI of {roi.grid.shape}",
                run_dir / OFFSET_FILE,
            )
    problem = build_problem(roi, config, discretisation_offset=offset)
    names = problem.parameter_names
    posterior = datatree["posterior"]
    absent = [name for name in names if name not in posterior]
    if absent:
        raise InputError(f"the posterior lacks {absent}", run_dir / "posterior.nc")
    named = {name: np.asarray(posterior[name], np.float32).reshape(-1) for name in names}
    densities = density_draws(problem, named, progress=config.progress)
    report = _Report(
        config=config,
        patient_name=record["patient"],
        roi=roi,
        original_grid=grid,
        original_volumes_ml=record["original_volumes_ml"],
        datatree=datatree,
        diagnostics=diagnostics,
        densities=densities,
        modalities=problem.modalities,
        names=names,
        voxels=int(problem.data.voxel_index.shape[0]),
        pde_check=record.get("pde_check"),
    )
    out_dir = run_dir if out_dir is None else Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        for name in STORED_FILES:
            shutil.copy2(run_dir / name, tmp / name)
        shutil.copytree(run_dir / "roi", tmp / "roi")
        for name in ("pde_check.md", OFFSET_FILE):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, tmp / name)
        maps, summary = _render(report, tmp, started)
    return CalibrationResult(
        datatree=datatree, summary=summary, maps=maps, roi=roi, out_dir=out_dir
    )


def _render(report: _Report, directory: Path, started: float) -> tuple[PosteriorMaps, dict]:
    """Maps, figures and ``summary.json`` of `report` into `directory`."""
    config = report.config
    posterior = report.datatree["posterior"]
    imaging = {
        name: np.asarray(posterior[name]).reshape(-1)
        for modality in report.modalities
        for name in modality.parameter_names
    }
    maps = posterior_maps(
        report.densities,
        report.roi.grid,
        imaging,
        report.modalities,
        threshold_u=config.threshold_u,
        ctv_probability=config.ctv_probability,
    )
    if maps.ctv_at_roi_edge:
        warnings.warn(
            f"the CTV reaches the edge of the region of interest (lesion ± {config.margin_mm:g} "
            "mm), which may cut it off: calibrate again with a larger --margin",
            DiagnosticsWarning,
            stacklevel=3,
        )
    written = write_posterior_maps(maps, directory / "maps", report.original_grid)
    model_error = model_error_record(config, report.modalities, report.names)
    volumes = report.original_volumes_ml
    summary = {
        "patient": report.patient_name,
        "sampler": config.sampler,
        "forward": config.forward,
        "parametrisation": config.priors.parametrisation,
        "roi_shape": list(report.roi.grid.shape),
        "roi_spacing_mm": config.spacing_mm,
        "roi_margin_mm": config.margin_mm,  # the final one, after any growth (sample_patient)
        "brain_voxels": report.voxels,
        "parameters": summarise(report.datatree, report.names, model_error and model_error["sd"]),
        "model_error": model_error,
        "diagnostics": {
            k: report.diagnostics.get(k)
            for k in ("passed", "failures", "divergences", "min_ess_bulk", "smc")
        },
        "threshold_u": config.threshold_u,
        "ctv_probability": config.ctv_probability,
        "ctv_ml": written["ctv_ml"],
        "ctv_at_roi_edge": maps.ctv_at_roi_edge,
        "flair_ml": volumes.get("flair"),
        "t1c_ml": volumes.get("t1c"),
        "likelihood": report.diagnostics.get("likelihood"),
        "discretisation_correction": report.diagnostics.get("discretisation_correction"),
        "checks": _checks(report, maps),
        "input_notes": list(report.roi.notes),
        "pde_check": report.pde_check,
        "runtime_s": None,
    }
    if config.plots:
        from bayestumor.workflows._plots import plot_density_slices, plot_trace

        (directory / "figures").mkdir(exist_ok=True)
        plot_density_slices(
            maps,
            report.roi,
            directory / "figures" / "slices.png",
            title=f"{report.patient_name}: posterior",
        )
        plot_trace(report.datatree, directory / "figures" / "trace.png", var_names=report.names)
    summary["runtime_s"] = time.perf_counter() - started
    _warn_about(summary["checks"])
    _write_json(directory / "summary.json", summary)
    from bayestumor.workflows._html import write_report_html  # matplotlib only when rendering

    write_report_html(maps, report.roi, summary, directory / "report.html", images=config.plots)
    return maps, summary


def _checks(report: _Report, maps: PosteriorMaps) -> dict[str, Any]:
    """Target volumes at several probabilities beside the visible FLAIR and the 15 mm standard
    plan, posterior-predictive checks per modality, and parameters piled at a prior bound
    (`bayestumor.posterior.target_volumes`, `predictive_checks`, `parameters_at_prior_bounds`)."""
    from bayestumor.workflows._html import report_volumes

    roi = report.roi
    observations = roi.observations
    posterior = report.datatree["posterior"]
    volumes = report_volumes(maps, roi)
    return {
        "targets": target_volumes(maps.exceedance, observations.flair, roi.grid.voxel_volume_ml),
        "standard_plan_ml": volumes["standard_plan_ml"],
        "flair_inside_ctv": volumes["flair_inside_ctv"],
        "predictive": predictive_checks(
            maps.predicted,
            {name: getattr(observations, name) for name in ("t1c", "flair", "pet")},
            roi.anatomy.brain_mask,
        ),
        "at_prior_bounds": parameters_at_prior_bounds(
            {name: np.asarray(posterior[name]) for name in report.names}, report.config.priors
        ),
    }


def check_failures(checks: dict[str, Any]) -> list[str]:
    """What the checks of a summary (``summary["checks"]``) find wrong, one line each: a CTV
    that leaves visible FLAIR outside, a predicted segmentation far from the observed one,
    parameters piled at a prior bound."""
    failures = []
    inside = checks.get("flair_inside_ctv")
    if inside is not None and inside < FLAIR_INSIDE_TARGET_MIN:
        failures.append(
            f"the CTV holds only {100 * inside:.0f} % of the visible FLAIR abnormality "
            f"(< {100 * FLAIR_INSIDE_TARGET_MIN:.0f} %): the fit does not explain the scans; "
            "see the targets at lower probabilities"
        )
    for name, check in checks.get("predictive", {}).items():
        value = check.get("dice")
        if value is not None and value < DICE_MIN:
            failures.append(
                f"predicted {name} matches the observed one with Dice {value:.2f} < {DICE_MIN}"
            )
    if checks.get("at_prior_bounds"):
        failures.append("posterior piled at a prior bound: " + ", ".join(checks["at_prior_bounds"]))
    return failures


def _warn_about(checks: dict[str, Any]) -> None:
    for failure in check_failures(checks):
        warnings.warn(failure, DiagnosticsWarning, stacklevel=4)


def _write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read: {error}", path) from error


def format_summary(summary: dict[str, Any], truth: dict[str, float] | None = None) -> str:
    """Posterior table (mean, sd, 90 % interval; true value when given) and volumes."""
    header = f"{'parameter':<12} {'mean':>10} {'sd':>10} {'5%':>10} {'95%':>10}"
    if truth:
        header += f" {'true':>10}  in 90%"
    lines = [header]
    for name, stats in summary["parameters"].items():
        line = (
            f"{name:<12} {stats['mean']:>10.4g} {stats['sd']:>10.3g} "
            f"{stats['q05']:>10.4g} {stats['q95']:>10.4g}"
        )
        if truth and name in truth:
            inside = stats["q05"] <= truth[name] <= stats["q95"]
            line += f" {truth[name]:>10.4g}  {'yes' if inside else 'NO'}"
        lines.append(f"{line}  [{stats['units']}]")
    flair = summary.get("flair_ml")
    lines.append(
        f"CTV {{P(u > {summary['threshold_u']:g}) ≥ {summary['ctv_probability']:g}}}: "
        f"{summary['ctv_ml']:.1f} ml; visible FLAIR: "
        + ("—" if flair is None else f"{flair:.1f} ml")
        + (
            " (the CTV reaches the ROI's edge: widen --margin)"
            if summary["ctv_at_roi_edge"]
            else ""
        )
    )
    likelihood = summary.get("likelihood")
    if likelihood and likelihood.get("likelihood") == "calibrated":
        lines.append(
            f"likelihood: calibrated, η = {likelihood['value']:.3g} ("
            f"{likelihood['voxels']} voxels count as {likelihood['effective_voxels']:.0f}, "
            f"misfit correlation over {likelihood['misfit_length_mm']:g} mm)"
        )
    elif likelihood:
        lines.append("likelihood: exact (every voxel independent)")
    model_error = summary.get("model_error")
    if model_error:
        sds = ", ".join(f"{name} {100 * tau:.2g} %" for name, tau in model_error["sd"].items())
        lines.append(
            f"model-form error added to the intervals ({model_error['data']}, measured on the "
            f"stress suite): {sds} (sd of the log; --model-error none leaves it out)"
        )
    correction = summary.get("discretisation_correction")
    if correction:
        lines.append(
            f"discretisation correction from the {correction['fine_spacing_mm']:g} mm grid: "
            f"|ε| ≤ {correction['max_abs_offset']:.3f}"
        )
    checks = summary.get("checks")
    if checks:
        targets = ", ".join(
            f"P ≥ {p}: {t['volume_ml']:.1f} ml"
            + ("" if t["flair_inside"] is None else f" ({100 * t['flair_inside']:.0f} % FLAIR)")
            for p, t in checks["targets"].items()
        )
        lines.append(f"target volumes {targets}")
        if checks.get("standard_plan_ml") is not None:
            lines.append(f"15 mm standard plan: {checks['standard_plan_ml']:.1f} ml")
        predictive = []
        for name, check in checks["predictive"].items():
            if "dice" in check and check["dice"] is not None:
                predictive.append(f"{name} Dice {check['dice']:.2f}")
            elif "rms_residual" in check:
                predictive.append(
                    f"PET residual {check['mean_residual']:+.3f} ± {check['rms_residual']:.3f}"
                )
        if predictive:
            lines.append("posterior-predictive: " + ", ".join(predictive))
        lines.extend(f"CHECK: {failure}" for failure in check_failures(checks))
    if summary.get("runtime_s") is not None:
        lines.append(f"runtime {summary['runtime_s']:.1f} s")
    return "\n".join(lines)


__all__ = [
    "RUN_FORMAT",
    "CalibrationResult",
    "check_failures",
    "format_summary",
    "refinement_summary",
    "report_directory",
    "summarise",
    "write_run",
]
