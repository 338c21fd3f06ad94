"""Reading real patient data as it comes: tumour label conventions, PET normalisation, a missing
CSF map and a brain mask (`load_patient`), and the options reaching it from the configuration,
the command line and the cohort runner.

Independent truths: voxel counts of small synthetic label volumes whose regions have known,
distinct sizes; PET normalised by hand from piecewise-constant uptake (the background region's
extent computed analytically from the box-shaped lesion, not with the implementation's distance
transform); the error messages a user reads.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayestumor.cli import main
from bayestumor.cohort import calibrate_task
from bayestumor.config import PET_NORMALISATIONS, TUMOUR_LABEL_CONVENTIONS, CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.imaging import (
    LABEL_CONVENTIONS,
    PET_TOLERATED_RANGE,
    TBR_BACKGROUND_MARGIN_MM,
    Grid,
    load_patient,
    save_nifti,
    save_patient,
)

SPACING_MM = 2.0
GRID = Grid((20, 20, 20), np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0]))
BRAIN = (slice(1, 19),) * 3
"""White matter fills this 18³ box; everything else is outside the brain."""


def box(start: int, stop: int) -> np.ndarray:
    """The cube [start, stop)³ of GRID, bool."""
    mask = np.zeros(GRID.shape, bool)
    mask[start:stop, start:stop, start:stop] = True
    return mask


def tissues() -> dict[str, np.ndarray]:
    wm = np.zeros(GRID.shape, np.float32)
    wm[BRAIN] = 1.0
    return {"wm": wm, "gm": np.zeros_like(wm), "csf": np.zeros_like(wm)}


def write(directory: Path, volumes: dict[str, np.ndarray], fmt: str = "{}.nii.gz") -> Path:
    for role, values in volumes.items():
        save_nifti(directory / fmt.format(role), values, GRID)
    return directory


# --- tumour label conventions ----------------------------------------------------------------

# Regions of distinct sizes, so that every misreading changes a count.
NECROTIC_VOXELS = 8  # box(4, 6)
ENHANCING_VOXELS = 27 - 8  # box(3, 6) without the necrotic core
OEDEMA_VOXELS = 125 - 27  # box(2, 7) without the core


def label_map(necrotic: int | None, oedema: int | None, enhancing: int | None) -> np.ndarray:
    """Nested boxes: oedema box(2, 7) ⊃ enhancing box(3, 6) ⊃ necrotic box(4, 6); a region whose
    label is None keeps the label of the one around it (0 around the oedema)."""
    seg = np.zeros(GRID.shape, np.int16)
    for label, region in ((oedema, box(2, 7)), (enhancing, box(3, 6)), (necrotic, box(4, 6))):
        if label is not None:
            seg[region] = label
    return seg


T1C_FULL = NECROTIC_VOXELS + ENHANCING_VOXELS  # 27
FLAIR_FULL = T1C_FULL + OEDEMA_VOXELS  # 125

# (labels written: necrotic, oedema, enhancing) -> {labels option: (T1c, FLAIR) voxels or error}
CONVERSIONS = {
    "brats2021 file (1, 2, 4)": (
        (1, 2, 4),
        {
            "brats2021": (T1C_FULL, FLAIR_FULL),
            "auto": (T1C_FULL, FLAIR_FULL),
            "brats2023": r"unknown labels \[4\]; expected labels='brats2023'",
            "gliodil": r"unknown labels \[2\]; expected labels='gliodil'",
        },
    ),
    "brats2023 file (1, 2, 3)": (
        (1, 2, 3),
        {
            "brats2023": (T1C_FULL, FLAIR_FULL),
            "auto": (T1C_FULL, FLAIR_FULL),
            "brats2021": r"unknown labels \[3\]",
            "gliodil": r"unknown labels \[2\]",
        },
    ),
    "gliodil file (1, 3, 4)": (
        (1, 3, 4),
        {
            "gliodil": (T1C_FULL, FLAIR_FULL),
            "auto": r"both labels 3 and 4 present: ambiguous.*pass labels='gliodil' "
            r"\(1 necrotic, 3 oedema, 4 enhancing\) or 'brats2021'/'brats2023'",
            "brats2021": r"unknown labels \[3\]",
            "brats2023": r"unknown labels \[4\]",
        },
    ),
    # A non-enhancing GliODIL tumour: read as BraTS 2023 its oedema would become enhancing core.
    "gliodil file without enhancing (1, 3)": (
        (1, 3, None),
        {
            "gliodil": (NECROTIC_VOXELS, FLAIR_FULL),
            "brats2023": (FLAIR_FULL, FLAIR_FULL),
            "auto": r"label 3 without label 2: ambiguous.*labels='brats2023'.*'gliodil'",
        },
    ),
    # No oedema, enhancing 4: BraTS 2021 and GliODIL read it alike, so auto accepts it.
    "core only (1, 4)": (
        (1, None, 4),
        {
            "auto": (T1C_FULL, T1C_FULL),
            "brats2021": (T1C_FULL, T1C_FULL),
            "gliodil": (T1C_FULL, T1C_FULL),
        },
    ),
}
CONVERSION_CASES = [
    (case, option) for case, (_, readings) in CONVERSIONS.items() for option in readings
]


@pytest.mark.parametrize(("case", "option"), CONVERSION_CASES)
def test_label_conventions_give_the_expected_voxel_counts_or_name_the_option(
    tmp_path, case, option
):
    """Each convention reads its own file as T1c = necrotic ∪ enhancing and FLAIR = all tumour
    labels (known counts); a label foreign to the convention, or an ambiguous file under
    ``auto``, is refused naming the file, the labels and the option that resolves it."""
    written, readings = CONVERSIONS[case]
    expected = readings[option]
    seg = label_map(*written)
    directory = write(tmp_path / "p", tissues() | {"tumorseg": seg})
    if isinstance(expected, str):
        with pytest.raises(InputError, match=expected) as info:
            load_patient(directory, labels=option)
        assert str(info.value).startswith(str(directory / "tumorseg.nii.gz"))
        return
    patient = load_patient(directory, labels=option)
    t1c, flair = patient.observations.t1c, patient.observations.flair
    assert (int(t1c.sum()), int(flair.sum())) == expected
    assert not (t1c & ~flair).any()
    assert any("tumour labels read as" in note for note in patient.notes)


def test_label_convention_table_and_choices_agree():
    """The imaging table holds exactly the conventions the configuration offers besides auto,
    each with necrotic 1 (as every convention does) and three distinct labels."""
    assert set(LABEL_CONVENTIONS) == set(TUMOUR_LABEL_CONVENTIONS) - {"auto"}
    for table in LABEL_CONVENTIONS.values():
        assert table["necrotic"] == 1 and len(set(table.values())) == 3
    with pytest.raises(InputError, match="unknown tumour label convention 'brats'"):
        load_patient("anywhere", labels="brats")


# --- PET normalisation -----------------------------------------------------------------------

LESION_T1C, LESION_FLAIR = box(4, 7), box(3, 8)
HOT_VOXEL = (5, 5, 5)
EXTRACRANIAL_VOXEL = (0, 0, 0)


def distance_to_lesion_mm() -> np.ndarray:
    """Distance of each voxel centre to the nearest voxel centre of the box lesion box(3, 8),
    analytically: per axis, the gap to the interval [3, 7]."""
    index = np.indices(GRID.shape)
    gap = np.maximum(np.maximum(3 - index, index - 7), 0) * SPACING_MM
    return np.sqrt((gap**2).sum(axis=0))


def regions() -> dict[str, np.ndarray]:
    """Disjoint regions with piecewise-constant uptake."""
    brain = np.zeros(GRID.shape, bool)
    brain[BRAIN] = True
    distance = distance_to_lesion_mm()
    hot = np.zeros(GRID.shape, bool)
    hot[HOT_VOXEL] = True
    extracranial = np.zeros(GRID.shape, bool)
    extracranial[EXTRACRANIAL_VOXEL] = True
    return {
        "hot": hot,
        "t1c": LESION_T1C & ~hot,
        "oedema": LESION_FLAIR & ~LESION_T1C,
        "near": brain & ~LESION_FLAIR & (distance <= TBR_BACKGROUND_MARGIN_MM),
        "background": brain & (distance > TBR_BACKGROUND_MARGIN_MM),
        "extracranial": extracranial,
        "outside": ~brain & ~extracranial,
    }


RAW_UPTAKE = {
    "hot": 550.0,
    "t1c": 500.0,
    "oedema": 300.0,
    "near": 260.0,  # spill-in near the lesion: must not enter the TBR background
    "background": 200.0,
    "extracranial": 2000.0,  # e.g. a venous sinus or muscle: outside brain and lesion
    "outside": 0.0,
}


def raw_pet() -> np.ndarray:
    pet = np.zeros(GRID.shape, np.float32)
    for name, region in regions().items():
        pet[region] = RAW_UPTAKE[name]
    return pet


def pet_patient_dir(directory: Path, pet: np.ndarray) -> Path:
    return write(directory, tissues() | {"t1c": LESION_T1C, "flair": LESION_FLAIR, "pet": pet})


# Expected normalised PET per region, by hand:
# max: / 550 (brain ∪ lesion; the extracranial 2000 is outside it and clipped to 1).
# percentile: the lesion's 125 values are 98 × 300, 26 × 500, 1 × 550; the 99th percentile
#   (linear, position 0.99 · 124 = 122.76 of the sorted values) lies between two 500s: / 500.
# tbr: background mean 200 (brain > 10 mm from the lesion; the 260 ring excluded), peak TBR
#   550 / 200 = 2.75, y = clip((TBR − 1) / 1.75, 0, 1).
EXPECTED_PET = {
    "max": {
        "hot": 1.0,
        "t1c": 500 / 550,
        "oedema": 300 / 550,
        "near": 260 / 550,
        "background": 200 / 550,
        "extracranial": 1.0,
        "outside": 0.0,
    },
    "percentile": {
        "hot": 1.1,
        "t1c": 1.0,
        "oedema": 0.6,
        "near": 0.52,
        "background": 0.4,
        "extracranial": 1.0,
        "outside": 0.0,
    },
    "tbr": {
        "hot": 1.0,
        "t1c": 1.5 / 1.75,
        "oedema": 0.5 / 1.75,
        "near": 0.3 / 1.75,
        "background": 0.0,
        "extracranial": 1.0,
        "outside": 0.0,
    },
}


@pytest.mark.parametrize("method", ["max", "percentile", "tbr"])
def test_pet_normalisations_match_hand_computed_values(tmp_path, method):
    """Raw uptake normalised by each method equals the hand-computed value in every region;
    only `percentile` leaves a value above 1 (its hottest 1 %: 1.1, within the tolerance), and
    says so in a warning naming the file and the range of brain ∪ lesion (min: background 0.4)."""
    directory = pet_patient_dir(tmp_path / "p", raw_pet())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patient = load_patient(directory, pet_normalise=method)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    pet = patient.observations.pet
    for name, region in regions().items():
        np.testing.assert_allclose(pet[region], EXPECTED_PET[method][name], rtol=1e-6, err_msg=name)
    if method == "percentile":
        assert len(messages) == 1
        assert messages[0].startswith(str(directory / "pet.nii.gz"))
        assert "slightly outside [0, 1] (min 0.4, max 1.1)" in messages[0]
    else:
        assert messages == []
    assert any(f"pet_normalise='{method}'" in note for note in patient.notes)


def test_tbr_refuses_a_patient_without_enough_background(tmp_path):
    """A lesion that leaves no brain 10 mm away cannot be referenced to healthy tissue."""
    whole = np.zeros(GRID.shape, bool)
    whole[BRAIN] = True
    directory = write(tmp_path / "p", tissues() | {"flair": whole, "pet": raw_pet()})
    with pytest.raises(InputError, match=r"pet.nii.gz: pet_normalise='tbr' needs at least 1 ml"):
        load_patient(directory, pet_normalise="tbr")


def test_tbr_of_a_pet_negative_lesion_stays_small_and_warns(tmp_path):
    """Peak TBR 1.3 < 1.6 (PET-negative, Law et al. 2019): scaled by 1.6 − 1, not stretched to 1."""
    pet = np.where(LESION_FLAIR, 260.0, np.where(regions()["outside"], 0.0, 200.0))
    directory = pet_patient_dir(tmp_path / "p", pet.astype(np.float32))
    with pytest.warns(UserWarning, match=r"peak tumour-to-background ratio 1\.3 < 1\.6"):
        patient = load_patient(directory, pet_normalise="tbr")
    np.testing.assert_allclose(patient.observations.pet[LESION_FLAIR], 0.3 / 0.6, rtol=1e-6)
    assert any("PET-negative" in note for note in patient.notes)


def normalised_pet(low: float, high: float) -> np.ndarray:
    """PET already normalised: 0.5 in the lesion, `high` in its core voxel, `low` at a corner."""
    pet = np.where(LESION_FLAIR, 0.5, 0.0).astype(np.float32)
    pet[HOT_VOXEL], pet[EXTRACRANIAL_VOXEL] = high, low
    return pet


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.15), (-0.1, 1.0), (-0.2, 1.2)])
def test_normalised_pet_slightly_outside_the_unit_interval_is_kept_with_a_warning(
    tmp_path, low, high
):
    """Values within the tolerated [−0.2, 1.2] are kept as they are (the Gaussian likelihood
    predicts them); the warning names the file and the range, and the patient notes it."""
    directory = pet_patient_dir(tmp_path / "p", normalised_pet(low, high))
    expected = rf"^{directory / 'pet.nii.gz'}: .*min {low:g}, max {high:g}.*\[-0\.2, 1\.2\]"
    with pytest.warns(UserWarning, match=expected):
        patient = load_patient(directory)
    pet = patient.observations.pet
    assert pet[HOT_VOXEL] == np.float32(high) and pet[EXTRACRANIAL_VOXEL] == np.float32(low)
    assert any("slightly outside [0, 1]" in note for note in patient.notes)
    assert PET_TOLERATED_RANGE == (-0.2, 1.2)


def test_normalised_pet_inside_the_unit_interval_loads_silently(tmp_path):
    directory = pet_patient_dir(tmp_path / "p", normalised_pet(0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patient = load_patient(directory)
    assert patient.notes == ()


@pytest.mark.parametrize(
    ("pet", "phrase"),
    [
        (normalised_pet(0.0, 1.25), r"max 1\.25\); normalise it, or pass --pet-normalise"),
        (normalised_pet(-0.3, 1.0), r"min -0\.3, .*--pet-normalise \{max,percentile,tbr\}"),
        (raw_pet(), r"max 2000\); .*--pet-normalise \{max,percentile,tbr\} \(raw uptake\?\)"),
    ],
    ids=["above 1.2", "below -0.2", "raw uptake"],
)
def test_pet_beyond_the_tolerance_is_refused_suggesting_the_option(tmp_path, pet, phrase):
    directory = pet_patient_dir(tmp_path / "p", pet)
    with pytest.raises(InputError, match=r"outside \[0, 1\] beyond the tolerated") as info:
        load_patient(directory)
    assert str(info.value).startswith(str(directory / "pet.nii.gz"))
    assert re.search(phrase, str(info.value)), str(info.value)


@pytest.mark.parametrize(
    ("method", "voxel_uptake", "phrase"),
    [
        ("percentile", 1000.0, r"max 2\); a few voxels are far hotter.*try 'max'"),
        ("max", -275.0, r"min -0\.5, max 1\); strongly negative uptake"),
    ],
    ids=["percentile: hot voxel", "max: negative voxel"],
)
def test_normalised_pet_beyond_the_tolerance_is_refused(tmp_path, method, voxel_uptake, phrase):
    """Normalised by the lesion's 99th percentile (500) a 1000 voxel would be 2: refused,
    suggesting `max`; normalised by the maximum (550) a −275 brain voxel would be −0.5."""
    pet = raw_pet()
    pet[HOT_VOXEL if voxel_uptake > 0 else (10, 10, 10)] = voxel_uptake
    directory = pet_patient_dir(tmp_path / "p", pet)
    with pytest.raises(InputError, match=phrase):
        load_patient(directory, pet_normalise=method)


def test_unknown_pet_normalisation_is_refused():
    with pytest.raises(InputError, match=r"unknown PET normalisation 'mean'; choose from"):
        load_patient("anywhere", pet_normalise="mean")


# --- missing CSF and brain mask --------------------------------------------------------------


def test_missing_csf_is_zero_with_a_warning_a_note_and_a_round_trip(tmp_path):
    """PredictGBM-style files with wm and gm but no csf (as GliomaSolver's sample data): CSF is
    0, wm and gm as given, a warning names the file; the note survives save/load."""
    volumes = tissues()
    volumes["gm"][BRAIN] = 0.25
    volumes["wm"][BRAIN] = 0.75
    files = {"wm": volumes["wm"], "gm": volumes["gm"], "tumorseg": label_map(1, 2, 4)}
    directory = write(tmp_path / "Patient-7", files, fmt="7-{}.nii.gz")
    with pytest.warns(UserWarning, match=r"7-wm\.nii\.gz: no CSF map beside wm and gm"):
        patient = load_patient(directory)
    anatomy = patient.anatomy
    assert not anatomy.csf.any()
    assert int(anatomy.brain_mask.sum()) == 18**3
    np.testing.assert_array_equal(anatomy.gm, volumes["gm"])
    assert any("no CSF map" in note for note in patient.notes)
    # The note travels with the patient through resampling, cropping and save/load (run roi/).
    roi = patient.resampled(4.0).cropped(margin_mm=4.0)
    assert roi.notes == patient.notes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded = load_patient(save_patient(roi, tmp_path / "roi"))
    assert reloaded.notes == patient.notes


def test_brain_mask_sets_tissue_outside_it_to_zero(tmp_path):
    """Half the brain outside the mask: wm, gm and csf vanish there (so neither the PDE nor the
    likelihood sees those voxels); the other half is untouched."""
    volumes = tissues()
    volumes["csf"][0, :, :] = 1.0
    mask = np.zeros(GRID.shape, np.uint8)
    mask[:, :, :10] = 1
    files = volumes | {"brain_mask": mask, "tumorseg": label_map(1, 2, 4)}
    patient = load_patient(write(tmp_path / "Patient-3", files, fmt="3-{}.nii.gz"))
    anatomy = patient.anatomy
    outside = mask == 0
    for name in ("wm", "gm", "csf"):
        assert not getattr(anatomy, name)[outside].any(), name
    assert int(np.count_nonzero(anatomy.wm)) == 18 * 18 * 9
    assert int(anatomy.brain_mask.sum()) == 18 * 18 * 9
    assert int(np.count_nonzero(anatomy.csf)) == 20 * 10
    assert any("removing 2916 voxels" in note for note in patient.notes)


@pytest.mark.parametrize(
    ("mask", "phrase"),
    [
        (np.full(GRID.shape, 255, np.uint8), r"not a binary brain mask: values \[255\]"),
        (np.zeros(GRID.shape, np.uint8), "empty brain.*inside the brain mask"),
    ],
    ids=["0/255", "empty"],
)
def test_bad_brain_masks_are_refused_naming_the_file(tmp_path, mask, phrase):
    files = tissues() | {"brain_mask": mask, "tumorseg": label_map(1, 2, 4)}
    directory = write(tmp_path / "p", files)
    with pytest.raises(InputError, match=phrase) as info:
        load_patient(directory)
    assert str(info.value).startswith(str(directory / "brain_mask.nii.gz"))


# --- the options from configuration, command line and cohort runner --------------------------


def test_calibration_config_round_trips_the_input_options_through_json():
    config = CalibrationConfig(labels="gliodil", pet_normalise="tbr")
    again = CalibrationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.load_options() == {"labels": "gliodil", "pet_normalise": "tbr"}
    assert CalibrationConfig().load_options() == {"labels": "auto", "pet_normalise": "none"}
    # A configuration written before these options existed takes the defaults.
    old = {k: v for k, v in config.to_dict().items() if k not in ("labels", "pet_normalise")}
    assert CalibrationConfig.from_dict(old).load_options()["labels"] == "auto"
    with pytest.raises(InputError, match=r"unknown tumour label convention 'brats2020'"):
        CalibrationConfig(labels="brats2020")
    with pytest.raises(InputError, match=r"unknown PET normalisation 'SUV'.*'tbr'"):
        CalibrationConfig(pet_normalise="SUV")
    assert PET_NORMALISATIONS == ("none", "max", "percentile", "tbr")


@pytest.fixture
def gliodil_patient_outside_the_brain(tmp_path) -> Path:
    """A GliODIL label map (3 and 4 both present: refused under ``auto``) with raw PET, placed
    where there is no white or grey matter. `load_patient` accepts it given the right options;
    `validate_patient`, which runs next and before any sampling, then refuses it for the lesion
    outside the brain. So the error message tells how far a command got, in well under a
    second, without sampling."""
    volumes = tissues()
    for name in ("wm", "gm", "csf"):
        volumes[name][box(2, 7)] = 0.0
    return write(tmp_path / "p", volumes | {"seg": label_map(1, 3, 4), "pet": raw_pet()})


OUTSIDE = "no tumour voxel lies inside the brain"


@pytest.mark.parametrize(
    ("options", "config", "message"),
    [
        ([], None, "both labels 3 and 4 present"),
        (["--labels", "gliodil"], None, "--pet-normalise {max,percentile,tbr} (raw uptake?)"),
        (["--labels", "gliodil", "--pet-normalise", "max"], None, OUTSIDE),
        ([], {"labels": "gliodil", "pet_normalise": "max"}, OUTSIDE),
        (["--labels", "brats2021"], {"labels": "gliodil", "pet_normalise": "max"}, "labels [3]"),
    ],
    ids=["default", "labels", "labels and pet", "config file", "option overrides file"],
)
def test_calibrate_command_line_options_reach_load_patient(
    gliodil_patient_outside_the_brain, tmp_path, capsys, options, config, message
):
    """``bayestumor calibrate DIR --labels … --pet-normalise …`` (and the same in a ``--config``
    file, which explicit options override) reach `load_patient` through `sample_patient`."""
    argv = ["calibrate", str(gliodil_patient_outside_the_brain), "--out", str(tmp_path / "out")]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        argv += ["--config", str(tmp_path / "config.json")]
    assert main(argv + options) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayestumor: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_cohort_task_passes_the_input_options_to_load_patient(
    gliodil_patient_outside_the_brain, tmp_path
):
    """The cohort's default task reads the configuration mapping as a `CalibrationConfig`, so
    its input options reach `load_patient` as well."""
    with pytest.raises(InputError, match="both labels 3 and 4"):
        calibrate_task(gliodil_patient_outside_the_brain, tmp_path / "out", {}, seed=0)
    with pytest.raises(InputError, match=OUTSIDE):
        calibrate_task(
            gliodil_patient_outside_the_brain,
            tmp_path / "out",
            {"labels": "gliodil", "pet_normalise": "tbr"},
            seed=0,
        )
