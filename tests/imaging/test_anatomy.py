"""Tests of patient anatomy, NIfTI I/O, resampling and cropping (bayestumor.imaging)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bayestumor.errors import InputError
from bayestumor.imaging import (
    Grid,
    Observations,
    Patient,
    load_mni152,
    load_nifti,
    load_patient,
    make_phantom,
    resample_to_grid,
    save_nifti,
    to_original_space,
)

LESION_CENTER_MM = np.array([18.0, 10.0, 6.0])


def ball(grid: Grid, center_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels whose centre lies within `radius_mm` of `center_mm`, bool (x, y, z)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    return np.linalg.norm(grid.voxel_to_world(ijk) - center_mm, axis=-1) <= radius_mm


def phantom_files(shape=(32, 32, 32), spacing_mm=4.0) -> tuple[dict[str, np.ndarray], Grid]:
    """Volumes of a synthetic patient: phantom tissues, nested T1c ⊂ FLAIR balls and a PET map."""
    anatomy = make_phantom(shape, spacing_mm)
    t1c = ball(anatomy.grid, LESION_CENTER_MM, 9.0)
    flair = ball(anatomy.grid, LESION_CENTER_MM, 18.0)
    pet = np.where(flair, 0.5, 0.0) + np.where(t1c, 0.4, 0.0)
    volumes = {"wm": anatomy.wm, "gm": anatomy.gm, "csf": anatomy.csf}
    volumes |= {"t1c": t1c, "flair": flair, "pet": pet.astype(np.float32)}
    return volumes, anatomy.grid


def write_dir(directory: Path, volumes: dict[str, np.ndarray], grid: Grid, fmt="{}.nii.gz"):
    """Save each volume as ``fmt.format(role)`` in `directory`; return the directory."""
    for role, volume in volumes.items():
        save_nifti(directory / fmt.format(role), volume, grid)
    return directory


@pytest.fixture
def patient_dir(tmp_path) -> Path:
    volumes, grid = phantom_files()
    return write_dir(tmp_path / "patient-001", volumes, grid)


# --- phantom -------------------------------------------------------------------------------


def test_phantom_is_a_deterministic_symmetric_brain_centred_at_the_origin():
    """Probabilities in [0, 1] summing to ≤ 1, every tissue present, GM outside WM, left-right
    symmetric, identical on repeated calls, world origin at the volume centre."""
    anatomy = make_phantom()
    again = make_phantom()
    total = anatomy.wm + anatomy.gm + anatomy.csf
    assert all(np.array_equal(getattr(anatomy, t), getattr(again, t)) for t in ("wm", "gm", "csf"))
    assert min(v.min() for v in (anatomy.wm, anatomy.gm, anatomy.csf)) >= 0.0
    assert total.max() <= 1.0 + 1e-6
    assert all(volume > 10.0 for volume in anatomy.volumes_ml().values())
    np.testing.assert_allclose(anatomy.grid.voxel_to_world([15.5, 15.5, 15.5]), 0.0, atol=1e-12)
    assert anatomy.grid.spacing_mm == (4.0, 4.0, 4.0)
    np.testing.assert_array_equal(anatomy.wm, anatomy.wm[::-1])
    # Along the left-right line through the centre: outside rim CSF, then GM, then WM.
    line = 16
    assert anatomy.csf[2, line, line] > 0.5 and anatomy.wm[2, line, line] == 0.0
    assert anatomy.gm[3, line, line] > 0.5 and anatomy.csf[0, line, line] == 0.0
    assert anatomy.wm[8, line, line] == 1.0
    # Ventricles: CSF inside the white matter near the midline.
    assert anatomy.csf[12:20, 14:20, 16:20].max() > 0.5
    assert anatomy.brain_mask.sum() > 0.2 * anatomy.wm.size


# --- NIfTI ---------------------------------------------------------------------------------


def test_save_load_nifti_round_trips_values_and_affine_exactly(tmp_path):
    """float32 values and a float32-representable oblique affine come back bit for bit, stored
    in both qform and sform; booleans are stored as uint8."""
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([1.5, 2.0, 2.5])
    affine[:3, 3] = [-90.25, 12.5, -3.0]
    grid = Grid((5, 6, 7), affine)
    values = np.random.default_rng(0).random(grid.shape, dtype=np.float32)
    path = save_nifti(tmp_path / "a.nii.gz", values, grid)
    loaded, loaded_grid = load_nifti(path)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, values)
    assert np.array_equal(loaded_grid.affine, affine) and loaded_grid.shape == grid.shape
    header = nib.load(path).header
    assert header.get_qform(coded=True)[1] == 1 and header.get_sform(coded=True)[1] == 1
    np.testing.assert_allclose(header.get_qform(), affine, atol=1e-5)

    mask_path = save_nifti(tmp_path / "m.nii", values > 0.5, grid)
    assert nib.load(mask_path).get_data_dtype() == np.uint8
    assert np.array_equal(load_nifti(mask_path)[0], (values > 0.5).astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "m.nii"]  # no temp files


def test_load_nifti_squeezes_a_trailing_singleton_dimension(tmp_path):
    """A (x, y, z, 1) image, as some tools write, reads as (x, y, z)."""
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), tmp_path / "v.nii")
    values, grid = load_nifti(tmp_path / "v.nii")
    assert values.shape == (3, 4, 5) and grid.shape == (3, 4, 5)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (np.ones((3, 4, 5, 2), np.float32), "3-D"),
        (np.full((3, 4, 5), np.nan, np.float32), "NaN"),
        (np.full((3, 4, 5), np.inf, np.float32), "infinite"),
    ],
)
def test_load_nifti_rejects_bad_volumes_naming_the_file(tmp_path, data, phrase):
    """4-D data and non-finite values raise InputError whose message names the file."""
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bad.nii.gz")
    with pytest.raises(InputError, match=phrase) as info:
        load_nifti(tmp_path / "bad.nii.gz")
    assert "bad.nii.gz" in str(info.value)


def test_load_nifti_rejects_a_missing_or_corrupt_file(tmp_path):
    """A missing file and a file that is not NIfTI raise InputError naming the file."""
    with pytest.raises(InputError, match=r"nothere\.nii\.gz: file not found"):
        load_nifti(tmp_path / "nothere.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(InputError, match=r"junk\.nii\.gz: cannot read"):
        load_nifti(tmp_path / "junk.nii.gz")


# --- patient directory formats ------------------------------------------------------------


def test_load_patient_reads_separate_maps_segmentations_and_pet(patient_dir):
    """Each file's values arrive in the matching field, on the files' grid, named by directory."""
    volumes, grid = phantom_files()
    patient = load_patient(patient_dir)
    assert patient.name == "patient-001" and patient.source == patient_dir
    assert patient.grid == grid
    for role in ("wm", "gm", "csf"):
        assert np.array_equal(getattr(patient.anatomy, role), volumes[role])
    for role in ("t1c", "flair"):
        mask = getattr(patient.observations, role)
        assert mask.dtype == np.bool_ and np.array_equal(mask, volumes[role])
    assert np.array_equal(patient.observations.pet, volumes["pet"])
    np.testing.assert_allclose(patient.lesion_center_mm(), LESION_CENTER_MM, atol=0.5)


def test_load_patient_reads_a_tissue_label_map_and_flair_only(tmp_path):
    """Labels 1/2/3 become binary CSF/GM/WM maps; FLAIR alone is enough (T1c stays None)."""
    volumes, grid = phantom_files()
    labels = np.zeros(grid.shape, np.int16)
    labels[volumes["csf"] > 0.5] = 1
    labels[volumes["gm"] > 0.5] = 2
    labels[volumes["wm"] > 0.5] = 3
    directory = write_dir(tmp_path / "p", {"tissues": labels, "flair": volumes["flair"]}, grid)
    patient = load_patient(directory)
    for label, role in ((1, "csf"), (2, "gm"), (3, "wm")):
        assert np.array_equal(getattr(patient.anatomy, role), (labels == label).astype(np.float32))
    assert patient.observations.t1c is None and patient.observations.pet is None
    np.testing.assert_allclose(patient.lesion_center_mm(), LESION_CENTER_MM, atol=0.5)


@pytest.mark.parametrize("enhancing", [4, 3])
def test_load_patient_reads_brats_labels(tmp_path, enhancing):
    """BraTS labels: T1c = necrotic ∪ enhancing, FLAIR = necrotic ∪ oedema ∪ enhancing, for the
    pre-2023 (4) and 2023+ (3) enhancing label."""
    volumes, grid = phantom_files()
    seg = np.zeros(grid.shape, np.int16)
    seg[volumes["flair"]] = 2
    seg[volumes["t1c"]] = enhancing
    seg[ball(grid, LESION_CENTER_MM, 4.5)] = 1
    tissues = {k: volumes[k] for k in ("wm", "gm", "csf")}
    directory = write_dir(tmp_path / "p", tissues | {"seg": seg}, grid)
    observations = load_patient(directory).observations
    assert np.array_equal(observations.t1c, np.isin(seg, [1, enhancing]))
    assert np.array_equal(observations.flair, seg > 0)
    assert observations.t1c.sum() == volumes["t1c"].sum()


def test_load_patient_reads_the_predictgbm_layout_and_uncompressed_nifti(tmp_path):
    """``Patient-X/X-{gm,wm,csf,tumorseg,pet}.nii``: prefix detected, files read as above."""
    volumes, grid = phantom_files()
    seg = np.where(volumes["t1c"], 3, np.where(volumes["flair"], 2, 0)).astype(np.int16)
    files = {k: volumes[k] for k in ("wm", "gm", "csf", "pet")} | {"tumorseg": seg}
    directory = write_dir(tmp_path / "Patient-X", files, grid, fmt="X-{}.nii")
    (directory / "notes.txt").write_text("ignored")
    patient = load_patient(directory)
    assert patient.name == "Patient-X"
    assert np.array_equal(patient.observations.t1c, volumes["t1c"])
    assert np.array_equal(patient.observations.flair, volumes["flair"])
    assert np.array_equal(patient.anatomy.wm, volumes["wm"])
    assert np.array_equal(patient.observations.pet, volumes["pet"])


def test_load_patient_keeps_an_empty_t1c_beside_a_non_empty_flair(tmp_path):
    """A non-enhancing tumour: the all-false T1c is kept as an observation, not dropped."""
    volumes, grid = phantom_files()
    volumes["t1c"] = np.zeros(grid.shape, bool)
    patient = load_patient(write_dir(tmp_path / "p", volumes, grid))
    assert patient.observations.t1c is not None and not patient.observations.t1c.any()
    np.testing.assert_allclose(patient.lesion_center_mm(), LESION_CENTER_MM, atol=0.5)


def _set(role, make):
    return lambda volumes, grid: {**volumes, role: make(volumes, grid)}


def _drop(role):
    return lambda volumes, grid: {k: v for k, v in volumes.items() if k != role}


def _poke(role, value):
    def change(volumes, grid):
        poked = np.array(volumes[role], dtype=np.float32)
        poked[3, 4, 5] = value
        return {**volumes, role: poked}

    return change


_TISSUE_ONLY = ("wm", "gm", "csf")
BAD_PATIENTS = {
    # case: (change of the good volumes, file named in the message, phrase in the message)
    "missing gm": (_drop("gm"), "p", "missing tissue map.*gm"),
    "no tumour file": (
        lambda v, g: {k: v[k] for k in _TISSUE_ONLY},
        "p",
        "no tumour segmentation",
    ),
    "NaN in gm": (_poke("gm", np.nan), "gm.nii.gz", "NaN"),
    "tissue above 1": (_set("wm", lambda v, g: v["wm"] * 255), "wm.nii.gz", r"outside \[0, 1\]"),
    "negative tissue": (_poke("csf", -0.5), "csf.nii.gz", r"outside \[0, 1\]"),
    "empty brain": (
        lambda v, g: v | {"wm": np.zeros(g.shape), "gm": np.zeros(g.shape)},
        "wm.nii.gz",
        "empty brain",
    ),
    "non-binary t1c": (_poke("t1c", 0.5), "t1c.nii.gz", r"not a binary.*0\.5"),
    "mask stored 0/255": (
        _set("flair", lambda v, g: v["flair"] * 255.0),
        "flair.nii.gz",
        r"not a binary.*255",
    ),
    "empty segmentations": (
        lambda v, g: v | {"t1c": np.zeros(g.shape, bool), "flair": np.zeros(g.shape, bool)},
        "p",
        "empty tumour segmentation",
    ),
    "pet above 1": (_poke("pet", 1.5), "pet.nii.gz", r"outside \[0, 1\].*1\.5"),
    "pet NaN": (_poke("pet", np.nan), "pet.nii.gz", "NaN"),
    "unknown tissue label": (
        lambda v, g: {
            "tissues": np.where(v["wm"] > 0.5, 3, np.where(v["csf"] > 0.3, 5, 0)).astype(np.int16),
            "t1c": v["t1c"],
        },
        "tissues.nii.gz",
        r"unknown labels \[5\]; expected tissue labels",
    ),
    "tissues and separate maps": (
        lambda v, g: v | {"tissues": (v["wm"] > 0.5).astype(np.int16) * 3},
        "p",
        "both a tissues label map and separate",
    ),
    "unknown seg label": (
        lambda v, g: (
            {k: v[k] for k in _TISSUE_ONLY}
            | {"tumorseg": np.where(v["flair"], 7, 0).astype(np.int16)}
        ),
        "tumorseg.nii.gz",
        r"unknown labels \[7\]",
    ),
    "enhancing labels 3 and 4 both": (
        lambda v, g: (
            {k: v[k] for k in _TISSUE_ONLY}
            | {"seg": np.where(v["t1c"], 4, np.where(v["flair"], 3, 0)).astype(np.int16)}
        ),
        "seg.nii.gz",
        "both labels 3 and 4",
    ),
    "empty label map": (
        lambda v, g: {k: v[k] for k in _TISSUE_ONLY} | {"seg": np.zeros(g.shape, np.int16)},
        "seg.nii.gz",
        "empty tumour segmentation",
    ),
    "seg and t1c both": (
        lambda v, g: v | {"seg": v["t1c"].astype(np.int16)},
        "p",
        "several tumour segmentations",
    ),
}


@pytest.mark.parametrize("case", BAD_PATIENTS)
def test_load_patient_rejects_bad_input_naming_the_file(tmp_path, case):
    """Each kind of bad patient directory raises InputError naming the file and the problem."""
    change, file_name, phrase = BAD_PATIENTS[case]
    volumes, grid = phantom_files()
    directory = write_dir(tmp_path / "p", change(volumes, grid), grid)
    with pytest.raises(InputError, match=phrase) as info:
        load_patient(directory)
    assert str(info.value).startswith(str(directory / file_name if file_name != "p" else directory))


def test_load_patient_rejects_files_on_different_grids_naming_both(tmp_path):
    """A shape or affine that differs from the first tissue file's names both files."""
    volumes, grid = phantom_files()
    directory = write_dir(tmp_path / "p", volumes, grid)
    save_nifti(
        directory / "flair.nii.gz", np.zeros((32, 32, 31), bool), Grid((32, 32, 31), np.eye(4))
    )
    with pytest.raises(InputError, match=r"flair\.nii\.gz: shape .*wm\.nii\.gz"):
        load_patient(directory)
    shifted = grid.affine.copy()
    shifted[0, 3] += 1.0
    save_nifti(directory / "flair.nii.gz", volumes["flair"], Grid(grid.shape, shifted))
    with pytest.raises(InputError, match=r"flair\.nii\.gz: affine differs from wm\.nii\.gz"):
        load_patient(directory)


def test_load_patient_rejects_a_missing_directory_listing_what_is_expected(tmp_path):
    """A missing directory, and one without patient files, say which files were expected."""
    with pytest.raises(InputError, match=r"patient directory not found.*wm, gm, csf"):
        load_patient(tmp_path / "nobody")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no patient files found.*t1c and/or flair"):
        load_patient(tmp_path / "empty")


# --- resampling and cropping ----------------------------------------------------------------


@pytest.mark.parametrize("spacing_mm", [2.0, 4.0, 3.0])
def test_resampling_conserves_tissue_volume_and_centres_blocks(spacing_mm):
    """Coarsening conserves each tissue's total volume (to float rounding, integer or not);
    for integer factors the coarse voxel (0, 0, 0) sits at the centre of the first block."""
    fine = make_phantom((40, 40, 40), 1.0)
    coarse = fine.resampled(spacing_mm)
    assert coarse.grid.spacing_mm == pytest.approx((spacing_mm,) * 3, abs=1e-12)
    assert coarse.shape == (int(np.ceil(40 / spacing_mm)),) * 3
    for tissue, volume in fine.volumes_ml().items():
        assert coarse.volumes_ml()[tissue] == pytest.approx(volume, rel=1e-6)
    if float(spacing_mm).is_integer():
        f = int(spacing_mm)
        block = np.stack(np.meshgrid(*[np.arange(f)] * 3, indexing="ij"), -1).reshape(-1, 3)
        np.testing.assert_allclose(
            coarse.grid.voxel_to_world([0, 0, 0]), fine.grid.voxel_to_world(block).mean(0)
        )
        np.testing.assert_allclose(
            coarse.wm[1, 2, 3], fine.wm[f : 2 * f, 2 * f : 3 * f, 3 * f : 4 * f].mean(), rtol=1e-6
        )


def test_patient_resampled_keeps_segmentations_of_majority_blocks_and_small_lesions():
    """A segmentation voxel survives 2× coarsening when ≥ half its block was inside; a lesion
    smaller than half a coarse voxel is still kept (its best voxel), never emptied."""
    anatomy = make_phantom((16, 16, 16), 1.0)
    t1c = np.zeros(anatomy.shape, bool)
    t1c[4:8, 4:8, 4:8] = True  # four whole 2×2×2 blocks per axis
    t1c[8, 4:6, 4:6] = True  # half of the next blocks along x: ties count as inside
    flair = np.zeros(anatomy.shape, bool)
    flair[11, 11, 11] = True  # one eighth of a coarse voxel
    patient = Patient(anatomy, Observations(anatomy.grid, t1c=t1c, flair=flair), "p")
    coarse = patient.resampled(2.0).observations
    expected = np.zeros((8, 8, 8), bool)
    expected[2:4, 2:4, 2:4] = True
    expected[4, 2, 2] = True
    assert np.array_equal(coarse.t1c, expected)
    assert np.argwhere(coarse.flair).tolist() == [[5, 5, 5]]
    assert patient.resampled(1.0).anatomy is patient.anatomy  # unchanged spacing: no copy


def test_crop_is_the_lesion_box_plus_margin_and_maps_back_exactly(patient_dir, tmp_path):
    """Crop → identity 'solve' (cropped T1c as float) → to_original_space → save → reload gives
    the input's shape and affine exactly, the original T1c inside the ROI and 0 outside."""
    patient = load_patient(patient_dir)
    _, input_grid = load_nifti(patient_dir / "t1c.nii.gz")
    roi = patient.cropped(margin_mm=8.0)
    lesion = np.argwhere(patient.observations.lesion_mask)
    start, stop = lesion.min(0) - 2, lesion.max(0) + 3  # 8 mm = 2 voxels of 4 mm
    assert roi.grid.shape == tuple(stop - start)
    np.testing.assert_allclose(roi.grid.voxel_to_world([0, 0, 0]), input_grid.voxel_to_world(start))
    assert roi.observations.flair.sum() == patient.observations.flair.sum()

    density = roi.observations.t1c.astype(np.float32)
    back = to_original_space(density, roi.grid, patient.grid)
    path = save_nifti(tmp_path / "out" / "density.nii.gz", back, patient.grid)
    reloaded, reloaded_grid = load_nifti(path)
    assert reloaded.shape == input_grid.shape
    assert np.array_equal(reloaded_grid.affine, input_grid.affine)
    box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    assert np.array_equal(reloaded[box], patient.observations.t1c[box].astype(np.float32))
    outside = np.ones(input_grid.shape, bool)
    outside[box] = False
    assert not reloaded[outside].any()


def test_crop_around_a_centre_has_a_fixed_shape_and_is_clipped_at_the_border():
    """With `center_mm` the ROI is the nearest voxel ± margin (2m + 1 voxels), clipped to the
    volume; without a lesion the brain's bounding box is used."""
    anatomy = make_phantom()
    empty = Observations(anatomy.grid, flair=np.zeros(anatomy.shape, bool))
    patient = Patient(anatomy, empty, "p")
    assert patient.cropped(8.0, center_mm=np.zeros(3)).grid.shape == (5, 5, 5)
    corner = anatomy.grid.voxel_to_world([0, 0, 31])
    assert patient.cropped(8.0, center_mm=corner).grid.shape == (3, 3, 3)
    brain = np.argwhere(anatomy.brain_mask)
    extent = tuple(brain.max(0) - brain.min(0) + 1)
    assert patient.cropped(0.0).grid.shape == extent
    with pytest.raises(InputError, match="outside the volume"):
        patient.cropped(8.0, center_mm=np.array([500.0, 0.0, 0.0]))


def test_resampled_and_cropped_smooth_field_maps_back_within_interpolation_error(tmp_path):
    """1 mm patient → 4 mm → crop; a Gaussian sampled on the ROI grid, mapped back and written
    has the input's shape and affine, 0 outside the ROI, and inside it matches the Gaussian
    within the trilinear bound h²/8 · Σ max|∂²f| plus, in the rim half-voxel beyond the outer
    coarse centres (clamped), |∇f|max · (h − 1 mm)/2 per axis."""
    anatomy = make_phantom((48, 48, 48), 1.0)
    flair = ball(anatomy.grid, np.array([2.0, -3.0, 1.0]), 6.0)
    patient = Patient(anatomy, Observations(anatomy.grid, flair=flair), "p")
    roi = patient.resampled(4.0).cropped(margin_mm=8.0)
    sigma_mm, h_mm = 12.0, 4.0

    def field(grid: Grid) -> np.ndarray:
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1)
        return np.exp(-np.sum(grid.voxel_to_world(ijk) ** 2, -1) / (2 * sigma_mm**2))

    back = to_original_space(field(roi.grid), roi.grid, patient.grid)
    path = save_nifti(tmp_path / "field.nii.gz", back, patient.grid)
    reloaded, reloaded_grid = load_nifti(path)
    assert reloaded.shape == patient.grid.shape
    assert np.array_equal(reloaded_grid.affine, patient.grid.affine)

    # The ROI covers the fine voxels inside its coarse voxels' cubes.
    low_mm = roi.grid.voxel_to_world([-0.5, -0.5, -0.5])
    high_mm = roi.grid.voxel_to_world(np.array(roi.grid.shape) - 0.5)
    start = np.round(patient.grid.world_to_voxel(low_mm) + 0.5).astype(int)
    stop = np.round(patient.grid.world_to_voxel(high_mm) + 0.5).astype(int)
    inside = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    centres = tuple(slice(a + 2, b - 2) for a, b in zip(start, stop, strict=True))
    error = np.abs(reloaded - field(patient.grid))
    interior_bound = h_mm**2 / 8 * 3 / sigma_mm**2
    rim_bound = interior_bound + 3 * np.exp(-0.5) / sigma_mm * (h_mm - 1.0) / 2
    assert error[centres].max() < interior_bound
    assert error[inside].max() < rim_bound
    outside = np.ones(patient.grid.shape, bool)
    outside[inside] = False
    assert not reloaded[outside].any() and reloaded[inside].min() > 0


def test_resample_to_grid_reproduces_linear_fields_and_fills_outside():
    """Trilinear interpolation is exact for a linear field on a rotated, shifted target grid;
    target voxels outside the source volume get `fill`."""
    source = Grid((20, 22, 24), np.diag([2.0, 2.0, 2.0, 1.0]))
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in source.shape], indexing="ij"), -1)
    gradient = np.array([0.3, -0.2, 0.1])
    linear = (source.voxel_to_world(ijk) @ gradient).astype(np.float64)
    angle = 0.3
    affine = np.eye(4)
    affine[:3, :3] = [
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ]
    affine[:3, 3] = [14.0, 10.0, 5.0]
    target = Grid((12, 12, 60), affine)
    result = resample_to_grid(linear, source, target, order=1, fill=-1.0)
    target_ijk = np.stack(np.meshgrid(*[np.arange(n) for n in target.shape], indexing="ij"), -1)
    source_index = source.world_to_voxel(target.voxel_to_world(target_ijk))
    interior = np.all((source_index >= 0) & (source_index <= np.array(source.shape) - 1), -1)
    outside = np.any((source_index < -0.5) | (source_index >= np.array(source.shape) - 0.5), -1)
    assert interior.sum() > 1000 and outside.sum() > 1000
    expected = target.voxel_to_world(target_ijk) @ gradient
    np.testing.assert_allclose(result[interior], expected[interior], atol=1e-9)
    assert np.all(result[outside] == -1.0)


# --- MNI152 ---------------------------------------------------------------------------------


def test_mni152_loads_from_the_nilearn_wheel_with_a_human_brain_volume():
    """nilearn's MNI152 2009 GM/WM (+ derived CSF) at 4 mm: spacing 4 mm on a 50×59×48 grid in
    MNI space; documented volumes wm ≈ 0.67 l, gm ≈ 1.01 l, wm + gm + csf ≈ 1.9 l (checked in
    1.7–2.0 l); CSF only where wm + gm < 1."""
    anatomy = load_mni152(4.0)
    assert anatomy.grid.spacing_mm == (4.0, 4.0, 4.0)
    assert anatomy.shape == (50, 59, 48)
    np.testing.assert_allclose(anatomy.grid.affine[:3, 3], [-96.5, -132.5, -70.5])
    volumes = anatomy.volumes_ml()
    assert 1700 < sum(volumes.values()) < 2000
    assert 600 < volumes["wm"] < 750 and 900 < volumes["gm"] < 1100 and 150 < volumes["csf"] < 300
    assert (anatomy.wm + anatomy.gm + anatomy.csf).max() <= 1.0 + 1e-5
    assert load_mni152(4.0) is anatomy  # cached
    with pytest.raises(ValueError):
        anatomy.wm[0, 0, 0] = 1.0  # shared arrays are read-only


def test_cropped_cube_is_a_whole_voxel_box_shifted_inside_the_volume():
    """An n³ crop keeps voxel values and a whole-voxel-shifted affine, centred on the requested
    point when it fits and pushed inwards at the volume's edge."""
    anatomy = make_phantom((32, 32, 32), 4.0)
    centre = anatomy.grid.voxel_to_world(np.array([16.0, 10.0, 2.0]))
    cube = anatomy.cropped_cube(centre, 8)
    assert cube.shape == (8, 8, 8)
    start = np.round(anatomy.grid.world_to_voxel(cube.grid.voxel_to_world(np.zeros(3)))).astype(int)
    np.testing.assert_array_equal(start, [12, 6, 0])  # k pushed inwards from −2 to 0
    np.testing.assert_array_equal(cube.wm, anatomy.wm[12:20, 6:14, 0:8])
    with pytest.raises(InputError, match="does not fit"):
        anatomy.cropped_cube(centre, 40)
