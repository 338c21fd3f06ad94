"""Reading a patient directory of NIfTI files into a `Patient`, with errors a user can act on."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from bayestumor.config import PET_NORMALISATIONS, TUMOUR_LABEL_CONVENTIONS
from bayestumor.errors import InputError
from bayestumor.imaging._grid import Grid
from bayestumor.imaging._nifti import NIFTI_SUFFIXES, load_nifti, save_nifti
from bayestumor.imaging._patient import BRAIN_THRESHOLD, Anatomy, Observations, Patient

TISSUE_LABELS = {1: "csf", 2: "gm", 3: "wm"}
"""Labels of a ``tissues`` label map (0 is background)."""

LABEL_CONVENTIONS: dict[str, dict[str, int]] = {
    "brats2021": {"necrotic": 1, "oedema": 2, "enhancing": 4},
    "brats2023": {"necrotic": 1, "oedema": 2, "enhancing": 3},
    "gliodil": {"necrotic": 1, "oedema": 3, "enhancing": 4},
}
"""Tumour label conventions: BraTS up to 2021, BraTS 2023 on, GliODIL / BraTS-toolkit. A label map
is read as T1c = necrotic ∪ enhancing and FLAIR = necrotic ∪ oedema ∪ enhancing."""

PET_TOLERATED_RANGE = (-0.2, 1.2)
"""Normalised PET values inside this range but outside [0, 1] are kept, with a warning: the
PET likelihood reads them as censored at 0 or 1 (clipped noise; `bayestumor.model.ClippedNormal`)."""
PET_PERCENTILE = 99.0
"""``pet_normalise="percentile"`` divides by this percentile of the uptake inside the lesion."""
TBR_BACKGROUND_MARGIN_MM = 10.0
"""``pet_normalise="tbr"``: the background is the brain farther than this from the lesion."""
TBR_TUMOUR_THRESHOLD = 1.6
"""FET-PET tumour-to-background ratio that separates tumour from background (Law et al. 2019,
Eur J Nucl Med Mol Imaging 46:540, joint EANM/EANO/RANO/SNMMI guideline)."""
RAW_PET_HINT = 10.0
"""PET whose maximum exceeds this is most likely raw uptake (counts, Bq/ml, SUV)."""
NOTES_FILE = "bayestumor_notes.json"
"""Where `save_patient` keeps `Patient.notes`, for `load_patient` to read back."""

_MIN_BACKGROUND_ML = 1.0
# Warnings point at the first caller outside bayestumor (the user's `load_patient` call).
_PACKAGE_PREFIX = (os.path.join(os.path.dirname(os.path.dirname(__file__)), ""),)
_ROLES = ("wm", "gm", "csf", "tissues", "brain_mask", "t1c", "flair", "tumorseg", "seg", "pet")
_AFFINE_TOL_MM = 1e-3
_VALUE_TOL = 1e-4
_EXPECTED = (
    "expected tissue maps wm, gm, csf (csf optional; or one 'tissues' label map: 1 CSF, 2 GM, "
    "3 WM), tumour segmentations t1c and/or flair (or one BraTS-style 'tumorseg' or 'seg' label "
    "map), optionally pet and brain_mask; each as NAME.nii.gz or NAME.nii, or "
    "PREFIX-NAME.nii.gz (PredictGBM layout)"
)


def load_patient(path: str | Path, *, labels: str = "auto", pet_normalise: str = "none") -> Patient:
    """Read a patient directory: tissues, tumour segmentations and optional PET on one grid.

    Accepted files (``.nii.gz`` or ``.nii``; all names may carry a common ``PREFIX-``, as in the
    PredictGBM layout ``Patient-X/X-wm.nii.gz``):

    - tissues: ``wm``, ``gm`` and ``csf`` probability maps or binary masks with values in
      [0, 1]; or one ``tissues`` label map (0 background, 1 CSF, 2 GM, 3 WM). Without a
      ``csf`` map CSF is taken as 0 everywhere, with a `UserWarning` and a note (only the
      surrogate forward model reads CSF; the PDE's domain is wm + gm);
    - optional ``brain_mask`` (binary, as PredictGBM's ``-brain_mask``): restricts the domain —
      wm, gm and csf are set to 0 outside it, so neither the PDE nor the likelihood sees those
      voxels;
    - tumour: binary ``t1c`` and/or ``flair`` segmentations; or one ``tumorseg`` or ``seg``
      label map read as T1c = necrotic ∪ enhancing and FLAIR = necrotic ∪ oedema ∪ enhancing,
      in the convention `labels` names (`LABEL_CONVENTIONS`);
    - optional ``pet``: FET-PET uptake, normalised to [0, 1] as `pet_normalise` says.

    Tumour label conventions (`labels`):

    - ``"brats2021"``: 1 necrotic core, 2 oedema, 4 enhancing (BraTS up to 2021);
    - ``"brats2023"``: 1 necrotic core, 2 oedema, 3 enhancing (BraTS 2023 on);
    - ``"gliodil"``: 1 necrotic core, 3 oedema, 4 enhancing (GliODIL, BraTS-toolkit);
    - ``"auto"`` (default): only where the labels present leave one reading — no label 3:
      brats2021 (gliodil reads such a map the same way unless it has oedema, which would be 3);
      labels 2 and 3 without 4: brats2023. Labels 3 and 4 together (GliODIL, or an old BraTS
      map with 3 = non-enhancing core) and 3 without 2 (enhancing in BraTS 2023, oedema in
      GliODIL) are refused, naming the option that resolves them.

    PET normalisation (`pet_normalise`); the reference regions use the brain, wm + gm ≥ 0.5
    (inside the brain mask when one is given), and the lesion, FLAIR ∪ T1c:

    - ``"none"`` (default): the file is normalised already; used as it is.
    - ``"max"``: divided by the maximum uptake in brain ∪ lesion.
    - ``"percentile"``: divided by the `PET_PERCENTILE` (99th) percentile of the uptake inside
      the lesion — robust to a few hot voxels (noise, spill-in), unlike the maximum. The
      lesion, not the whole brain: a tumour is a few per cent of the brain, so the brain's 99th
      percentile lies in healthy tissue and the tumour would come out several times above 1.
      By construction about 1 % of the lesion's voxels end up slightly above 1 (kept, see
      below).
    - ``"tbr"``: tumour-to-background ratio TBR = uptake / mean uptake of a healthy reference —
      the brain farther than `TBR_BACKGROUND_MARGIN_MM` (10 mm, Euclidean in mm) from the lesion
      (at least 1 ml of it), grey and white matter together as the clinical crescent-shaped
      contralateral reference is; it needs no left-right alignment of the grid, which a
      mirrored contralateral region would. Mapped to y = clip((TBR − 1) / (TBR_peak − 1), 0, 1)
      with TBR_peak the largest TBR in brain ∪ lesion, floored at `TBR_TUMOUR_THRESHOLD`:
      background (TBR ≤ 1) is 0, the hottest voxel 1. TBR ≈ 1 is background and TBR ≥ 1.6 is
      tumour for FET-PET (Pauleit et al. 2005; Law et al. 2019, EANM/EANO/RANO/SNMMI
      guideline); a lesion whose peak stays below 1.6 is PET-negative: it is scaled as if the
      peak were 1.6 (so noise is not stretched to fill [0, 1]), with a warning.

    With ``"max"``, ``"percentile"`` and ``"tbr"`` the voxels outside brain ∪ lesion (which
    reach the model only through averaging at the brain's edge) are clipped to [0, 1]. Values
    inside `PET_TOLERATED_RANGE` ([−0.2, 1.2]) but outside [0, 1] are kept with a `UserWarning`
    naming the file and the range (the Gaussian likelihood predicts such values); beyond it —
    raw uptake with ``"none"`` in particular — the file is refused with an error that suggests
    ``pet_normalise`` (``--pet-normalise``).

    What was assumed or changed (the convention used, a missing CSF map, the brain mask, the
    PET normalisation) is recorded in `Patient.notes`. Other files in the directory are
    ignored. An empty T1c beside a non-empty FLAIR is kept as an observation (a non-enhancing
    tumour).

    Args:
        path: the patient directory; its name becomes `Patient.name`.
        labels: tumour label convention of a ``tumorseg``/``seg`` map (see above).
        pet_normalise: ``"none"``, ``"max"``, ``"percentile"`` or ``"tbr"`` (see above).

    Raises:
        InputError: naming the file and the problem — missing files (with the list expected),
            shapes or affines that disagree (naming both files), NaN/inf, values outside
            [0, 1], non-binary segmentations or masks, unknown or ambiguous labels (naming the
            values and the `labels` option), PET outside the tolerated range, no brain, no
            tumour segmentation or an empty lesion; or an unknown option.
    """
    if labels not in TUMOUR_LABEL_CONVENTIONS:
        raise InputError(
            f"unknown tumour label convention {labels!r}; choose from {TUMOUR_LABEL_CONVENTIONS}"
        )
    if pet_normalise not in PET_NORMALISATIONS:
        raise InputError(
            f"unknown PET normalisation {pet_normalise!r}; choose from {PET_NORMALISATIONS}"
        )
    directory = Path(path)
    if not directory.is_dir():
        problem = "not a directory" if directory.exists() else "patient directory not found"
        raise InputError(f"{problem}; {_EXPECTED}", directory)
    files = _find_role_files(directory)
    reader = _GridCheckedReader()
    notes = [*_read_notes(directory)]
    anatomy = _read_anatomy(directory, files, reader, notes)
    observations = _read_observations(directory, files, reader, labels, notes)
    if "pet" in files:
        pet = _read_pet(files["pet"], reader, anatomy, observations, pet_normalise, notes)
        observations = Observations(
            grid=observations.grid, t1c=observations.t1c, flair=observations.flair, pet=pet
        )
    return Patient(
        anatomy=anatomy,
        observations=observations,
        name=directory.name,
        source=directory,
        notes=tuple(notes),
    )


def save_patient(patient: Patient, directory: str | Path) -> Path:
    """Write `patient` as a patient directory that `load_patient` reads back: ``wm``, ``gm``,
    ``csf`` and whichever of ``t1c``, ``flair``, ``pet`` it has, as ``.nii.gz`` on its grid, and
    its notes (if any) in `NOTES_FILE`.

    Returns:
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    anatomy, observations = patient.anatomy, patient.observations
    volumes = {"wm": anatomy.wm, "gm": anatomy.gm, "csf": anatomy.csf}
    volumes |= {
        role: values
        for role in ("t1c", "flair", "pet")
        if (values := getattr(observations, role)) is not None
    }
    for role, values in volumes.items():
        save_nifti(directory / f"{role}.nii.gz", values, patient.grid)
    if patient.notes:
        (directory / NOTES_FILE).write_text(json.dumps({"notes": list(patient.notes)}, indent=1))
    return directory


def _read_notes(directory: Path) -> list[str]:
    """The notes `save_patient` wrote into `directory`, if any."""
    path = directory / NOTES_FILE
    if not path.is_file():
        return []
    try:
        notes = json.loads(path.read_text())["notes"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"unreadable notes ({error}); delete the file or repair it", path
        ) from error
    if not (isinstance(notes, list) and all(isinstance(note, str) for note in notes)):
        raise InputError("'notes' must be a list of strings", path)
    return notes


def _warn(message: str, path: Path, notes: list[str]) -> None:
    """Warn (`UserWarning`) with `message` prefixed by the file, and record it as a note."""
    notes.append(f"{path.name}: {message}")
    warnings.warn(f"{path}: {message}", UserWarning, skip_file_prefixes=_PACKAGE_PREFIX)


class _GridCheckedReader:
    """Loads volumes and checks that each lies on the grid of the first one loaded."""

    def __init__(self):
        self.reference: tuple[Path, Grid] | None = None

    def __call__(self, path: Path) -> np.ndarray:
        values, grid = load_nifti(path)
        if self.reference is None:
            self.reference = (path, grid)
            return values
        first_path, first_grid = self.reference
        if grid.shape != first_grid.shape:
            raise InputError(
                f"shape {grid.shape} differs from {first_path.name}'s {first_grid.shape}; "
                "all files of a patient must be on one grid",
                path,
            )
        if not grid.same_as(first_grid, atol_mm=_AFFINE_TOL_MM):
            raise InputError(
                f"affine differs from {first_path.name}'s (largest difference "
                f"{np.abs(grid.affine - first_grid.affine).max():.3g} mm); "
                f"all files of a patient must be on one grid\n{path.name}:\n{grid.affine}\n"
                f"{first_path.name}:\n{first_grid.affine}",
                path,
            )
        return values

    @property
    def grid(self) -> Grid:
        assert self.reference is not None, "read a volume first"
        return self.reference[1]


def _find_role_files(directory: Path) -> dict[str, Path]:
    """Map each role (``wm``, ``t1c``, ...) to its file, detecting a common ``PREFIX-``."""
    by_prefix: dict[str, dict[str, list[Path]]] = {}
    for file in sorted(directory.iterdir()):
        suffix = next((s for s in NIFTI_SUFFIXES if file.name.endswith(s)), None)
        if suffix is None or not file.is_file():
            continue
        stem = file.name[: -len(suffix)]
        prefix, _, role = stem.rpartition("-")
        if role.lower() in _ROLES:
            by_prefix.setdefault(prefix, {}).setdefault(role.lower(), []).append(file)
    if not by_prefix:
        raise InputError(f"no patient files found; {_EXPECTED}", directory)
    if len(by_prefix) > 1:
        names = sorted(by_prefix)
        raise InputError(
            f"files with different prefixes {names} found; keep one patient per directory",
            directory,
        )
    (roles,) = by_prefix.values()
    for role, paths in roles.items():
        if len(paths) > 1:
            raise InputError(
                f"several files for '{role}': {[p.name for p in paths]}; keep one", directory
            )
    return {role: paths[0] for role, paths in roles.items()}


def _read_anatomy(
    directory: Path, files: dict[str, Path], read: _GridCheckedReader, notes: list[str]
) -> Anatomy:
    separate = [role for role in ("wm", "gm", "csf") if role in files]
    if "tissues" in files and separate:
        raise InputError(
            f"both a tissues label map and separate maps ({', '.join(separate)}) found; keep one",
            directory,
        )
    if "tissues" in files:
        labels_path = files["tissues"]
        labels = _integer_labels(
            read(labels_path),
            labels_path,
            allowed={0, *TISSUE_LABELS},
            meaning="tissue labels 0 (background), 1 (CSF), 2 (GM), 3 (WM)",
        )
        maps = {name: (labels == label).astype(np.float32) for label, name in TISSUE_LABELS.items()}
        brain_file = labels_path
    else:
        missing = [role for role in ("wm", "gm") if role not in files]
        if missing:
            raise InputError(
                f"missing tissue map(s) {', '.join(missing)}; {_EXPECTED}; "
                f"found {sorted(p.name for p in files.values())}",
                directory,
            )
        maps = {
            role: _unit_interval(read(files[role]), files[role], "tissue probabilities")
            for role in ("wm", "gm", "csf")
            if role in files
        }
        if "csf" not in files:
            maps["csf"] = np.zeros_like(maps["wm"])
            _warn(
                "no CSF map beside wm and gm: CSF taken as 0 everywhere (the PDE's domain is "
                "wm + gm and does not use CSF; the surrogate forward model sees no CSF)",
                files["wm"],
                notes,
            )
        brain_file = files["wm"]
    if "brain_mask" in files:
        mask_path = files["brain_mask"]
        inside = _binary(read(mask_path), mask_path, "binary brain mask")
        brain_before = (maps["wm"] + maps["gm"]) >= BRAIN_THRESHOLD
        removed = int(np.count_nonzero(brain_before & ~inside))
        maps = {name: np.where(inside, values, 0.0) for name, values in maps.items()}
        notes.append(
            f"{mask_path.name}: brain mask applied ({int(np.count_nonzero(inside))} voxels "
            f"inside): wm, gm and csf set to 0 outside it, removing {removed} voxels of "
            "wm + gm ≥ 0.5 from the domain"
        )
        brain_file = mask_path
    anatomy = Anatomy(wm=maps["wm"], gm=maps["gm"], csf=maps["csf"], grid=read.grid)
    if not anatomy.brain_mask.any():
        raise InputError(
            "empty brain: white + grey matter probability never reaches "
            f"{BRAIN_THRESHOLD} (max {float(np.max(anatomy.wm + anatomy.gm)):.3g})"
            + (" inside the brain mask" if "brain_mask" in files else ""),
            brain_file,
        )
    return anatomy


def _read_observations(
    directory: Path,
    files: dict[str, Path],
    read: _GridCheckedReader,
    labels: str,
    notes: list[str],
) -> Observations:
    label_roles = [role for role in ("tumorseg", "seg") if role in files]
    binary_roles = [role for role in ("t1c", "flair") if role in files]
    if len(label_roles) > 1 or (label_roles and binary_roles):
        given = [files[role].name for role in label_roles + binary_roles]
        raise InputError(
            f"several tumour segmentations {given}; give either one label map "
            "(tumorseg or seg) or binary t1c and/or flair",
            directory,
        )
    if not label_roles and not binary_roles:
        raise InputError(
            f"no tumour segmentation; {_EXPECTED}; found {sorted(p.name for p in files.values())}",
            directory,
        )
    masks: dict[str, np.ndarray] = {}
    if label_roles:
        seg_path = files[label_roles[0]]
        masks["t1c"], masks["flair"] = _tumour_masks(read(seg_path), seg_path, labels, notes)
        lesion_files = [seg_path]
    else:
        for role in binary_roles:
            masks[role] = _binary(read(files[role]), files[role], "binary segmentation")
        lesion_files = [files[role] for role in binary_roles]
    if not any(mask.any() for mask in masks.values()):
        raise InputError(
            f"empty tumour segmentation (zero voxels in {', '.join(p.name for p in lesion_files)})"
            ": a patient without a visible lesion cannot be calibrated",
            lesion_files[0] if len(lesion_files) == 1 else directory,
        )
    return Observations(grid=read.grid, t1c=masks.get("t1c"), flair=masks.get("flair"))


def _describe(convention: str) -> str:
    """A convention's labels in words, e.g. ``1 necrotic, 2 oedema, 4 enhancing``."""
    return ", ".join(f"{label} {name}" for name, label in LABEL_CONVENTIONS[convention].items())


def _tumour_masks(
    values: np.ndarray, path: Path, convention: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """T1c (necrotic ∪ enhancing) and FLAIR (all tumour labels) of a tumour label map read in
    `convention` (``"auto"``: detected where unambiguous, see `load_patient`)."""
    how = f"labels={convention!r}"
    if convention == "auto":
        all_labels = sorted({v for table in LABEL_CONVENTIONS.values() for v in table.values()})
        labels = _integer_labels(
            values,
            path,
            allowed={0, *all_labels},
            meaning="tumour labels 0 and "
            + "; ".join(f"{name}: {_describe(name)}" for name in LABEL_CONVENTIONS),
        )
        present = set(np.unique(labels).tolist())
        option = "(--labels on the command line, labels= in the configuration and Python API)"
        if {3, 4} <= present:
            raise InputError(
                "both labels 3 and 4 present: ambiguous (GliODIL / BraTS-toolkit use 3 for "
                "oedema and 4 for enhancing; BraTS uses one of them for enhancing); pass "
                f"labels='gliodil' ({_describe('gliodil')}) or 'brats2021'/'brats2023' {option}",
                path,
            )
        if 3 in present and 2 not in present:
            raise InputError(
                "label 3 without label 2: ambiguous (enhancing in BraTS 2023, oedema in "
                f"GliODIL); pass labels='brats2023' ({_describe('brats2023')}) or 'gliodil' "
                f"({_describe('gliodil')}) {option}",
                path,
            )
        convention = "brats2023" if 3 in present else "brats2021"
        how = "detected (labels='auto')"
    else:
        table = LABEL_CONVENTIONS[convention]
        labels = _integer_labels(
            values,
            path,
            allowed={0, *table.values()},
            meaning=f"labels={convention!r}: 0 background, {_describe(convention)}",
        )
    table = LABEL_CONVENTIONS[convention]
    t1c = np.isin(labels, [table["necrotic"], table["enhancing"]])
    flair = t1c | (labels == table["oedema"])
    notes.append(
        f"{path.name}: tumour labels read as {convention} ({_describe(convention)}), {how}"
    )
    return t1c, flair


def _binary(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`values` as bool; an error naming the values that are neither 0 nor 1."""
    non_binary = np.setdiff1d(np.unique(values), [0.0, 1.0])
    if non_binary.size:
        raise InputError(f"not a {what}: values {_few(non_binary)} besides 0 and 1", path)
    return values > 0.5


def _read_pet(
    path: Path,
    read: _GridCheckedReader,
    anatomy: Anatomy,
    observations: Observations,
    method: str,
    notes: list[str],
) -> np.ndarray:
    """PET normalised by `method` and checked against `PET_TOLERATED_RANGE` (see
    `load_patient`)."""
    uptake = read(path).astype(np.float64)
    if method == "none":
        return _tolerated(uptake, path, "normalised PET uptake", method, notes)
    lesion = observations.lesion_mask
    domain = anatomy.brain_mask | lesion
    if method == "max":
        scale = float(uptake[domain].max())
        described = f"divided by the maximum uptake in brain ∪ lesion ({scale:.6g})"
    elif method == "percentile":
        scale = float(np.percentile(uptake[lesion], PET_PERCENTILE))
        described = (
            f"divided by the {PET_PERCENTILE:g}th percentile of the uptake inside the lesion "
            f"({scale:.6g})"
        )
    else:
        normalised, described = _tbr(uptake, path, anatomy, lesion, domain, notes)
    if method != "tbr":
        if not scale > 0:
            raise InputError(
                f"cannot normalise PET by {method!r}: the reference uptake is {scale:.6g} (not "
                "positive); check the file or choose another --pet-normalise",
                path,
            )
        normalised = uptake / scale
    notes.append(f"{path.name}: PET normalised with pet_normalise={method!r}: {described}")
    pet = np.clip(normalised, 0.0, 1.0).astype(np.float32)
    pet[domain] = _tolerated(normalised[domain], path, "normalised PET", method, notes)
    return pet


def _tbr(
    uptake: np.ndarray,
    path: Path,
    anatomy: Anatomy,
    lesion: np.ndarray,
    domain: np.ndarray,
    notes: list[str],
) -> tuple[np.ndarray, str]:
    """PET as clip((TBR − 1) / (TBR_peak − 1), 0, 1), and the normalisation in words."""
    grid = anatomy.grid
    distance_mm = ndimage.distance_transform_edt(~lesion, sampling=grid.spacing_mm)
    background = anatomy.brain_mask & (distance_mm > TBR_BACKGROUND_MARGIN_MM)
    background_ml = float(np.count_nonzero(background)) * grid.voxel_volume_ml
    if background_ml < _MIN_BACKGROUND_ML:
        raise InputError(
            f"pet_normalise='tbr' needs at least {_MIN_BACKGROUND_ML:g} ml of brain farther than "
            f"{TBR_BACKGROUND_MARGIN_MM:g} mm from the lesion as background; found "
            f"{background_ml:.3g} ml: use 'percentile' or 'max'",
            path,
        )
    background_mean = float(uptake[background].mean())
    if not background_mean > 0:
        raise InputError(
            f"pet_normalise='tbr': the mean background uptake is {background_mean:.6g} (not "
            "positive); check the file or use 'percentile' or 'max'",
            path,
        )
    tbr = uptake / background_mean
    peak = float(tbr[domain].max())
    if peak < TBR_TUMOUR_THRESHOLD:
        _warn(
            f"peak tumour-to-background ratio {peak:.3g} < {TBR_TUMOUR_THRESHOLD:g}: the lesion "
            "is PET-negative by the FET-PET criterion (Law et al. 2019); PET is scaled as if "
            f"the peak were {TBR_TUMOUR_THRESHOLD:g}, so it stays small",
            path,
            notes,
        )
    top = max(peak, TBR_TUMOUR_THRESHOLD)
    described = (
        f"TBR = uptake / {background_mean:.6g} (mean of {int(np.count_nonzero(background))} "
        f"brain voxels, {background_ml:.3g} ml, farther than {TBR_BACKGROUND_MARGIN_MM:g} mm "
        f"from the lesion); peak TBR {peak:.3g}; y = clip((TBR - 1) / ({top:.3g} - 1), 0, 1)"
    )
    return np.clip((tbr - 1.0) / (top - 1.0), 0.0, 1.0), described


def _tolerated(
    values: np.ndarray, path: Path, what: str, method: str, notes: list[str]
) -> np.ndarray:
    """Normalised PET `values` (any shape) as float32: silent within [0, 1] (rounding clipped),
    kept with a warning within `PET_TOLERATED_RANGE`, refused beyond it."""
    low, high = float(values.min()), float(values.max())
    if low >= -_VALUE_TOL and high <= 1.0 + _VALUE_TOL:
        return np.clip(values, 0.0, 1.0).astype(np.float32)
    lowest, highest = PET_TOLERATED_RANGE
    found = f"(min {low:.6g}, max {high:.6g})"
    if low >= lowest - _VALUE_TOL and high <= highest + _VALUE_TOL:
        _warn(
            f"{what} slightly outside [0, 1] {found}, within the tolerated "
            f"[{lowest:g}, {highest:g}]: kept as it is (the Gaussian PET likelihood predicts "
            "such values)",
            path,
            notes,
        )
        return values.astype(np.float32)
    if method == "none":
        raw = " (raw uptake?)" if high > RAW_PET_HINT else ""
        advice = (
            f"normalise it, or pass --pet-normalise {{max,percentile,tbr}}{raw} "
            "(pet_normalise= in the configuration and Python API)"
        )
    elif high > highest + _VALUE_TOL:
        advice = f"a few voxels are far hotter than the reference of {method!r}: try 'max'"
    else:
        advice = "strongly negative uptake: check the file's reconstruction or scaling"
    raise InputError(
        f"{what} outside [0, 1] beyond the tolerated [{lowest:g}, {highest:g}] {found}; {advice}",
        path,
    )


def _unit_interval(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`values` clipped to [0, 1]; an error when they leave it by more than rounding."""
    low, high = float(values.min()), float(values.max())
    if low < -_VALUE_TOL or high > 1.0 + _VALUE_TOL:
        raise InputError(
            f"values outside [0, 1] (min {low:.6g}, max {high:.6g}); expected {what} in [0, 1]",
            path,
        )
    return np.clip(values, 0.0, 1.0)


def _integer_labels(values: np.ndarray, path: Path, allowed: set[int], meaning: str) -> np.ndarray:
    """`values` as int labels; an error naming non-integer or unknown labels.

    Args:
        values: the label map as read.
        path: its file, for messages.
        allowed: the valid labels.
        meaning: the valid labels in words, for messages.
    """
    unique = np.unique(values)
    non_integer = unique[unique != np.round(unique)]
    if non_integer.size:
        raise InputError(f"not a label map: non-integer values {_few(non_integer)}", path)
    unknown = np.setdiff1d(unique, sorted(allowed))
    if unknown.size:
        raise InputError(f"unknown labels {_few(unknown)}; expected {meaning}", path)
    return values.astype(np.int16)


def _few(values: np.ndarray, limit: int = 8) -> str:
    """At most `limit` values as a readable list, noting how many more there are."""
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    more = f", … ({values.size - limit} more)" if values.size > limit else ""
    return f"[{shown}{more}]"
