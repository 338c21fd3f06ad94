"""Reading a patient directory of NIfTI files into a `Patient`, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayestumor.errors import InputError
from bayestumor.imaging._grid import Grid
from bayestumor.imaging._nifti import NIFTI_SUFFIXES, load_nifti, save_nifti
from bayestumor.imaging._patient import BRAIN_THRESHOLD, Anatomy, Observations, Patient

TISSUE_LABELS = {1: "csf", 2: "gm", 3: "wm"}
"""Labels of a ``tissues`` label map (0 is background)."""

NECROTIC, OEDEMA = 1, 2
ENHANCING_LABELS = (4, 3)
"""BraTS enhancing-tumour label: 4 up to BraTS 2021, 3 from BraTS 2023 on."""

_ROLES = ("wm", "gm", "csf", "tissues", "t1c", "flair", "tumorseg", "seg", "pet")
_AFFINE_TOL_MM = 1e-3
_VALUE_TOL = 1e-4
_EXPECTED = (
    "expected tissue maps wm, gm, csf (or one 'tissues' label map: 1 CSF, 2 GM, 3 WM), "
    "tumour segmentations t1c and/or flair (or one BraTS-style 'tumorseg' or 'seg' label map), "
    "optionally pet; each as NAME.nii.gz or NAME.nii, or PREFIX-NAME.nii.gz (PredictGBM layout)"
)


def load_patient(path: str | Path) -> Patient:
    """Read a patient directory: tissues, tumour segmentations and optional PET on one grid.

    Accepted files (``.nii.gz`` or ``.nii``; all names may carry a common ``PREFIX-``, as in the
    PredictGBM layout ``Patient-X/X-wm.nii.gz``):

    - tissues: ``wm``, ``gm``, ``csf`` probability maps or binary masks with values in [0, 1];
      or one ``tissues`` label map (0 background, 1 CSF, 2 GM, 3 WM);
    - tumour: binary ``t1c`` and/or ``flair`` segmentations; or one BraTS-style ``tumorseg`` or
      ``seg`` label map (1 necrotic core, 2 oedema, 4 — or 3 from BraTS 2023 — enhancing),
      read as T1c = {1, enhancing} and FLAIR = {1, 2, enhancing};
    - optional ``pet``: uptake normalised to [0, 1].

    Other files in the directory are ignored. An empty T1c beside a non-empty FLAIR is kept as
    an observation (a non-enhancing tumour).

    Args:
        path: the patient directory; its name becomes `Patient.name`.

    Raises:
        InputError: naming the file and the problem — missing files (with the list expected),
            shapes or affines that disagree (naming both files), NaN/inf, values outside
            [0, 1], non-binary segmentations or unknown labels (naming the values), no brain,
            no tumour segmentation or an empty lesion.
    """
    directory = Path(path)
    if not directory.is_dir():
        problem = "not a directory" if directory.exists() else "patient directory not found"
        raise InputError(f"{problem}; {_EXPECTED}", directory)
    files = _find_role_files(directory)
    reader = _GridCheckedReader()
    anatomy = _read_anatomy(directory, files, reader)
    observations = _read_observations(directory, files, reader)
    return Patient(
        anatomy=anatomy, observations=observations, name=directory.name, source=directory
    )


def save_patient(patient: Patient, directory: str | Path) -> Path:
    """Write `patient` as a patient directory that `load_patient` reads back: ``wm``, ``gm``,
    ``csf`` and whichever of ``t1c``, ``flair``, ``pet`` it has, as ``.nii.gz`` on its grid.

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
    return directory


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


def _read_anatomy(directory: Path, files: dict[str, Path], read: _GridCheckedReader) -> Anatomy:
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
        maps = {name: (labels == label) for label, name in TISSUE_LABELS.items()}
        brain_file = labels_path
    else:
        missing = [role for role in ("wm", "gm", "csf") if role not in files]
        if missing:
            raise InputError(
                f"missing tissue map(s) {', '.join(missing)}; {_EXPECTED}; "
                f"found {sorted(p.name for p in files.values())}",
                directory,
            )
        maps = {
            role: _unit_interval(read(files[role]), files[role], "tissue probabilities")
            for role in ("wm", "gm", "csf")
        }
        brain_file = files["wm"]
    anatomy = Anatomy(wm=maps["wm"], gm=maps["gm"], csf=maps["csf"], grid=read.grid)
    if not anatomy.brain_mask.any():
        raise InputError(
            "empty brain: white + grey matter probability never reaches "
            f"{BRAIN_THRESHOLD} (max {float(np.max(anatomy.wm + anatomy.gm)):.3g})",
            brain_file,
        )
    return anatomy


def _read_observations(
    directory: Path, files: dict[str, Path], read: _GridCheckedReader
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
        labels = _integer_labels(
            read(seg_path),
            seg_path,
            allowed={0, NECROTIC, OEDEMA, *ENHANCING_LABELS},
            meaning="BraTS labels 0, 1 (necrotic core), 2 (oedema), 4 or 3 (enhancing)",
        )
        present = set(np.unique(labels).tolist())
        if set(ENHANCING_LABELS) <= present:
            raise InputError(
                "both labels 3 and 4 present: ambiguous enhancing label (4 up to BraTS 2021, "
                "3 from BraTS 2023)",
                seg_path,
            )
        enhancing = np.isin(labels, ENHANCING_LABELS)
        masks["t1c"] = (labels == NECROTIC) | enhancing
        masks["flair"] = masks["t1c"] | (labels == OEDEMA)
        lesion_files = [seg_path]
    else:
        for role in binary_roles:
            values = read(files[role])
            non_binary = np.setdiff1d(np.unique(values), [0.0, 1.0])
            if non_binary.size:
                raise InputError(
                    f"not a binary segmentation: values {_few(non_binary)} besides 0 and 1",
                    files[role],
                )
            masks[role] = values > 0.5
        lesion_files = [files[role] for role in binary_roles]
    if not any(mask.any() for mask in masks.values()):
        raise InputError(
            f"empty tumour segmentation (zero voxels in {', '.join(p.name for p in lesion_files)})"
            ": a patient without a visible lesion cannot be calibrated",
            lesion_files[0] if len(lesion_files) == 1 else directory,
        )
    pet = None
    if "pet" in files:
        pet = _unit_interval(read(files["pet"]), files["pet"], "normalised PET uptake")
    return Observations(grid=read.grid, t1c=masks.get("t1c"), flair=masks.get("flair"), pet=pet)


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
