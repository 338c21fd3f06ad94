"""PredictGBM-compatible prediction: every ``Patient-X`` folder in, one ``X.nii.gz`` out.

PredictGBM (BrainLesion/PredictGBM) runs a growth model as a container with the input
directory mounted at ``/mlcube_io0`` and the output directory at ``/mlcube_io1``. The input holds
one folder per patient, ``Patient-X/X-{gm,wm,csf,tumorseg}.nii.gz`` (tissue probability maps and
a tumour label map, 1 necrotic, 2 oedema, 3 enhancing), optionally ``X-pet``, ``X-t1c``,
``X-flair``, ``X-brain_mask``, ``X-adc``; the model writes ``X.nii.gz``, a tumour-cell
concentration in [0, 1] on the input grid.

The map written is the **posterior mean of the density u**, mapped back to the input grid,
clipped to [0, 1], float32. PredictGBM turns a prediction into a plan by ranking voxels (the top
k, k = the standard plan's volume), so what matters is the order the map induces: the posterior
mean orders voxels by expected tumour-cell density — graded everywhere the posterior puts
tumour, and the natural reading of "concentration". P(u > u*) would rank by the probability of
exceeding one threshold: it saturates at 1 across the whole visible lesion and at 0 a little
beyond, so most of the ranking would be decided by ties and by the arbitrary choice of u*.

What is read (`PREDICT_GBM_ROLES`): gm, wm, csf, tumorseg, and where present pet and
brain_mask. PredictGBM's ``-t1c``, ``-flair`` and ``-adc`` are MRI *images* (skull-stripped,
intensity-normalised), not segmentations; `bayestumor.imaging.load_patient` would take ``t1c``
and ``flair`` for binary masks, so they are left out and the tumour is taken from ``tumorseg``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayestumor.config import CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.imaging import NIFTI_SUFFIXES, load_patient, save_nifti, to_original_space
from bayestumor.workflows._calibrate import sample_patient
from bayestumor.workflows._report import write_run

PREDICT_GBM_ROLES = ("gm", "wm", "csf", "tumorseg", "pet", "brain_mask")
"""The files of a PredictGBM patient folder that `predict_gbm` reads (``X-ROLE.nii.gz``)."""
PREDICT_GBM_CONFIG = CalibrationConfig(labels="brats2023", pet_normalise="tbr", plots=False)
"""The clinical default of ``bayestumor predict-gbm``: the package defaults (PDE forward map,
NUTS, 2 mm ROI sampled coarse-to-fine from 4 mm, ROI grown until the target volume fits),
tumorseg labels read as PredictGBM writes them (BraTS 2023: 1 necrotic, 2 oedema,
3 enhancing), PET normalised by the tumour-to-background ratio (PredictGBM passes PET as
acquired; TBR does not depend on the scanner's scale, so already-normalised PET gives the same
result), no figures."""
ERRORS_FILE = "errors.json"
_PATIENT_FOLDER = re.compile(r"^Patient-(?P<id>.+)$")


@dataclass(frozen=True)
class PredictGBMResult:
    """Outcome of `predict_gbm`.

    Attributes:
        written: {patient id: output file} of the patients predicted now.
        skipped: ids whose output existed already (not recomputed without ``overwrite``).
        errors: {patient id: error message} of the patients that failed (also in
            ``errors.json`` in the output directory).
    """

    written: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def find_predict_gbm_patients(input_dir: str | Path) -> dict[str, Path]:
    """{patient id X: folder} of every ``Patient-X`` folder in `input_dir`, sorted by id.

    Raises:
        InputError: `input_dir` is not a directory or holds no ``Patient-X`` folder.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError("not a directory (PredictGBM input: Patient-X folders)", input_dir)
    patients = {}
    for folder in sorted(input_dir.iterdir()):
        match = _PATIENT_FOLDER.match(folder.name)
        if match and folder.is_dir():
            patients[match["id"]] = folder
    if not patients:
        raise InputError(
            "no Patient-X folders (PredictGBM layout Patient-X/X-{gm,wm,csf,tumorseg}.nii.gz)",
            input_dir,
        )
    return patients


def predict_gbm_patient(
    patient_dir: str | Path,
    output_file: str | Path,
    config: CalibrationConfig = PREDICT_GBM_CONFIG,
    *,
    keep_run: str | Path | None = None,
) -> Path:
    """Calibrate one PredictGBM patient folder and write its posterior-mean density (module
    docstring) to `output_file`, atomically, on the grid of the input files.

    Args:
        patient_dir: a ``Patient-X`` folder.
        output_file: the ``X.nii.gz`` to write.
        config: the calibration's options.
        keep_run: also write the full calibration run (`write_run`) into this directory.

    Raises:
        InputError: unreadable or unusable input (nothing is written then).
    """
    patient_dir = Path(patient_dir)
    with tempfile.TemporaryDirectory(prefix="bayestumor-predict-gbm-") as staging:
        staging = Path(staging)
        _stage_inputs(patient_dir, staging)
        try:
            patient = load_patient(staging, **config.load_options())
        except InputError as error:
            raise InputError(str(error).replace(str(staging), str(patient_dir))) from error
    run = sample_patient(patient, config)
    density_mean = run.inference.densities.mean(axis=0, dtype=np.float32)
    on_input_grid = to_original_space(density_mean, run.roi.grid, patient.grid)
    concentration = np.clip(np.nan_to_num(on_input_grid), 0.0, 1.0).astype(np.float32)
    if keep_run is not None:
        write_run(run, keep_run)
    return save_nifti(output_file, concentration, patient.grid)


def predict_gbm(
    input_dir: str | Path,
    output_dir: str | Path,
    config: CalibrationConfig | None = None,
    *,
    keep_runs: str | Path | None = None,
    overwrite: bool = False,
) -> PredictGBMResult:
    """Predict every ``Patient-X`` folder of `input_dir` into ``output_dir/X.nii.gz``.

    A patient whose output exists is skipped unless `overwrite`. A failing patient is recorded
    (stderr, and ``errors.json`` in `output_dir`: {id: message}) and the others go on; its
    output is never half-written (each file is written atomically). ``errors.json`` is removed
    when no patient failed.

    Args:
        input_dir: PredictGBM input directory (``/mlcube_io0`` in the container).
        output_dir: where ``X.nii.gz`` go (``/mlcube_io1``), created if missing.
        config: calibration options (default `PREDICT_GBM_CONFIG`).
        keep_runs: also keep each patient's full calibration run in ``keep_runs/X``.
        overwrite: recompute outputs that exist.

    Raises:
        InputError: `input_dir` is not a PredictGBM input directory.
    """
    config = config or PREDICT_GBM_CONFIG
    patients = find_predict_gbm_patients(input_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = PredictGBMResult()
    for patient_id, folder in patients.items():
        output_file = output_dir / f"{patient_id}.nii.gz"
        if output_file.exists() and not overwrite:
            result.skipped.append(patient_id)
            continue
        keep_run = None if keep_runs is None else Path(keep_runs) / patient_id
        try:
            result.written[patient_id] = predict_gbm_patient(
                folder, output_file, config, keep_run=keep_run
            )
        except Exception as error:  # one failing patient never stops the others
            message = f"{type(error).__name__}: {error}"
            result.errors[patient_id] = message
            print(f"bayestumor predict-gbm: {folder.name} failed: {message}", file=sys.stderr)
            if config.progress:
                traceback.print_exc(file=sys.stderr)
    _write_errors(output_dir, result.errors)
    return result


def _stage_inputs(patient_dir: Path, staging: Path) -> None:
    """Link the files `load_patient` should read (`PREDICT_GBM_ROLES`) into `staging`."""
    if not patient_dir.is_dir():
        raise InputError("not a directory", patient_dir)
    for file in sorted(patient_dir.iterdir()):
        suffix = next((s for s in NIFTI_SUFFIXES if file.name.endswith(s)), None)
        if suffix is None or not file.is_file():
            continue
        role = file.name[: -len(suffix)].rpartition("-")[2].lower()
        if role in PREDICT_GBM_ROLES:
            try:
                (staging / file.name).symlink_to(file.resolve())
            except OSError:  # no symbolic links here: read through a copy
                (staging / file.name).write_bytes(file.read_bytes())


def _write_errors(output_dir: Path, errors: dict[str, str]) -> None:
    """``errors.json`` ({id: message}) written atomically, or removed when nothing failed."""
    path = output_dir / ERRORS_FILE
    if not errors:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{ERRORS_FILE}.tmp")
    tmp.write_text(json.dumps(errors, indent=2))
    os.replace(tmp, path)


__all__ = [
    "ERRORS_FILE",
    "PREDICT_GBM_CONFIG",
    "PREDICT_GBM_ROLES",
    "PredictGBMResult",
    "find_predict_gbm_patients",
    "predict_gbm",
    "predict_gbm_patient",
]
